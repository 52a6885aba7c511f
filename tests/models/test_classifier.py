import pytest
import torch

from rnnlab.models import SentimentClassifier


def test_article_model_has_keras_parameter_count():
    model = SentimentClassifier.article()
    assert sum(p.numel() for p in model.parameters()) == 164_106
    assert model(torch.randint(0, 1000, (3, 7))).shape == (3, 10)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padding_does_not_change_the_logits(cell, pooling, bidirectional):
    model = SentimentClassifier(
        50,
        3,
        embedding_dim=8,
        hidden_size=6,
        num_layers=2,
        cell=cell,
        bidirectional=bidirectional,
        pooling=pooling,
    ).eval()
    tokens = torch.randint(1, 50, (4, 9))
    lengths = torch.tensor([9, 4, 1, 6])
    padded = torch.cat([tokens, torch.zeros(4, 5, dtype=torch.long)], 1)
    for row, n in enumerate(lengths):
        padded[row, n:] = 0
    expected = torch.stack([model(tokens[i : i + 1, :n]) for i, n in enumerate(lengths)])[:, 0]
    torch.testing.assert_close(model(padded, lengths), expected, rtol=1e-5, atol=1e-6)


def test_rnn_nonlinearity_and_backend_reach_the_layer():
    model = SentimentClassifier(20, cell="rnn", nonlinearity="relu", backend="reference")
    assert model.rnn.nonlinearity == "relu" and model.rnn.backend == "reference"


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="pooling"):
        SentimentClassifier(10, pooling="attention")
    with pytest.raises(ValueError, match="cell"):
        SentimentClassifier(10, cell="transformer")
    with pytest.raises(ValueError, match="preset"):
        SentimentClassifier.from_preset("nope")
