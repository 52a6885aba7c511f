import pytest

from rnnlab.data.abc import check_tune, header, normalise_tune, read_tunes
from rnnlab.data.io import CorpusError, corpus_path

GOOD = """X:7
T:The Kesh
M:6/8
L:1/8
K:G
|:GAG GAB|ABA ABd|edd gdd|edB dBA|
(3Bcd e {g}f2 .d|[DG]2 z [K:D] ~F>E^D=C|1 _B,,3 A'2G:|2 G3 G2 z||
"""


def test_a_well_formed_tune_parses():
    result = check_tune(GOOD)
    assert result.ok, result.errors
    assert result.header["K"] == "G" and result.bars >= 8 and result.notes > 20


@pytest.mark.parametrize(
    "change,words",
    [
        (lambda t: t.replace("X:7\n", ""), "start with an X:"),
        (lambda t: t.replace("X:7", "X:seven"), "tune number"),
        (lambda t: t.replace("T:The Kesh\n", ""), "lacks T:"),
        (lambda t: t.replace("M:6/8", "M:six"), "metre"),
        (lambda t: t.replace("K:G\n", ""), "before the K:"),
        (lambda t: t.replace("K:G", "K:Q"), "key"),
        (lambda t: t.replace("(3Bcd", "(Bcd"), "slur"),
        (lambda t: t.replace("GAB|", "GAB)|"), "closes no slur"),
        (lambda t: t.replace("edB", "e@B"), "cannot read"),
        (lambda t: t.split("K:G\n")[0] + "K:G\nGA\n", "only 2 note"),
        (lambda t: t.split("K:G\n")[0] + "K:G\nGAG GAB ABA ABd edd\n", "no bar line"),
    ],
    ids=[
        "no-X",
        "X-not-number",
        "no-T",
        "bad-metre",
        "no-K",
        "bad-key",
        "open-slur",
        "extra-close",
        "junk",
        "too-short",
        "no-bars",
    ],
)
def test_broken_tunes_are_rejected_with_a_reason(change, words):
    result = check_tune(change(GOOD))
    assert not result.ok
    assert any(words in error for error in result.errors), result.errors


def test_the_collection_parses_almost_entirely():
    tunes = read_tunes(corpus_path("generation/oneills1850.abc.gz"))
    assert len(tunes) == 2009
    assert sum(check_tune(t).ok for _, t in tunes) / len(tunes) > 0.97


def test_normalise_keeps_the_header_fields_in_order():
    raw = [
        "X: 3",
        "T: Air",
        "T: Other name",
        "M: C|",
        "B: book",
        "Z: someone",
        "K:D",
        "% comment",
        "DFA|",
        "W: words",
    ]
    assert normalise_tune(raw) == "X:3\nT:Air\nM:C|\nK:D\nDFA|\n"


def test_header_prompt():
    assert header("Em", "3/4", number=4).startswith("X:4\nT:Untitled\nM:3/4\nL:1/8\nK:Em\n")
    assert check_tune(header() + "|:DFA dfa|d2f a3:|\n").ok


def test_bad_abc_files_name_the_line(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text("% my tunes\nT:no number\n")
    with pytest.raises(CorpusError, match=r"tunes\.abc: no tune found"):
        read_tunes(path)
    path.write_text("X:1\nT:a\nK:D\nDFA|\n\nX:two\nK:D\n")
    with pytest.raises(CorpusError, match=r"tunes\.abc:6: X: must be followed by a tune number"):
        read_tunes(path)
    path.write_text("X:1\nT:a\nM:C\nDFA|\n")
    with pytest.raises(CorpusError, match=r"tunes\.abc:1: tune has no K:"):
        read_tunes(path)
