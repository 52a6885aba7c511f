"""torch.compile(fullgraph=True) traces a model built from rnnlab layers on the triton backend with no graph
break, forward and backward, with and without lengths, and gives the eager numbers. (On the CPU the kernels
run under Triton's interpreter; aot_eager traces forward and backward without needing a C++ compiler.)"""

import pytest
import torch
from helpers import assert_relative_close

import rnnlab
from rnnlab import backends

pytestmark = pytest.mark.skipif(not backends.triton_available(), reason="triton cannot run here")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # the interpreter on the CPU, compiled on a GPU


class Tagger(torch.nn.Module):
    def __init__(self, cls):
        super().__init__()
        self.rnn = cls(4, 5, num_layers=2, bidirectional=True, batch_first=True, backend="triton")
        self.head = torch.nn.Linear(10, 3)

    def forward(self, x, lengths=None):
        return self.head(self.rnn(x, lengths=lengths)[0])


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN], ids=["lstm", "gru", "rnn"])
def test_compiled_model_matches_eager_with_fullgraph(cls, with_lengths):
    torch._dynamo.reset()
    model = Tagger(cls).to(DEVICE)
    x = torch.randn(3, 6, 4, device=DEVICE)
    lengths = torch.tensor([6, 2, 4]) if with_lengths else None
    eager = model(x, lengths)
    eager.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x, lengths)
    out.sum().backward()
    assert_relative_close(out, eager, 1e-5, "output")
    for p, g in zip(model.parameters(), eager_grads, strict=True):
        assert_relative_close(p.grad, g, 1e-5, "gradient")
