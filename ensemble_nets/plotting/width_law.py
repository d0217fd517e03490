# SPDX-License-Identifier: MIT
"""Figure family "width_law": the least number of modes P_min against the width N, at convergence.

Draws the tables of :func:`ensemble_nets.protocols.width_law.figure_tables`, never trains::

    width_law    test accuracy against P per width (plain networks as dashed lines); P_min(N) with
                 bootstrap 95% intervals over seeds and the fitted log, linear and saturating forms,
                 against the plain network (issue 11's definition) and against the best MDL network

``plot_*`` functions take tables and ``ax=None`` (a new figure when None) and return the axes;
:func:`draw_figures` draws and saves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["draw_figures", "plot_accuracy_vs_modes", "plot_p_min"]

_FORM_STYLES = {"log": "-", "linear": "--", "saturating": ":"}


def _ax(ax, **kwargs):
    from ensemble_nets.plotting import style

    return style.axes_grid(ax, 1, 1, **kwargs)[0, 0]


def plot_accuracy_vs_modes(runs: pd.DataFrame, ax=None):
    """Mean test accuracy (over seeds) against P, one line per width; each plain network a dashed line.

    :param runs: (DataFrame) One row per run: ``width``, ``n_modes`` (-1: plain), ``seed``, ``acc``.
    """
    import seaborn as sns

    ax = _ax(ax, width=0.9, aspect=0.9)
    widths = sorted(runs["width"].unique())
    colors = sns.color_palette("viridis", len(widths))
    for width, color in zip(widths, colors):
        rows = runs[runs["width"] == width]
        mdl = rows[rows["n_modes"] > 0].groupby("n_modes")["acc"].agg(["mean", "std"]).reset_index()
        ax.errorbar(mdl["n_modes"], mdl["mean"], yerr=mdl["std"], color=color, lw=0.9, ms=2.5, marker="o",
                    capsize=1.5, label=f"N = {width}")
        plain = rows[rows["n_modes"] < 0]["acc"]
        if len(plain):
            ax.axhline(plain.mean(), color=color, lw=0.7, ls="--")
    ax.set(xscale="log", xlabel="modes P", ylabel="test accuracy", title="MDL against plain (dashed)")
    _log_ticks(ax.xaxis, sorted(runs.loc[runs["n_modes"] > 0, "n_modes"].unique())[::2])
    low = runs.loc[runs["n_modes"] > 0].groupby(["width", "n_modes"])["acc"].mean()
    ax.set_ylim(max(0.5, low.quantile(0.2) - 0.02), runs["acc"].max() + 0.01)  # points below: off the frame
    ax.legend(loc="lower right", fontsize=6)
    return ax


def _log_ticks(axis, values) -> None:
    """Plain-number ticks at ``values`` on a log axis (no minor tick labels)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    axis.set_ticks([float(v) for v in values])
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def plot_p_min(pmin: pd.DataFrame, curves: pd.DataFrame, ax=None, *, title: str = ""):
    """P_min against N with its bootstrap interval per threshold; the fitted forms as lines.

    :param pmin: (DataFrame) ``threshold``, ``width``, ``p_min``, ``p_min_lo``, ``p_min_hi`` (inf: not reached).
    :param curves: (DataFrame) ``threshold``, ``form``, ``width``, ``p_min_fit``.
    """
    import seaborn as sns

    ax = _ax(ax, width=0.9, aspect=0.9)
    thresholds = sorted(pmin["threshold"].unique())
    colors = sns.color_palette("deep", len(thresholds))
    for i, (threshold, color) in enumerate(zip(thresholds, colors)):
        rows = pmin[pmin["threshold"] == threshold].sort_values("width")
        x = rows["width"].to_numpy(float) * (1.0 + 0.04 * i)  # offset so intervals do not overlap
        finite = np.isfinite(rows["p_min"].to_numpy(float))
        lo, hi = rows["p_min_lo"].to_numpy(float), rows["p_min_hi"].to_numpy(float)
        top = np.nanmax(np.where(np.isfinite(hi), hi, np.nan)) if np.isfinite(hi).any() else 128.0
        hi_drawn = np.where(np.isfinite(hi), hi, top * 1.5)  # an open interval drawn up to the frame
        y = rows["p_min"].to_numpy(float)
        ax.vlines(x, np.where(np.isfinite(lo), lo, np.nan), hi_drawn, color=color, lw=0.8)
        ax.plot(x[finite], y[finite], "o", ms=3, color=color, label=f"{threshold * 100:g} point(s) below")
        ax.plot(x[~finite], np.full((~finite).sum(), top * 1.5), "^", ms=3, mfc="none", color=color)
        fits = curves[curves["threshold"] == threshold] if len(curves) else curves  # no fit: < 3 widths reached
        for form, style_ in _FORM_STYLES.items():
            line = fits[fits["form"] == form].sort_values("width") if len(fits) else fits
            if len(line):
                ax.plot(line["width"], line["p_min_fit"], style_, color=color, lw=0.7, alpha=0.8)
    ax.set(xscale="log", yscale="log", xlabel="width N", ylabel=r"$P_{\min}$", title=title)
    _log_ticks(ax.xaxis, sorted(pmin["width"].unique()))
    _log_ticks(ax.yaxis, [4, 8, 16, 32, 64, 128])
    ax.legend(loc="upper left", fontsize=6, title="lines: log -, linear --, saturating :", title_fontsize=5)
    return ax


def draw_figures(tables: dict, out: str | Path) -> list[Path]:
    """The width-law figure from :func:`ensemble_nets.protocols.width_law.figure_tables`."""
    from ensemble_nets.plotting import style

    style.use()
    runs, laws = tables["runs"], tables["laws"]
    fig, axes = style.subplots(1, 1 + len(laws), width=2.0, aspect=0.9)
    axes = np.atleast_1d(axes).ravel()
    plot_accuracy_vs_modes(runs, axes[0])
    names = {"plain": "P_min below the plain network", "best_mdl": "P_min below the best MDL network"}
    for ax, (reference, law) in zip(axes[1:], laws.items()):
        plot_p_min(law["pmin"], law["curves"], ax, title=names.get(reference, reference))
    n_seeds = runs["seed"].nunique()
    fig.suptitle(f"Mode width law at convergence: 784-N-N-10, {n_seeds} seeds, early stopping; "
                 "bars: bootstrap 95% intervals (triangles: not reached)", fontsize=8)
    return style.save(fig, out, "width_law")
