#!/usr/bin/env python
"""Spring lengths of the second-order (Langevin) spring-block chain over noise x friction x seed.

Wraps :func:`ensemble_nets.analysis.theory.langevin_elongations` (model:
:func:`ensemble_nets.analysis.theory.simulate_spring_langevin`; docs/phase.md). Prints, for the
final state and for the second-half time average, the mean spring lengths 1..L+1 over seeds per
(friction, noise), the tilt d1 - d(L+1) with its standard error over seeds, and the fraction
of seeds with d1 > d(L+1) (convex). Examples::

    # the table of docs/phase.md: 20 seeds, asymmetric (0.003/0.004) and symmetric friction
    python experiments/spring_langevin.py --seeds 20

    # the symmetric-friction check on 300 fresh seeds
    python experiments/spring_langevin.py --noises 0.1 --symmetric-only --seeds 300 --first-seed 100
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from ensemble_nets.analysis.theory import langevin_elongations


def tilt_table(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean spring lengths per (friction_back, noise), with ``d1-dL`` (mean), its ``se`` and ``frac_convex``."""
    springs = frame.pivot_table(index=["friction_back", "noise", "seed"], columns="spring", values=column)
    first, last = springs.columns.min(), springs.columns.max()
    tilt = springs[first] - springs[last]                  # one value per seed
    groups = tilt.groupby(level=[0, 1])
    table = springs.groupby(level=[0, 1]).mean()
    table[f"d{first}-d{last}"] = groups.mean()
    table["se"] = groups.std(ddof=1) / np.sqrt(groups.size())
    table["frac_convex"] = (tilt > 0).groupby(level=[0, 1]).mean()
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noises", type=float, nargs="+", default=[0.0, 0.003, 0.01, 0.03, 0.1])
    p.add_argument("--seeds", type=int, default=20, help="number of noise seeds")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--friction-forward", type=float, default=0.003, help="mu_+")
    p.add_argument("--friction-back", type=float, default=0.004, help="mu_- of the asymmetric chain")
    p.add_argument("--symmetric-only", action="store_true", help="only mu_- = mu_+")
    p.add_argument("--t-max", type=float, default=700.0)
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error(f"--seeds {args.seeds}: need at least 2 seeds for a standard error")
    mu = args.friction_forward
    frictions = [(mu, mu)] if args.symmetric_only else [(mu, args.friction_back), (mu, mu)]
    frame = langevin_elongations(noises=tuple(args.noises), frictions=tuple(frictions),
                                 seeds=range(args.first_seed, args.first_seed + args.seeds), t_max=args.t_max)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    for column, label in (("extension", "final state"), ("mean_extension", "second-half time average")):
        print(f"{label}, {args.seeds} seeds from {args.first_seed} (rows: friction_back, noise; friction_forward {mu})")
        print(tilt_table(frame, column).round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
