# SPDX-License-Identifier: MIT
"""Argument types shared by the command-line scripts in ``experiments/``.

Each parses one value and rejects out-of-range ones with a message argparse
prints next to the flag (``--epochs: must be an integer >= 0, got -1``).
"""
from __future__ import annotations

import argparse

__all__ = ["non_negative_float", "non_negative_int", "positive_float", "positive_int"]


def _checked(kind, ok, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checked(float, lambda v: v > 0 and v != float("inf"), "a positive number")
non_negative_float = _checked(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
