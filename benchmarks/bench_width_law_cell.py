#!/usr/bin/env python
"""Cost of the width-law sweep: time a few cells for a few epochs, fit, and estimate the whole sweep.

Each measured cell is a real cell of :mod:`ensemble_nets.protocols.width_law`
(its 3 seeds trained at once by train_many, validation every epoch, run
folders written) run for ``--epochs`` epochs without early stopping. The
seconds per cell-epoch are fitted (least squares, non-negative terms) as
``a + b_plain * macs_plain + b_mdl * macs_mdl``, with the multiply-adds of one
example through one run: ``sum_l N_l N_{l+1}`` for the plain network and
``sum_l P (N_l + N_{l+1})`` for MDL (factored, W is never formed), each
family with its own rate; and the sweep's time is::

    sum over cells of  epochs(cell) * seconds_per_cell_epoch(cell)   /  workers

with ``epochs(cell)`` the epochs a run trains before early stopping stops it
(``--epochs-mdl``, ``--epochs-plain``: measured values go there; the cap,
``max_epochs``, gives the upper bound printed too).

    python benchmarks/bench_width_law_cell.py --data-root ../shared/data/mnist
    python benchmarks/bench_width_law_cell.py --data-root ../shared/data/mnist --cells w25-p8 w800-plain --epochs 3
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ensemble_nets.models import ModeMLP
from ensemble_nets.protocols.width_law import WidthLawConfig, _data, cells, run_cell
from ensemble_nets.training.runs import write_json

DEFAULT_CELLS = ["w25-p8", "w25-p128", "w100-plain", "w200-p64", "w400-plain", "w800-p2", "w800-p32", "w800-p128",
                 "w800-plain"]


def n_parameters(width: int, n_modes: int | None, depth: int = 2) -> int:
    sizes = (784, *([width] * depth), 10)
    if n_modes is None:
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return ModeMLP.parameter_count(sizes, n_modes, shared=True)


def macs(width: int, n_modes: int | None, depth: int = 2) -> int:
    """Multiply-adds of one example through one run (plain: the weights; MDL: the factored products)."""
    sizes = (784, *([width] * depth), 10)
    if n_modes is None:
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return sum(n_modes * (a + b) for a, b in zip(sizes[:-1], sizes[1:]))


def _features(width, n_modes):
    m = macs(width, n_modes)
    return [1.0, m if n_modes is None else 0.0, 0.0 if n_modes is None else m]


def cost(width, n_modes, coef) -> float:
    return float(np.dot(_features(width, n_modes), coef))


def fit_cost(rows: list[dict]) -> tuple[float, float, float]:
    """Non-negative least squares of seconds per cell-epoch on (1, plain MACs, MDL MACs)."""
    from scipy.optimize import nnls

    design = np.array([_features(r["width"], None if "plain" in r["cell"] else int(r["cell"].split("-p")[1]))
                       for r in rows])
    y = np.array([r["seconds_per_cell_epoch"] for r in rows])
    scale = design.max(0)
    coef, _ = nnls(design / scale, y)
    return tuple(float(v) for v in coef / scale)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--cells", nargs="+", default=DEFAULT_CELLS)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--epochs-mdl", type=float, default=41.0,
                   help="epochs an MDL run trains before it stops (measured: 49, 30, 45 at N=25, P=8)")
    p.add_argument("--epochs-plain", type=float, default=25.0,
                   help="epochs a plain run trains before it stops (measured: 23, 21, 32 at N=25)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "width_law_cost_cpu.json")
    p.add_argument("--refit", action="store_true", help="reuse the cells measured in --json; only refit and estimate")
    args = p.parse_args(argv)
    if args.refit:
        return _estimate(json.loads(args.json.read_text())["cells"], args)
    config = WidthLawConfig.from_budget("paper", data_root=args.data_root, max_epochs=args.epochs,  # no stopping
                                        patience=args.epochs + 1)
    _data(config.dataset, config.data_root, config.n_test, config.n_validation)  # load once, not timed
    by_name = {c["name"]: c for c in cells(config)}
    rows = []
    for name in args.cells:
        cell = by_name[name]
        with tempfile.TemporaryDirectory() as folder:
            tick = time.perf_counter()
            run_cell(cell, folder)
            seconds = time.perf_counter() - tick
        rows.append({"cell": name, "width": cell["width"], "n_parameters": n_parameters(cell["width"], cell["n_modes"]),
                     "seconds_per_cell_epoch": seconds / args.epochs})
        print(json.dumps(rows[-1]), flush=True)
    _estimate(rows, args)


def _estimate(rows, args):
    a, b_plain, b_mdl = fit_cost(rows)
    paper = WidthLawConfig.from_budget("paper")
    typical = cap = 0.0
    per_width = {}
    for cell in cells(paper):
        per_epoch = cost(cell["width"], cell["n_modes"], (a, b_plain, b_mdl))
        epochs = args.epochs_plain if cell["n_modes"] is None else args.epochs_mdl
        typical += epochs * per_epoch
        cap += paper.max_epochs * per_epoch
        per_width[cell["width"]] = per_width.get(cell["width"], 0.0) + epochs * per_epoch / args.workers / 3600
    estimate = {"fit_seconds_per_cell_epoch": {"a": a, "b_plain_per_mac": b_plain, "b_mdl_per_mac": b_mdl},
                "hours_typical": typical / args.workers / 3600, "hours_cap": cap / args.workers / 3600,
                "hours_typical_by_width": per_width, "workers": args.workers,
                "epochs_mdl": args.epochs_mdl, "epochs_plain": args.epochs_plain, "max_epochs": paper.max_epochs}
    print(json.dumps(estimate, indent=1))
    write_json(args.json, {"cells": rows, "estimate": estimate})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
