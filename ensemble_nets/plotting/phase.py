# SPDX-License-Identifier: MIT
"""Figure family "phase": the noise-nonlinearity phase diagram and the spring-block theory panel.

Draws the tables of :func:`ensemble_nets.protocols.phase.figure_tables` (grid folders written by
``experiments/phase_diagram.py``, the claims of :mod:`ensemble_nets.analysis.phase_claims`, the
second-order spring-block chain), never trains or simulates::

    phase_c_maps               the reference curvature c = d_0 - d_last, mean over seeds, as a heat map
                               alpha x level, one panel per grid (numbers: c over test accuracy)
    phase_load_curves_<grid>   load curves log Tr(Sigma_w Sigma_b^+) (rows: level, columns: alpha), one
                               line per seed, coloured by test accuracy
    phase_curvature            |c| against test accuracy (claim c); the level where c crosses 0 against
                               alpha (claim d); the second-order spring-block chain's spring lengths

Each ``plot_*`` takes tables and ``ax=None`` (a new figure when None) and returns the axes;
:func:`draw_figures` draws and saves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["draw_figures", "plot_c_maps", "plot_claims", "plot_load_curves", "plot_spring_panel"]


def plot_c_maps(grids: dict, ax=None):
    """One heat map per grid: rows alpha, columns level, colour the seed-mean c (red convex, blue concave)."""
    from ensemble_nets.plotting import style

    n_cols = min(3, len(grids))
    n_rows = -(-len(grids) // n_cols)
    grid_axes = style.axes_grid(ax, n_rows, n_cols, width=3.6, aspect=0.8)
    axes = grid_axes.ravel()
    for extra in axes[len(grids):]:
        extra.set_visible(False)
    for ax, (folder, (label, frame)) in zip(axes, grids.items()):
        means = frame.groupby(["alpha", "level"])[["c", "test_acc"]].mean().reset_index()
        c = means.pivot(index="alpha", columns="level", values="c").sort_index(ascending=False)
        acc = means.pivot(index="alpha", columns="level", values="test_acc").reindex_like(c)
        limit = float(np.nanmax(np.abs(c.to_numpy()))) if np.isfinite(c.to_numpy()).any() else 1.0
        image = ax.imshow(c.to_numpy(), cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), value in np.ndenumerate(c.to_numpy()):
            ax.text(j, i, f"{value:+.2f}\n{acc.to_numpy()[i, j]:.3f}", ha="center", va="center", fontsize=5.5)
        ax.set_xticks(range(c.shape[1]), [f"{v:g}" for v in c.columns], fontsize=6, rotation=45)
        ax.set_yticks(range(c.shape[0]), [f"{v:g}" for v in c.index], fontsize=6)
        ax.grid(False)
        ax.set_xlabel(label, fontsize=7)
        ax.set_ylabel("alpha (LeakyReLU slope)", fontsize=7)
        ax.set_title(f"{label}: c (top), test acc. (bottom)", fontsize=7)
        style.figure_of(ax).colorbar(image, ax=ax, shrink=0.8).set_label("c = d0 - dlast (> 0 convex)", fontsize=6)
    return grid_axes


def plot_load_curves(frame: pd.DataFrame, label: str, ax=None):
    """Rows: noise level; columns: alpha; one line per seed of ``log_D_hs`` (the reference's measure, the logits
    dropped as the reference drops them), coloured by test accuracy."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from ensemble_nets.plotting import style

    levels, alphas = sorted(frame["level"].unique()), sorted(frame["alpha"].unique())
    axes = style.axes_grid(ax, len(levels), len(alphas), width=1.6, aspect=0.7, sharex=True, sharey=True)
    norm = mpl.colors.Normalize(frame["test_acc"].min(), frame["test_acc"].max())
    cmap = plt.get_cmap("viridis")
    for i, level in enumerate(levels):
        for j, alpha in enumerate(alphas):
            ax = axes[i, j]
            cells = frame[(frame["level"] == level) & (frame["alpha"] == alpha)]
            for _, cell in cells.iterrows():
                curve = list(cell["log_D_hs"])[:-1] if len(cell["log_D_hs"]) else []
                ax.plot(np.arange(len(curve)), curve, marker="o", ms=1.5, lw=0.8, color=cmap(norm(cell["test_acc"])))
            if len(cells):
                ax.text(0.97, 0.95, f"c={cells['c'].mean():+.2f}", transform=ax.transAxes, fontsize=5,
                        ha="right", va="top")
            if i == 0:
                ax.set_title(f"alpha = {alpha:g}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{level:g}", fontsize=6)
            if i == len(levels) - 1:
                ax.set_xlabel("layer l", fontsize=6)
    style.figure_of(axes).supylabel(f"{label}; log D_l (He-Su)", fontsize=8)
    style.figure_of(axes).colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.6,
                                   label="test accuracy")
    return axes


def plot_claims(grids: dict, claims: dict, ax=None):
    """(a) |c| against test accuracy (cell means; claim c); (b) the level where c crosses 0 against alpha,
    in noise units of each knob, normalized to its range (claim d)."""
    from ensemble_nets.analysis.phase_claims import noise_order
    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 2, width=2.8, aspect=0.8)[0]
    rho = claims["claim_c"].set_index("grid")["rho_absc_acc"] if not claims["claim_c"].empty else {}
    for _, (label, frame) in grids.items():
        means = frame.groupby(["alpha", "level"])[["c", "test_acc"]].mean().reset_index()
        text = f"{label} ({rho[label]:+.2f})" if label in rho else label
        axes[0].scatter(means["c"].abs(), means["test_acc"], s=8, label=text)
    axes[0].set_xscale("symlog", linthresh=0.1)
    axes[0].set(xlabel="|c| (cell mean; symlog)", ylabel="test accuracy",
                title="(c) straighter curves, better accuracy?")
    axes[0].legend(fontsize=5, title="grid (Spearman)", title_fontsize=5)
    d = claims["claim_d"]
    for label, block in (d.groupby("grid", sort=False) if not d.empty else []):
        knob = block["knob"].iloc[0]
        frame = next(f for lab, f in grids.values() if lab == label)
        order = noise_order(knob, frame["level"].unique())
        lo, hi = order.min(), order.max()
        value = np.array([noise_order(knob, [v])[0] if np.isfinite(v) else (-np.inf if v < 0 else np.inf)
                          for v in block["crossing"]])
        scaled = np.clip((value - lo) / (hi - lo), -0.1, 1.1)  # below / above the range drawn at the edges
        axes[1].plot(block["alpha"], scaled, marker="o", ms=3, label=label)
    axes[1].axhspan(-0.15, 0, color="0.9", zorder=0)
    axes[1].axhspan(1, 1.15, color="0.9", zorder=0)
    axes[1].set(xlabel="alpha (1 = linear)", ylabel="c = 0 crossing (0 = least noise, 1 = most)",
                title="(d) noise needed to reach c = 0", ylim=(-0.15, 1.15))
    axes[1].legend(fontsize=5)
    return axes


def plot_spring_panel(spring: pd.DataFrame, ax=None):
    """The second-order spring-block chain: time-averaged spring lengths against spring index, one line per
    noise, asymmetric (reference) and symmetric friction side by side. What the model gives, not a fit."""
    import matplotlib.pyplot as plt

    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 2, width=2.6, aspect=0.8, sharey=True)[0]
    noises = sorted(spring["noise"].unique())
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(noises)))
    for ax, friction in zip(axes, ("asymmetric", "symmetric")):
        for noise, color in zip(noises, colors):
            rows = spring[(spring["friction"] == friction) & (spring["noise"] == noise)].sort_values("spring")
            if rows.empty:
                continue
            ax.errorbar(rows["spring"], rows["mean_extension"], yerr=rows["sem"], color=color, marker="o", ms=2,
                        lw=0.8, capsize=1, label=f"{noise:g} (d1-d8 {rows['tilt'].iloc[0]:+.3f})")
        mu = "0.003/0.004" if friction == "asymmetric" else "0.003/0.003"
        note = "" if friction == "asymmetric" else "\n(mirror symmetric in law: no lasting convex tilt)"
        ax.set(xlabel="spring l (1 = input side)", title=f"Langevin chain, friction {mu}{note}")
        ax.legend(fontsize=4.5, title="noise eps", title_fontsize=5)
    axes[0].set_ylabel("mean spring length (stands for -dlog D)")
    return axes


def draw_figures(tables: dict, out: str | Path) -> list[Path]:
    """Draw and save (PNG + PDF) every figure from :func:`ensemble_nets.protocols.phase.figure_tables`."""
    import matplotlib.pyplot as plt

    from ensemble_nets.plotting import style

    style.use()
    written = []
    grids, claims = tables["grids"], tables["claims"]
    written += style.save(plot_c_maps(grids), out, "phase_c_maps")
    for folder, (label, frame) in grids.items():
        written += style.save(plot_load_curves(frame, label), out, f"phase_load_curves_{Path(folder).name}")
    fig = plt.figure(figsize=(11.5, 2.6), layout="constrained")
    panels = fig.subplots(1, 4)
    plot_claims(grids, claims, ax=panels[:2])
    plot_spring_panel(tables["spring"], ax=panels[2:])
    written += style.save(fig, out, "phase_curvature")
    return written
