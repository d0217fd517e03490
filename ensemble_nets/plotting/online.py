# SPDX-License-Identifier: MIT
"""Figure family "online": on-line teacher-student dynamics of the mode-decomposed committee machine.

Draws the tables of ``experiments/online_teacher_student.py``'s run folder
(:func:`ensemble_nets.protocols.online.figure_tables`), never simulates::

    online_dynamics    eps_g against alpha = t/d (theory and simulation), the overlaps R_ii of each
                       student unit with its teacher unit (continuous specialization), and the
                       relative theory-simulation discrepancy

``plot_*`` functions take tables and ``ax=None`` (a new figure when None) and return the axes;
:func:`draw_figures` draws and saves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["draw_figures", "plot_discrepancy", "plot_eps_g", "plot_overlaps"]


def _ax(ax, **kwargs):
    from ensemble_nets.plotting import style

    return style.axes_grid(ax, 1, 1, **kwargs)[0, 0]


def plot_eps_g(metrics: pd.DataFrame, ax=None, *, floor: float | None = None):
    """Generalization error against alpha (log-log): ODE line, simulation mean with a +-1 std band."""
    from ensemble_nets.plotting import style

    ax = _ax(ax, width=0.8, aspect=0.95)
    m = metrics[metrics["alpha"] > 0]
    ax.plot(m["alpha"], m["eps_g_ode"], color="black", lw=1.0, zorder=3, label="ODE theory")
    lo = np.clip(m["eps_g_sim_mean"] - m["eps_g_sim_std"], m["eps_g_sim_mean"] * 0.1, None)
    ax.fill_between(m["alpha"], lo, m["eps_g_sim_mean"] + m["eps_g_sim_std"], color=style.ACCENT, alpha=0.25, lw=0)
    ax.plot(m["alpha"], m["eps_g_sim_mean"], "o", ms=3, mfc="none", mew=0.6, color=style.ACCENT,
            label="simulation (mean ± std)")
    if floor is not None:
        ax.axhline(floor, color="#7f7f7f", lw=0.6, ls=":", label="discrepancy floor")
    ax.set(xscale="log", yscale="log", xlabel=r"$\alpha = t/d$", ylabel=r"$\epsilon_g$",
           title="generalization error")
    ax.set_ylim(bottom=max(m["eps_g_ode"].min(), 1e-12))
    ax.legend(loc="lower left")
    return ax


def plot_overlaps(metrics: pd.DataFrame, ax=None):
    """R_ii = M_ii / sqrt(Q_ii T_ii) of each student unit: ODE lines, simulation (mean over seeds) dots."""
    import seaborn as sns

    ax = _ax(ax, width=0.8, aspect=0.95)
    m = metrics[metrics["alpha"] > 0]
    units = sorted(int(c.rsplit("_", 1)[1]) for c in m.columns if c.startswith("r_ode_"))
    colors = sns.color_palette("viridis", len(units))
    for k, color in zip(units, colors):
        ax.plot(m["alpha"], m[f"r_ode_{k}"], color=color, lw=1.0, label=f"unit {k + 1}")
        ax.plot(m["alpha"], m[f"r_sim_{k}"], "o", ms=1.6, color=color)
    ax.set(xscale="log", xlabel=r"$\alpha = t/d$", ylabel=r"$R_{ii} = M_{ii} / \sqrt{Q_{ii} T_{ii}}$",
           title="specialization (lines ODE, dots sim.)")
    ax.set_ylim(-0.2, 1.05)
    ax.legend(ncol=2, loc="lower right", handlelength=1.0, columnspacing=0.8, fontsize=6)
    return ax


def plot_discrepancy(curve: pd.DataFrame, ax=None):
    """|<eps_sim> - eps_ode| / eps_ode against alpha, grey where eps_ode is below the floor.

    ``curve``: :func:`ensemble_nets.analysis.online.discrepancy_curve` (``alpha``, ``rel_err``, ``counted``).
    """
    from ensemble_nets.plotting import style

    ax = _ax(ax, width=0.8, aspect=0.95)
    used, rel = curve["counted"].to_numpy(bool), curve["rel_err"]
    ax.plot(curve["alpha"][used], rel[used], "o-", ms=2, lw=0.8, color=style.ACCENT, label="measured")
    ax.plot(curve["alpha"][~used], rel[~used], "o", ms=2, color="#bbbbbb", label=r"below floor (not counted)")
    ax.set(xscale="log", yscale="log", xlabel=r"$\alpha = t/d$", ylabel="relative error of $\\epsilon_g$",
           title="theory vs simulation")
    ax.set_ylim(top=max(5.0, float(rel.max())) * 30)   # room for the legend above the points
    ax.legend(loc="upper left")
    return ax


def draw_figures(tables: dict, out: str | Path) -> list[Path]:
    """The on-line dynamics figure from :func:`ensemble_nets.protocols.online.figure_tables`."""
    from ensemble_nets.plotting import style

    style.use()
    metrics, config, summary = tables["metrics"], tables["config"], tables["summary"]
    fig, axes = style.subplots(1, 3, width=2.0, aspect=0.95)
    plot_eps_g(metrics, axes[0], floor=tables["floor"])
    plot_overlaps(metrics, axes[1])
    plot_discrepancy(tables["discrepancy"], axes[2])
    fig.suptitle(f"On-line learning, d = {config['d']}, K = {config['K']}, P = {config['P']}, "
                 f"eta = {config['eta']:g}, {len(config['seeds'])} seeds; median rel. error "
                 f"{summary['discrepancy']['rel_err_median']:.1%}", fontsize=8)
    return style.save(fig, out, "online_dynamics")
