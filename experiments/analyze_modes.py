#!/usr/bin/env python
"""Mode analysis of trained runs: spectra and fits, removal curves, categories versus modes, latent space.

Example (after training the runs with experiments/run_mnist.py, see docs/modes.md)::

    python experiments/analyze_modes.py --data-root ../shared/data/mnist \\
        --mdl runs/mdl-p70-s0 --plain runs/default-mlp-s0 --ensemble runs/default-ensemble-s0

Writes spectra.csv, fits.csv, removal.csv, compare_*.csv, latent.csv and summary.json into
``--out`` (default ``runs/modes-analysis``); see ``ensemble_nets.protocols.modes``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import ensemble_nets as en
from ensemble_nets.protocols.modes import analyze_modes


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mdl", type=Path, nargs="+", default=[Path("runs/mdl-p70-s0")], help="MDL run folders")
    p.add_argument("--plain", type=Path, default=Path("runs/default-mlp-s0"), help="plain MLP run folder")
    p.add_argument("--ensemble", type=Path, default=Path("runs/default-ensemble-s0"), help="ensemble run folder")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--data-root", default="data")
    p.add_argument("--n-test", type=int, help="evaluate on the first N test examples only (default: all)")
    p.add_argument("--n-random", type=int, default=5, help="random removal draws")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap draws of the power-law fits")
    p.add_argument("--out", type=Path, default=Path("runs/modes-analysis"))
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        data = en.load_dataset(args.dataset, args.data_root, download=False)
        if args.n_test is not None:
            data = data.subset(n_test=args.n_test)
        mdls = [en.load_run(run)[0] for run in args.mdl]
        models = {f"mdl-p{model.n_modes}": model for model in mdls}
        models["plain"] = en.load_run(args.plain)[0]
        models["ensemble"] = en.load_run(args.ensemble)[0]
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"analyze_modes.py: error: {err}")
    runs = {"mdl": [str(r) for r in args.mdl], "plain": str(args.plain), "ensemble": str(args.ensemble)}
    summary, t = analyze_modes(models, data, args.out, n_random=args.n_random, n_boot=args.n_boot, runs=runs)
    with pd.option_context("display.width", 200, "display.max_rows", 400, "display.max_columns", 20):
        print(t["fits"][["model", "layer", "score", "n_modes", "breakpoint", "slope1", "slope1_std", "slope2",
                         "slope2_std"]].to_string(index=False))
        print(t["removal_at_0_40_70"].pivot_table(index=["model", "layer", "order"], columns="fraction",
                                                  values="accuracy").to_string())
        for name, ks in (("compare_auc", [1, 10, 100]), ("compare_mass", [1, 10, 50])):
            print(t[name][t[name].k.isin(ks)].to_string(index=False))
        for name in ("compare_neurons", "compare_accuracy", "compare_pixels", "latent"):
            print(t[name].to_string(index=False))
    return summary


if __name__ == "__main__":
    main()
