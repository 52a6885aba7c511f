"""Vanishing gradients: the norm of dL/dh_t against the distance from the loss, for the Elman RNN (tanh,
sigmoid, relu), the GRU and the LSTM, at initialisation and after training on the adding problem.

Each variant is the adding_<cell> preset (rnnlab.compose + rnnlab.train). Its layer is then unrolled one
step at a time with a cell holding the same weights, so that every state h_t is a node whose gradient can be
read, and the loss of the last step (summed squared error) is back-propagated through it. Writes
results.csv (every norm), summary.csv (one row per variant) and gradients.png into --results; run folders go
to --out:

    nice -n 19 python experiments/vanishing-gradients/run.py                # ~5 min on 2 CPU cores
    python experiments/vanishing-gradients/run.py --tiny --results /tmp/vg  # seconds: what the tests run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import rnnlab
from rnnlab.data import AddingDataModule
from rnnlab.experiment import QUIET
from rnnlab.models.common import make_cell
from rnnlab.tasks.curves import write_csv

HERE = Path(__file__).parent
VARIANTS = {  # label -> (cell, nonlinearity)
    "rnn-tanh": ("rnn", "tanh"),
    "rnn-sigmoid": ("rnn", "sigmoid"),
    "rnn-relu": ("rnn", "relu"),
    "gru": ("gru", "tanh"),
    "lstm": ("lstm", "tanh"),
}


def state_gradient_norms(task, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(T,) the batch mean of ||dL/dh_t|| for t = 0..T-1, L = sum over the batch of the squared error at
    the last step (so each example's gradient is its own loss's). The layer (one layer, unidirectional) is
    unrolled with a cell of the same weights; its last output is checked against the layer's. Computed in
    float64: in float32 the norms far from the loss underflow to 0."""
    model, hp = task.model.double(), task.hparams
    inputs, targets = inputs.double(), targets.double()
    layer = model.rnn
    cell = make_cell(hp.cell, layer.input_size, layer.hidden_size, hp.nonlinearity, backend="reference")
    cell.load_state_dict({name.removesuffix("_l0"): value for name, value in layer.state_dict().items()})
    cell.double()
    h = torch.zeros(len(inputs), layer.hidden_size, dtype=torch.float64)
    state = (h, torch.zeros_like(h)) if hp.cell == "lstm" else h
    states = []
    for t in range(inputs.shape[1]):
        state = cell(inputs[:, t], state)
        h = state[0] if hp.cell == "lstm" else state  # (B, H)
        h.retain_grad()
        states.append(h)
    prediction = model.head(h)[:, 0]  # (B,)
    torch.testing.assert_close(prediction, model(inputs)[:, -1, 0], rtol=1e-7, atol=1e-9)
    ((prediction - targets) ** 2).sum().backward()
    return torch.stack([s.grad.norm(dim=-1).mean() for s in states]).detach()  # (T,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=100, help="T of the adding problem")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of 157 steps")
    parser.add_argument("--batch", type=int, default=256, help="test sequences the norms are averaged over")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="T=12, one small epoch: for the tests")
    parser.add_argument("--out", default="outputs/vanishing-gradients")
    parser.add_argument("--results", default=str(HERE))
    args = parser.parse_args()
    tiny = ["data.sizes=[64,16,32]", "data.batch_size=16", "model.hidden_size=8"] if args.tiny else []
    seq_len, epochs = (12, 1) if args.tiny else (args.seq_len, args.epochs)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)

    data = AddingDataModule(seq_len=seq_len, sizes=(1, 1, args.batch), seed=args.seed)
    data.setup()
    inputs, targets = data.data["test"]["inputs"], data.data["test"]["targets"]
    norms, summary = {}, []
    for label in args.variants:
        cell, nonlinearity = VARIANTS[label]
        overrides = [
            f"experiment=adding_{cell}",
            f"model.nonlinearity={nonlinearity}",
            f"data.seq_len={seq_len}",
            f"trainer.max_epochs={epochs}",
            f"seed={args.seed}",
            "threads=1",
            *QUIET,
            *tiny,
        ]
        # train=false: the task as initialised (the same seed gives the training run's initial weights).
        for when, extra in (("init", ["train=false", "test=false"]), ("trained", [])):
            out = Path(args.out) / label / when
            metrics, task = rnnlab.train(rnnlab.compose([*overrides, *extra, f"paths.output_dir={out}"]))
            norms[label, when] = state_gradient_norms(task.cpu().eval(), inputs, targets)
        row = {"variant": label, "test_mse": round(metrics["test/loss"], 5)}
        for when in ("init", "trained"):
            n = norms[label, when]
            row[f"{when}_norm_last"] = float(f"{n[-1]:.4g}")  # distance 0: the step the loss reads
            row[f"{when}_norm_first"] = float(f"{n[0]:.4g}")  # distance T-1
            row[f"{when}_ratio"] = float(f"{n[0] / n[-1]:.3g}")
        summary.append(row)
        print(row, flush=True)

    write_csv(
        [
            {"variant": label, "when": when, "distance": seq_len - 1 - t, "grad_norm": float(f"{v:.6g}")}
            for (label, when), n in norms.items()
            for t, v in enumerate(n.tolist())
        ],
        results / "results.csv",
    )
    write_csv(summary, results / "summary.csv")
    plot(norms, seq_len, results / "gradients.png")


def plot(norms: dict, seq_len: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = dict(zip(VARIANTS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for (label, when), n in norms.items():
        distance = torch.arange(seq_len - 1, -1, -1)
        style = "-" if when == "init" else "--"
        ax.semilogy(distance, n, style, color=colours[label], label=f"{label}, {when}")
    ax.set_xlabel("distance from the loss (steps back from the last)")
    ax.set_ylabel("mean ||dL/dh_t||")
    ax.set_title(f"Adding problem, T = {seq_len}: solid at initialisation, dashed after training")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
