"""The reference recurrences refuse malformed arguments with an error naming the argument (and the shape it
should have), instead of a cryptic error deep in the loop or, worse, a silently wrong result; well-formed
calls in every form of the interface still run."""

import pytest
import torch

from rnnlab.reference import gru_recurrence, lstm_recurrence, rnn_recurrence

T, B, H = 5, 3, 4


def lstm(**changes):
    args = dict(
        gx=torch.randn(T, B, 4 * H), w_hh=torch.randn(4 * H, H), h0=torch.zeros(B, H), c0=torch.zeros(B, H)
    )
    return lstm_recurrence(**{**args, **changes})


def gru(**changes):
    args = dict(
        gx=torch.randn(T, B, 3 * H), w_hh=torch.randn(3 * H, H), b_hh=torch.randn(3 * H), h0=torch.zeros(B, H)
    )
    return gru_recurrence(**{**args, **changes})


def rnn(**changes):
    args = dict(gx=torch.randn(T, B, H), w_hh=torch.randn(H, H), h0=torch.zeros(B, H))
    return rnn_recurrence(**{**args, **changes})


def stacked(gates):
    return dict(
        gx=torch.randn(2, T, B, gates * H), w_hh=torch.randn(2, gates * H, H), h0=torch.zeros(2, B, H)
    )


# (id, call, error, regex the message must match: the argument's name and, for shapes, the shape expected)
BAD = [
    (
        "lstm-gx-3-directions",
        lambda: lstm(**{**stacked(4), "gx": torch.randn(3, T, B, 4 * H)}),
        ValueError,
        r"gx must be \(T, B, 4\*H\), or \(2, T, B, 4\*H\)",
    ),
    ("lstm-gx-2d", lambda: lstm(gx=torch.randn(B, 4 * H)), ValueError, r"gx must be \(T, B, 4\*H\)"),
    (
        "lstm-gx-not-4h",
        lambda: lstm(gx=torch.randn(T, B, 4 * H + 1)),
        ValueError,
        r"gx must be \(T, B, 4\*H\)",
    ),
    ("lstm-w_hh-transposed", lambda: lstm(w_hh=torch.randn(H, 4 * H)), ValueError, r"w_hh must be \(16, 4\)"),
    ("lstm-h0-torch.nn-shape", lambda: lstm(h0=torch.zeros(1, B, H)), ValueError, r"h0 must be \(3, 4\)"),
    ("lstm-c0-wrong", lambda: lstm(c0=torch.zeros(B, H + 1)), ValueError, r"c0 must be \(3, 4\)"),
    ("lstm-h0-none", lambda: lstm(h0=None), TypeError, r"h0 must be a tensor \(3, 4\)"),
    (
        "lstm-h0-float64",
        lambda: lstm(h0=torch.zeros(B, H, dtype=torch.float64)),
        TypeError,
        r"h0 torch.float64",
    ),
    (
        "lstm-gx-integer",
        lambda: lstm(gx=torch.ones(T, B, 4 * H, dtype=torch.long)),
        TypeError,
        r"gx torch.int64",
    ),
    (
        "lstm-stacked-gx-2d-w_hh",
        lambda: lstm(**{**stacked(4), "w_hh": torch.randn(4 * H, H)}),
        ValueError,
        r"w_hh must be \(2, 16, 4\)",
    ),
    (
        "lstm-stacked-reverse",
        lambda: lstm(**stacked(4), c0=torch.zeros(2, B, H), reverse=True),
        ValueError,
        r"reverse must be False",
    ),
    ("lstm-reverse-str", lambda: lstm(reverse="no"), TypeError, r"reverse must be a bool, got 'no'"),
    (
        "lstm-lengths-negative",
        lambda: lstm(lengths=torch.tensor([-1, 2, 3])),
        ValueError,
        r"lengths must lie in \[0, T\] = \[0, 5\]",
    ),
    (
        "lstm-lengths-over-T",
        lambda: lstm(lengths=torch.tensor([T + 3, 2, 3])),
        ValueError,
        r"lengths must lie in \[0, T\]",
    ),
    (
        "lstm-lengths-T=0",
        lambda: lstm(gx=torch.randn(0, B, 4 * H), lengths=torch.ones(B, dtype=torch.long)),
        ValueError,
        r"lengths must lie in \[0, T\] = \[0, 0\]",
    ),
    (
        "lstm-lengths-float",
        lambda: lstm(lengths=torch.tensor([2.7, 2.0, 3.0])),
        TypeError,
        r"lengths must hold integers",
    ),
    (
        "lstm-lengths-bool",
        lambda: lstm(lengths=torch.ones(B, dtype=torch.bool)),
        TypeError,
        r"lengths must hold integers",
    ),
    (
        "lstm-lengths-list",
        lambda: lstm(lengths=[2, 2, 3]),
        TypeError,
        r"lengths must be a \(3,\) integer tensor",
    ),
    (
        "lstm-lengths-size",
        lambda: lstm(lengths=torch.tensor([2, 3])),
        ValueError,
        r"lengths must have shape \(B,\) = \(3,\)",
    ),
    (
        "lstm-lengths-2d",
        lambda: lstm(lengths=torch.tensor([[2, 2, 3]])),
        ValueError,
        r"lengths must have shape \(B,\) = \(3,\)",
    ),
    ("gru-b_hh-4h", lambda: gru(b_hh=torch.randn(4 * H)), ValueError, r"b_hh must be \(12,\)"),
    (
        "gru-b_hh-stacked-one-direction",
        lambda: gru(b_hh=torch.randn(2, 3 * H)),
        ValueError,
        r"b_hh must be \(12,\)",
    ),
    (
        "gru-b_hh-float64",
        lambda: gru(b_hh=torch.randn(3 * H, dtype=torch.float64)),
        TypeError,
        r"b_hh torch.float64",
    ),
    (
        "gru-stacked-b_hh-one-direction",
        lambda: gru(**stacked(3), b_hh=torch.randn(3 * H)),
        ValueError,
        r"b_hh must be \(2, 12\)",
    ),
    ("gru-w_hh-4h", lambda: gru(w_hh=torch.randn(4 * H, H)), ValueError, r"w_hh must be \(12, 4\)"),
    ("gru-h0-wrong", lambda: gru(h0=torch.zeros(B, H + 1)), ValueError, r"h0 must be \(3, 4\)"),
    (
        "gru-lengths-over-T",
        lambda: gru(lengths=torch.tensor([T + 3, 2, 3])),
        ValueError,
        r"lengths must lie in \[0, T\]",
    ),
    ("rnn-gx-2h-w_hh-h", lambda: rnn(gx=torch.randn(T, B, 2 * H)), ValueError, r"w_hh must be \(8, 8\)"),
    ("rnn-h0-wrong", lambda: rnn(h0=torch.zeros(B, H + 1)), ValueError, r"h0 must be \(3, 4\)"),
    ("rnn-h0-none", lambda: rnn(h0=None), TypeError, r"h0 must be a tensor \(3, 4\)"),
    (
        "rnn-stacked-gx-2d-w_hh",
        lambda: rnn(**{**stacked(1), "w_hh": torch.randn(H, H)}),
        ValueError,
        r"w_hh must be \(2, 4, 4\)",
    ),
    (
        "rnn-lengths-negative",
        lambda: rnn(lengths=torch.tensor([0, -1, 3])),
        ValueError,
        r"lengths must lie in \[0, T\]",
    ),
    ("rnn-reverse-int", lambda: rnn(reverse=1), TypeError, r"reverse must be a bool"),
]


@pytest.mark.parametrize("call,error,message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_malformed_arguments_are_refused_by_name(call, error, message):
    with pytest.raises(error, match=message):
        call()


LENGTHS = {
    "full": None,
    "ragged": torch.tensor([T, 0, 2]),
    "int32": torch.tensor([1, T, 3], dtype=torch.int32),
}


@pytest.mark.parametrize("lengths", list(LENGTHS), ids=list(LENGTHS))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_well_formed_calls_run(lengths, reverse):
    lengths = LENGTHS[lengths]
    out, h_n, c_n = lstm(lengths=lengths, reverse=reverse)
    assert out.shape == (T, B, H) and h_n.shape == c_n.shape == (B, H)
    for b_hh in (torch.randn(3 * H), None):
        out, h_n = gru(b_hh=b_hh, lengths=lengths, reverse=reverse)
        assert out.shape == (T, B, H) and h_n.shape == (B, H)
    out, h_n = rnn(lengths=lengths, reverse=reverse, nonlinearity="relu")
    assert out.shape == (T, B, H) and h_n.shape == (B, H)


@pytest.mark.parametrize("lengths", list(LENGTHS), ids=list(LENGTHS))
def test_well_formed_stacked_calls_run(lengths):
    """Both directions in one call equal the two directions run apart."""
    lengths = LENGTHS[lengths]
    args = stacked(4)
    c0 = torch.randn(2, B, H)
    both = lstm(**args, c0=c0, lengths=lengths)
    apart = [
        lstm(
            gx=args["gx"][d],
            w_hh=args["w_hh"][d],
            h0=args["h0"][d],
            c0=c0[d],
            lengths=lengths,
            reverse=d == 1,
        )
        for d in (0, 1)
    ]
    for got, *want in zip(both, *apart, strict=True):
        torch.testing.assert_close(got, torch.stack(want))
    for b_hh in (torch.randn(2, 3 * H), None):
        out, h_n = gru(**stacked(3), b_hh=b_hh, lengths=lengths)
        assert out.shape == (2, T, B, H) and h_n.shape == (2, B, H)
    out, h_n = rnn(**stacked(1), lengths=lengths)
    assert out.shape == (2, T, B, H) and h_n.shape == (2, B, H)


def test_empty_sequence_and_batch_run():
    """T = 0 (no lengths) returns the initial states; B = 0 returns empty tensors."""
    h0, c0 = torch.randn(B, H), torch.randn(B, H)
    out, h_n, c_n = lstm(gx=torch.randn(0, B, 4 * H), h0=h0, c0=c0)
    assert out.shape == (0, B, H) and torch.equal(h_n, h0) and torch.equal(c_n, c0)
    out, h_n = gru(
        gx=torch.randn(T, 0, 3 * H), h0=torch.zeros(0, H), lengths=torch.zeros(0, dtype=torch.long)
    )
    assert out.shape == (T, 0, H) and h_n.shape == (0, H)
