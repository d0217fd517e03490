#!/usr/bin/env python
"""On-line teacher-student learning of a mode-decomposed soft committee machine: simulation against ODE theory.

DESIGN.md section 3 (last bullet); the protocol is ``ensemble_nets.protocols.online``. Examples::

    # default: d = 30, K = 8, P = 3, eta = 5, alpha up to 1e4, 5 example streams (a few CPU minutes)
    python experiments/online_teacher_student.py --out runs/online-d30

    # the reference horizon alpha = 1e5 (about ten times longer)
    python experiments/online_teacher_student.py --alpha-max 1e5 --out runs/online-d30-long

The run folder holds config.json, metrics.csv, order_parameters.npz and summary.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ensemble_nets.cli import add_config_arguments, config_from_args
from ensemble_nets.protocols.online import OnlineConfig, run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/online-d30"), help="run folder")
    add_config_arguments(parser, OnlineConfig)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    summary = run(config_from_args(OnlineConfig, args), args.out)
    print(f"wrote {args.out}: discrepancy {summary['discrepancy']}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
