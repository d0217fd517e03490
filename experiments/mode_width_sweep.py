#!/usr/bin/env python
"""How many modes does a network of width N need? MDL against the full-rank network, width by width.

Examples::

    # the default CPU grid (784-N-N-10, N = 25 ... 800, P = 1 ... 32, one seed, 3 epochs)
    python experiments/mode_width_sweep.py --data-root ../shared/data/mnist

    # the reduced grid of docs/modes.md (a shared, busy 2-core machine)
    python experiments/mode_width_sweep.py --data-root ../shared/data/mnist --modes 2 8 32 --epochs 2 --n-test 2000

    # more epochs, seeds and P (a GPU, or a long CPU night)
    python experiments/mode_width_sweep.py --data-root ../shared/data/mnist --widths 25 50 100 200 400 800 1600 \\
        --modes 1 2 3 4 6 8 12 16 24 32 48 64 --seeds 0 1 2 --epochs 20

Cells (width, P or "plain", seed) are dispatched by ``ensemble_nets.training.run_grid``: local
Ray workers by default (``--workers``), a Ray cluster with ``--address``, or in-process with
``--backend serial``; finished cells are skipped, so the sweep can be stopped and restarted.
P_min(N) and its fits (``a + b ln N`` against a saturating ``a + b ln min(N, N*)``) are described
in ``ensemble_nets.analysis.width_sweep``. Writes cells.csv, pmin.csv, savings.csv and fit.json in --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ensemble_nets.cli import add_config_arguments, config_from_args, positive_int
from ensemble_nets.protocols.width_sweep import WidthSweepConfig, run
from ensemble_nets.training.grid import GridError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, WidthSweepConfig)
    p.add_argument("--out", type=Path, default=Path("runs/mode-width-sweep"))
    p.add_argument("--backend", choices=("ray", "serial"), default="ray", help="Ray workers, or in-process")
    p.add_argument("--workers", type=positive_int, default=2, help="local Ray worker processes")
    p.add_argument("--address", help="a Ray cluster address (e.g. auto); default: local workers")
    args = p.parse_args(argv)
    try:
        args.config = config_from_args(WidthSweepConfig, args)
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        fit = run(args.config, args.out, backend=args.backend, n_workers=args.workers, address=args.address)
    except (FileNotFoundError, ValueError, GridError) as err:
        sys.exit(f"mode_width_sweep.py: error: {err}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pd.read_csv(args.out / "pmin.csv").to_string(index=False))
    print(fit)
    return fit


if __name__ == "__main__":
    main()
