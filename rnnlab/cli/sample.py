"""rnnlab-sample: use a trained checkpoint on input given on the command line.

    rnnlab-sample <text_lstm ckpt> "It is a truth universally acknowledged"     # continue a text
    rnnlab-sample <music_lstm ckpt> --tune --key G --metre 6/8 --count 3         # tunes from a header
    rnnlab-sample <sentiment ckpt> "A gripping, beautifully acted film."        # classify a sentence

What it does depends on the checkpoint's task: a language model generates (temperature, top-k, top-p,
seed), a tune is sampled from an ABC header and checked by the ABC parser, a classifier prints the class
probabilities. Only the checkpoint is read: its tokenizer travels inside it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from ..models.language_model import check_sampling
from .checkpoints import Run


def generate(run: Run, args: argparse.Namespace) -> None:
    from ..data import abc
    from ..data.tokenizers import CharTokenizer
    from ..tasks import generation

    model = run.task().model
    tokenizer = CharTokenizer.from_dict(run.datamodule_state()["tokenizer"])
    for i in range(args.count):
        seed = args.seed + i
        if args.tune:
            head = abc.header(
                key=args.key, metre=args.metre, title=args.prompt or f"Sample {i + 1}", number=i + 1
            )
            body = generation.sample(
                model,
                tokenizer,
                head,
                args.chars,
                args.temperature,
                args.top_k,
                args.top_p,
                seed,
                stop_at="\n\n",
            )
            tune = head + body.rstrip("\n") + "\n"
            print(tune + f"% parses as ABC: {abc.parses(tune)}\n")
        else:
            text = generation.sample(
                model, tokenizer, args.prompt, args.chars, args.temperature, args.top_k, args.top_p, seed
            )
            print(args.prompt + text + ("\n" + "-" * 40 if args.count > 1 else ""))


def classify(run: Run, args: argparse.Namespace) -> None:
    from ..data.tokenizers import WordTokenizer

    task = run.task()
    tokenizer = WordTokenizer.from_dict(run.datamodule_state()["tokenizer"])
    ids = tokenizer.encode(args.prompt) or [tokenizer.unk_id]
    with torch.no_grad():
        probs = task(torch.tensor([ids]), torch.tensor([len(ids)])).softmax(-1)[0]  # (C,)
    names = ["negative", "positive"] if len(probs) == 2 else [str(i) for i in range(len(probs))]
    best = int(probs.argmax())
    print(
        f"{names[best]} ({probs[best]:.1%})  "
        + "  ".join(f"{n}: {p:.3f}" for n, p in zip(names, probs.tolist(), strict=True))
    )


def translate(run: Run, args: argparse.Namespace) -> None:
    from ..data.tokenizers import WordTokenizer
    from ..tasks import translation

    state = run.datamodule_state()
    src, tgt = (WordTokenizer.from_dict(state[k]) for k in ("source", "target"))
    print(translation.translate(run.task().model, src, tgt, [args.prompt], beam_size=args.beam)[0])


HANDLERS = {"LanguageModelTask": generate, "SentimentTask": classify, "TranslationTask": translate}


def _sampling_option(kind: type, name: str) -> Callable[[str], float | int]:
    """An argparse ``type`` that parses with ``kind`` and applies LanguageModel's check of ``name``, so an
    out-of-range --temperature, --top-k or --top-p is a usage error (exit 2) before the checkpoint is read."""

    def parse(text: str) -> float | int:
        value = kind(text)
        try:
            check_sampling(**{name: value})
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid <type> value" messages
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rnnlab-sample", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt written by rnnlab-train")
    parser.add_argument("prompt", nargs="?", default="", help="text to continue, classify or translate")
    parser.add_argument("--chars", type=int, default=500, help="characters to generate at most")
    parser.add_argument(
        "--temperature",
        type=_sampling_option(float, "temperature"),
        default=0.8,
        help="below 1: safer; above 1: wilder; 0: always the likeliest character",
    )
    parser.add_argument(
        "--top-k",
        type=_sampling_option(int, "top_k"),
        default=None,
        help="sample among the k likeliest characters (0: off)",
    )
    parser.add_argument(
        "--top-p",
        type=_sampling_option(float, "top_p"),
        default=0.95,
        help="nucleus sampling mass, in (0, 1] (1: off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same sample")
    parser.add_argument("--count", type=int, default=1, help="how many samples (seeds seed, seed+1, ...)")
    parser.add_argument("--tune", action="store_true", help="sample an ABC tune from a header")
    parser.add_argument("--key", default="G", help="the tune's key (K:)")
    parser.add_argument("--metre", default="6/8", help="the tune's metre (M:)")
    parser.add_argument("--beam", type=int, default=4, help="beam size for translation (1: greedy)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = Run(args.checkpoint)
    handler = HANDLERS.get(run.task_class.__name__)
    if handler is None:
        raise SystemExit(f"rnnlab-sample: nothing to sample for a {run.task_class.__name__} checkpoint")
    if handler is not generate and not args.prompt:
        raise SystemExit(f"rnnlab-sample: a {run.task_class.__name__} checkpoint needs a prompt (a sentence)")
    handler(run, args)


if __name__ == "__main__":
    main()
