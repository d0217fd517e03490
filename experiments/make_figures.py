#!/usr/bin/env python
"""Make the paper figures from run folders: never trains, says what is missing.

    python experiments/make_figures.py                       # every family, runs under runs/
    python experiments/make_figures.py --runs runs --out figures --only ensemble

Each figure family lives in one module of ``ensemble_nets.plotting`` that
provides::

    REQUIRED_RUNS: dict[str, str]     run folder (relative to --runs) -> the command that makes it
    make_figures(runs: Path, out: Path) -> list[Path]   the files it wrote (PNG and PDF)

A family whose runs are missing is skipped with the commands that make them;
the script exits non-zero when anything was skipped, so a figure never goes
silently stale.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

#: Figure families, in the order the paper shows them: name -> module.
FAMILIES: dict[str, str] = {
    "ensemble": "ensemble_nets.plotting.ensemble",
    "modes": "ensemble_nets.plotting.modes",
    "online": "ensemble_nets.plotting.online",
    "spectral": "ensemble_nets.plotting.spectral",
    "phase": "ensemble_nets.plotting.phase",
    "gated": "ensemble_nets.plotting.gated",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding the run folders")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="where to write PNG and PDF files")
    parser.add_argument("--only", nargs="+", choices=sorted(FAMILIES), help="make only these families")
    args = parser.parse_args(argv)
    families = args.only or list(FAMILIES)
    if not families:
        print("no figure families are registered yet", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    skipped = 0
    for name in families:
        module = importlib.import_module(FAMILIES[name])
        missing = {run: cmd for run, cmd in module.REQUIRED_RUNS.items() if not (args.runs / run).is_dir()}
        if missing:
            skipped += 1
            print(f"[{name}] skipped: missing run folders; make them with:", file=sys.stderr)
            for run, cmd in missing.items():
                print(f"    {cmd}    # -> {args.runs / run}", file=sys.stderr)
            continue
        written = module.make_figures(args.runs, args.out)
        print(f"[{name}] wrote {len(written)} files: " + ", ".join(str(p) for p in written))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
