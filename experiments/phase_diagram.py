#!/usr/bin/env python
"""The noise-nonlinearity phase diagram (DESIGN.md 4.2): a grid of load curves against test accuracy.

Each cell trains the reference network of Shi, Pan & Dokmanic (2024): input BatchNorm, 7 blocks
[Linear(100, 100), BatchNorm, LeakyReLU(alpha), Dropout(p)], Linear(100, 10), on 10x10 MNIST
(2,560 embedded digits), Adam, with one noise knob set, and records the separation at the input
(after the BatchNorm), after every block and at the logits, the reference's c = d_0 - d_last and
v = std(d), the normalized curvature and the test accuracy, in its own run folder (resumable:
finished cells are skipped). Plain cells train in stacks (one vectorized model per batch size).
The protocol is ``ensemble_nets.protocols.phase``; the claims statistics are
``ensemble_nets.analysis.phase_claims``.

Examples::

    # the paper grids of docs/phase.md (alpha 0, 0.2, ..., 1 x 5-6 levels x 3 seeds; 100 epochs)
    python experiments/phase_diagram.py --data-root ../shared/data/mnist --knob data_noise
    python experiments/phase_diagram.py --data-root ../shared/data/mnist --knob dropout
    python experiments/phase_diagram.py --data-root ../shared/data/mnist --knob lr
    python experiments/phase_diagram.py --data-root ../shared/data/mnist --knob batch_size
    python experiments/phase_diagram.py --data-root ../shared/data/mnist --model spike_slab   # xi_max axis

    # a 9-cell smoke grid (seconds)
    python experiments/phase_diagram.py --data-root ../shared/data/mnist --preset quick

    # the claims (a)-(d) and the ensemble comparison of every paper grid found: print, write CSVs
    python experiments/phase_diagram.py --claims --claims-out runs/phase-paper/claims

    # more seeds on a finished grid (only the new cells train)
    python experiments/phase_diagram.py --data-root ../shared/data/mnist --knob dropout --seeds 5

Output: runs/phase-paper/<model>-<knob>/<cell>/{summary.json,separation.csv} and
runs/phase-paper/<model>-<knob>/grid.csv (one row per cell).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ensemble_nets.analysis.stats import spearman
from ensemble_nets.cli import add_config_arguments, config_from_args, positive_int
from ensemble_nets.protocols.phase import PhaseGridConfig, make_cells, run_phase_grid


def _claims(runs: Path, out: Path | None, measure: str = "c") -> int:
    from ensemble_nets.analysis.phase_claims import claims_tables, format_claims
    from ensemble_nets.protocols.phase import GRIDS, grid_frame

    frames = {label: grid_frame(runs / folder) for folder, (_, label) in GRIDS.items()
              if folder.startswith("phase-paper") and any((runs / folder).glob("*/summary.json"))}
    if not frames:
        print(f"no paper grid under {runs}/phase-paper; run the commands of this script's docstring", file=sys.stderr)
        return 1
    tables = claims_tables(frames, measure=measure)
    print(format_claims(tables))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_csv(out / f"{name}-{measure}.csv", index=False)
        print(f"wrote {', '.join(sorted(tables))} (.csv) to {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, PhaseGridConfig)
    parser.add_argument("--out", type=Path, help="grid folder (default: runs/<preset folder>/<model>-<knob>)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (for --claims)")
    parser.add_argument("--backend", choices=("ray", "serial"), default="serial")
    parser.add_argument("--workers", type=positive_int, default=1, help="local Ray worker processes")
    parser.add_argument("--address", help="a Ray cluster address (e.g. auto); default: local workers")
    parser.add_argument("--claims", action="store_true", help="print the claims tables of the paper grids found")
    parser.add_argument("--claims-out", type=Path, help="with --claims: folder for the tables as CSV")
    parser.add_argument("--measure", default="c", choices=("c", "c_tr", "curvature"),
                        help="with --claims: the curvature column (c: the reference's, He-Su; c_tr: trace ratio)")
    args = parser.parse_args(argv)
    if args.claims:
        return _claims(args.runs, args.claims_out, args.measure)
    try:
        config = config_from_args(PhaseGridConfig, args)
    except ValueError as err:
        parser.error(str(err))
    out = args.out or args.runs / config.folder
    print(f"{len(make_cells(config))} cells -> {out}")
    frame = run_phase_grid(config, out, backend=args.backend, n_workers=args.workers, address=args.address)
    cols = ["alpha", "level", "seed", "c", "v", "curvature", "shape", "test_acc"]
    if "test_acc_mean_field" in frame:
        cols.append("test_acc_mean_field")
    print(frame.sort_values(["alpha", "level", "seed"])[cols].to_string(index=False,
                                                                        float_format=lambda v: f"{v:.3f}"))
    rho = spearman(frame["c"].abs(), frame["test_acc"])
    print(f"Spearman rank correlation of |c| with test accuracy: {rho:.3f} over {len(frame)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
