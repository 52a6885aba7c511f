import pytest
import torch

from rnnlab.models import Seq2Seq

ATTENTIONS = [None, "luong", "bahdanau"]


def model(attention, cell="lstm", **kwargs):
    torch.manual_seed(0)
    args = dict(embedding_dim=8, hidden_size=12, num_layers=2, cell=cell, attention=attention, dropout=0.0)
    return Seq2Seq(23, 19, **{**args, **kwargs}).eval()


def batch():
    src = torch.randint(4, 23, (5, 7))
    lengths = torch.tensor([7, 3, 5, 1, 6])
    src[torch.arange(7)[None, :] >= lengths[:, None]] = 0
    return src, lengths


@pytest.mark.parametrize("attention", ATTENTIONS, ids=str)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_beam_of_one_equals_greedy(attention, cell):
    m = model(attention, cell, bidirectional_encoder=cell != "rnn")
    src, lengths = batch()
    assert m.beam_search(src, lengths, beam_size=1, max_len=12) == m.greedy(src, lengths, max_len=12)


@pytest.mark.parametrize("attention", ATTENTIONS, ids=str)
def test_padding_does_not_change_translations(attention):
    m = model(attention)
    src, lengths = batch()
    together = m.beam_search(src, lengths, beam_size=3, max_len=10)
    alone = [m.beam_search(src[i : i + 1, :n], lengths[i : i + 1], 3, 10)[0] for i, n in enumerate(lengths)]
    assert together == alone
    logits = m(src, lengths, torch.randint(4, 19, (5, 6)))
    assert logits.shape == (5, 6, 19)


def sequence_logp(m, src, lengths, ids):
    tgt = torch.tensor([[m.bos_id, *ids]])
    logp = m(src, lengths, tgt).log_softmax(-1)[0]  # (T, V)
    target = [*ids, m.eos_id]
    return float(sum(logp[t, w] for t, w in enumerate(target))), len(target)


def test_beam_finds_a_hypothesis_at_least_as_good_as_greedy():
    m = model("luong")
    src, lengths = batch()
    for i, n in enumerate(lengths):
        one_src, one_len = src[i : i + 1, :n], lengths[i : i + 1]
        greedy = m.greedy(one_src, one_len, max_len=30)[0]
        beam = m.beam_search(one_src, one_len, beam_size=5, max_len=30, length_penalty=0.0)[0]
        if len(greedy) < 30 and len(beam) < 30:  # both ended with <eos>: compare their total log-probability
            assert (
                sequence_logp(m, one_src, one_len, beam)[0]
                >= sequence_logp(m, one_src, one_len, greedy)[0] - 1e-4
            )


def test_teacher_forcing_zero_feeds_own_predictions():
    m = model("bahdanau")
    src, lengths = batch()
    tgt_a, tgt_b = torch.randint(4, 19, (5, 6)), torch.randint(4, 19, (5, 6))
    tgt_b[:, 0] = tgt_a[:, 0]
    torch.testing.assert_close(m(src, lengths, tgt_a, teacher_forcing=0.0), m(src, lengths, tgt_b, 0.0))
    assert not torch.allclose(m(src, lengths, tgt_a), m(src, lengths, tgt_b))


def test_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="attention"):
        Seq2Seq(10, 10, attention="dot")


def decoders(m, beam_size):
    if beam_size == 1:
        return m.greedy
    return lambda src, lengths, max_len: m.beam_search(src, lengths, beam_size, max_len)


def ending_at_source_length(m):
    """``m`` says ``<eos>`` only as its output word number len(source): (B,) outputs of len(source) - 1
    words, or fewer where the cap comes first. The rule reads nothing but the row's own source length."""
    step = m.step
    with torch.no_grad():
        m.out.bias[m.eos_id] -= 1e4

    def forced(prev, enc):
        t = enc.get("t", 0) + 1  # this step's output word number, carried along in the decoder state
        logits, new = step(prev, enc)
        logits[enc["mask"].sum(-1) == t, m.eos_id] += 2e4
        return logits, {**new, "t": t}

    m.step = forced
    return m


@pytest.mark.parametrize("attention", ATTENTIONS, ids=str)
@pytest.mark.parametrize("beam_size", [1, 3], ids=["greedy", "beam3"])
@pytest.mark.parametrize("early_eos", [False, True], ids=["to_the_cap", "early_eos"])
def test_each_sequence_stops_at_its_own_cap_alone_or_batched(attention, beam_size, early_eos):
    m = model(attention)
    if early_eos:
        ending_at_source_length(m)
    else:
        with torch.no_grad():
            m.out.bias[m.eos_id] -= 1e4  # no <eos>: every output runs to its cap
    decode = decoders(m, beam_size)
    src, lengths = batch()  # lengths 7, 3, 5, 1, 6
    caps = torch.tensor([9, 3, 0, 1, 12])
    together = decode(src, lengths, caps)
    alone = [decode(src[i : i + 1, :n], lengths[i : i + 1], int(caps[i]))[0] for i, n in enumerate(lengths)]
    assert together == alone
    expected = torch.minimum(caps, lengths - 1) if early_eos else caps  # early: 6, 2, 0, 0, 5
    assert [len(out) for out in together] == expected.tolist()


@pytest.mark.parametrize("beam_size", [1, 3], ids=["greedy", "beam3"])
def test_max_len_zero_gives_empty_outputs(beam_size):
    decode = decoders(model("luong"), beam_size)
    src, lengths = batch()
    assert decode(src, lengths, 0) == [[]] * 5
    assert decode(src, lengths, torch.zeros(5, dtype=torch.long)) == [[]] * 5


def test_bad_beam_size_or_max_len_is_refused_by_name():
    m = model("luong")
    src, lengths = batch()
    for beam_size in (0, -1):
        with pytest.raises(ValueError, match="beam_size"):
            m.beam_search(src, lengths, beam_size=beam_size, max_len=5)
    for max_len in (-1, torch.tensor([3, 3, -1, 3, 3]), torch.tensor([3, 3]), 2.5):
        with pytest.raises(ValueError, match="max_len"):
            m.greedy(src, lengths, max_len=max_len)
        with pytest.raises(ValueError, match="max_len"):
            m.beam_search(src, lengths, beam_size=2, max_len=max_len)
