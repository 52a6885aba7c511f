"""Reading corpus files, with errors that name the file and the line.

Every corpus is UTF-8 text, optionally gzip-compressed (``.gz``). A file that is missing, empty, not gzip
where its name says so, not UTF-8, or malformed (a wrong header, a missing tab, a score that is not a number)
raises :class:`CorpusError` when a DataModule is set up, with ``path:line:`` at the front of the message, so
that a bad file never surfaces as a crash deep inside training.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Sequence
from pathlib import Path

CORPORA = Path(__file__).parent / "corpora"

# sha256 of each vendored file (first 16 hex digits), from the provenance notes in corpora/*/NOTES.md.
CHECKSUMS = {
    "generation/austen_emma.txt.gz": "f95f3411bdf33df9",
    "generation/austen_mansfieldpark.txt.gz": "53a30a8b0f0b2cd1",
    "generation/austen_northangerabbey.txt.gz": "222f9f034b9a16f8",
    "generation/austen_persuasion.txt.gz": "7dd51028a912ffa4",
    "generation/austen_prideprejudice.txt.gz": "dbb859d8971e8a88",
    "generation/austen_sensesensibility.txt.gz": "91bf9c88ca9182f3",
    "generation/oneills1850.abc.gz": "7e1b3dcc41389434",
    "sentiment/amazonReviewSnippets.tsv.gz": "53e5558804794b37",
    "sentiment/movieReviewSnippets.tsv.gz": "7bed193937d4ae59",
    "sentiment/nytEditorialSnippets.tsv.gz": "0ab392596b344852",
    "sentiment/tweets.tsv.gz": "682e09da028c5129",
    "translation/ding_de_en.tsv.gz": "15b1671a2c83487e",
}


class CorpusError(ValueError):
    """A corpus file that cannot be used; the message starts with ``path:line:`` (or ``path:``)."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")


def corpus_path(relative: str) -> Path:
    """The vendored file ``corpora/<relative>``, checked against its recorded checksum."""
    path = CORPORA / relative
    expected = CHECKSUMS.get(relative)
    if expected is not None and path.exists():
        actual = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if actual != expected:
            raise CorpusError(path, f"damaged copy: sha256 starts {actual}, expected {expected}")
    return path


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, text) for every line of a UTF-8 (optionally gzipped) file, without line endings.

    Line numbers count from 1 as an editor shows them. Raises CorpusError for a missing, empty, broken-gzip
    or non-UTF-8 file; a decoding error names the first line it occurs on.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(path, "no such file")
    if path.is_dir():
        raise CorpusError(path, "is a directory, expected a file")
    raw = path.read_bytes()
    is_gzip = raw[:2] == b"\x1f\x8b"
    if path.suffix == ".gz" or is_gzip:
        if not is_gzip:
            raise CorpusError(path, "not a gzip file (the name ends in .gz but the content is not gzip)")
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise CorpusError(path, f"broken gzip data ({error})") from None
    if not raw.strip():
        raise CorpusError(path, "empty file")
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        raw = raw[3:]
    lines = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorpusError(
                path, f"not UTF-8 text (byte {line[error.start]:#04x} at column {error.start + 1})", number
            ) from None
        lines.append((number, text.rstrip("\r")))
    if lines and lines[-1][1] == "":
        lines.pop()  # the final newline
    return lines


def read_tsv(path: str | Path, columns: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Rows of a tab-separated file whose first line is exactly the header ``columns``.

    Returns (line number, fields) for each non-blank line after the header. Every row must have exactly
    ``len(columns)`` non-empty fields; otherwise CorpusError names the line.
    """
    lines = read_lines(path)
    header = "\t".join(columns)
    number, first = lines[0]
    if first.strip() != header:
        shown = first if len(first) < 60 else first[:57] + "..."
        raise CorpusError(path, f"expected the header {header!r}, found {shown!r}", number)
    rows = []
    for number, text in lines[1:]:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != len(columns):
            what = "no tab" if len(fields) == 1 else f"{len(fields)} tab-separated fields"
            raise CorpusError(
                path, f"expected {len(columns)} tab-separated fields {columns}, found {what}", number
            )
        for name, field in zip(columns, fields, strict=True):
            if not field.strip():
                raise CorpusError(path, f"empty {name!r} field", number)
        rows.append((number, fields))
    if not rows:
        raise CorpusError(path, "no rows after the header")
    return rows
