"""rnnlab-sample's command line: sampling options out of range are argparse errors, before any checkpoint is
read. (Sampling from real checkpoints is exercised in test_train.py.)"""

import pytest

from rnnlab.cli import sample as sample_cli


@pytest.mark.parametrize(
    "option, value",
    [
        ("--temperature", "-1"),
        ("--temperature", "nan"),
        ("--top-k", "-5"),
        ("--top-p", "0"),
        ("--top-p", "1.5"),
    ],
)
def test_out_of_range_sampling_options_are_argparse_errors(option, value, tmp_path, capsys):
    missing = tmp_path / "never-read.ckpt"  # the check comes first: this file does not exist
    with pytest.raises(SystemExit) as exit_info:
        sample_cli.main([str(missing), "a prompt", option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "error" in err


def test_boundary_sampling_options_are_accepted():
    args = sample_cli.parse_args(["x.ckpt", "--temperature", "0", "--top-k", "0", "--top-p", "1"])
    assert (args.temperature, args.top_k, args.top_p) == (0.0, 0, 1.0)
