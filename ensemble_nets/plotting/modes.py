# SPDX-License-Identifier: MIT
"""Figure family "modes": mode decomposition, mode analysis, categories versus modes.

Draws the tables of :func:`ensemble_nets.protocols.modes.figure_tables` (``experiments/analyze_modes.py``
and ``experiments/mode_width_sweep.py``), never trains::

    modes_spectrum     tau (MDL) / singular values (plain, ensemble mean) against rank, with the fits
    modes_removal      accuracy against the fraction of modes removed, per layer and order
    modes_width        P_min against width (log axis) with the fits; parameter fraction at P_min
    modes_categories   categories versus modes: mass shares, AUC, accuracy per number of kept numbers
    modes_latent       participation-ratio dimension and class overlap per neuron layer

Each ``plot_*`` takes tables and ``ax=None`` (a new figure when None) and returns the axes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["draw_figures", "plot_categories", "plot_latent", "plot_removal", "plot_spectrum", "plot_width"]

ORDER_STYLES = {"least_first": "-", "most_first": "--", "random": ":"}


def _model_colors(models) -> dict:
    import seaborn as sns

    return dict(zip(models, sns.color_palette("colorblind", len(models))))


def plot_spectrum(spectra: pd.DataFrame, fits: pd.DataFrame, fit_lines: pd.DataFrame | None = None, ax=None):
    """One panel per layer: importance (tau for MDL, singular value otherwise) against rank, log-log.

    ``fit_lines`` (:func:`ensemble_nets.protocols.modes.fit_lines`) are drawn as lines; the MDL fits'
    slopes and breakpoints (``fits``) are written on the panel.
    """
    from ensemble_nets.plotting import style

    layers = sorted(spectra.layer.unique())
    colors = _model_colors(list(spectra.model.unique()))
    axes = style.axes_grid(ax, 1, len(layers), width=2.0, aspect=0.85)[0]
    for ax, layer in zip(axes, layers):
        n_text = 0
        for model, group in spectra[spectra.layer == layer].groupby("model", sort=False):
            score = "tau" if model.startswith("mdl") else "sigma"
            values = np.sort(group[score].to_numpy())[::-1]
            values = values / values[0]  # normalized: models on one axis
            ranks = np.arange(1, len(values) + 1)
            ax.loglog(ranks, values, "o", ms=2, color=colors[model], label=f"{model} ({score})")
            if fit_lines is not None:
                line = fit_lines[(fit_lines.model == model) & (fit_lines.layer == layer)]
                if len(line):
                    ax.loglog(line["rank"], line["value"], "-", lw=0.8, color=colors[model])
            row = fits[(fits.model == model) & (fits.layer == layer)] if len(fits) else fits
            if len(row) and model.startswith("mdl"):
                r = row.iloc[0]
                ax.text(0.03, 0.04 + 0.11 * n_text, f"{model}: {r['slope1']:.2f} | {r['slope2']:.2f} "
                        f"(break {r['breakpoint']:.0f})", transform=ax.transAxes, fontsize=5.5, color=colors[model])
                n_text += 1
        ax.set(title=layer, xlabel="rank", ylabel="importance / largest")
    axes[-1].legend(loc="upper right", fontsize=6)
    return axes


def plot_removal(removal: pd.DataFrame, ax=None):
    """Rows: models; columns: layers. Accuracy against fraction removed, one line style per order."""
    from ensemble_nets.plotting import style

    models, layers = list(removal.model.unique()), sorted(removal.layer.unique())
    mean = removal.groupby(["model", "layer", "order", "fraction"], as_index=False).accuracy.agg(["mean", "std"])
    axes = style.axes_grid(ax, len(models), len(layers), width=2.0, aspect=0.7, sharex=True, sharey=True)
    for i, model in enumerate(models):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            for order, ls in ORDER_STYLES.items():
                g = mean[(mean.model == model) & (mean.layer == layer) & (mean.order == order)]
                ax.plot(g.fraction, g["mean"], ls, marker="o", ms=2, label=order.replace("_", " "))
                if order == "random":
                    ax.fill_between(g.fraction, g["mean"] - g["std"].fillna(0), g["mean"] + g["std"].fillna(0),
                                    alpha=0.2)
            ax.set_title(f"{model}, {layer}")
            if i == len(models) - 1:
                ax.set_xlabel("fraction of modes removed")
            if j == 0:
                ax.set_ylabel("test accuracy")
    axes[0, -1].legend(loc="lower left")
    return axes


def plot_width(pmin: pd.DataFrame, fit: dict, ax=None):
    """P_min against width with the log and saturating fits; parameter fraction of MDL at P_min."""
    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 2, width=2.0, aspect=0.8)
    ax, bx = axes[0]
    ok = pmin.dropna(subset=["p_min"])
    ax.semilogx(ok.width, ok.p_min, "o", color="k", label="P_min (data)")
    missed = pmin[pmin.p_min.isna()]
    if len(missed):
        top = max(fit.get("modes", [ok.p_min.max() if len(ok) else 1]))
        ax.semilogx(missed.width, np.full(len(missed), top), "x", color=style.ACCENT,
                    label=f"not reached with P <= {top}")
    grid = np.geomspace(pmin.width.min(), pmin.width.max(), 100)
    if "log" in fit:
        ax.semilogx(grid, fit["log"]["a"] + fit["log"]["b"] * np.log(grid), "-",
                    label=f"a + b ln N (b = {fit['log']['b']:.2f})")
    if "saturating" in fit and fit.get("n_widths", 0) >= 4:  # 3 points cannot tell a bend from noise
        s = fit["saturating"]
        ax.semilogx(grid, s["a"] + s["b"] * np.log(np.minimum(grid, s["n_star"])), "--",
                    label=f"saturating, N* = {s['n_star']:.0f}")
    ax.set(xlabel="width N", ylabel="P_min",
           title=f"tolerance {fit.get('tolerance', '?')}, {fit.get('epochs', '?')} ep.")
    ax.legend(fontsize=6)
    bx.semilogx(ok.width, 100 * ok.parameter_fraction, "o-")
    for _, r in ok.iterrows():
        bx.annotate(f"{int(r.mdl_parameters_at_p_min):,}/{int(r.plain_parameters):,}",
                    (r.width, 100 * r.parameter_fraction), fontsize=5, textcoords="offset points", xytext=(2, 4))
    bx.set(xlabel="width N", ylabel="MDL parameters at P_min (% of plain)", title="parameter savings")
    for axis in (ax, bx):
        axis.set_xticks(list(pmin.width), [str(w) for w in pmin.width])
        axis.minorticks_off()
    return axes


def plot_categories(mass: pd.DataFrame, auc: pd.DataFrame, accuracy: pd.DataFrame, ax=None):
    """Rows: layers. Mass share by category vs k; AUC vs k with chance; accuracy vs numbers kept."""
    from ensemble_nets.plotting import style

    layers = sorted(mass.layer.unique())
    axes = style.axes_grid(ax, len(layers), 3, width=2.0, aspect=0.7)
    for i, layer in enumerate(layers):
        ax, bx, cx = axes[i]
        for cat, color in style.CATEGORY_COLORS.items():
            g = mass[(mass.layer == layer) & (mass.category == cat)]
            if len(g) and g.mass_share.notna().any():
                ax.semilogx(g.k, g.mass_share, "o-", ms=2, color=color, label=cat)
            if len(g):
                ax.semilogx(g.k, g.reconstruction_fraction, ":", color=color,
                            label=cat if g.mass_share.isna().all() else None)
        ax.set(title=f"{layer}: category mass in top-k", xlabel="k (leading modes)", ylabel="share", ylim=(0, 1.05))
        for (pos, neg), ls in zip([("important", "unimportant"), ("important", "variable"), ("important", "rest")],
                                  ["-", "--", ":"]):
            g = auc[(auc.layer == layer) & (auc.positive == pos) & (auc.negative == neg)]
            bx.semilogx(g.k, g.auc, ls, marker="o", ms=2, label=f"{pos} vs {neg}")
        bx.axhline(0.5, color="grey", lw=0.8)
        bx.set(title="AUC of |W_k| (0.5 = chance)", xlabel="k", ylabel="ROC AUC", ylim=(0, 1.02))
        g = accuracy[accuracy.layer == layer]
        top = g[g.kept == "top_k_modes"]
        cx.semilogx(top.n_numbers, top.accuracy, "o-", ms=2, color="k", label="top-k modes")
        for kept, color in (("important", style.CATEGORY_COLORS["important"]),
                            ("important+variable", style.CATEGORY_COLORS["variable"])):
            row = g[g.kept == kept]
            cx.semilogx(row.n_numbers, row.accuracy, "s", color=color, label=f"only {kept}")
        cx.set(title="accuracy, this layer reduced", xlabel="numbers kept", ylabel="test accuracy")
        if i == 0:
            ax.legend(fontsize=5, title="solid: share of its mass\ndotted: share of W_k", title_fontsize=5)
            bx.legend(fontsize=5)
            cx.legend(fontsize=5)
    return axes


def plot_latent(latent: pd.DataFrame, ax=None):
    """Participation-ratio dimension and class-subspace overlap per neuron layer, one line per model."""
    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 2, width=2.0, aspect=0.7)
    ax, bx = axes[0]
    colors = _model_colors(list(latent.model.unique()))
    for model, g in latent.groupby("model", sort=False):
        ax.plot(g.layer, g.pr_dimension, "o-", color=colors[model], label=model)
        bx.plot(g.layer, g.class_overlap, "o-", color=colors[model], label=model)
    ax.set(xlabel="neuron layer (0 = input)", ylabel="participation-ratio dimension", yscale="log")
    bx.set(xlabel="neuron layer (0 = input)", ylabel="class-subspace overlap (mean cos)", ylim=(0, 1))
    for axis in (ax, bx):
        axis.set_xticks(sorted(latent.layer.unique()))
    ax.legend(fontsize=6)
    return axes


def draw_figures(tables: dict, out: str | Path) -> list[Path]:
    """Draw and save (PNG + PDF) every figure from :func:`ensemble_nets.protocols.modes.figure_tables`."""
    from ensemble_nets.plotting import style

    style.use()
    written = []
    written += style.save(plot_spectrum(tables["spectra"], tables["fits"], tables.get("fit_lines")), out,
                          "modes_spectrum")
    written += style.save(plot_removal(tables["removal"]), out, "modes_removal")
    written += style.save(plot_categories(tables["compare_mass"], tables["compare_auc"], tables["compare_accuracy"]),
                          out, "modes_categories")
    written += style.save(plot_latent(tables["latent"]), out, "modes_latent")
    if "pmin" in tables:
        written += style.save(plot_width(tables["pmin"], tables["fit"]), out, "modes_width")
    return written
