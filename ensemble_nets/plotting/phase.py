# SPDX-License-Identifier: MIT
"""Figure family "phase": the noise-nonlinearity phase diagram and its spring-block model.

Draws the tables of :func:`ensemble_nets.protocols.phase.figure_tables` (grid folders written by
``experiments/phase_diagram.py``, the spring-block frames of :mod:`ensemble_nets.analysis.frames`),
never trains or simulates::

    phase_load_curves_<grid>   load curves log D_l (rows: noise level, columns: alpha), coloured
                               by test accuracy, one figure per grid found
    phase_curvature            normalized curvature against test accuracy (every grid), beside the
                               spring-block model: its load curves and its friction x noise diagram

Each ``plot_*`` takes tables and ``ax=None`` (a new figure when None) and returns the axes;
:func:`draw_figures` draws and saves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["draw_figures", "plot_curvature", "plot_load_curves"]


def plot_load_curves(frame: pd.DataFrame, label: str, ax=None):
    """Rows: noise level; columns: alpha; one line per seed, coloured by test accuracy."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from ensemble_nets.plotting import style

    levels, alphas = sorted(frame["level"].unique()), sorted(frame["alpha"].unique())
    axes = style.axes_grid(ax, len(levels), len(alphas), width=2.0, aspect=0.7, sharex=True, sharey=True)
    norm = mpl.colors.Normalize(frame["test_acc"].min(), frame["test_acc"].max())
    cmap = plt.get_cmap("viridis")
    for i, level in enumerate(levels):
        for j, alpha in enumerate(alphas):
            ax = axes[i, j]
            cells = frame[(frame["level"] == level) & (frame["alpha"] == alpha)]
            for _, cell in cells.iterrows():
                ax.plot(np.arange(len(cell["log_D"])), cell["log_D"], marker="o", ms=2.5,
                        color=cmap(norm(cell["test_acc"])))
            if len(cells):
                ax.text(0.03, 0.05, f"{cells['shape'].iloc[0]}\nk={cells['curvature'].mean():+.2f}",
                        transform=ax.transAxes, fontsize=6, va="bottom")
            if i == 0:
                ax.set_title(f"alpha = {alpha:g}")
            if j == 0:
                ax.set_ylabel(f"{label} {level:g}\nlog D_l")
            if i == len(levels) - 1:
                ax.set_xlabel("layer l")
    style.figure_of(axes).colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8,
                                   label="test accuracy")
    return axes


def plot_curvature(cells: pd.DataFrame, curves: pd.DataFrame, diagram: pd.DataFrame, *, rho: float | None = None,
                   ax=None):
    """(a) curvature against test accuracy; (b) spring-block load curves; (c) its phase diagram.

    ``rho``: the Spearman correlation of |curvature| with test accuracy, shown in the title.
    """
    import seaborn as sns

    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 3, width=2.8, aspect=0.8)[0]
    fig = style.figure_of(axes)
    ax = axes[0]
    sns.scatterplot(cells, x="curvature", y="test_acc", hue="grid", style="alpha_label", ax=ax, s=25)
    ax.axvspan(-0.25, 0.25, color="0.9", zorder=0, label="linear band")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set(xlabel="load-curve curvature (normalized, symlog)", ylabel="test accuracy",
           title="networks" + (f": Spearman(|k|, acc) {rho:+.2f}" if rho is not None else ""))
    handles, labels = ax.get_legend_handles_labels()
    keep = [i for i, text in enumerate(labels) if text not in ("grid", "alpha_label")]
    ax.legend([handles[i] for i in keep], [labels[i] for i in keep], fontsize=6, loc="upper center",
              bbox_to_anchor=(0.5, -0.3), ncols=2, frameon=False)

    ax = axes[1]
    sns.lineplot(curves, x="block", y="load", hue="noise", palette="viridis", marker="o", markersize=3, ax=ax,
                 legend="full")
    ax.set(xlabel="block l", ylabel="-x_l / x_L  (model log D_l)", title="spring-block load curves, friction 0.3")
    ax.set_xticks(range(0, int(curves["block"].max()) + 1, 2))
    ax.legend(title="noise", fontsize=5, ncols=2, loc="lower left")

    ax = axes[2]
    table = diagram.pivot(index="friction", columns="noise", values="curvature").sort_index(ascending=False)
    image = ax.imshow(table.to_numpy(), cmap="coolwarm", vmin=-1.5, vmax=1.5, aspect="auto")
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=5)
    ax.set_xticks(range(table.shape[1]), [f"{v:g}" for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [f"{v:g}" for v in table.index])
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="curvature (<0 concave)")
    ax.set(xlabel="noise (shaking)", ylabel="friction (nonlinearity)", title="spring-block phase diagram")
    return axes


def draw_figures(tables: dict, out: str | Path) -> list[Path]:
    """Draw and save (PNG + PDF) every figure from :func:`ensemble_nets.protocols.phase.figure_tables`."""
    from ensemble_nets.plotting import style

    style.use()
    written = []
    for folder, (label, frame) in tables["grids"].items():
        written += style.save(plot_load_curves(frame, label), out, f"phase_load_curves_{Path(folder).name}")
    written += style.save(plot_curvature(tables["cells"], tables["curves"], tables["diagram"], rho=tables["rho"]),
                          out, "phase_curvature")
    return written
