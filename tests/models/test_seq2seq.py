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
