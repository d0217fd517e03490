# SPDX-License-Identifier: MIT
"""Several trained ensembles (training seeds) together: perturbation gaps and category fractions with intervals.

A category claim is a paired difference. For a (target, control) pair of
perturbations of one layer at fraction f, network k of run r gives

    gap_rk = error(target; r, k) - error(control; r, k)

paired by k: :func:`~ensemble_nets.analysis.perturbation_curves` draws
network k from the same seed under every perturbation (common random
numbers). A positive gap supports the claim: deleting important connections
hurts more than deleting the control set; randomizing the control set hurts
more than randomizing unimportant connections.

Intervals (level ``confidence``, default 95%). With R >= 2 runs, the run means
g_r = mean_k gap_rk are the units: mean_r g_r +- t_{R-1} sd_r(g_r) / sqrt(R), a
Student t interval over training seeds whose spread already contains the
sampled-network noise of each g_r. With one run, the interval is over its
sampled networks only (t_{K-1}), labelled ``interval_over = "networks"``: it
says nothing about other seeds. ``verdict`` reads the interval: ``holds``
(low > 0), ``fails`` (high < 0) or ``unresolved`` (it contains 0).

Category fractions are fixed numbers of each run (q is deterministic once
trained), so their interval is over runs only, cut to [0, 1] where the t
interval of a few values near 0 or 1 would leave it. Runs must share one
architecture: :func:`check_same_architecture` says which do not.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn

from ensemble_nets._optional import require
from ensemble_nets.analysis.categories import Categories
from ensemble_nets.layers.spike_slab import spike_slab_layers

__all__ = ["GAP_PAIRS", "RunsSummary", "check_same_architecture", "perturbation_gaps", "summarize_runs"]

#: (target, control): the gap is error(target) - error(control); positive supports the category claim.
GAP_PAIRS = (
    ("delete_important", "delete_variable_matched"),
    ("delete_important", "delete_largest_variable"),
    ("delete_important", "delete_variable"),
    ("delete_important", "delete_random"),
    ("randomize_variable", "randomize_unimportant"),
    ("randomize_important", "randomize_unimportant"),
)
#: The fractions of the issue's claims: half and all of a category.
GAP_FRACTIONS = (0.5, 1.0)


def check_same_architecture(models: Mapping[str, nn.Module]) -> None:
    """Raise ``ValueError`` unless every model has the same spike-and-slab layer shapes, in the same order."""
    shapes = {run: [tuple(layer.pi.shape) for _, layer in spike_slab_layers(model)] for run, model in models.items()}
    runs = list(shapes)
    for run in runs[1:]:
        if shapes[run] != shapes[runs[0]]:
            raise ValueError(f"runs {runs[0]!r} and {run!r} have different architectures (spike-and-slab layer "
                             f"shapes {shapes[runs[0]]} and {shapes[run]}); aggregate run folders of one "
                             f"configuration (e.g. default-ensemble-s0, -s1, -s2) and analyse the others apart")


def _by_run(frames) -> pd.DataFrame:
    """One frame with a ``run`` column, from ``{run: frame}`` or a frame that has one."""
    if isinstance(frames, pd.DataFrame):
        if "run" not in frames:
            return frames.assign(run="run")
        return frames
    if not isinstance(frames, Mapping) or not frames:
        raise ValueError(f"expected {{run: frame}} with at least one run, or a frame with a 'run' column, "
                         f"got {type(frames).__name__}")
    return pd.concat([frame.table.assign(run=run) if isinstance(frame, Categories) else frame.assign(run=run)
                      for run, frame in frames.items()], ignore_index=True)


def perturbation_gaps(curves, *, pairs: Sequence[tuple[str, str]] = GAP_PAIRS,
                      fractions: Sequence[float] = GAP_FRACTIONS) -> pd.DataFrame:
    """Paired gaps per sampled network: ``run``, ``layer``, ``fraction``, ``target``, ``control``, ``network``, ``gap``.

    :param curves: output of :func:`perturbation_curves` (any number of layers), one frame or ``{run: frame}``.
    :param pairs: ``(target, control)`` perturbation names; pairs missing from ``curves`` are skipped.
    :param fractions: the fractions to read (matched to the curves' within 1e-9).
    """
    frame = _by_run(curves)
    rows = []
    for fraction in fractions:
        at = frame[np.isclose(frame["fraction"], fraction, atol=1e-9, rtol=0)]
        if at.empty:
            raise ValueError(f"fraction {fraction} is not among the curves' fractions "
                             f"{sorted(frame['fraction'].unique())}; run perturbation_curves with it")
        table = at.pivot_table(index=["run", "layer", "network"], columns="perturbation", values="error")
        for target, control in pairs:
            if target not in table or control not in table:
                continue
            gap = (table[target] - table[control]).dropna().rename("gap").reset_index()
            rows.append(gap.assign(fraction=float(fraction), target=target, control=control))
    if not rows:
        raise ValueError(f"none of the pairs {list(pairs)} is in the curves (perturbations "
                         f"{sorted(frame['perturbation'].unique())}); run perturbation_curves with the controls")
    columns = ["run", "layer", "fraction", "target", "control", "network", "gap"]
    return pd.concat(rows, ignore_index=True)[columns]


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean and Student t interval of ``values``; NaN bounds for fewer than two values."""
    stats = require("scipy.stats", "theory")
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _verdict(low: float, high: float) -> str:
    if math.isnan(low):
        return "unresolved"
    return "holds" if low > 0 else "fails" if high < 0 else "unresolved"


@dataclass
class RunsSummary:
    """What :func:`summarize_runs` returns (one concern per table)."""

    gaps: pd.DataFrame  # layer, fraction, target, control, n_runs, n_networks, mean, low, high, interval_over,
    #                     sd_between_runs, sd_within_runs, verdict
    per_run: pd.DataFrame  # run, layer, fraction, target, control, n_networks, mean, sd
    categories: pd.DataFrame  # layer, category, among, n_runs, mean, low, high (empty without categories)


def summarize_runs(curves, categories=None, *, pairs: Sequence[tuple[str, str]] = GAP_PAIRS,
                   fractions: Sequence[float] = GAP_FRACTIONS, confidence: float = 0.95) -> RunsSummary:
    """Perturbation gaps and category fractions over several runs, with intervals (see the module docstring).

    :param curves: ``{run: perturbation_curves frame}`` (or one frame with a ``run`` column).
    :param categories: ``{run: Categories or its table}``, optional; with ``fraction_active`` columns
        (categorize with data) the fractions among active connections are summarized too.
    :param confidence: interval level, in (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    gaps = perturbation_gaps(curves, pairs=pairs, fractions=fractions)
    layers = gaps.groupby("run")["layer"].agg(lambda s: tuple(sorted(set(s))))
    if layers.nunique() > 1:
        raise ValueError(f"the runs' curves cover different layers ({dict(layers)}); perturb the same layers "
                         f"in every run")
    keys = ["layer", "fraction", "target", "control"]
    per_run = (gaps.groupby(["run", *keys], sort=False)["gap"]
               .agg(n_networks="size", mean="mean", sd="std").reset_index())
    rows = []
    for key, group in per_run.groupby(keys, sort=False):
        n_runs = len(group)
        if n_runs >= 2:
            mean, low, high = _interval(group["mean"].to_numpy(), confidence)
            over = "runs"
        else:
            run_gaps = gaps.merge(group[["run", *keys]], on=["run", *keys])["gap"].to_numpy()
            mean, low, high = _interval(run_gaps, confidence)
            over = "networks"
        rows.append({**dict(zip(keys, key)), "n_runs": n_runs, "n_networks": int(group["n_networks"].sum()),
                     "mean": mean, "low": low, "high": high, "interval_over": over,
                     "sd_between_runs": float(group["mean"].std(ddof=1)) if n_runs > 1 else math.nan,
                     "sd_within_runs": float(np.sqrt(np.nanmean(group["sd"].to_numpy() ** 2)))
                     if group["sd"].notna().any() else math.nan,
                     "verdict": _verdict(low, high)})
    return RunsSummary(gaps=pd.DataFrame(rows), per_run=per_run,
                       categories=_category_rows(categories, confidence) if categories is not None else
                       pd.DataFrame(columns=["layer", "category", "among", "n_runs", "mean", "low", "high"]))


def _category_rows(categories, confidence: float) -> pd.DataFrame:
    table = _by_run(categories)
    totals = table.groupby(["run", "layer"])["count"].sum().unstack("layer")
    if (totals.nunique() > 1).any() or totals.isna().any().any():
        raise ValueError(f"the runs' layers hold different numbers of connections ({totals.to_dict('index')}); "
                         f"aggregate run folders of one architecture")
    columns = [("all", "fraction")] + ([("active", "fraction_active")] if "fraction_active" in table else [])
    rows = []
    for among, column in columns:
        for (layer, category), group in table.groupby(["layer", "category"], sort=False):
            values = group[column].dropna().to_numpy()
            if not len(values):
                continue  # the inactive row has no fraction among active connections
            mean, low, high = _interval(values, confidence)
            # a fraction lies in [0, 1]; the t interval of a few near-0 (or near-1) values can leave it
            low, high = (max(low, 0.0), min(high, 1.0)) if not math.isnan(low) else (low, high)
            rows.append({"layer": layer, "category": category, "among": among, "n_runs": len(values),
                         "mean": mean, "low": low, "high": high})
    return pd.DataFrame(rows)
