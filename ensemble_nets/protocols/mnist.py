# SPDX-License-Identifier: MIT
"""One MNIST run: a preset (:data:`~ensemble_nets.training.PRESETS`) trained into a run folder.

:func:`train_run` is what ``experiments/run_mnist.py`` does once its flags are an
:class:`~ensemble_nets.training.ExperimentConfig`: load the data (subsets as asked), build the
model, train it with :func:`ensemble_nets.train` (resuming from the folder's checkpoint when
asked), and add the protocol and, for ensembles, the category fractions to summary.json.
:func:`run_cell` is the same as a :func:`~ensemble_nets.training.run_grid` cell, so the figure
runs of several families can train side by side.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ensemble_nets.analysis.categories import categorize
from ensemble_nets.analysis.tolerance import Tolerance, choose_tolerance
from ensemble_nets.data import load_dataset
from ensemble_nets.training.loop import train
from ensemble_nets.training.presets import ExperimentConfig
from ensemble_nets.training.runs import CHECKPOINT, CONFIG, SUMMARY, read_json, write_json

__all__ = ["TOP_LEVEL_KEYS", "TRAIN_KEYS", "resumed_config", "run_cell", "summary_lines", "train_run"]

#: The knobs of an ExperimentConfig outside ``train``, and those inside it.
TOP_LEVEL_KEYS = {"dataset", "data_root", "download", "n_train", "n_test", "model", "sizes", "activation", "m_std",
                  "xi_max", "pi_init", "n_modes", "shared_modes", "scale_input", "noise"}
TRAIN_KEYS = {"epochs", "batch_size", "lr", "lr_halve_every", "weight_decay", "decay", "decoupled_decay",
              "n_eval_networks", "seed", "device", "objective", "prior_pi", "prior_variance", "kl_weight",
              "lr_scales", "fused_step"}
_MAY_CHANGE = {"epochs", "device"}


def resumed_config(out: str | Path, given: dict, *, default_protocol: str = "default") -> tuple[ExperimentConfig, str]:
    """The stored configuration of the run in ``out``, with ``epochs`` / ``device`` from ``given``.

    ``given`` holds the knobs the user set (None for unset); any other knob that differs from
    the stored one is refused with a ValueError naming it.
    """
    out = Path(out)
    stored = read_json(out / CONFIG)
    experiment = dict(stored["experiment"])
    train_config = {**experiment.pop("train"), **{k: given[k] for k in _MAY_CHANGE if given.get(k) is not None}}
    config = ExperimentConfig(**experiment, train=train_config)
    set_knobs = {k: v for k, v in given.items() if v is not None and k in (TOP_LEVEL_KEYS | TRAIN_KEYS) - _MAY_CHANGE}
    current = {**asdict(config), **asdict(config.train)}

    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    changed = sorted(k for k, v in set_knobs.items() if plain(v) != plain(current[k]))
    if changed:
        raise ValueError(f"--resume continues the run in {out} with its stored configuration; only --epochs and "
                         f"--device may change, but {', '.join('--' + k.replace('_', '-') for k in changed)} differ")
    return config, stored.get("protocol", default_protocol)


def train_run(config: ExperimentConfig, out: str | Path, *, protocol: str = "default", resume: bool = False,
              progress: bool = True) -> dict:
    """Train ``config`` into the run folder ``out``; summary.json's content (with ``categories`` for ensembles).

    Raises FileNotFoundError / FileExistsError / ValueError / FloatingPointError with a message
    naming the fix (a missing data folder, an existing run without ``resume``, a divergence).
    """
    out = Path(out)
    data = load_dataset(config.dataset, config.data_root, download=config.download, shape=config.data_shape)
    if config.n_train is not None and config.n_train < data.n_train:
        data = data.subset(n_train=config.n_train)
    elif config.n_train is not None and config.n_train > data.n_train:
        data = replace(data, note=f"{data.note}; {config.n_train} training examples asked for, "
                                  f"only {data.n_train} available")
    if config.n_test is not None and config.n_test < data.n_test:
        data = data.subset(n_test=config.n_test)
    print(f"data: {data.note}", file=sys.stderr)
    torch.manual_seed(config.train.seed)
    model = config.build_model()
    result = train(model, data, config.train, run_dir=out, resume=resume, progress=progress,
                   extra_config={"protocol": protocol, "experiment": asdict(config)})
    summary = read_json(out / SUMMARY)
    summary["protocol"] = protocol
    if hasattr(model, "sample_network"):
        # Under the ELBO pi and xi stay a margin off the boundary, so reading the categories at the margin would
        # call every connection variable by construction: read them at a tolerance chosen from the data.
        tol = (choose_tolerance(result.model, prior_variance=config.train.prior_variance)
               if config.train.objective == "elbo" else Tolerance())
        summary["categories"] = categorize(result.model, tol=tol).fractions()
        summary["categories_tol"] = asdict(tol)
    write_json(out / SUMMARY, summary)
    return summary


def run_cell(cell: dict, cell_dir: Path) -> dict:
    """A :func:`~ensemble_nets.training.run_grid` cell training ``cell["protocol"]`` with ``cell["overrides"]``.

    The run goes to ``cell["run_dir"]`` and resumes from its checkpoint when an earlier call stopped.
    """
    overrides = dict(cell.get("overrides", {}))
    config = ExperimentConfig.from_preset(cell["protocol"], **overrides)
    run_dir = Path(cell["run_dir"])
    summary = train_run(config, run_dir, protocol=cell["protocol"], resume=(run_dir / CHECKPOINT).is_file(),
                        progress=False)
    return {"test_acc_mean_field": summary["test_acc_mean_field"]["final"], "epochs": summary.get("epochs")}


def summary_lines(summary: dict, out: str | Path) -> list[str]:
    """What a finished run reports: folder, data, accuracies, category fractions, wall time."""
    mf, sampled = summary["test_acc_mean_field"], summary["test_acc_sampled"]
    lines = [
        f"run folder: {out}",
        f"data: {summary['dataset']} ({summary['n_train']} train, {summary['n_test']} test: {summary['test_source']})",
        f"test accuracy, mean-field pass: final {mf['final']:.4f}, best {mf['best']['value']:.4f} "
        f"(epoch {mf['best']['epoch']})" if mf["final"] is not None else "no epochs run",
    ]
    if sampled["mean"] is not None:
        lines.append(f"test accuracy, {sampled['n_networks']} sampled networks: "
                     f"{sampled['mean']:.4f} +- {sampled['std']:.4f}")
    for layer, fractions in summary.get("categories", {}).items():
        lines.append(f"categories, {layer}: " + ", ".join(f"{k} {v:.3f}" for k, v in fractions.items()))
    lines.append(f"wall time {summary['wall_seconds']:.1f} s on {summary['device']}")
    return lines
