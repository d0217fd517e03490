#!/usr/bin/env python
"""The noise-nonlinearity phase diagram (DESIGN.md 4.2): a grid of load curves against test accuracy.

Each cell trains a depth-8 width-100 BatchNorm MLP with LeakyReLU(alpha) on
10x10 MNIST (2,560 embedded digits, Adam, full batch) with one noise knob set,
and records its load curve log D_l, curvature, non-uniformity and test
accuracy in its own run folder (resumable: finished cells are skipped).

Examples::

    # coarse default (a few minutes on 2 cores): alpha in {0, 0.5, 1} x 3 label-noise levels, 1 seed
    python experiments/phase_diagram.py --data-root ../shared/data/mnist

    # another knob, more seeds
    python experiments/phase_diagram.py --knob lr --seeds 3

    # spike-and-slab ensembles, the noise axis being the slab-variance init scale xi_max
    python experiments/phase_diagram.py --model spike_slab --knob xi_max

    # the full diagram of the reference: alpha in {0, 0.2, ..., 1}, 6 levels, 3 seeds, 1000 steps
    python experiments/phase_diagram.py --full --knob label_noise

    # a Ray cluster instead of local workers; or in-process for debugging
    python experiments/phase_diagram.py --address auto
    python experiments/phase_diagram.py --backend serial

Output: runs/phase/<model>-<knob>/<cell>/{summary.json,separation.csv} and
runs/phase/<model>-<knob>/grid.csv (one row per cell).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble_nets.training.grid import run_grid
from ensemble_nets.protocols.phase import PHASE_KNOBS, run_phase_cell
from ensemble_nets.training.runs import write_atomic

#: Knob levels: (coarse default, full).
LEVELS = {
    "label_noise": ([0.0, 0.2, 0.4], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    "input_noise": ([0.0, 0.3, 0.6], [0.0, 0.15, 0.3, 0.45, 0.6, 0.9]),
    "lr": ([1e-4, 1e-3, 1e-2], [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]),
    "dropout": ([0.0, 0.1, 0.3], [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]),
    "batch_size": ([2560, 256, 32], [2560, 1024, 256, 128, 64, 32]),
    "xi_max": ([0.0, 0.3, 1.0], [0.0, 0.1, 0.3, 0.6, 1.0, 2.0]),
}
COARSE_ALPHAS, FULL_ALPHAS = [0.0, 0.5, 1.0], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def make_cells(model, knob, levels, alphas, seeds, steps, data_root) -> list[dict]:
    """One cell per (alpha, level, seed), named ``a<alpha>-<knob><level>-s<seed>``."""
    return [
        {"name": f"a{alpha:g}-{knob}{level:g}-s{seed}", "model": model, "alpha": alpha, knob: level,
         "seed": seed, "steps": steps, "data_root": data_root}
        for alpha in alphas for level in levels for seed in range(seeds)
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("linear", "spike_slab"), default="linear",
                        help="plain layers or spike-and-slab ensemble layers")
    parser.add_argument("--knob", choices=PHASE_KNOBS, default=None,
                        help="the noise axis (default: label_noise; xi_max for spike_slab)")
    parser.add_argument("--levels", type=float, nargs="+", help="knob levels (default: 3 coarse ones)")
    parser.add_argument("--alphas", type=float, nargs="+", help="LeakyReLU slopes (default: 0 0.5 1)")
    parser.add_argument("--seeds", type=int, help="seeds per (alpha, level) (default 1; 3 with --full)")
    parser.add_argument("--steps", type=int, help="Adam updates per cell (default 150; 1000 with --full)")
    parser.add_argument("--full", action="store_true",
                        help="the reference grid: alpha 0, 0.2, ..., 1; 6 levels; 3 seeds; 1000 steps")
    parser.add_argument("--data-root", default="../shared/data/mnist", help="folder with the official test set")
    parser.add_argument("--out", type=Path, help="grid folder (default: runs/phase/<model>-<knob>)")
    parser.add_argument("--backend", choices=("ray", "serial"), default="ray")
    parser.add_argument("--workers", type=int, default=2, help="local Ray worker processes")
    parser.add_argument("--address", help="a Ray cluster address (e.g. auto); default: local workers")
    args = parser.parse_args(argv)
    knob = args.knob or ("xi_max" if args.model == "spike_slab" else "label_noise")
    if knob == "xi_max" and args.model != "spike_slab":
        parser.error("--knob xi_max is the ensemble's own noise: it needs --model spike_slab")
    seeds = args.seeds if args.seeds is not None else (3 if args.full else 1)
    steps = args.steps if args.steps is not None else (1000 if args.full else 150)
    if seeds < 1 or steps < 1:
        parser.error(f"--seeds and --steps must be >= 1, got {seeds}, {steps}")
    coarse, full = LEVELS[knob]
    levels = args.levels or (full if args.full else coarse)
    alphas = args.alphas or (FULL_ALPHAS if args.full else COARSE_ALPHAS)
    if any(not 0 <= a <= 1 for a in alphas):
        parser.error(f"--alphas must lie in [0, 1], got {alphas}")
    if knob == "batch_size":
        levels = [int(v) for v in levels]
    out = args.out or Path("runs/phase") / f"{args.model}-{knob}"

    cells = make_cells(args.model, knob, levels, alphas, seeds, steps, args.data_root)
    print(f"{len(cells)} cells -> {out}")
    frame = run_grid(cells, run_phase_cell, out, backend=args.backend, n_workers=args.workers,
                     address=args.address)
    frame = frame.assign(knob=knob, level=frame[knob])
    write_atomic(out / "grid.csv", frame.drop(columns=["error"]).to_csv(index=False).encode())
    cols = ["alpha", "level", "seed", "curvature", "nonuniformity", "shape", "test_acc"]
    if "test_acc_mean_field" in frame:
        cols.append("test_acc_mean_field")
    print(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    rho = _spearman(frame["curvature"].abs(), frame["test_acc"])
    print(f"Spearman rank correlation of |curvature| with test accuracy: {rho:.3f} over {len(frame)} cells")
    return 0


def _spearman(a, b) -> float:
    ra, rb = pd.Series(np.asarray(a)).rank(), pd.Series(np.asarray(b)).rank()
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return float("nan")  # no ranking to correlate
    return float(np.corrcoef(ra, rb)[0, 1])


if __name__ == "__main__":
    sys.exit(main())
