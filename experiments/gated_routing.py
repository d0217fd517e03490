#!/usr/bin/env python
"""Gated deep linear networks on the routing task: simulations against the neural-race reduction.

DESIGN.md 4.3 (Saxe, Sodhani & Lewallen, ICML 2022). Examples::

    # the default (a few CPU minutes): dynamics, init-scale sweep, RSA, race over K
    python experiments/gated_routing.py --out runs/gated-routing

    # quicker look
    python experiments/gated_routing.py --out runs/gated-quick --seeds 1 --gains 0.2 2.5 --race-k 2 4

The run folder (config.json, metrics.csv, theory.csv, rsa.json, summary.json) and the three parts
(dynamics, sweep, race) are described in ``ensemble_nets.protocols.gated``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ensemble_nets.cli import add_config_arguments, config_from_args
from ensemble_nets.protocols.gated import GatedConfig, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/gated-routing"), help="run folder to write")
    add_config_arguments(p, GatedConfig)
    args = p.parse_args(argv)
    run(config_from_args(GatedConfig, args), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
