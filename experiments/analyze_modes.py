#!/usr/bin/env python
"""Mode analysis of trained runs: spectra and fits, removal curves, categories versus modes, latent space.

Example (after training the runs with experiments/run_mnist.py, see the README)::

    python experiments/analyze_modes.py --data-root ../shared/data/mnist \\
        --mdl runs/mdl-p70-s0 --plain runs/default-mlp-s0 --ensemble runs/default-ensemble-s0

Writes into ``--out`` (default ``runs/modes-analysis``)::

    spectra.csv      every mode of every layer of every model (sigma, tau, ranks)
    fits.csv         piecewise power-law fit of tau (MDL) / singular values (others) against rank
    removal.csv      test accuracy against the fraction of a layer's modes removed (3 orders)
    compare_*.csv    categories versus modes (mass, auc, neurons, accuracy, pixels) for the ensemble
    latent.csv       participation-ratio dimension and class overlap per neuron layer and model
    summary.json     the headline numbers
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import ensemble_nets as en
from ensemble_nets.analysis.compare import compare_categories_modes
from ensemble_nets.analysis.latent import latent_table
from ensemble_nets.analysis.modes import REMOVAL_ORDERS, fit_piecewise_power_law, mode_removal_curve, model_spectra
from ensemble_nets.training.runs import write_atomic, write_json

#: k values of the comparison (clipped to each layer's rank).
COMPARE_KS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)
FRACTIONS = tuple(i / 10 for i in range(11))


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


def _save(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, frame.to_csv(index=False).encode())


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
    args.out.mkdir(parents=True, exist_ok=True)
    spectra, fits, removal, latent = [], [], [], []
    for name, model in models.items():
        spectrum = model_spectra(model).assign(model=name)
        spectra.append(spectrum)
        score = "tau" if name.startswith("mdl") else "sigma"
        for layer, group in spectrum.groupby("layer"):
            group = group.sort_values(f"rank_{score}")
            values = group[score].to_numpy()
            values = values[values > 1e-12 * values.max()]
            if len(values) >= 7:
                fit = fit_piecewise_power_law(range(1, len(values) + 1), values, n_boot=args.n_boot)
                fits.append({"model": name, "layer": layer, "score": score, "n_modes": len(values), **fit.to_dict()})
        for layer in range(1, len(model.linear_layers) + 1):
            for order in REMOVAL_ORDERS:
                removal.append(mode_removal_curve(model, data, layer, order, FRACTIONS, args.n_random,
                                                  by="tau" if name.startswith("mdl") else "sigma").assign(model=name))
        latent.append(latent_table(model, data).assign(model=name))
        print(f"analysed {name}", flush=True)
    spectra, fits = pd.concat(spectra, ignore_index=True), pd.DataFrame(fits)
    removal, latent = pd.concat(removal, ignore_index=True), pd.concat(latent, ignore_index=True)
    mdl_for_pixels = next(iter(models.values()))
    comparison = compare_categories_modes(models["ensemble"], data, mdl_model=mdl_for_pixels, ks=COMPARE_KS)
    for name, frame in (("spectra", spectra), ("fits", fits), ("removal", removal), ("latent", latent),
                        ("compare_mass", comparison.mass), ("compare_auc", comparison.auc),
                        ("compare_neurons", comparison.neurons), ("compare_accuracy", comparison.accuracy),
                        ("compare_pixels", comparison.pixels)):
        _save(frame, args.out / f"{name}.csv")
    mean_removal = removal.groupby(["model", "layer", "order", "fraction"], as_index=False).accuracy.mean()
    at = mean_removal[mean_removal.fraction.round(2).isin([0.0, 0.4, 0.7])]
    summary = {
        "runs": {"mdl": [str(r) for r in args.mdl], "plain": str(args.plain), "ensemble": str(args.ensemble)},
        "n_test": data.n_test,
        "fits": fits[["model", "layer", "score", "breakpoint", "slope1", "slope1_std", "slope2", "slope2_std"]]
        .to_dict("records"),
        "removal_at_0_40_70": at.to_dict("records"),
        "compare_auc": comparison.auc[comparison.auc.k.isin([1, 10, 100])].to_dict("records"),
        "compare_mass": comparison.mass[comparison.mass.k.isin([1, 10, 50])].to_dict("records"),
        "compare_neurons": comparison.neurons.to_dict("records"),
        "compare_pixels": comparison.pixels.to_dict("records"),
    }
    write_json(args.out / "summary.json", summary)
    with pd.option_context("display.width", 200, "display.max_rows", 400, "display.max_columns", 20):
        print(fits[["model", "layer", "score", "n_modes", "breakpoint", "slope1", "slope1_std", "slope2",
                    "slope2_std"]].to_string(index=False))
        print(at.pivot_table(index=["model", "layer", "order"], columns="fraction", values="accuracy").to_string())
        print(comparison.auc[comparison.auc.k.isin([1, 10, 100])].to_string(index=False))
        print(comparison.mass[comparison.mass.k.isin([1, 10, 50])].to_string(index=False))
        print(comparison.neurons.to_string(index=False))
        print(comparison.accuracy.to_string(index=False))
        print(comparison.pixels.to_string(index=False))
        print(latent.to_string(index=False))
    return summary


if __name__ == "__main__":
    main()
