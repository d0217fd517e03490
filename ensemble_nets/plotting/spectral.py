# SPDX-License-Identifier: MIT
"""Figure family "spectral": the spectral parametrization across widths.

Draws the tables of ``experiments/spectral_scaling.py``'s run folder
(:func:`ensemble_nets.protocols.spectral.figure_tables`), never trains::

    spectral_coord_check     mean |output| of each layer kind against width (log-log), standard vs spectral
    spectral_feature_change  mean |h_t - h_0| of each layer kind against width: how far features moved
    spectral_lr_transfer     train loss after a short budget against the learning rate, one line per width
    spectral_width_sweep     test accuracy of the spike-and-slab ensemble against width, one hyperparameter set

Each ``plot_*`` function takes the run's tables and ``ax=None`` (a new figure when None) and returns
the axes; :func:`draw_figures` draws and saves every figure whose table is given.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["draw_figures", "plot_coord_check", "plot_lr_transfer", "plot_width_sweep"]

_MODEL_LABELS = {"mlp": "plain MLP", "ensemble": "spike-and-slab", "modes": "modes (P = 30)"}
_VARIANT_LABELS = {"standard": "standard", "spectral": "spectral",
                   "spectral_paper": r"spectral, $c=\min(1,\sqrt{n_{out}/n_{in}})$ also at input"}
_VARIANT_STYLE = {"standard": ("#de8f05", "o", "-"), "spectral": ("#0173b2", "s", "-"),
                  "spectral_paper": ("#029e73", "^", "--")}


def plot_coord_check(table: pd.DataFrame, value: str = "l1", step: int | None = None, ax=None):
    """Grid models x layer roles: ``value`` at ``step`` (default: last) against width, one line per variant."""
    from ensemble_nets.plotting import style

    style.use()
    step = int(table["step"].max()) if step is None else step
    sub = table[table["step"] == step]
    models = [m for m in _MODEL_LABELS if m in set(sub["model"])]
    roles = [r for r in ("input", "hidden", "output") if r in set(sub["role"])]
    axes = style.axes_grid(ax, len(models), len(roles), width=2.0, aspect=0.8, sharex=True)
    fig = style.figure_of(axes)
    for row, model in enumerate(models):
        for col, role in enumerate(roles):
            ax = axes[row, col]
            part = sub[(sub["model"] == model) & (sub["role"] == role)]
            for variant, group in part.groupby("variant", sort=False):
                mean = group.groupby("width")[value].mean()
                color, marker, line = _VARIANT_STYLE.get(variant, ("#555555", "x", ":"))
                ax.plot(mean.index, mean.to_numpy(), marker=marker, linestyle=line, color=color, markersize=3,
                        label=_VARIANT_LABELS.get(variant, variant))
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{_MODEL_LABELS[model]}, {role} layer")
            if row == len(models) - 1:
                ax.set_xlabel("hidden width")
            if col == 0:
                ax.set_ylabel({"l1": r"mean $|h_t|$", "dl1": r"mean $|h_t - h_0|$"}[value] + f", t = {step}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    return axes


def plot_lr_transfer(table: pd.DataFrame, ax=None):
    """Grid models x variants: train loss against learning rate (log x), one line per width."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    style.use()
    models = [m for m in _MODEL_LABELS if m in set(table["model"])]
    variants = [v for v in ("standard", "spectral") if v in set(table["variant"])]
    widths = sorted(table["width"].unique())
    colors = dict(zip(widths, sns.color_palette("viridis", len(widths))))
    axes = style.axes_grid(ax, len(models), len(variants), width=1.5, aspect=0.75)
    for row, model in enumerate(models):
        for col, variant in enumerate(variants):
            ax = axes[row, col]
            part = table[(table["model"] == model) & (table["variant"] == variant)]
            for width, group in part.groupby("width"):
                group = group.sort_values("lr")
                ax.plot(group["lr"], group["train_loss"].clip(upper=5.0), marker="o", markersize=3,
                        color=colors[width], label=f"width {width}")
                best = group.loc[group["train_loss"].idxmin()]
                ax.plot(best["lr"], best["train_loss"], marker="*", markersize=8, color=colors[width])
            ax.set_xscale("log", base=2)
            ax.set_title(f"{_MODEL_LABELS[model]}, {variant}")
            ax.set_xlabel("base learning rate (spectral units)" if variant == "spectral" else "Adam learning rate")
            ax.set_ylabel("train loss (clipped at 5)" if col == 0 else "")
    axes[0, -1].legend(loc="best")
    return axes


def plot_width_sweep(table: pd.DataFrame, ax=None):
    """Test accuracy of the ensemble against width: mean-field pass and sampled networks, per variant."""
    from ensemble_nets.plotting import style

    style.use()
    ax = style.axes_grid(ax, 1, 1, width=1.3, aspect=0.6)[0, 0]
    for variant, group in table.groupby("variant", sort=False):
        group = group.sort_values("width")
        color, marker, _ = _VARIANT_STYLE.get(variant, ("#555555", "x", ":"))
        lr = group["lr"].iloc[0]
        ax.plot(group["width"], group["test_acc_mean_field"], marker=marker, color=color, markersize=3,
                label=f"{variant} (lr {lr:.3g}), mean field")
        if "test_acc_sampled_mean" in group:
            ax.errorbar(group["width"], group["test_acc_sampled_mean"], yerr=group["test_acc_sampled_std"],
                        marker=marker, color=color, markersize=3, linestyle="--", capsize=2,
                        label=f"{variant}, sampled networks")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"spike-and-slab ensemble, {int(table['epochs'].iloc[0])} epochs, one hyperparameter set")
    handles, labels = ax.get_legend_handles_labels()
    ax.figure.legend(handles, labels, loc="outside lower center", ncol=2)
    return ax


def draw_figures(tables: dict[str, pd.DataFrame], out: str | Path) -> list[Path]:
    """Draw and save (PNG + PDF) the figure of every table given: ``coord_check``, ``lr_transfer``, ``width_sweep``."""
    from ensemble_nets.plotting import style

    style.use()
    written: list[Path] = []
    if "coord_check" in tables:
        written += style.save(plot_coord_check(tables["coord_check"], "l1"), out, "spectral_coord_check")
        written += style.save(plot_coord_check(tables["coord_check"], "dl1"), out, "spectral_feature_change")
    if "lr_transfer" in tables:
        written += style.save(plot_lr_transfer(tables["lr_transfer"]), out, "spectral_lr_transfer")
    if "width_sweep" in tables:
        written += style.save(plot_width_sweep(tables["width_sweep"]), out, "spectral_width_sweep")
    return written
