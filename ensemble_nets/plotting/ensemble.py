# SPDX-License-Identifier: MIT
"""Figure family "ensemble": credit assignment in a trained spike-and-slab ensemble.

Draws the tables of :func:`ensemble_nets.protocols.ensemble.figure_tables` (a run folder written by
``experiments/run_mnist.py`` and analysed by ``experiments/analyze_run.py``), never trains::

    ensemble_parameters      histograms of pi, m, xi per layer, stacked by category
    ensemble_categories      category fractions per layer (every analysed compared run)
    ensemble_perturbation    test error against the fraction perturbed, per layer and perturbation
    ensemble_entropy         entropy of q per layer and category
    ensemble_accuracy        accuracy of the sampled networks with its HDI
    ensemble_mean_variance   mean against variance of every connection, coloured by category
    ensemble_uncertainty     mutual information on right and wrong digits; reliability diagram

Each ``plot_*`` takes tables and ``ax=None`` (a new figure when None) and returns the axes;
:func:`draw_figures` draws and saves them all.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ensemble_nets.analysis.categories import CATEGORIES

__all__ = ["draw_figures", "plot_accuracy", "plot_categories", "plot_entropy", "plot_mean_variance",
           "plot_parameters", "plot_perturbation", "plot_uncertainty"]


def plot_parameters(params: pd.DataFrame, ax=None):
    """Grid layers x (pi, m, xi): histograms stacked by category, log counts."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    layers = list(dict.fromkeys(params["layer"]))
    axes = style.axes_grid(ax, len(layers), 3, width=2.0, aspect=0.7)
    for row, layer in enumerate(layers):
        sub = params[params["layer"] == layer]
        for col, name in enumerate(("pi", "m", "xi")):
            ax = axes[row, col]
            sns.histplot(sub, x=name, hue="category", multiple="stack", bins=50, ax=ax, palette=style.CATEGORY_COLORS,
                         hue_order=list(CATEGORIES), legend=(row == 0 and col == 2), linewidth=0)
            ax.set_yscale("log")
            ax.set_xlabel({"pi": r"$\pi$ (absent)", "m": "$m$ (slab mean)", "xi": r"$\Xi$ (slab variance)"}[name])
            ax.set_ylabel(f"{layer}\ncount" if col == 0 else "")
    return axes


def plot_categories(fractions: pd.DataFrame, ax=None):
    """Bars of category fractions per layer, one panel per run (column ``run``).

    Tables of runs analysed with their training inputs also hold ``inactive`` connections
    (input zero on every training example), drawn as a fourth bar.
    """
    import seaborn as sns

    from ensemble_nets.plotting import style

    runs = list(dict.fromkeys(fractions["run"]))
    order = list(CATEGORIES) + (["inactive"] if (fractions["category"] == "inactive").any() else [])
    axes = style.axes_grid(ax, 1, len(runs), width=2.0 if len(runs) > 1 else 1.0, aspect=1.0, sharey=True)
    for ax, run in zip(axes[0], runs):
        sns.barplot(fractions[fractions["run"] == run], x="layer", y="fraction", hue="category", ax=ax,
                    hue_order=order, palette=style.CATEGORY_COLORS, legend=(ax is axes[0, 0]))
        ax.set_title(run)
        ax.set_ylim(0, 1)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].get_legend().remove()
    style.figure_of(axes).legend(handles, labels, loc="outside upper center", ncols=len(labels), title="category")
    return axes


def plot_perturbation(curves: pd.DataFrame, ax=None):
    """Test error against fraction perturbed, one panel per layer; bands: +- 1 std over sampled networks.

    Every perturbation in ``curves`` is drawn: the tests (delete_important, randomize_unimportant) and
    their controls (random, magnitude-matched and largest-|W| deletions of variable connections;
    randomizing as many variable or important connections), coloured by ``style.PERTURBATION_COLORS``.
    """
    import seaborn as sns

    from ensemble_nets.plotting import style

    layers = list(dict.fromkeys(curves["layer"]))
    order = [kind for kind in style.PERTURBATION_COLORS if kind in set(curves["perturbation"])]
    axes = style.axes_grid(ax, 1, len(layers), width=2.0, aspect=0.9, sharey=True)
    for ax, layer in zip(axes[0], layers):
        sns.lineplot(curves[curves["layer"] == layer], x="fraction", y="error", hue="perturbation", errorbar="sd",
                     hue_order=order, marker="o", markersize=3, ax=ax, palette=style.PERTURBATION_COLORS,
                     legend=(ax is axes[0, 0]))
        ax.set_title(layer)
        ax.set_xlabel("fraction perturbed $f$")
        ax.set_ylabel("test error")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].get_legend().remove()  # one legend above the panels: eight curves would hide the first panel
    style.figure_of(axes).legend(handles, labels, loc="outside upper center", ncols=min(4, len(labels)),
                                 title="perturbation")
    return axes


def plot_entropy(entropy: pd.DataFrame, params: pd.DataFrame, ax=None):
    """Left: layer means of H = h(pi) + slab part, over all and over variable connections.
    Right: distribution of H over the variable connections of each layer (nats).

    ``params`` needs columns ``layer``, ``category`` and ``entropy``
    (:func:`ensemble_nets.analysis.frames.parameter_frame`).
    Important and unimportant connections have H = 0 exactly (a point mass), so they are left out.
    """
    import seaborn as sns

    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 2, width=2.0, aspect=0.75)
    left, right = axes[0]
    names = {"entropy_mean": "H", "spike_mean": "spike part h($\\pi$)", "slab_mean": "slab part"}
    parts = entropy[entropy["category"] == "all"].melt(id_vars=["layer"], value_vars=list(names), var_name="part",
                                                        value_name="nats")
    parts["part"] = parts["part"].map(names)
    sns.barplot(parts, x="layer", y="nats", hue="part", ax=left, hue_order=list(names.values()),
                palette=dict(zip(names.values(), ("#555555", "#cc78bc", "#56b4e9"))))
    left.axhline(0.0, color="black", linewidth=0.6)
    low, high = parts["nats"].min(), parts["nats"].max()
    left.set_ylim(low - 0.1 * (high - low), high + 0.45 * (high - low))  # room for the legend
    left.legend(loc="upper center", ncols=3, fontsize=6)
    left.set_ylabel("mean over the layer's connections (nats)")
    left.set_title("entropy of $q$ per connection, layer means")
    variable = params[params["category"] == "variable"]
    lower = float(variable["entropy"].quantile(0.01))
    below = int((variable["entropy"] < lower).sum())
    sns.histplot(variable, x="entropy", hue="layer", stat="density", common_norm=False, element="step", fill=False,
                 bins=50, binrange=(lower, float(variable["entropy"].max())), ax=right)
    right.axvline(0.0, color="black", linewidth=0.6)
    right.set_xlabel(f"entropy of one variable connection (nats; {below} below {lower:.1f} not shown)")
    right.set_title("variable connections (important, unimportant: H = 0)")
    return axes


def plot_accuracy(accuracies: pd.Series, summary: dict, ax=None):
    """Histogram of the sampled networks' accuracies, with the HDI and the ensemble-average accuracy."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    ax = style.axes_grid(ax, 1, 1, width=1.0, aspect=0.8)[0, 0]
    sns.histplot(x=accuracies, bins=15, ax=ax, color=style.CATEGORY_COLORS["all"])
    low, high = summary["accuracy_hdi_low"], summary["accuracy_hdi_high"]
    ax.axvspan(low, high, color=style.CATEGORY_COLORS["important"], alpha=0.2,
               label=f"{summary['hdi_prob']:.0%} HDI [{low:.4f}, {high:.4f}]")
    ax.axvline(summary["accuracy_mean"], color="black", linewidth=1.0, label=f"mean {summary['accuracy_mean']:.4f}")
    ax.axvline(summary["ensemble_accuracy"], color=style.ACCENT, linestyle="--",
               label=f"ensemble average {summary['ensemble_accuracy']:.4f}")
    ax.set_xlabel(f"test accuracy of one sampled network (K = {summary['n_networks']})")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # room for the legend above the bars
    ax.legend(loc="upper left", frameon=True)
    return ax


def plot_mean_variance(params: pd.DataFrame, ax=None):
    """Mean (1 - pi) m against variance (1 - pi)(xi + pi m^2) of every connection, per layer."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    layers = list(dict.fromkeys(params["layer"]))
    axes = style.axes_grid(ax, 1, len(layers), width=2.0, aspect=0.9)
    for ax, layer in zip(axes[0], layers):
        sub = params[params["layer"] == layer]
        for category in ("variable", "important", "unimportant"):  # the rare categories drawn on top
            part = sub[sub["category"] == category]
            size = {"variable": 3, "important": 5, "unimportant": 12}[category]
            sns.scatterplot(part, x="mean", y="variance", s=size, alpha=0.5, linewidth=0, rasterized=True, ax=ax,
                            color=style.CATEGORY_COLORS[category], label=f"{category} ({len(part)})")
        ax.set_title(layer)
        ax.set_xlabel("mean $(1-\\pi)m$")
        ax.set_ylabel("variance $(1-\\pi)(\\Xi+\\pi m^2)$" if ax is axes[0, 0] else "")
        legend = ax.legend(loc="upper right")
        for handle in legend.legend_handles:
            handle.set_sizes([12])
    style.figure_of(axes).suptitle("every connection of q: important ones lie on variance = 0, unimportant ones "
                                   "at (0, 0)", fontsize=9)
    return axes


def plot_uncertainty(per_example: pd.DataFrame, calibration: pd.DataFrame, summary: dict, ax=None):
    """Mutual information on correctly and wrongly classified digits, and the reliability diagram."""
    import numpy as np
    import seaborn as sns

    from ensemble_nets.plotting import style

    axes = style.axes_grid(ax, 1, 2, width=2.0, aspect=0.8)
    left, right = axes[0]
    frame = per_example.assign(outcome=np.where(per_example["correct"], "correct", "wrong"))
    floor = 1e-6  # mutual information of unanimous members is 0: drawn at this floor on the log axis
    frame["mi"] = frame["mutual_information"].clip(lower=floor)
    sns.histplot(frame, x="mi", hue="outcome", stat="density", common_norm=False, log_scale=True, bins=40,
                 element="step", ax=left,
                 palette={"correct": style.CATEGORY_COLORS["important"], "wrong": style.ACCENT})
    left.set_xlabel(f"mutual information (nats; values < {floor:g} drawn at {floor:g})")
    left.set_title(f"mean MI: correct {summary['mutual_information_correct']:.4f}, "
                   f"wrong {summary['mutual_information_wrong']:.4f}")
    filled = calibration[calibration["count"] > 0]
    right.plot([0, 1], [0, 1], color="black", linewidth=0.6, linestyle=":")
    right.plot(filled["confidence"], filled["accuracy"], marker="o", markersize=3, color=style.CATEGORY_COLORS["all"])
    right.set_xlabel("confidence of the ensemble predictive")
    right.set_ylabel("accuracy")
    right.set_title(f"reliability: ECE {summary['ece']:.4f}")
    return axes


def draw_figures(tables: dict, out: str | Path) -> list[Path]:
    """Draw and save (PNG + PDF) every figure from :func:`ensemble_nets.protocols.ensemble.figure_tables`."""
    from ensemble_nets.plotting import style

    style.use()
    params, summary = tables["params"], tables["summary"]
    written = []
    written += style.save(plot_parameters(params), out, "ensemble_parameters")
    written += style.save(plot_categories(tables["fractions"]), out, "ensemble_categories")
    written += style.save(plot_perturbation(tables["perturbation"]), out, "ensemble_perturbation")
    written += style.save(plot_entropy(tables["entropy"], params), out, "ensemble_entropy")
    written += style.save(plot_accuracy(tables["ensemble_accuracy"]["accuracy"], summary), out, "ensemble_accuracy")
    written += style.save(plot_mean_variance(params), out, "ensemble_mean_variance")
    written += style.save(plot_uncertainty(tables["ensemble_per_example"], tables["calibration"], summary), out,
                          "ensemble_uncertainty")
    return written
