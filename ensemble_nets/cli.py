# SPDX-License-Identifier: MIT
"""Argument types shared by the command-line scripts in ``experiments/``.

Each parses one value and rejects out-of-range ones with a message argparse
prints next to the flag (``--epochs: must be an integer >= 0, got -1``).
"""
from __future__ import annotations

import argparse

__all__ = ["add_config_arguments", "config_from_args", "non_negative_float", "non_negative_int", "positive_float",
           "positive_int"]


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


def add_config_arguments(parser: argparse.ArgumentParser, config_cls, *, defaults=None,
                         skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` flag per field of the dataclass ``config_cls``.

    A field's ``metadata`` may give ``help``, ``type`` (an argument type such as
    :data:`positive_int`; default: the type of the default value), ``choices`` and
    ``flag`` (another flag name). Tuple fields take one or more values; booleans get
    ``--name / --no-name``. ``defaults`` (an instance of ``config_cls``) supplies the
    defaults shown in ``--help``; fields in ``skip`` get no flag.
    """
    import dataclasses

    defaults = defaults if defaults is not None else config_cls()
    for field in dataclasses.fields(config_cls):
        if field.name in skip:
            continue
        meta, default = field.metadata, getattr(defaults, field.name)
        flag = meta.get("flag", "--" + field.name.replace("_", "-"))
        kwargs = {"dest": field.name, "default": default, "help": meta.get("help", "")}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            sample = default[0] if isinstance(default, tuple) and default else default
            kind = meta.get("type", type(sample) if sample is not None and not isinstance(sample, tuple) else str)
            kwargs["type"] = kind
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
            if isinstance(default, tuple) or meta.get("many"):
                kwargs["nargs"] = "+"
        if kwargs["help"] and "action" not in kwargs:
            kwargs["help"] += " (default: %(default)s)"
        parser.add_argument(flag, **kwargs)


def config_from_args(config_cls, args: argparse.Namespace, **overrides):
    """The ``config_cls`` instance of parsed ``args`` (lists become tuples), with ``overrides``."""
    import dataclasses

    values = {}
    for field in dataclasses.fields(config_cls):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return config_cls(**{**values, **overrides})
