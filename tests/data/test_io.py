"""Every bad-file case fails at set-up with a message that names the file and the line."""

import gzip
import re

import pytest

from rnnlab.data import CorpusError, read_lines, read_tsv
from rnnlab.data.io import CHECKSUMS, corpus_path
from rnnlab.data.sentiment import SentimentDataModule, read_sentiment


def write(path, text: str, compress: bool | None = None):
    data = text.encode("utf-8")
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def expect_error(call, path, line=None, words=""):
    with pytest.raises(CorpusError) as info:
        call(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:" if line is not None else f"{path}:"), message
    assert re.search(words, message), message
    return message


@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz"])
def test_good_file_reads(tmp_path, suffix):
    path = write(tmp_path / f"ok{suffix}", "score\ttext\n1.5\tfine\n0\tmeh\n-2\tbad\n")
    assert read_sentiment(path) == [(2, "fine", 1), (4, "bad", 0)]


def test_missing_file(tmp_path):
    expect_error(read_lines, tmp_path / "absent.tsv", words="no such file")


@pytest.mark.parametrize("name,text", [("empty.tsv", ""), ("blank.tsv", "\n \n"), ("empty.tsv.gz", "")])
def test_empty_file(tmp_path, name, text):
    expect_error(read_lines, write(tmp_path / name, text), words="empty")


def test_gz_name_without_gzip_content(tmp_path):
    path = write(tmp_path / "plain.tsv.gz", "score\ttext\n1\tok\n", compress=False)
    expect_error(read_lines, path, words="not a gzip")


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(gzip.compress(b"score\ttext\n" + b"1\tgood words here\n" * 200)[:60])
    expect_error(read_lines, path, words="broken gzip")


@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz"])
def test_not_utf8_names_the_line(tmp_path, suffix):
    raw = "score\ttext\n1\tgood\n-1\tna\xefve\n".encode("latin-1")
    path = tmp_path / f"latin{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    expect_error(read_lines, path, line=3, words="not UTF-8")


def test_wrong_header(tmp_path):
    path = write(tmp_path / "h.tsv", "rating\ttext\n1\tgood\n")
    expect_error(read_sentiment, path, line=1, words="header")


def test_missing_tab(tmp_path):
    path = write(tmp_path / "t.tsv", "score\ttext\n1\tgood\n-1 bad\n")
    expect_error(read_sentiment, path, line=3, words="no tab")


def test_extra_field(tmp_path):
    path = write(tmp_path / "t.tsv", "de\ten\nein\tone\tuno\n")
    expect_error(lambda p: read_tsv(p, ("de", "en")), path, line=2, words="3 tab-separated")


def test_non_numeric_score(tmp_path):
    path = write(tmp_path / "s.tsv", "score\ttext\n1\tgood\n\n-1\tbad\nhigh\tgreat\n")
    expect_error(read_sentiment, path, line=5, words="not a number")


def test_empty_field(tmp_path):
    path = write(tmp_path / "e.tsv", "score\ttext\n1\t \n")
    expect_error(read_sentiment, path, line=2, words="empty 'text'")


def test_datamodule_reports_a_bad_user_file_at_setup(tmp_path):
    path = write(tmp_path / "mine.tsv", "score\ttext\n1\tgood\n2\tnice\nx\tbad\n")
    dm = SentimentDataModule(path=str(path))
    expect_error(lambda p: dm.setup("fit"), path, line=4, words="not a number")


@pytest.mark.parametrize("name", sorted(CHECKSUMS))
def test_vendored_corpora_match_their_checksums(name):
    assert corpus_path(name).exists()
