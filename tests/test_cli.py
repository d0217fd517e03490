# SPDX-License-Identifier: MIT
"""ensemble_nets.cli: flags made from a config dataclass, and back."""
import argparse
from dataclasses import dataclass, field

import pytest

from ensemble_nets.cli import add_config_arguments, config_from_args, positive_int


@dataclass(frozen=True)
class Toy:
    widths: tuple = field(default=(8, 16), metadata={"type": positive_int, "help": "hidden widths"})
    lr: float = 0.1
    name: str = field(default="a", metadata={"choices": ("a", "b")})
    n_test: int | None = field(default=None, metadata={"type": positive_int})
    full: bool = False


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Toy)
    return config_from_args(Toy, parser.parse_args(argv))


def test_defaults_round_trip():
    assert _parse([]) == Toy()


def test_flags_set_every_kind_of_field():
    config = _parse(["--widths", "4", "5", "6", "--lr", "0.5", "--name", "b", "--n-test", "7", "--full"])
    assert config == Toy(widths=(4, 5, 6), lr=0.5, name="b", n_test=7, full=True)
    assert isinstance(config.widths, tuple)


@pytest.mark.parametrize("argv, message", [(["--widths", "0"], "positive integer"), (["--name", "c"], "invalid choice"),
                                           (["--lr", "x"], "invalid float")])
def test_bad_values_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert message in capsys.readouterr().err
