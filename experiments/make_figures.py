#!/usr/bin/env python
"""Make the paper figures from run folders; with --run-missing, first run what they need.

    python experiments/make_figures.py                                   # draw; name the missing runs
    python experiments/make_figures.py --run-missing --budget quick      # every figure, ~5 min on 2 cores
    python experiments/make_figures.py --run-missing --budget paper --only phase gated --address auto

Each figure family has a protocol module (``ensemble_nets.protocols.<family>``: the runs it needs,
its budgets, how to read their tables) and a plotting module (``ensemble_nets.plotting.<family>``:
``draw_figures(tables, out)``). Without --run-missing nothing is trained: a family whose runs are
missing is skipped with the commands that make them, and the script exits non-zero, so a figure
never goes silently stale. With --run-missing the missing runs go through
``ensemble_nets.training.run_grid`` (local Ray workers, a cluster with --address, or --backend
serial), each resumable: an interrupted call picks up where it stopped. ``quick`` and ``paper``
runs share folder names: keep them apart with --runs (e.g. --runs runs/quick). The budget of
each family's runs is recorded (runs/figure-budgets.json); asking for the other budget over
them is an error, never a silent reuse.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from pathlib import Path

from ensemble_nets.cli import positive_int
from ensemble_nets.protocols.figures import BUDGET_NAMES, FAMILIES, check_budget, family, recorded_budget, run_missing


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding the run folders")
    p.add_argument("--out", type=Path, default=Path("figures"), help="where to write PNG and PDF files")
    p.add_argument("--only", nargs="+", choices=list(FAMILIES), metavar="FAMILY",
                   help=f"make only these families, of: {', '.join(FAMILIES)}")
    p.add_argument("--run-missing", action="store_true", help="run the missing runs first (needs --budget)")
    p.add_argument("--budget", choices=BUDGET_NAMES, help="quick: minutes on 2 CPU cores; paper: the reference")
    p.add_argument("--backend", choices=("ray", "serial"), default="ray", help="Ray workers, or in-process")
    p.add_argument("--workers", type=positive_int, default=2, help="local Ray worker processes")
    p.add_argument("--address", help="a Ray cluster address (e.g. auto); default: local workers")
    p.add_argument("--data-root", type=Path, default=Path("../shared/data/mnist"),
                   help="folder with the official MNIST test set, for the runs (default: %(default)s)")
    args = p.parse_args(argv)
    if args.run_missing and args.budget is None:
        p.error(f"--run-missing needs --budget, one of {', '.join(BUDGET_NAMES)}")
    if args.budget is not None and not args.run_missing:
        p.error("--budget sizes the runs that --run-missing makes; add --run-missing")
    if args.backend == "ray" and args.run_missing and importlib.util.find_spec("ray") is None:
        print("ray is not installed (pip install ray): running in-process (--backend serial)", file=sys.stderr)
        args.backend = "serial"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.run_missing and args.backend == "ray":  # one Ray session for every family's jobs
        import ray

        if args.address is not None:
            ray.init(address=args.address, include_dashboard=False)
        else:
            ray.init(num_cpus=args.workers, include_dashboard=False)
    try:
        return _make(args)
    finally:
        if args.run_missing and args.backend == "ray":
            ray.shutdown()


def _make(args: argparse.Namespace) -> int:
    skipped = 0
    for name in args.only or list(FAMILIES):
        protocol = family(name)
        if args.run_missing:
            try:
                check_budget(name, args.runs, args.budget)
            except ValueError as err:
                skipped += 1
                print(f"[{name}] skipped: {err}", file=sys.stderr)
                continue
        if args.run_missing and protocol.missing_runs(args.runs):
            tick = time.perf_counter()
            print(f"[{name}] running the missing runs at budget {args.budget} under {args.runs}", file=sys.stderr)
            run_missing(name, args.runs, args.budget, backend=args.backend, address=args.address,
                        n_workers=args.workers, data_root=args.data_root)
            print(f"[{name}] runs done in {time.perf_counter() - tick:.0f} s", file=sys.stderr)
        missing = protocol.missing_runs(args.runs)
        if missing:
            skipped += 1
            print(f"[{name}] skipped: missing run folders; make them with:", file=sys.stderr)
            for run, cmd in missing.items():
                print(f"    {cmd}    # -> {args.runs / run}", file=sys.stderr)
            continue
        plotting = importlib.import_module(f"ensemble_nets.plotting.{name}")
        written = plotting.draw_figures(protocol.figure_tables(args.runs), args.out)
        made = recorded_budget(args.runs, name)
        print(f"[{name}] wrote {len(written)} files from runs of budget {made or 'not recorded'}: "
              + ", ".join(str(p) for p in written))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
