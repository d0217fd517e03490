# SPDX-License-Identifier: MIT
"""Figure family "gated": gated deep linear networks on the routing task (DESIGN.md 4.3).

Draws the tables of ``experiments/gated_routing.py``'s run folder
(:func:`ensemble_nets.protocols.gated.figure_tables`), never trains::

    gated_dynamics     loss and per-mode b_h, b_in, b_out over training: simulation (seeds) vs the ODE
    gated_init_sweep   final train loss and zero-shot error against the init scale
    gated_rsa          RSA matrices of encoder and hidden representations, small vs large init
    gated_race         time-to-half of the hidden top mode against K: simulation vs theory (~ 1/K)

Each ``plot_*`` takes tables and ``ax=None`` (a new figure when None) and returns the axes.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["draw_figures", "plot_dynamics", "plot_init_sweep", "plot_race", "plot_rsa"]
_INIT_LABEL = {"aligned": "aligned init", "orthogonal": "small random init"}
_THEORY = {"aligned": "aligned", "orthogonal": "random_fit"}


def _modes(frame: pd.DataFrame) -> list[int]:
    return sorted(int(c.split("_")[-1]) for c in frame.columns if c.startswith("b_h_"))


def plot_dynamics(metrics: pd.DataFrame, theory: pd.DataFrame, singular_values: list[float], ax=None):
    """Rows: aligned, random init. Columns: train loss, b_h per mode, b_in and b_out per mode."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    dyn = metrics[metrics["part"] == "dynamics"]
    modes = _modes(dyn)
    colors = sns.color_palette("colorblind", len(modes))
    axes = style.axes_grid(ax, 2, 3, width=2.0, aspect=0.8)
    for row, init in enumerate(("aligned", "orthogonal")):
        sim, th = dyn[dyn["init"] == init], theory[theory["theory"] == _THEORY[init]]
        ax = axes[row, 0]
        for _, run in sim.groupby("seed"):
            ax.plot(run["epoch"], run["train_loss"], color="#555555", lw=0.8, alpha=0.7)
        ax.plot(th["epoch"], th["train_loss"], color=style.ACCENT, ls="--", lw=1.2, label="ODE")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_ylabel(f"{_INIT_LABEL[init]}\ntrain loss")
        ax.legend(loc="upper right")
        for i, color in zip(modes, colors):
            for _, run in sim.groupby("seed"):
                axes[row, 1].plot(run["epoch"], run[f"b_h_{i}"], color=color, lw=0.8, alpha=0.7)
                axes[row, 2].plot(run["epoch"], run[f"b_in_{i}"], color=color, lw=0.8, alpha=0.7)
                axes[row, 2].plot(run["epoch"], run[f"b_out_{i}"], color=color, lw=0.8, alpha=0.7, ls=":")
            axes[row, 1].plot(th["epoch"], th[f"b_h_{i}"], color="k", ls="--", lw=0.9)
            axes[row, 2].plot(th["epoch"], th[f"b_in_{i}"], color="k", ls="--", lw=0.9)
            axes[row, 1].plot([], [], color=color, label=f"$s$ = {singular_values[i]:.2f}")
        axes[row, 1].plot([], [], color="k", ls="--", label="ODE")
        axes[row, 1].set_ylabel("hidden $b_h$")
        axes[row, 2].set_ylabel("$b_{in}$ (solid), $b_{out}$ (dotted)")
        axes[row, 1].legend(loc="lower right", fontsize=6)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    return axes


def plot_init_sweep(table: pd.DataFrame, ax=None):
    """Final train loss and zero-shot relative error against the init gain (mean +- std over seeds)."""
    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 2, width=1.4, aspect=0.8)
    ax = axes[0, 0]
    lower = table[["train_loss_std"]].min(axis=1).clip(upper=0.9 * table["train_loss"])  # keep log scale readable
    ax.errorbar(table["gain"], table["train_loss"], yerr=[lower, table["train_loss_std"]], marker="o",
                color="#555555")
    ax.set_yscale("log")
    ax.set_xlabel("init scale (gain)")
    ax.set_ylabel("train loss after training")
    ax = axes[0, 1]
    ax.errorbar(table["gain"], table["zeroshot_rel"], yerr=table["zeroshot_rel_std"], marker="o", color=style.ACCENT)
    ax.axhline(1.0, color="k", lw=0.7, ls=":")
    ax.text(table["gain"].min(), 1.02, "output 0", fontsize=6, va="bottom")
    ax.set_xlabel("init scale (gain)")
    ax.set_ylabel(r"zero-shot error $\|y-\hat y\|^2 / \|y\|^2$")
    return axes


def plot_rsa(rsa: dict, gains: list[str], ax=None):
    """Rows: init gains; columns: encoder and hidden layer. Conditions ordered domain-major, 4 items each."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, len(gains), 2, width=1.3, aspect=1.0)
    for row, gain in enumerate(gains):
        for col, layer in enumerate(("enc", "hid")):
            ax = axes[row, col]
            sns.heatmap(pd.DataFrame(rsa[gain][layer]), ax=ax, vmin=-1, vmax=1, cmap="RdBu_r", square=True,
                        cbar=col == 1, xticklabels=False, yticklabels=False)
            n = len(rsa[gain][layer])
            for k in range(4, n, 4):
                ax.axhline(k, color="w", lw=0.3)
                ax.axvline(k, color="w", lw=0.3)
            ax.set_title(f"gain {gain}: {'encoder' if layer == 'enc' else 'hidden'} layer")
            ax.set_xlabel("domain x item")
            ax.set_ylabel("domain x item" if col == 0 else "")
    return axes


def plot_race(race: pd.DataFrame, fits: dict, ax=None):
    """Log-log time-to-half of the hidden top mode against K: simulation points, theory lines."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    ax = style.axes_grid(ax, 1, 1, width=0.9, aspect=0.85)[0, 0]
    colors = dict(zip(("aligned", "orthogonal"), sns.color_palette("colorblind", 2)))
    for init, sub in race.groupby("init"):
        mean = sub.groupby("n_trained")[["t_half_sim", "t_half_theory"]].mean().reset_index()
        slope = fits.get(init, {}).get("slope_log_t_half_vs_log_K", float("nan"))
        ax.scatter(sub["n_trained"], sub["t_half_sim"], color=colors[init], s=12,
                   label=f"{_INIT_LABEL[init]} (slope {slope:.2f})")
        ax.plot(mean["n_trained"], mean["t_half_theory"], color=colors[init], ls="--", lw=1)
    ax.plot([], [], color="k", ls="--", lw=1, label="ODE (slope -1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ks = sorted(race["n_trained"].unique())
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("K (output domains trained per input)")
    ax.set_ylabel("ODE time to half of $b_h^*$")
    ax.legend(fontsize=6)
    return ax


def draw_figures(tables: dict, out: str | Path) -> list[Path]:
    """Draw and save (PNG + PDF) the four figures from :func:`ensemble_nets.protocols.gated.figure_tables`."""
    from ensemble_nets.plotting import style

    style.use()
    written = []
    written += style.save(plot_dynamics(tables["metrics"], tables["theory"], tables["singular_values"]), out,
                          "gated_dynamics")
    written += style.save(plot_init_sweep(tables["init_sweep"]), out, "gated_init_sweep")
    gains = sorted(tables["rsa"], key=float)
    written += style.save(plot_rsa(tables["rsa"], [gains[0], gains[-1]] if len(gains) > 1 else gains), out,
                          "gated_rsa")
    written += style.save(plot_race(tables["race"], tables["fits"]), out, "gated_race")
    return written
