# SPDX-License-Identifier: MIT
"""Mode analysis of trained runs: spectra and fits, removal curves, categories versus modes, latent space.

:func:`analyze_modes` takes trained models by name (``mdl-p<P>``, ``plain``, ``ensemble``) and
writes into its folder (``runs/modes-analysis`` for the figures)::

    spectra.csv      every mode of every layer of every model (sigma, tau, ranks)
    fits.csv         piecewise power-law fit of tau (MDL) / singular values (others) against rank
    removal.csv      test accuracy against the fraction of a layer's modes removed (3 orders)
    compare_*.csv    categories versus modes (mass, auc, neurons, accuracy, pixels) for the ensemble
    latent.csv       participation-ratio dimension and class overlap per neuron layer and model
    summary.json     the headline numbers

The figure family "modes" needs that folder and the width sweep
(:mod:`ensemble_nets.protocols.width_sweep`, ``runs/mode-width-sweep``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble_nets.analysis.compare import compare_categories_modes
from ensemble_nets.analysis.latent import latent_table
from ensemble_nets.analysis.modes import (PowerLawFit, REMOVAL_ORDERS, fit_piecewise_power_law, mode_removal_curve,
                                          model_spectra)
from ensemble_nets.protocols.width_sweep import BUDGETS as SWEEP_BUDGETS
from ensemble_nets.protocols.width_sweep import WidthSweepConfig
from ensemble_nets.training.runs import read_json, write_atomic, write_json

__all__ = ["ANALYSIS", "BUDGETS", "COMPARE_KS", "FRACTIONS", "ModesConfig", "REQUIRED_RUNS", "SWEEP",
           "analyze_modes", "figure_tables", "fit_lines", "jobs", "missing_runs"]

#: k values of the comparison (clipped to each layer's rank).
COMPARE_KS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)
FRACTIONS = tuple(i / 10 for i in range(11))
ANALYSIS, SWEEP = "modes-analysis", "mode-width-sweep"
#: The trained runs the analysis reads: folder -> (preset, overrides).
MODEL_RUNS = {"mdl-p70-s0": ("mdl-reference", {"n_modes": 70, "train": {"epochs": 30}}),
              "default-mlp-s0": ("default", {"model": "mlp"}),
              "default-ensemble-s0": ("default", {})}
_D = "--dataset mnist5k --data-root ../shared/data/mnist"
#: Run folders (relative to the runs folder) the family needs -> the commands that make them.
REQUIRED_RUNS = {
    ANALYSIS: (f"python experiments/run_mnist.py {_D} --protocol mdl-reference --n-modes 70 --epochs 30 "
               f"--out runs/mdl-p70-s0 && python experiments/run_mnist.py {_D} --model mlp --out runs/default-mlp-s0 "
               f"&& python experiments/run_mnist.py {_D} --out runs/default-ensemble-s0 "
               f"&& python experiments/analyze_modes.py --data-root ../shared/data/mnist"),
    SWEEP: "python experiments/mode_width_sweep.py --data-root ../shared/data/mnist",
}


@dataclass(frozen=True)
class ModesConfig:
    """The figure runs: the three trained models, their analysis and the width sweep."""

    data_root: str = "../shared/data/mnist"
    mdl_epochs: int = 30            # the MDL reference preset (P = 70), 30 of its 200 epochs
    default_epochs: int | None = None   # plain and ensemble runs (None: the default preset's 40)
    n_test: int | None = None       # analysis on the first N test digits (None: all)
    n_random: int = 5               # random removal draws
    n_boot: int = 200               # bootstrap draws of the power-law fits
    sweep: WidthSweepConfig = field(default_factory=WidthSweepConfig)


#: The figure budgets: ``quick`` trains a few epochs and analyses 2,000 test digits; ``paper`` is the run of docs/modes.md.
BUDGETS = {"quick": ModesConfig(mdl_epochs=5, default_epochs=10, n_test=2000, n_random=3, n_boot=50,
                                sweep=SWEEP_BUDGETS["quick"]),
           "paper": ModesConfig(sweep=SWEEP_BUDGETS["paper"])}


def _save(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, frame.to_csv(index=False).encode())


def analyze_modes(models: dict, data, out: str | Path, *, n_random: int = 5, n_boot: int = 200,
                  runs: dict | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Write every table of the module docstring into ``out``; ``(summary, tables)``.

    ``models``: name -> trained model, the MDL ones named ``mdl-...`` (ranked by tau), and one named
    ``ensemble`` (the categories-versus-modes comparison); ``runs`` (name -> folder) goes to summary.json.
    """
    if "ensemble" not in models:
        raise ValueError(f"models needs an 'ensemble' entry for the comparison; got {sorted(models)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
                fit = fit_piecewise_power_law(range(1, len(values) + 1), values, n_boot=n_boot)
                fits.append({"model": name, "layer": layer, "score": score, "n_modes": len(values), **fit.to_dict()})
        for layer in range(1, len(model.linear_layers) + 1):
            for order in REMOVAL_ORDERS:
                removal.append(mode_removal_curve(model, data, layer, order=order, fractions=FRACTIONS,
                                                  n_random=n_random,
                                                  by="tau" if name.startswith("mdl") else "sigma").assign(model=name))
        latent.append(latent_table(model, data).assign(model=name))
        print(f"analysed {name}", flush=True)
    spectra, fits = pd.concat(spectra, ignore_index=True), pd.DataFrame(fits)
    removal, latent = pd.concat(removal, ignore_index=True), pd.concat(latent, ignore_index=True)
    mdl_for_pixels = next(iter(models.values()))
    comparison = compare_categories_modes(models["ensemble"], data, mdl_model=mdl_for_pixels, ks=COMPARE_KS)
    tables = {"spectra": spectra, "fits": fits, "removal": removal, "latent": latent,
              "compare_mass": comparison.mass, "compare_auc": comparison.auc, "compare_neurons": comparison.neurons,
              "compare_accuracy": comparison.accuracy, "compare_pixels": comparison.pixels}
    for name, frame in tables.items():
        _save(frame, out / f"{name}.csv")
    mean_removal = removal.groupby(["model", "layer", "order", "fraction"], as_index=False).accuracy.mean()
    tables["removal_at_0_40_70"] = mean_removal[mean_removal.fraction.round(2).isin([0.0, 0.4, 0.7])]
    summary = {
        "runs": runs or {},
        "n_test": data.n_test,
        "fits": fits[["model", "layer", "score", "breakpoint", "slope1", "slope1_std", "slope2", "slope2_std"]]
        .to_dict("records"),
        "removal_at_0_40_70": tables["removal_at_0_40_70"].to_dict("records"),
        "compare_auc": comparison.auc[comparison.auc.k.isin([1, 10, 100])].to_dict("records"),
        "compare_mass": comparison.mass[comparison.mass.k.isin([1, 10, 50])].to_dict("records"),
        "compare_neurons": comparison.neurons.to_dict("records"),
        "compare_pixels": comparison.pixels.to_dict("records"),
    }
    write_json(out / "summary.json", summary)
    return summary, tables


def analysis_cell(cell: dict, cell_dir: Path) -> dict:
    """A :func:`~ensemble_nets.training.run_grid` cell: :func:`analyze_modes` of the runs in ``cell["runs_dir"]``."""
    from ensemble_nets.data import load_dataset
    from ensemble_nets.training.runs import load_run

    runs, c = Path(cell["runs_dir"]), cell["config"]
    data = load_dataset("mnist5k", c["data_root"], download=False)
    if c["n_test"] is not None:
        data = data.subset(n_test=c["n_test"])
    models = {"mdl-p70": load_run(runs / "mdl-p70-s0")[0], "plain": load_run(runs / "default-mlp-s0")[0],
              "ensemble": load_run(runs / "default-ensemble-s0")[0]}
    folders = {"mdl": [str(runs / "mdl-p70-s0")], "plain": str(runs / "default-mlp-s0"),
               "ensemble": str(runs / "default-ensemble-s0")}
    analyze_modes(models, data, cell["run_dir"], n_random=c["n_random"], n_boot=c["n_boot"], runs=folders)
    return {}


def sweep_cell(cell: dict, cell_dir: Path) -> dict:
    """A :func:`~ensemble_nets.training.run_grid` cell: the width sweep of ``cell["config"]["sweep"]``, serially.

    The sweep's cells then run one after the other in this worker: its grid is resumable on its own.
    """
    from ensemble_nets.protocols.width_sweep import run as run_sweep

    values = {k: tuple(v) if isinstance(v, list) else v for k, v in cell["config"]["sweep"].items()}
    sweep = WidthSweepConfig(**{**values, "data_root": cell["config"]["data_root"]})
    return {"n_widths": run_sweep(sweep, cell["run_dir"], backend="serial", progress=False)["n_widths"]}


def _finished(runs: Path, folder: str) -> bool:
    marker = "summary.json" if folder == ANALYSIS else "fit.json"
    return (Path(runs) / folder / marker).is_file()


def missing_runs(runs: str | Path) -> dict[str, str]:
    """:data:`REQUIRED_RUNS` entries not finished (analysis summary.json, sweep fit.json)."""
    return {folder: cmd for folder, cmd in REQUIRED_RUNS.items() if not _finished(Path(runs), folder)}


def jobs(runs: str | Path, config: ModesConfig) -> list:
    """Train the three runs side by side, then analyse them and run the width sweep side by side."""
    from ensemble_nets.protocols import mnist
    from ensemble_nets.protocols.ensemble import train_job, training_finished
    from ensemble_nets.protocols.figures import Job, JOBS_DIR, single_run_job

    runs = Path(runs)
    missing = missing_runs(runs)
    result = []
    if ANALYSIS in missing:
        trains = []
        for name, (preset, overrides) in MODEL_RUNS.items():
            n_epochs = config.mdl_epochs if preset == "mdl-reference" else config.default_epochs
            train = {**overrides.get("train", {}), **({"epochs": n_epochs} if n_epochs else {})}
            job = train_job(runs, name, preset, {**overrides, "data_root": config.data_root, "train": train})
            trains += job.cells if job is not None else []
        if trains:
            result.append(Job(runs / JOBS_DIR, mnist.run_cell, trains, lambda c: training_finished(c["run_dir"])))
    final = []
    if ANALYSIS in missing:
        final.append(single_run_job(runs, ANALYSIS, analysis_cell, runs / ANALYSIS, config,
                                    lambda c: _finished(runs, ANALYSIS), runs_dir=str(runs)).cells[0])
    if SWEEP in missing:
        final.append(single_run_job(runs, SWEEP, sweep_cell, runs / SWEEP, config,
                                    lambda c: _finished(runs, SWEEP)).cells[0])
    if final:
        result.append(Job(runs / JOBS_DIR, _final_cell, final,
                          lambda c: _finished(runs, ANALYSIS if c["name"] == ANALYSIS else SWEEP)))
    return result


def _final_cell(cell: dict, cell_dir: Path) -> dict:
    return (analysis_cell if cell["name"] == ANALYSIS else sweep_cell)(cell, cell_dir)


def fit_lines(spectra: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """The fitted piecewise power laws on ranks 1..n_modes, scaled like the plotted spectra (by the largest score).

    Columns ``model``, ``layer``, ``rank``, ``value``.
    """
    rows = []
    for r in fits.itertuples(index=False):
        group = spectra[(spectra.model == r.model) & (spectra.layer == r.layer)]
        fit = PowerLawFit(**{k: getattr(r, k) for k in ("breakpoint", "slope1", "slope2", "intercept1", "intercept2",
                                                         "sse", "slope1_std", "slope2_std", "breakpoint_std")},
                          slope1_ci=(0, 0), slope2_ci=(0, 0), breakpoint_ci=(0, 0), n_boot=0)
        grid = np.arange(1, int(r.n_modes) + 1)
        rows.append(pd.DataFrame({"model": r.model, "layer": r.layer, "rank": grid,
                                  "value": fit.predict(grid) / group[r.score].max()}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["model", "layer", "rank", "value"])


def figure_tables(runs: str | Path) -> dict:
    """The analysis tables (``spectra``, ``fits``, ``fit_lines``, ``removal``, ``compare_*``, ``latent``) and,
    when the sweep has run, ``pmin`` and ``fit``."""
    runs = Path(runs)
    a, s = runs / ANALYSIS, runs / SWEEP

    def read(name):
        path = a / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; make it with {REQUIRED_RUNS[ANALYSIS]}")
        return pd.read_csv(path)

    tables = {name: read(name) for name in ("spectra", "fits", "removal", "compare_mass", "compare_auc",
                                            "compare_accuracy", "latent")}
    tables["fit_lines"] = fit_lines(tables["spectra"], tables["fits"])
    if (s / "pmin.csv").is_file():
        tables["pmin"], tables["fit"] = pd.read_csv(s / "pmin.csv"), read_json(s / "fit.json")
    return tables
