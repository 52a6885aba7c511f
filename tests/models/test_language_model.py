import math

import pytest
import torch

from rnnlab.models import LanguageModel
from rnnlab.models.language_model import detach_state, filter_logits


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = filter_logits(logits, top_k=2)
    assert torch.isfinite(kept).tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.05, 0.3, 0.15])
    logits = probs.log()
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [True, False, True, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.8)).tolist() == [True, False, True, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [True, False, True, True]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).tolist() == [True, False, False, False]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_carried_state_over_chunks_equals_one_pass(cell):
    model = LanguageModel(30, 8, 12, num_layers=2, cell=cell, dropout=0.0).eval()
    tokens = torch.randint(0, 30, (3, 20))
    whole, _ = model(tokens)
    state, parts = None, []
    for chunk in tokens.split(7, dim=1):
        logits, state = model(chunk, state)
        state = detach_state(state)
        parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=1e-5, atol=1e-6)


def test_tied_weights_share_the_embedding():
    model = LanguageModel(40, embedding_dim=16, hidden_size=24, tie_weights=True)
    assert model.head.weight is model.embedding.weight and model.project.out_features == 16
    assert model(torch.randint(0, 40, (2, 5)))[0].shape == (2, 5, 40)


def test_sampling_is_seeded_and_greedy_at_temperature_zero():
    model = LanguageModel(20, 8, 16, num_layers=1).eval()
    one = model.sample([1, 2, 3], 30, generator=torch.Generator().manual_seed(5), top_k=5, top_p=0.9)
    two = model.sample([1, 2, 3], 30, generator=torch.Generator().manual_seed(5), top_k=5, top_p=0.9)
    assert one == two and len(one) == 30
    greedy = model.sample([1, 2, 3], 10, temperature=0)
    context, expected = [1, 2, 3], []
    for _ in range(10):  # re-run the whole context each step: the carried state must give the same argmax
        expected.append(int(model(torch.tensor([context]))[0][0, -1].argmax()))
        context.append(expected[-1])
    assert greedy == expected


def test_sampling_stops_when_asked():
    model = LanguageModel(5, 4, 8, num_layers=1)
    out = model.sample([], 100, stop=lambda generated: len(generated) == 7)
    assert len(out) == 7


def test_untrained_loss_is_near_uniform():
    model = LanguageModel(50, 16, 32)
    logits, _ = model(torch.randint(0, 50, (4, 10)))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.randint(0, 50, (40,)))
    assert abs(float(loss) - math.log(50)) < 0.3


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"top_k": -5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": -0.5}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": 0, "top_k": -1}, "top_k"),  # greedy never filters, but a wrong value is still wrong
    ],
    ids=["T=-1", "T=nan", "T=inf", "top_k=-5", "top_p=0", "top_p=-0.5", "top_p=1.5", "T=0,top_k=-1"],
)
def test_out_of_range_sampling_arguments_are_refused(kwargs, name):
    model = LanguageModel(10, 4, 8, num_layers=1)
    with pytest.raises(ValueError, match=name):
        model.sample([1], 5, generator=torch.Generator().manual_seed(0), **kwargs)


@pytest.mark.parametrize("kwargs", [{"top_k": -1}, {"top_p": 0.0}, {"top_p": 2.0}], ids=str)
def test_filter_logits_refuses_out_of_range_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        filter_logits(torch.randn(6), **kwargs)


def test_zero_or_none_top_k_and_top_p_one_filter_nothing():
    logits = torch.randn(2, 7)
    for kwargs in (
        {"top_k": 0},
        {"top_k": None},
        {"top_k": 7},
        {"top_k": 50},
        {"top_p": 1.0},
        {"top_p": None},
    ):
        assert torch.equal(filter_logits(logits, **kwargs), logits), kwargs
