# SPDX-License-Identifier: MIT
"""Figure family "phase": the noise-nonlinearity phase diagram and its spring-block model.

Reads grid folders written by ``experiments/phase_diagram.py`` (``runs/phase/<model>-<knob>``),
never trains a network (the spring-block chain is simulated here: it takes seconds)::

    phase_load_curves_<grid>   load curves log D_l (rows: noise level, columns: alpha), coloured
                               by test accuracy, one figure per grid found
    phase_curvature            normalized curvature against test accuracy (every grid), beside the
                               spring-block model: its load curves and its friction x noise diagram

Each ``plot_*`` function takes tables and draws; ``make_figures`` (the family protocol of
``experiments/make_figures.py``) loads and saves.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["GRIDS", "REQUIRED_RUNS", "grid_frame", "make_figures", "plot_curvature", "plot_load_curves",
           "spring_block_frames"]

_CMD = "python experiments/phase_diagram.py --data-root ../shared/data/mnist"
#: Grid folders (relative to --runs) the family needs -> the commands that make them.
REQUIRED_RUNS = {"phase/linear-label_noise": _CMD}
#: Grids drawn when present: folder -> (command, label).
GRIDS = {
    "phase/linear-label_noise": (_CMD, "label noise"),
    "phase/linear-dropout": (f"{_CMD} --knob dropout --seeds 2", "dropout"),
    "phase/spike_slab-xi_max": (f"{_CMD} --model spike_slab", "spike-and-slab xi_max"),
}
#: Steps of each spring-block simulation of the figure (tests lower it).
SPRING_BLOCK_STEPS = 3000


def grid_frame(grid: Path) -> pd.DataFrame:
    """One row per finished cell of a grid folder: the cell's settings and results (``log_D`` a list)."""
    rows = []
    for path in sorted(Path(grid).glob("*/summary.json")):
        summary = json.loads(path.read_text())
        rows.append({**summary["cell"], **summary["result"]})
    if not rows:
        raise FileNotFoundError(f"{grid} holds no finished cells (*/summary.json)")
    frame = pd.DataFrame(rows)
    knob = Path(grid).name.split("-", 1)[1]
    return frame.assign(knob=knob, level=frame[knob] if knob in frame else np.nan)


def plot_load_curves(frame: pd.DataFrame, label: str):
    """Rows: noise level; columns: alpha; one line per seed, coloured by test accuracy."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from ensemble_nets.plotting import style

    levels, alphas = sorted(frame["level"].unique()), sorted(frame["alpha"].unique())
    fig, axes = style.subplots(len(levels), len(alphas), width=2.0, aspect=0.7, sharex=True, sharey=True,
                               squeeze=False)
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
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8, label="test accuracy")
    return fig


def spring_block_frames(frictions=(0.15, 0.3, 0.45, 0.6), noises=(0.0, 0.2, 0.4, 1.0, 2.0, 4.0, 8.0),
                        n_blocks: int = 8, n_steps: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spring-block load curves (``friction = 0.3``) and the curvature over friction x noise."""
    from ensemble_nets.analysis.separation import load_curve_shape
    from ensemble_nets.analysis.theory import simulate_spring_block

    n_steps = n_steps or SPRING_BLOCK_STEPS
    curves, diagram = [], []
    for friction in frictions:
        for noise in noises:
            result = simulate_spring_block(n_blocks, friction=friction, noise=noise, n_steps=n_steps)
            curve = result.load_curve[1:]  # blocks 1..L, as the network's hidden blocks
            shape = load_curve_shape(np.exp(curve))
            diagram.append({"friction": friction, "noise": noise, "curvature": shape["curvature"]})
            if friction == 0.3:
                scaled = curve / abs(curve[-1]) if curve[-1] != 0 else curve  # total drop -> -1: shapes compare
                curves.append(pd.DataFrame({"noise": noise, "block": np.arange(0, n_blocks + 1),
                                            "load": np.concatenate([[0.0], scaled])}))
    return pd.concat(curves, ignore_index=True), pd.DataFrame(diagram)


def plot_curvature(cells: pd.DataFrame, curves: pd.DataFrame, diagram: pd.DataFrame):
    """(a) curvature against test accuracy; (b) spring-block load curves; (c) its phase diagram."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    fig, axes = style.subplots(1, 3, width=2.0, aspect=0.9)
    ax = axes[0]
    sns.scatterplot(cells, x="curvature", y="test_acc", hue="grid", style="alpha_label", ax=ax, s=25)
    ax.axvspan(-0.25, 0.25, color="0.9", zorder=0, label="linear band")
    ax.set_xscale("symlog", linthresh=1.0)
    rho = _spearman(cells["curvature"].abs(), cells["test_acc"])
    ax.set(xlabel="load-curve curvature (normalized, symlog)", ylabel="test accuracy",
           title=f"networks: Spearman(|k|, acc) = {rho:+.2f}")
    ax.legend(fontsize=5, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncols=2, frameon=False)

    ax = axes[1]
    sns.lineplot(curves, x="block", y="load", hue="noise", palette="viridis", marker="o", markersize=3, ax=ax,
                 legend="full")
    ax.set(xlabel="block l", ylabel="-x_l / x_L (model log D_l)", title="spring-block, friction 0.3")
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
    return fig


def _spearman(a, b) -> float:
    ra, rb = pd.Series(np.asarray(a)).rank(), pd.Series(np.asarray(b)).rank()
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return float("nan")  # no ranking to correlate
    return float(np.corrcoef(ra, rb)[0, 1])


def make_figures(runs: Path, out: Path) -> list[Path]:
    """The family protocol: every grid of :data:`GRIDS` found under ``runs``; writes PNG + PDF."""
    from ensemble_nets.plotting import style

    style.use()
    runs, out = Path(runs), Path(out)
    written, frames = [], []
    for folder, (_, label) in GRIDS.items():
        if not any((runs / folder).glob("*/summary.json")):
            continue  # not run yet (or still on its first cells)
        frame = grid_frame(runs / folder)
        written += style.save(plot_load_curves(frame, label), out, f"phase_load_curves_{Path(folder).name}")
        frames.append(frame.assign(grid=label))
    cells = pd.concat(frames, ignore_index=True)
    cells["alpha_label"] = "alpha " + cells["alpha"].map("{:g}".format)
    curves, diagram = spring_block_frames()
    written += style.save(plot_curvature(cells, curves, diagram), out, "phase_curvature")
    return written
