#!/usr/bin/env python
"""The noise-nonlinearity phase diagram (DESIGN.md 4.2): a grid of load curves against test accuracy.

Each cell trains a depth-8 width-100 BatchNorm MLP with LeakyReLU(alpha) on
10x10 MNIST (2,560 embedded digits, Adam, full batch) with one noise knob set,
and records its load curve log D_l, curvature, non-uniformity and test
accuracy in its own run folder (resumable: finished cells are skipped).
The protocol is ``ensemble_nets.protocols.phase``.

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

from ensemble_nets.analysis.stats import spearman
from ensemble_nets.cli import add_config_arguments, config_from_args, positive_int
from ensemble_nets.protocols.phase import PhaseGridConfig, make_cells, run_phase_grid


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, PhaseGridConfig)
    parser.add_argument("--out", type=Path, help="grid folder (default: runs/phase/<model>-<knob>)")
    parser.add_argument("--backend", choices=("ray", "serial"), default="ray")
    parser.add_argument("--workers", type=positive_int, default=2, help="local Ray worker processes")
    parser.add_argument("--address", help="a Ray cluster address (e.g. auto); default: local workers")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(PhaseGridConfig, args)
    except ValueError as err:
        parser.error(str(err))
    out = args.out or Path("runs") / config.folder
    print(f"{len(make_cells(config))} cells -> {out}")
    frame = run_phase_grid(config, out, backend=args.backend, n_workers=args.workers, address=args.address)
    cols = ["alpha", "level", "seed", "curvature", "nonuniformity", "shape", "test_acc"]
    if "test_acc_mean_field" in frame:
        cols.append("test_acc_mean_field")
    print(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    rho = spearman(frame["curvature"].abs(), frame["test_acc"])
    print(f"Spearman rank correlation of |curvature| with test accuracy: {rho:.3f} over {len(frame)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
