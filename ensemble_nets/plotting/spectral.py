# SPDX-License-Identifier: MIT
"""Figure family "spectral": the spectral parametrization across widths.

Draws the tables of ``experiments/spectral_scaling.py``'s run folder
(:func:`ensemble_nets.protocols.spectral.figure_tables`), never trains::

    spectral_coord_check     mean |output| of each layer kind against width (log-log), standard vs spectral
    spectral_feature_change  mean |h_t - h_0| of each layer kind against width: how far features moved
    spectral_lr_transfer     final train loss against the learning rate, one line per width (seed mean, range)
    spectral_transfer_curves loss against step at each width's best rate, standard and spectral side by side
    spectral_width_sweep     test accuracy of the spike-and-slab ensemble against width, one hyperparameter set

Each ``plot_*`` function takes the run's tables and ``ax=None`` (a new figure when None) and returns
the axes; :func:`draw_figures` draws and saves every figure whose table is given.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["draw_figures", "plot_coord_check", "plot_lr_transfer", "plot_transfer_curves", "plot_width_sweep"]

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


def _panels(table: pd.DataFrame):
    models = [m for m in _MODEL_LABELS if m in set(table["model"])]
    variants = [v for v in ("standard", "spectral") if v in set(table["variant"])]
    return models, variants


def _width_colors(table: pd.DataFrame) -> dict:
    import seaborn as sns

    widths = sorted(table["width"].unique())
    return dict(zip(widths, sns.color_palette("viridis", len(widths))))


def plot_lr_transfer(table: pd.DataFrame, ax=None, *, clip: float = 1.5):
    """Grid models x variants: final loss against learning rate (log x), one line per width.

    ``table``: a row per run (``model, variant, width, lr, seed, final_loss``; ``inf`` for a diverged
    run), as :func:`ensemble_nets.protocols.spectral.transfer_tables` gives. Lines are seed means, the
    band their range over seeds, the star each width's best rate (of the mean); losses above ``clip``
    (diverged runs included) are drawn at ``clip``.
    """
    from ensemble_nets.analysis.spectral import transfer_optima
    from ensemble_nets.plotting import style

    style.use()
    models, variants = _panels(table)
    colors = _width_colors(table)
    best = transfer_optima(table)
    axes = style.axes_grid(ax, len(models), len(variants), width=1.5, aspect=0.75)
    for row, model in enumerate(models):
        for col, variant in enumerate(variants):
            ax = axes[row, col]
            part = table[(table["model"] == model) & (table["variant"] == variant)]
            n_seeds = part["seed"].nunique()
            for width, group in part.groupby("width"):
                stats = group.groupby("lr")["final_loss"].agg(["mean", "min", "max"]).clip(upper=clip)
                ax.plot(stats.index, stats["mean"], marker="o", markersize=2.5, color=colors[width],
                        label=f"width {width}")
                if group["seed"].nunique() > 1:
                    ax.fill_between(stats.index, stats["min"], stats["max"], color=colors[width], alpha=0.2,
                                    linewidth=0)
                star = best[(best["model"] == model) & (best["variant"] == variant) & (best["width"] == width)]
                if len(star):
                    ax.plot(star["lr_best"], star["loss_best"].clip(upper=clip), marker="*", markersize=8,
                            color=colors[width], markeredgecolor="black", markeredgewidth=0.4)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_ylim(top=clip * 1.05)
            steps = int(part["steps"].iloc[0]) if "steps" in part and len(part) else None
            ax.set_title(f"{_MODEL_LABELS[model]}, {variant}" + (f"\n{steps} steps, up to {n_seeds} seeds"
                                                                  if steps else ""))
            ax.set_xlabel("base learning rate (spectral units)" if variant == "spectral" else "Adam learning rate")
            ax.set_ylabel(f"final train loss (clipped at {clip:g})" if col == 0 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    style.figure_of(axes).legend(handles, labels, loc="outside lower center", ncol=len(labels))
    return axes


def _rate_label(lr: float) -> str:
    """``$2^{k}$`` for a power of 2, else ``%g``."""
    import math

    k = math.log2(lr)
    return f"$2^{{{int(k)}}}$" if k == int(k) else f"{lr:g}"


def plot_transfer_curves(curves: pd.DataFrame, table: pd.DataFrame, ax=None, *, smooth: int = 10):
    """Grid models x variants: loss against step at each width's best rate (seed mean, ``smooth``-step
    running mean), one line per width; ``table`` picks the rates (:func:`transfer_optima`)."""
    from ensemble_nets.analysis.spectral import transfer_optima
    from ensemble_nets.plotting import style

    style.use()
    models, variants = _panels(table)
    colors = _width_colors(table)
    best = transfer_optima(table)
    axes = style.axes_grid(ax, len(models), len(variants), width=1.5, aspect=0.75, sharey=True)
    for row, model in enumerate(models):
        for col, variant in enumerate(variants):
            ax = axes[row, col]
            picks = best[(best["model"] == model) & (best["variant"] == variant)]
            for _, pick in picks.iterrows():
                part = curves[(curves["model"] == model) & (curves["variant"] == variant)
                              & (curves["width"] == pick["width"]) & (curves["lr"] == pick["lr_best"])]
                mean = part.groupby("step")["loss"].mean().rolling(smooth, min_periods=1).mean()
                ax.plot(mean.index, mean.to_numpy(), color=colors[pick["width"]], linewidth=1,
                        label=f"width {pick['width']}")
            ax.set_yscale("log")
            rates = ", ".join(_rate_label(lr) for lr in picks.sort_values("width")["lr_best"])
            ax.set_title(f"{_MODEL_LABELS[model]}, {variant}\nbest rates: {rates}", fontsize=7)
            ax.set_xlabel("step")
            ax.set_ylabel(f"train loss ({smooth}-step mean)" if col == 0 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    style.figure_of(axes).legend(handles, labels, loc="outside lower center", ncol=len(labels))
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
    """Draw and save (PNG + PDF) the figure of every table given: ``coord_check``, ``lr_transfer`` (with
    ``transfer_curves``), ``width_sweep``."""
    from ensemble_nets.plotting import style

    style.use()
    written: list[Path] = []
    if "coord_check" in tables:
        written += style.save(plot_coord_check(tables["coord_check"], "l1"), out, "spectral_coord_check")
        written += style.save(plot_coord_check(tables["coord_check"], "dl1"), out, "spectral_feature_change")
    if "lr_transfer" in tables:
        written += style.save(plot_lr_transfer(tables["lr_transfer"]), out, "spectral_lr_transfer")
        if "transfer_curves" in tables:
            written += style.save(plot_transfer_curves(tables["transfer_curves"], tables["lr_transfer"]), out,
                                  "spectral_transfer_curves")
    if "width_sweep" in tables:
        written += style.save(plot_width_sweep(tables["width_sweep"]), out, "spectral_width_sweep")
    return written
