# SPDX-License-Identifier: MIT
"""Credit assignment in a trained spike-and-slab ensemble: the analysis of run folders, and its figures' runs.

:func:`analyze_run` reads a run folder written by :func:`ensemble_nets.protocols.mnist.train_run`
and writes RUN_DIR/analysis/::

    categories.csv             connections per layer and category (count, fraction, fraction_active: among
                               the active ones; "inactive": the input is zero on every training example)
    categories_inactive.csv    what the three categories would call the inactive connections
    parameter_histograms.csv   log10 histograms of pi, 1 - pi and xi per layer (boundary values apart)
    entropy.csv                entropy of q per layer, over all connections, active ones and per category
    perturbation.csv           test error per (layer, perturbation, fraction, sampled network), every control
    perturbation_summary.csv   its mean and std over the sampled networks
    gaps.csv                   paired gaps error(target) - error(control) at f = 0.5 and 1 (those of them among
                               the fractions), 95% intervals over this run's sampled networks only
    ensemble_accuracy.csv      test accuracy of each of the K sampled networks
    ensemble_per_example.csv   per test digit: prediction, confidence, predictive entropy, mutual information, agreement
    calibration.csv            reliability table of the ensemble predictive (ECE bins)
    summary.json               accuracy mean/std/HDI, ECE, lppd, NLL, Brier, agreement, MI on right vs wrong,
                               categories (all and among active connections), the tolerance, settings
    inference_data.nc          ArviZ InferenceData: posterior (the draws are K independent networks from q),
                               posterior_predictive, observed_data; for ELBO runs only, log_likelihood on the
                               TRAINING examples (what az.loo needs; q is never conditioned on the test digits)

The training inputs (the run's own training split) mark the inactive connections in the
categories, the entropy table and the perturbation pools. ELBO runs are read at
:func:`~ensemble_nets.analysis.choose_tolerance` (their KL keeps every connection off the boundary).

:func:`analyze_runs` does this for several run folders of one architecture (training seeds) and
writes the perturbation gaps and category fractions with 95% intervals over the runs
(:func:`~ensemble_nets.analysis.summarize_runs`) into AGGREGATE_OUT (default: beside the first
run, named after it without its ``-sN`` suffix: ``runs/default-ensemble-seeds``)::

    gaps.csv                   per layer, fraction and (target, control): mean, 95% interval, verdict
    gaps_per_run.csv           the same gaps per run (mean and sd over its sampled networks)
    categories.csv             category fractions (all; among active) with 95% intervals over the runs
    summary.json               the runs, and accuracy, ECE, lppd, NLL, Brier per run with their mean

The figure family "ensemble" needs ``runs/default-ensemble-s0`` trained and analysed
(:data:`REQUIRED_RUNS`); :data:`COMPARED_RUNS` join the category figure when analysed.
"""
from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ensemble_nets.analysis._common import resolve_layer
from ensemble_nets.analysis.aggregate import GAP_FRACTIONS, RunsSummary, check_same_architecture, summarize_runs
from ensemble_nets.analysis.categories import Categories, categorize
from ensemble_nets.analysis.ensemble_stats import ensemble_statistics
from ensemble_nets.analysis.entropy import entropy_table
from ensemble_nets.analysis.frames import parameter_frame
from ensemble_nets.analysis.perturb import DEFAULT_FRACTIONS, perturbation_curves, summarize_perturbations
from ensemble_nets.analysis.tolerance import Tolerance, choose_tolerance, parameter_histograms
from ensemble_nets.cli import positive_int
from ensemble_nets.data import load_dataset
from ensemble_nets.training.runs import (CHECKPOINT, SUMMARY, load_checkpoint, load_run, read_json, write_atomic,
                                         write_json)

__all__ = ["ANALYSIS", "BUDGETS", "COMPARED_RUNS", "EnsembleConfig", "MAIN_RUN", "REQUIRED_RUNS", "RunAnalysis",
           "analyze_cell", "analyze_run", "analyze_runs", "default_aggregate_out", "figure_tables", "jobs",
           "load_finished_run", "missing_runs", "read_analysis", "train_job", "training_finished"]

ANALYSIS = "analysis"
MAIN_RUN = "default-ensemble-s0"
_TRAIN = "python experiments/run_mnist.py --data-root ../shared/data/mnist"
_ANALYZE = "python experiments/analyze_run.py"
#: Run folders (relative to the runs folder) the family needs -> the commands that make them.
REQUIRED_RUNS = {f"{MAIN_RUN}/{ANALYSIS}": f"{_TRAIN} --out runs/{MAIN_RUN} && {_ANALYZE} runs/{MAIN_RUN}"}
#: Runs compared in the category figure when they have been analysed (optional): folder -> label.
COMPARED_RUNS = {MAIN_RUN: "default", "reference-ensemble-s0": "reference (60 ep.)",
                 "default-elbo-s0": "default, ELBO", "reference-elbo-s0": "reference, ELBO"}
#: Predictive scores of summary.json carried into the summary over several runs.
_SCORES = ("accuracy_mean", "ensemble_accuracy", "ece", "lppd", "nll", "nll_members_mean", "brier",
           "brier_members_mean")
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
    n_train = experiment.get("n_train")
    if n_train is not None and n_train < data.n_train:
        data = data.subset(n_train=n_train)  # the training split the run saw (its inactive inputs, its ELBO)
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


@dataclass
class RunAnalysis:
    """What :func:`analyze_runs` returns for one run folder."""

    run_dir: Path
    summary: dict  # as written to summary.json
    perturbation: pd.DataFrame  # perturbation_summary.csv
    curves: pd.DataFrame  # perturbation.csv (one row per sampled network)
    categories: Categories


def _tolerance(model, train: dict, tol) -> float | Tolerance:
    """``tol`` when given; else 0 for the reference objective, or the tolerance read from an ELBO run's parameters."""
    if tol is not None:
        return tol
    if train.get("objective") == "elbo":
        return choose_tolerance(model, prior_variance=train.get("prior_variance", 1.0))
    return 0.0


def _analyze(model, config: dict, data, run_dir: Path, *, n_networks: int, perturb_networks: int, fractions: list,
             layers, max_weights: int, tol, seed: int, progress: bool) -> RunAnalysis:
    """Every table of one loaded run into RUN_DIR/analysis (options already checked)."""
    from ensemble_nets.analysis.inference_data import save_inference_data, to_inference_data

    train = config.get("train", {})
    elbo = train.get("objective") == "elbo"
    tol = _tolerance(model, train, tol)
    out = run_dir / ANALYSIS
    out.mkdir(exist_ok=True)
    print(f"analyzing {run_dir} on {data.n_test} test digits ({data.test_source}); inactive connections from its "
          f"{data.n_train} training digits; writing {out}", file=sys.stderr)

    x_train = data.x_train
    categories = categorize(model, tol=tol, data=x_train)
    _write_csv(out / "categories.csv", categories.table)
    _write_csv(out / "categories_inactive.csv", categories.inactive_breakdown())
    _write_csv(out / "parameter_histograms.csv", parameter_histograms(model))
    _write_csv(out / "entropy.csv", entropy_table(model, tol=tol, data=x_train))
    curves = pd.concat([perturbation_curves(model, data, layer, fractions=fractions, n_networks=perturb_networks,
                                            seed=seed, tol=tol, train_data=x_train, progress=progress)
                        for layer in (layers or list(categories.labels))], ignore_index=True)
    _write_csv(out / "perturbation.csv", curves)
    perturbation = summarize_perturbations(curves)
    _write_csv(out / "perturbation_summary.csv", perturbation)
    gap_fractions = [f for f in GAP_FRACTIONS if any(math.isclose(f, g) for g in fractions)]
    if gap_fractions:
        _write_csv(out / "gaps.csv", summarize_runs({str(run_dir): curves}, fractions=gap_fractions).gaps)

    stats = ensemble_statistics(model, data, n_networks=n_networks, seed=seed, progress=progress)
    _write_csv(out / "ensemble_accuracy.csv",
               pd.DataFrame({"network": range(len(stats.accuracies)), "accuracy": stats.accuracies}))
    _write_csv(out / "ensemble_per_example.csv", stats.per_example)
    _write_csv(out / "calibration.csv", stats.calibration)
    idata = to_inference_data(model, data, n_networks=n_networks, seed=seed, max_weights=max_weights,
                              train_data=data if elbo else None)
    save_inference_data(idata, out / "inference_data.nc")

    summary = {"run_dir": str(run_dir), "objective": train.get("objective", "reference"),
               "categories_tol": asdict(Tolerance.of(tol)), "categories": categories.fractions(),
               "categories_active": categories.fractions(among="active"), "n_train_activity": data.n_train,
               **stats.summary, "perturb_networks": perturb_networks, "fractions": fractions}
    write_json(out / "summary.json", summary)
    return RunAnalysis(run_dir=run_dir, summary=summary, perturbation=perturbation, curves=curves,
                       categories=categories)


def default_aggregate_out(run_dir: str | Path) -> Path:
    """Where the summary over several runs goes: beside ``run_dir``, named after it without ``-sN``, plus ``-seeds``."""
    run_dir = Path(run_dir)
    return run_dir.parent / (re.sub(r"-s\d+$", "", run_dir.name) + "-seeds")


def analyze_runs(run_dirs: Sequence[str | Path], *, aggregate_out: str | Path | None = None,
                 data_root: str | None = None, n_networks: int = 50, perturb_networks: int = 10,
                 fractions=DEFAULT_FRACTIONS, layers=None, max_weights: int = 500, tol: float | None = None,
                 seed: int = 0, allow_incomplete: bool = False,
                 progress: bool = True) -> tuple[list[RunAnalysis], RunsSummary | None]:
    """Analyse each run folder (:func:`analyze_run`); with several, summarize them with intervals over runs.

    Every run is loaded and the options checked before anything is written; runs of different
    architectures raise ``ValueError`` (:func:`~ensemble_nets.analysis.check_same_architecture`).
    With two or more runs, ``aggregate_out`` (default :func:`default_aggregate_out` of the first)
    gets gaps.csv, gaps_per_run.csv, categories.csv and summary.json (see the module docstring);
    the gaps are ``error(target) - error(control)`` at f = 0.5 and 1, intervals by Student t over
    the run means (:mod:`ensemble_nets.analysis.aggregate`).

    :returns: ``(one RunAnalysis per run, the RunsSummary or None for a single run)``.
    """
    run_dirs = [Path(run) for run in run_dirs]
    if not run_dirs:
        raise ValueError("no run folder given; pass one or more folders written by run_mnist.py")
    if len(set(run_dirs)) < len(run_dirs):
        raise ValueError(f"a run folder is given twice ({[str(r) for r in run_dirs]}); pass each seed once")
    fractions = list(fractions)
    loaded = [load_finished_run(run, data_root=data_root, allow_incomplete=allow_incomplete) for run in run_dirs]
    check_same_architecture({str(run): model for run, (model, _, _) in zip(run_dirs, loaded)})
    for model, _, _ in loaded:
        _check_options(model, n_networks=n_networks, perturb_networks=perturb_networks, max_weights=max_weights,
                       fractions=fractions, layers=layers)
    if tol is not None:
        try:
            Tolerance.of(tol)
        except ValueError as err:
            raise ValueError(f"--tol: {err}") from None
    if len(run_dirs) > 1:
        missing = [f for f in (0.5, 1.0) if not any(math.isclose(f, g) for g in fractions)]
        if missing:
            raise ValueError(f"several runs are summarized by their gaps at f = 0.5 and 1; --fractions {fractions} "
                             f"lacks {missing}: add them")
    options = dict(n_networks=n_networks, perturb_networks=perturb_networks, fractions=fractions, layers=layers,
                   max_weights=max_weights, tol=tol, seed=seed, progress=progress)
    analyses = [_analyze(model, config, data, run, **options) for run, (model, config, data) in zip(run_dirs, loaded)]
    if len(analyses) == 1:
        return analyses, None
    out = Path(aggregate_out) if aggregate_out is not None else default_aggregate_out(run_dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize_runs({str(a.run_dir): a.curves for a in analyses},
                             {str(a.run_dir): a.categories for a in analyses})
    _write_csv(out / "gaps.csv", summary.gaps)
    _write_csv(out / "gaps_per_run.csv", summary.per_run)
    _write_csv(out / "categories.csv", summary.categories)
    write_json(out / "summary.json", _scores_over_runs(analyses, perturb_networks=perturb_networks,
                                                       n_networks=n_networks, seed=seed))
    print(f"{len(analyses)} runs summarized into {out}", file=sys.stderr)
    return analyses, summary


def _scores_over_runs(analyses: list[RunAnalysis], **settings) -> dict:
    """summary.json of the aggregate: the runs, their predictive scores, and the scores' mean and sd over runs."""
    per_run = {str(a.run_dir): {k: a.summary[k] for k in _SCORES if k in a.summary} for a in analyses}
    frame = pd.DataFrame(per_run).T
    return {"runs": list(per_run), "n_runs": len(per_run), **settings, "per_run": per_run,
            "mean": frame.mean().to_dict(), "sd": frame.std(ddof=1).to_dict(),
            "categories_tol": {str(a.run_dir): a.summary["categories_tol"] for a in analyses}}


def analyze_run(run_dir: str | Path, *, data_root: str | None = None, n_networks: int = 50,
                perturb_networks: int = 10, fractions=DEFAULT_FRACTIONS, layers=None, max_weights: int = 500,
                tol: float | None = None, seed: int = 0, allow_incomplete: bool = False,
                progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """Write every table and the InferenceData into RUN_DIR/analysis; ``(summary, perturbation summary)``.

    ``tol`` (category tolerance) defaults to 0, or for ELBO runs the tolerance
    :func:`~ensemble_nets.analysis.choose_tolerance` reads from the run's pi and xi
    (summary.json records it). Options are checked before anything is written.
    """
    (analysis,), _ = analyze_runs([run_dir], data_root=data_root, n_networks=n_networks,
                                  perturb_networks=perturb_networks, fractions=fractions, layers=layers,
                                  max_weights=max_weights, tol=tol, seed=seed, allow_incomplete=allow_incomplete,
                                  progress=progress)
    return analysis.summary, analysis.perturbation


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
