import pytest

from rnnlab.data import CharTokenizer, WordTokenizer

TEXTS = [
    "It's not over until it's over.",
    "Ich habe am ursprünglichen Entwurf ein paar Änderungen vorgenommen.",
    "The Rock is destined to be the 21st Century's new ''Conan'' (really!)",
    "co-writer/director Peter Jackson's expanded vision of J.R.R. Tolkien's Middle-earth.",
]


@pytest.mark.parametrize("text", TEXTS)
def test_word_round_trip(text):
    tok = WordTokenizer.build(TEXTS)
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == text


def test_word_pieces_mark_glued_punctuation():
    assert WordTokenizer.split("It's over.") == ["It", "##'", "##s", "over", "##."]


def test_lowercase_and_unknown_words():
    tok = WordTokenizer.build(["Good film", "good acting", "bad film"], min_freq=2, lowercase=True)
    assert tok.vocab[4:] == ["good", "film"]
    assert tok.encode("GOOD awful Film") == [4, tok.unk_id, 5]
    assert tok.decode(tok.encode("good film")) == "good film"


def test_max_size_and_specials():
    tok = WordTokenizer.build(["a a a b b c"], max_size=6)
    assert tok.vocab == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b"]
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)


def test_word_save_and_load():
    tok = WordTokenizer.build(TEXTS, lowercase=True)
    again = WordTokenizer.from_dict(tok.to_dict())
    assert again.vocab == tok.vocab and again.encode(TEXTS[2]) == tok.encode(TEXTS[2])


def test_decode_stops_at_eos_and_skips_padding():
    tok = WordTokenizer.build(["one two"])
    assert tok.decode([tok.bos_id, 4, tok.pad_id, 5, tok.eos_id, 4]) == "one two"


def test_char_round_trip_and_unknown():
    tok = CharTokenizer.build(["X:1\nK:G\n|:GAB c2d|\n", "Emma Woodhouse"])
    text = "K:G\nEmma |GAB"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("Q") == [tok.unk_id]
    again = CharTokenizer.from_dict(tok.to_dict())
    assert again.vocab == tok.vocab
