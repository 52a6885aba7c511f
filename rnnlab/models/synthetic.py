"""The model of the synthetic tasks: inputs -> one recurrent layer stack -> a linear read-out at every step.

Token inputs (the copy task) are one-hot encoded rather than embedded, so nothing but the recurrence has to
be learnt. ``spectral_radius`` rescales the recurrent weights at initialisation, for the study of exploding
gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import make_rnn


def set_spectral_radius(weight_hh: torch.Tensor, radius: float) -> None:
    """Scale each (H, H) gate block of ``weight_hh`` ((G*H, H)) in place so that its largest absolute
    eigenvalue is ``radius``."""
    hidden = weight_hh.shape[1]
    with torch.no_grad():
        for block in weight_hh.split(hidden, dim=0):  # (H, H) per gate
            current = torch.linalg.eigvals(block.double()).abs().max()
            block.mul_(radius / float(current))


class SyntheticModel(nn.Module):
    """Per-step outputs (B, T, output_size) for inputs (B, T, input_size) floats or (B, T) token ids.

    Args:
        input_size: features per step; for token ids, the vocabulary size (inputs are one-hot encoded).
        output_size: outputs per step (1 for a regression, the number of classes otherwise).
        tokens: whether the inputs are token ids.
        spectral_radius: if given, every recurrent weight matrix (each gate's block) is rescaled to it.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        tokens: bool = False,
        spectral_radius: float | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.input_size, self.tokens = input_size, tokens
        self.rnn = make_rnn(
            cell, input_size, hidden_size, num_layers, nonlinearity=nonlinearity, backend=backend
        )
        if spectral_radius is not None:
            for name, weight in self.rnn.named_parameters():
                if name.startswith("weight_hh"):
                    set_spectral_radius(weight, spectral_radius)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.tokens:
            inputs = F.one_hot(inputs, self.input_size).float()  # (B, T, V)
        out, _ = self.rnn(inputs)  # (B, T, H)
        return self.head(out)  # (B, T, O)
