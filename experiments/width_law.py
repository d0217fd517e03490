#!/usr/bin/env python
"""The mode width law at convergence: P_min(N) with bootstrap intervals, fitted as log, linear and saturating.

Trains (or resumes) the sweep of :mod:`ensemble_nets.protocols.width_law`, then
analyses it with :func:`ensemble_nets.analysis.width_law.width_law`. Examples::

    # the whole path in a few minutes on 2 cores (3 widths, 4 P, 4 epochs: a smoke test, not a result)
    python experiments/width_law.py --budget quick --data-root ../shared/data/mnist

    # issue 11's sweep: N = 25 ... 800, P = 2 ... 128, 3 seeds, early stopping within 100 epochs
    python experiments/width_law.py --budget paper --data-root ../shared/data/mnist --workers 2

    # what fits first: the small widths; later calls add the rest without redoing anything
    python experiments/width_law.py --budget paper --widths 25 50 100 --data-root ../shared/data/mnist

    # on a Ray cluster, or in-process
    python experiments/width_law.py --budget paper --address auto
    python experiments/width_law.py --budget quick --backend serial

    # only the analysis of the runs already there
    python experiments/width_law.py --out runs/width-law-paper --analyze-only

With full MNIST under --data-root (the four IDX files) it trains on the 60,000
digits (``--dataset auto``); otherwise on the 5,000 embedded digits, tested
on the official test set when present. Validation digits always come out of
the training digits. Writes in --out: cells/<cell>/s<seed>/ (run folders),
runs.csv (one row per run), pmin.csv, fits.csv, curves.csv, verdict.csv (each
with a ``reference`` column: thresholds below the plain network, issue 11's
definition, and below the best MDL network of the width).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ensemble_nets.analysis.width_law import width_law
from ensemble_nets.data import DATASETS
from ensemble_nets.protocols.width_law import BUDGETS, WidthLawConfig, run
from ensemble_nets.training.grid import GridError
from ensemble_nets.training.runs import write_atomic


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    p.add_argument("--widths", type=int, nargs="+", help="hidden widths N (default: the budget's)")
    p.add_argument("--modes", type=int, nargs="+", help="P grid (default: the budget's)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds per cell (default: 0 1 2)")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--patience", type=int)
    p.add_argument("--n-validation", type=int)
    p.add_argument("--n-test", type=int, help="evaluate on the first N test digits only")
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--data-root", default="data")
    p.add_argument("--device", default=None, help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch threads per cell")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.01, 0.02],
                   help="accuracy drops below the plain network (0.01 = one point)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates over seeds")
    p.add_argument("--reference", nargs="+", choices=("plain", "best_mdl"), default=["plain", "best_mdl"],
                   help="thresholds below the plain network (issue 11), and/or below the best MDL network of "
                        "the width (where no P reaches the plain network)")
    p.add_argument("--out", type=Path, help="default: runs/width-law-<budget>")
    p.add_argument("--backend", choices=("ray", "serial"), default="ray")
    p.add_argument("--workers", type=int, default=2, help="local Ray worker processes")
    p.add_argument("--address", help="a Ray cluster address (e.g. auto)")
    p.add_argument("--analyze-only", action="store_true", help="analyse the runs.csv already in --out")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out or Path(f"runs/width-law-{args.budget}")
    if args.analyze_only:
        if not (out / "runs.csv").is_file():
            print(f"no runs.csv in {out}; train first: python experiments/width_law.py --budget {args.budget} "
                  f"--out {out}", file=sys.stderr)
            return 2
        runs = pd.read_csv(out / "runs.csv")
    else:
        overrides = {"widths": args.widths, "modes": args.modes, "seeds": args.seeds, "max_epochs": args.max_epochs,
                     "patience": args.patience, "n_validation": args.n_validation, "n_test": args.n_test,
                     "dataset": args.dataset, "data_root": args.data_root, "device": args.device,
                     "threads": args.threads}
        try:
            config = WidthLawConfig.from_budget(args.budget, **overrides)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        try:
            runs = run(config, out, backend=args.backend, n_workers=args.workers, address=args.address,
                       progress=not args.no_progress)
        except GridError as err:
            print(f"{err}\nrerun the same command to retry the failed cells", file=sys.stderr)
            return 1
    per_reference = [width_law(runs, thresholds=args.thresholds, n_boot=args.n_boot, reference=reference)
                     for reference in args.reference]
    tables = {name: pd.concat([t[name] for t in per_reference], ignore_index=True) for name in per_reference[0]}
    for name, table in tables.items():
        write_atomic(out / f"{name}.csv", table.to_csv(index=False).encode())
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(tables["pmin"].to_string(index=False))
        print(tables["fits"].to_string(index=False))
    for _, row in tables["verdict"].iterrows():
        print(f"{row['reference']} - {row['threshold']:g}: {row['verdict']}")
    print(f"tables in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
