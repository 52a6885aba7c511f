"""A small ABC music notation reader: split a file into tunes, normalise them, and check that a tune parses.

The check covers what a sampled tune most often gets wrong: a header that starts with ``X:<number>`` and
ends with ``K:<key>`` and holds ``T:`` and ``M:`` (with valid metre, unit length and key values), and a body
of bar lines, notes (accidentals, octave marks, lengths), rests, chords ``[..]``, grace notes ``{..}``,
tuplets ``(3``, slurs ``( )`` that balance, ties, broken rhythm ``> <``, decorations, quoted annotations and
inline fields ``[K:..]``. It does not check that bars add up to the metre.

Example::

    check_tune("X:1\\nT:Air\\nM:6/8\\nL:1/8\\nK:D\\n|:DFA dfa|\\n").ok    # True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .io import CorpusError, read_lines

HEADER_KEEP = ("X", "T", "M", "L", "K")  # the fields kept by normalise_tune, in this order
REQUIRED = ("X", "T", "M", "K")
MODES = ("maj", "min", "m", "mix", "dor", "phr", "lyd", "loc", "aeo", "ion", "exp")

_FIELD = re.compile(r"^([A-Za-z]):(.*)$")
_METRE = re.compile(r"^(C\|?|none|\d+(\+\d+)*/\d+)$")
_LENGTH = re.compile(r"^\d+/\d+$")
_KEY = re.compile(r"^(none|HP|Hp|[A-G][#b]?\s*([A-Za-z]*))(\s.*)?$")

_DURATION = r"\d*(?:/+\d*)*"
_PITCH = r"[_^=]*[A-Ga-g][,']*"
_BODY_TOKENS = [
    ("space", r"\s+"),
    ("comment", r"%.*"),
    ("inline_field", r"\[[A-Za-z]:[^\]\[]*\]"),
    ("bar", r"\[\||:*\|[|\]]*:*(?:\d+(?:[,-]\d+)*)?|::+|\[\d+(?:[,-]\d+)*"),
    ("chord", rf"\[(?:{_PITCH}{_DURATION}-?)+\]{_DURATION}"),
    ("grace", rf"\{{/?(?:{_PITCH}{_DURATION}\s*)+\}}"),
    ("note", rf"{_PITCH}{_DURATION}"),
    ("rest", rf"[zxZX]{_DURATION}"),
    ("tuplet", r"\(\d(?::\d*){0,2}"),
    ("slur_open", r"\("),
    ("slur_close", r"\)"),
    ("tie", r"-"),
    ("broken", r"[<>]+"),
    ("decoration", r"![^!\n]*!|\+[^+\n]*\+|[.~HLMOPSTuvJR]"),
    ("annotation", r'"[^"\n]*"'),
    ("other", r"[\\`y&$]"),
]
_BODY = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _BODY_TOKENS))


@dataclass
class ABCCheck:
    """The verdict on one tune: ``ok`` when ``errors`` is empty."""

    errors: list[str] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)
    notes: int = 0
    bars: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _check_field(name: str, value: str) -> str | None:
    """An error message for a bad header value, or None."""
    value = value.strip()
    if name == "X" and not value.isdigit():
        return f"X: must be a tune number, got {value!r}"
    if name == "M" and not _METRE.match(value):
        return f"M: must be a metre like 6/8, C or C|, got {value!r}"
    if name == "L" and not _LENGTH.match(value):
        return f"L: must be a unit length like 1/8, got {value!r}"
    if name == "K":
        match = _KEY.match(value)
        mode = (match.group(2) or "").lower() if match else ""
        if not match or (mode and not any(mode.startswith(m) for m in MODES if len(mode) >= len(m))):
            return f"K: must be a key like D, Gm, Ador or Dmix, got {value!r}"
    if name == "T" and not value:
        return "T: is empty"
    return None


def check_tune(text: str, min_notes: int = 4) -> ABCCheck:
    """Whether one tune (``X:`` line first) parses; see the module docstring for what is checked."""
    result = ABCCheck()
    lines = [line.rstrip() for line in text.strip("\n").split("\n")]
    lines = [line for line in lines if not line.lstrip().startswith("%")]
    if not lines or not lines[0].startswith("X:"):
        result.errors.append("a tune must start with an X: line")
        return result
    in_header, slurs = True, 0
    for number, line in enumerate(lines, start=1):
        match = _FIELD.match(line)
        if match and (in_header or match.group(1) in "KMLPQTWwRNw"):
            name, value = match.groups()
            if in_header:
                result.header.setdefault(name, value.strip())
            error = _check_field(name, value)
            if error:
                result.errors.append(f"line {number}: {error}")
            if name == "K":
                in_header = False
            continue
        if in_header:
            if not line.strip():
                break
            result.errors.append(f"line {number}: music before the K: field ends the header")
            return result
        if not line.strip():
            break  # a blank line ends the tune
        position = 0
        while position < len(line):
            token = _BODY.match(line, position)
            if token is None or token.end() == position:
                result.errors.append(
                    f"line {number}, column {position + 1}: cannot read {line[position:][:10]!r}"
                )
                return result
            kind = token.lastgroup
            if kind in ("note", "chord"):
                result.notes += 1
            elif kind == "bar":
                result.bars += 1
            elif kind == "slur_open":
                slurs += 1
            elif kind == "slur_close":
                slurs -= 1
                if slurs < 0:
                    result.errors.append(f"line {number}, column {position + 1}: ')' closes no slur")
                    return result
            elif kind == "inline_field":
                error = _check_field(token.group()[1], token.group()[3:-1])
                if error:
                    result.errors.append(f"line {number}, column {position + 1}: {error}")
            position = token.end()
    missing = [name for name in REQUIRED if name not in result.header]
    if missing:
        result.errors.append(f"header lacks {', '.join(f'{m}:' for m in missing)}")
    if slurs:
        result.errors.append(f"{slurs} slur(s) left open")
    if result.notes < min_notes:
        result.errors.append(f"only {result.notes} note(s); at least {min_notes} expected")
    if result.bars < 1:
        result.errors.append("no bar line")
    return result


def parses(text: str) -> bool:
    return check_tune(text).ok


def normalise_tune(lines: list[str]) -> str:
    """One tune as training text: header fields X, T (the first), M, L, K in that order with no space
    after the colon, then the music lines; comments, lyrics and notes about the source are dropped."""
    header: dict[str, str] = {}
    body: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line.strip() or line.lstrip().startswith("%"):
            continue
        match = _FIELD.match(line)
        if match and "K" not in header:
            name, value = match.group(1), match.group(2).strip()
            if name in HEADER_KEEP and name not in header:
                header[name] = value
            continue
        if match and match.group(1) not in "KML":
            continue  # W:, N:, ... inside the body
        body.append(line.strip() if not match else f"{match.group(1)}:{match.group(2).strip()}")
    head = [f"{name}:{header[name]}" for name in HEADER_KEEP if name in header]
    return "\n".join(head + body) + "\n"


def read_tunes(path: str | Path) -> list[tuple[int, str]]:
    """(line number of the X: line, normalised tune) for each tune of an ABC file.

    Lines before the first ``X:`` (a file header) are skipped. A file without any ``X:`` line, or an
    ``X:`` that is not followed by a number, raises CorpusError naming the file and line.
    """
    tunes: list[tuple[int, list[str]]] = []
    for number, line in read_lines(path):
        if line.startswith("X:"):
            if not line[2:].strip().isdigit():
                raise CorpusError(path, f"X: must be followed by a tune number, got {line!r}", number)
            tunes.append((number, [line]))
        elif tunes:
            tunes[-1][1].append(line)
    if not tunes:
        raise CorpusError(path, "no tune found: an ABC file needs 'X:' lines, one at the start of each tune")
    out = []
    for number, lines in tunes:
        if not any(line.startswith("K:") for line in lines):
            raise CorpusError(path, "tune has no K: (key) field, which must end its header", number)
        out.append((number, normalise_tune(lines)))
    return out


def header(key: str = "D", metre: str = "6/8", length: str = "1/8", title: str = "Untitled", number: int = 1):
    """The header of a tune, ready to prompt a model with (the one-to-many case: a tune from its key and
    metre)."""
    return f"X:{number}\nT:{title}\nM:{metre}\nL:{length}\nK:{key}\n"
