# SPDX-License-Identifier: MIT
"""Credit assignment in a trained spike-and-slab ensemble: the analysis of a run folder, and its figures' runs.

:func:`analyze_run` reads a run folder written by :func:`ensemble_nets.protocols.mnist.train_run`
and writes RUN_DIR/analysis/::

    categories.csv             connections per layer and category (count, fraction)
    entropy.csv                entropy of q per layer, over all connections and per category
    perturbation.csv           test error per (layer, perturbation, fraction, sampled network)
    perturbation_summary.csv   its mean and std over the sampled networks
    ensemble_accuracy.csv      test accuracy of each of the K sampled networks
    ensemble_per_example.csv   per test digit: prediction, confidence, predictive entropy, mutual information, agreement
    calibration.csv            reliability table of the ensemble predictive (ECE bins)
    summary.json               accuracy mean/std/HDI, ECE, agreement, MI on right vs wrong, settings
    inference_data.nc          ArviZ InferenceData (posterior, posterior_predictive, log_likelihood, observed_data)

The figure family "ensemble" needs ``runs/default-ensemble-s0`` trained and analysed
(:data:`REQUIRED_RUNS`); :data:`COMPARED_RUNS` join the category figure when analysed.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ensemble_nets.analysis._common import resolve_layer
from ensemble_nets.analysis.categories import categorize
from ensemble_nets.analysis.ensemble_stats import ensemble_statistics
from ensemble_nets.analysis.entropy import entropy_table
from ensemble_nets.analysis.frames import parameter_frame
from ensemble_nets.analysis.perturb import DEFAULT_FRACTIONS, perturbation_curves, summarize_perturbations
from ensemble_nets.cli import positive_int
from ensemble_nets.data import load_dataset
from ensemble_nets.training.runs import (CHECKPOINT, SUMMARY, load_checkpoint, load_run, read_json, write_atomic,
                                         write_json)

__all__ = ["ANALYSIS", "BUDGETS", "COMPARED_RUNS", "EnsembleConfig", "MAIN_RUN", "REQUIRED_RUNS", "analyze_cell",
           "analyze_run", "figure_tables", "jobs", "load_finished_run", "missing_runs", "read_analysis",
           "train_job", "training_finished"]

ANALYSIS = "analysis"
MAIN_RUN = "default-ensemble-s0"
_TRAIN = "python experiments/run_mnist.py --data-root ../shared/data/mnist"
_ANALYZE = "python experiments/analyze_run.py"
#: Run folders (relative to the runs folder) the family needs -> the commands that make them.
REQUIRED_RUNS = {f"{MAIN_RUN}/{ANALYSIS}": f"{_TRAIN} --out runs/{MAIN_RUN} && {_ANALYZE} runs/{MAIN_RUN}"}
#: Runs compared in the category figure when they have been analysed (optional): folder -> label.
COMPARED_RUNS = {MAIN_RUN: "default", "reference-ensemble-s0": "reference (60 ep.)",
                 "default-elbo-s0": "default, ELBO", "reference-elbo-s0": "reference, ELBO"}
_FILES = ("summary.json", "categories.csv", "entropy.csv", "perturbation.csv", "ensemble_accuracy.csv",
          "ensemble_per_example.csv", "calibration.csv")


@dataclass(frozen=True)
class EnsembleConfig:
    """The figure run: the default preset trained (``epochs`` None: the preset's 40), then analysed."""

    data_root: str = field(default="../shared/data/mnist", metadata={"help": "folder with the MNIST test set"})
    epochs: int | None = field(default=None, metadata={"type": positive_int, "help": "training epochs"})
    n_networks: int = field(default=50, metadata={"type": positive_int, "help": "networks sampled for the statistics"})
    perturb_networks: int = field(default=10, metadata={"type": positive_int, "help": "networks per perturbation"})
    fractions: tuple = DEFAULT_FRACTIONS
    max_weights: int = field(default=500, metadata={"type": positive_int})
    seed: int = 0


#: The figure budgets: ``quick`` trains 10 epochs and samples fewer networks; ``paper`` is the run of docs/ensemble.md.
BUDGETS = {"quick": EnsembleConfig(epochs=10, n_networks=20, perturb_networks=4,
                                   fractions=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
           "paper": EnsembleConfig()}


def load_finished_run(run_dir: str | Path, *, data_root: str | None = None, allow_incomplete: bool = False):
    """``(model, config, data)`` of a finished ensemble run, with clear errors for missing or incomplete ones."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist; make it with "
                                f"python experiments/run_mnist.py --out {run_dir}")
    payload = load_checkpoint(run_dir / CHECKPOINT)
    planned = payload.get("train_config", {}).get("epochs")
    if planned is not None and payload.get("epoch", 0) < planned and not allow_incomplete:
        raise ValueError(f"run folder {run_dir} is incomplete: {payload.get('epoch', 0)} of {planned} epochs; "
                         f"finish it with python experiments/run_mnist.py --out {run_dir} --resume "
                         f"(with the same flags), or pass --allow-incomplete")
    model, config, _ = load_run(run_dir)
    if not hasattr(model, "sample_network"):
        raise ValueError(f"{run_dir} holds a {getattr(model, 'kind', type(model).__name__)} model; "
                         f"the analysis needs an ensemble (run_mnist.py --model ensemble)")
    experiment = config.get("experiment")
    if not experiment:
        raise ValueError(f"{run_dir}/config.json has no 'experiment' section (data set and root); "
                         f"the run was not written by run_mnist.py")
    data = load_dataset(experiment["dataset"], data_root or experiment["data_root"], download=False)
    return model, config, data


def _check_options(model, *, n_networks, perturb_networks, max_weights, fractions, layers) -> None:
    if n_networks < 2:
        raise ValueError(f"--n-networks must be >= 2 (a spread and an HDI need several networks), got {n_networks}")
    if perturb_networks < 1:
        raise ValueError(f"--perturb-networks must be >= 1, got {perturb_networks}")
    if max_weights < 1:
        raise ValueError(f"--max-weights must be >= 1, got {max_weights}")
    if not all(0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"--fractions must lie in [0, 1], got {list(fractions)}")
    for layer in layers or []:
        resolve_layer(model, layer)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_atomic(path, frame.to_csv(index=False).encode())


def analyze_run(run_dir: str | Path, *, data_root: str | None = None, n_networks: int = 50,
                perturb_networks: int = 10, fractions=DEFAULT_FRACTIONS, layers=None, max_weights: int = 500,
                tol: float | None = None, seed: int = 0, allow_incomplete: bool = False,
                progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """Write every table and the InferenceData into RUN_DIR/analysis; ``(summary, perturbation summary)``.

    ``tol`` (category tolerance) defaults to 0, or the ELBO margin for ELBO runs. Options are
    checked before anything is written.
    """
    from ensemble_nets.analysis.inference_data import save_inference_data, to_inference_data

    run_dir = Path(run_dir)
    model, config, data = load_finished_run(run_dir, data_root=data_root, allow_incomplete=allow_incomplete)
    fractions = list(fractions)
    _check_options(model, n_networks=n_networks, perturb_networks=perturb_networks, max_weights=max_weights,
                   fractions=fractions, layers=layers)
    train = config.get("train", {})
    if tol is None:
        tol = train.get("elbo_margin", 0.0) if train.get("objective") == "elbo" else 0.0
    out = run_dir / ANALYSIS
    out.mkdir(exist_ok=True)
    print(f"analyzing {run_dir} on {data.n_test} test digits ({data.test_source}); writing {out}", file=sys.stderr)

    categories = categorize(model, tol=tol)
    _write_csv(out / "categories.csv", categories.table)
    _write_csv(out / "entropy.csv", entropy_table(model, tol=tol))
    curves = pd.concat([perturbation_curves(model, data, layer, fractions=fractions, n_networks=perturb_networks,
                                            seed=seed, tol=tol, progress=progress)
                        for layer in (layers or list(categories.labels))], ignore_index=True)
    _write_csv(out / "perturbation.csv", curves)
    perturbation = summarize_perturbations(curves)
    _write_csv(out / "perturbation_summary.csv", perturbation)

    stats = ensemble_statistics(model, data, n_networks=n_networks, seed=seed, progress=progress)
    _write_csv(out / "ensemble_accuracy.csv",
               pd.DataFrame({"network": range(len(stats.accuracies)), "accuracy": stats.accuracies}))
    _write_csv(out / "ensemble_per_example.csv", stats.per_example)
    _write_csv(out / "calibration.csv", stats.calibration)
    idata = to_inference_data(model, data, n_networks=n_networks, seed=seed, max_weights=max_weights)
    save_inference_data(idata, out / "inference_data.nc")

    summary = {"run_dir": str(run_dir), "objective": train.get("objective", "reference"), "categories_tol": tol,
               "categories": categories.fractions(), **stats.summary, "perturb_networks": perturb_networks,
               "fractions": fractions}
    write_json(out / "summary.json", summary)
    return summary, perturbation


def training_finished(run_dir: str | Path) -> bool:
    """A run folder whose training ran to the end (train_run adds ``protocol`` to summary.json last)."""
    summary = Path(run_dir) / SUMMARY
    return summary.is_file() and "protocol" in read_json(summary)


def analyze_cell(cell: dict, cell_dir: Path) -> dict:
    """A :func:`~ensemble_nets.training.run_grid` cell: :func:`analyze_run` of ``cell["run_dir"]``, options from
    ``cell["config"]``."""
    c = cell["config"]
    summary, _ = analyze_run(cell["run_dir"], n_networks=c["n_networks"], perturb_networks=c["perturb_networks"],
                             fractions=c["fractions"], max_weights=c["max_weights"], seed=c["seed"], progress=False)
    return {"accuracy_mean": summary["accuracy_mean"]}


def missing_runs(runs: str | Path) -> dict[str, str]:
    """:data:`REQUIRED_RUNS` entries whose analysis is not written yet."""
    return {} if (Path(runs) / MAIN_RUN / ANALYSIS / "summary.json").is_file() else dict(REQUIRED_RUNS)


def train_job(runs: str | Path, run_name: str, protocol: str, overrides: dict):
    """A single-run job training ``protocol`` with ``overrides`` into ``runs/run_name`` (resumable), or None if trained.

    Figure runs train on the embedded digits (``mnist5k``) and never download.
    """
    from ensemble_nets.protocols import mnist
    from ensemble_nets.protocols.figures import Job, JOBS_DIR

    run_dir = Path(runs) / run_name
    if training_finished(run_dir):
        return None
    overrides = {"dataset": "mnist5k", "download": False, **overrides}
    cell = {"name": run_name, "run_dir": str(run_dir), "protocol": protocol, "overrides": overrides}
    return Job(Path(runs) / JOBS_DIR, mnist.run_cell, [cell], lambda c: training_finished(c["run_dir"]))


def jobs(runs: str | Path, config: EnsembleConfig) -> list:
    """Train ``runs/default-ensemble-s0`` (the default preset, resumable), then analyse it."""
    from ensemble_nets.protocols.figures import single_run_job

    if not missing_runs(runs):
        return []
    run_dir = Path(runs) / MAIN_RUN
    train = train_job(runs, MAIN_RUN, "default", {"data_root": config.data_root,
                                                   "train": {"epochs": config.epochs} if config.epochs else {}})
    analyze = single_run_job(runs, f"{MAIN_RUN}-{ANALYSIS}", analyze_cell, run_dir, config,
                             lambda cell: not missing_runs(runs))
    return [job for job in (train, analyze) if job is not None]


def read_analysis(run: str | Path) -> dict:
    """The tables of RUN/analysis (names without ``.csv``) and its ``summary``."""
    folder = Path(run) / ANALYSIS
    missing = [n for n in _FILES if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; make it with {_ANALYZE} {run}")
    tables = {n[:-4]: pd.read_csv(folder / n) for n in _FILES if n.endswith(".csv")}
    tables["summary"] = read_json(folder / "summary.json")
    return tables


def figure_tables(runs: str | Path) -> dict:
    """The main run's analysis tables, ``params`` (:func:`parameter_frame` of its model) and ``fractions``
    (the category fractions of every analysed run of :data:`COMPARED_RUNS`, column ``run``)."""
    runs = Path(runs)
    tables = read_analysis(runs / MAIN_RUN)
    model, _, _ = load_run(runs / MAIN_RUN)
    tables["params"] = parameter_frame(model, tol=tables["summary"]["categories_tol"])
    compared = [(label, read_analysis(runs / name)["categories"]) for name, label in COMPARED_RUNS.items()
                if (runs / name / ANALYSIS / "summary.json").is_file()]
    tables["fractions"] = pd.concat([table.assign(run=label) for label, table in compared], ignore_index=True)
    return tables
