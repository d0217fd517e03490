#!/usr/bin/env python
"""The race between a shared pathway and private ones: share of the solution, simulation against theory.

Wraps :func:`ensemble_nets.protocols.racing.race_sweep` (docs/gated.md). For each number D of
domains the shared pathway serves, prints per mode the share the shared pathway carries in a
shared domain (simulation, reduced ODE, closed form of ``race_outcome``) and the largest
``|simulation - theory| / s`` of the run. ``--head-start`` also prints, from the closed form, the
private init gain at which a private pathway ties with a shared one of init gain ``--gain``.
Examples::

    # the table of docs/gated.md (aligned init; a few CPU minutes)
    python experiments/racing.py --n-shared 1 2 3 4 7 --lr 0.005 --steps 6000 --head-start

    # random orthogonal init, 3 seeds
    python experiments/racing.py --n-shared 1 2 7 --init orthogonal --gain 0.3 --seeds 0 1 2 --lr 0.005 --steps 6000
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from ensemble_nets.analysis.theory.gdln import race_outcome
from ensemble_nets.protocols.racing import INITS, race_sweep


def tie_gain(s: float, shared_gain: float, n_shared: int) -> float:
    """Private init gain at which the race ends in a tie (``a = c = s/2``): ``c0 = (s/2)^(1-1/D) a0^(1/D)``."""
    c0 = (s / 2) ** (1 - 1 / n_shared) * (shared_gain**2) ** (1 / n_shared)
    a_inf, c_inf = race_outcome([s], shared_gain**2, c0, n_shared)  # check: the closed form gives the tie
    assert np.isclose(a_inf[0], c_inf[0], rtol=1e-6), (a_inf, c_inf)
    return float(np.sqrt(c0))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-shared", type=int, nargs="+", default=[1, 2, 4, 7], help="D values (<= --domains)")
    p.add_argument("--domains", type=int, default=7)
    p.add_argument("--init", choices=INITS, default="aligned")
    p.add_argument("--gain", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--head-start", action="store_true", help="print the private init gain that ties the race")
    args = p.parse_args(argv)
    frame = race_sweep(n_shared=tuple(args.n_shared), seeds=tuple(args.seeds), n_domains=args.domains,
                       init=args.init, gain=args.gain, lr=args.lr, n_steps=args.steps)
    pd.set_option("display.width", 200)
    columns = ["share_sim", "share_theory", "share_closed_form", "max_error"]
    table = frame.groupby(["n_shared", "mode"])[columns].agg(["mean", "std"]) if len(args.seeds) > 1 \
        else frame.set_index(["n_shared", "mode"])[columns + ["winner"]]
    print(f"init {args.init}, gain {args.gain}, lr {args.lr}, {args.steps} steps, M = {args.domains}, seeds {args.seeds}")
    print(table.round(4).to_string())
    if args.head_start:
        s = float(frame["s"].max())
        for d in args.n_shared:
            if d > 1:
                print(f"D = {d}: a private pathway ties at init gain {tie_gain(s, args.gain, d):.3f} "
                      f"(shared gain {args.gain}, top mode s = {s:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
