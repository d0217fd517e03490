#!/usr/bin/env python
"""Spectral parametrization across widths: coordinate check, learning-rate transfer, width sweep.

Examples::

    # coordinate check (widths 64..2048) and width sweep (64..1024) into runs/spectral
    python experiments/spectral_scaling.py --data-root ../shared/data/mnist --out runs/spectral --stages coord sweep

    # learning-rate transfer of the ensemble: 6 widths x 7 rates x 2 parametrizations x 3 seeds, 200 steps,
    # one resumable run folder each under runs/spectral-transfer (about half an hour of one CPU core)
    python experiments/spectral_scaling.py --data-root ../shared/data/mnist --out runs/spectral --stages transfer

    # larger (GPU): more steps, seeds, widths and epochs
    python experiments/spectral_scaling.py --data-root ../shared/data/mnist --out runs/spectral-large \\
        --coord-widths 64 128 256 512 1024 2048 4096 --coord-seeds 3 --transfer-steps 1000 \\
        --transfer-widths 64 256 1024 4096 --sweep-widths 64 128 256 512 1024 2048 4096 --sweep-epochs 20

The stages and the tables they write are described in ``ensemble_nets.protocols.spectral``
(``--stages`` picks some). ``--coord-lr`` is spectral; the standard variant uses
lr / sqrt(min width), the rate that matches it in the hidden layer of the narrowest width. The transfer
grid has its own standard rates (``--transfer-standard-lrs``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ensemble_nets.cli import add_config_arguments, config_from_args
from ensemble_nets.protocols.spectral import SpectralConfig, run


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/spectral"), help="run folder to write")
    add_config_arguments(p, SpectralConfig)
    args = p.parse_args(argv)
    try:
        args.config = config_from_args(SpectralConfig, args)
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    run(args.config, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
