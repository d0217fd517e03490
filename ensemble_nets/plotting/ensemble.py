# SPDX-License-Identifier: MIT
"""Figure family "ensemble": credit assignment in a trained spike-and-slab ensemble.

Reads a run folder written by ``experiments/run_mnist.py`` and analysed by
``experiments/analyze_run.py`` (its ``analysis/`` subfolder), never trains::

    ensemble_parameters      histograms of pi, m, xi per layer, stacked by category
    ensemble_categories      category fractions per layer (every analysed run in COMPARED_RUNS)
    ensemble_perturbation    test error against the fraction perturbed, per layer and perturbation
    ensemble_entropy         entropy of q per layer and category
    ensemble_accuracy        accuracy of the sampled networks with its HDI
    ensemble_mean_variance   mean against variance of every connection, coloured by category
    ensemble_uncertainty     mutual information on right and wrong digits; reliability diagram

Each ``plot_*`` function takes precomputed tables and draws; ``make_figures``
(the family protocol of ``experiments/make_figures.py``) loads and saves.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from ensemble_nets.analysis.categories import CATEGORIES
from ensemble_nets.layers.spike_slab import spike_slab_layers

__all__ = ["COMPARED_RUNS", "MAIN_RUN", "REQUIRED_RUNS", "make_figures", "parameter_frame", "plot_accuracy",
           "plot_categories", "plot_entropy", "plot_mean_variance", "plot_parameters", "plot_perturbation",
           "plot_uncertainty"]

MAIN_RUN = "default-ensemble-s0"
_TRAIN = "python experiments/run_mnist.py --data-root ../shared/data/mnist"
_ANALYZE = "python experiments/analyze_run.py"
#: Run folders (relative to --runs) the family needs -> the commands that make them.
REQUIRED_RUNS = {f"{MAIN_RUN}/analysis": f"{_TRAIN} --out runs/{MAIN_RUN} && {_ANALYZE} runs/{MAIN_RUN}"}
#: Runs compared in the category figure when they have been analysed (optional): folder -> label.
COMPARED_RUNS = {MAIN_RUN: "default", "reference-ensemble-s0": "reference (60 ep.)",
                 "default-elbo-s0": "default, ELBO", "reference-elbo-s0": "reference, ELBO"}


def parameter_frame(model, tol: float = 0.0) -> pd.DataFrame:
    """One row per connection: layer, category, pi, m, xi, mean (1 - pi) m, variance (1 - pi)(xi + pi m^2), entropy."""
    from ensemble_nets.analysis import categorize

    labels = categorize(model, tol).labels
    layers = [layer for _, layer in spike_slab_layers(model)]
    frames = []
    for (name, label), layer in zip(labels.items(), layers):
        with torch.no_grad():
            columns = {"pi": layer.pi, "m": layer.m, "xi": layer.xi, "mean": layer.weight,
                       "variance": layer.weight_variance}
            columns["entropy"] = layer.distribution().entropy()
        frame = pd.DataFrame({k: v.detach().flatten().double().cpu().numpy() for k, v in columns.items()})
        frame.insert(0, "category", pd.Categorical([CATEGORIES[i] for i in label.flatten().tolist()],
                                                   categories=list(CATEGORIES)))
        frame.insert(0, "layer", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def plot_parameters(params: pd.DataFrame):
    """Grid layers x (pi, m, xi): histograms stacked by category, log counts."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    layers = list(dict.fromkeys(params["layer"]))
    fig, axes = style.subplots(len(layers), 3, width=2.0, aspect=0.7, squeeze=False)
    for row, layer in enumerate(layers):
        sub = params[params["layer"] == layer]
        for col, name in enumerate(("pi", "m", "xi")):
            ax = axes[row, col]
            sns.histplot(sub, x=name, hue="category", multiple="stack", bins=50, ax=ax, palette=style.CATEGORY_COLORS,
                         hue_order=list(CATEGORIES), legend=(row == 0 and col == 2), linewidth=0)
            ax.set_yscale("log")
            ax.set_xlabel({"pi": r"$\pi$ (absent)", "m": "$m$ (slab mean)", "xi": r"$\Xi$ (slab variance)"}[name])
            ax.set_ylabel(f"{layer}\ncount" if col == 0 else "")
    return fig


def plot_categories(fractions: pd.DataFrame):
    """Bars of category fractions per layer, one panel per run (column ``run``)."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    runs = list(dict.fromkeys(fractions["run"]))
    fig, axes = style.subplots(1, len(runs), width=2.0 if len(runs) > 1 else 1.0, aspect=1.0, squeeze=False,
                               sharey=True)
    for ax, run in zip(axes[0], runs):
        sns.barplot(fractions[fractions["run"] == run], x="layer", y="fraction", hue="category", ax=ax,
                    hue_order=list(CATEGORIES), palette=style.CATEGORY_COLORS, legend=(ax is axes[0, 0]))
        ax.set_title(run)
        ax.set_ylim(0, 1)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].get_legend().remove()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), title="category")
    return fig


def plot_perturbation(curves: pd.DataFrame):
    """Test error against fraction perturbed, one panel per layer; bands: +- 1 std over sampled networks."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    layers = list(dict.fromkeys(curves["layer"]))
    fig, axes = style.subplots(1, len(layers), width=2.0, aspect=0.9, squeeze=False, sharey=True)
    for ax, layer in zip(axes[0], layers):
        sns.lineplot(curves[curves["layer"] == layer], x="fraction", y="error", hue="perturbation", errorbar="sd",
                     marker="o", markersize=3, ax=ax, palette=style.PERTURBATION_COLORS, legend=(ax is axes[0, 0]))
        ax.set_title(layer)
        ax.set_xlabel("fraction perturbed $f$")
        ax.set_ylabel("test error")
    return fig


def plot_entropy(entropy: pd.DataFrame, params: pd.DataFrame):
    """Left: layer means of H = h(pi) + slab part, over all and over variable connections.
    Right: distribution of H over the variable connections of each layer (nats).

    ``params`` needs columns ``layer``, ``category`` and ``entropy`` (see :func:`parameter_frame`).
    Important and unimportant connections have H = 0 exactly (a point mass), so they are left out.
    """
    import seaborn as sns

    from ensemble_nets.plotting import style

    fig, (left, right) = style.subplots(1, 2, width=2.0, aspect=0.75)
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
    return fig


def plot_accuracy(accuracies: pd.Series, summary: dict):
    """Histogram of the sampled networks' accuracies, with the HDI and the ensemble-average accuracy."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    fig, ax = style.subplots(1, 1, width=1.0, aspect=0.8)
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
    return fig


def plot_mean_variance(params: pd.DataFrame):
    """Mean (1 - pi) m against variance (1 - pi)(xi + pi m^2) of every connection, per layer."""
    import seaborn as sns

    from ensemble_nets.plotting import style

    layers = list(dict.fromkeys(params["layer"]))
    fig, axes = style.subplots(1, len(layers), width=2.0, aspect=0.9, squeeze=False)
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
    fig.suptitle("every connection of q: important ones lie on variance = 0, unimportant ones at (0, 0)", fontsize=9)
    return fig


def plot_uncertainty(per_example: pd.DataFrame, calibration: pd.DataFrame, summary: dict):
    """Mutual information on correctly and wrongly classified digits, and the reliability diagram."""
    import numpy as np
    import seaborn as sns

    from ensemble_nets.plotting import style

    fig, (left, right) = style.subplots(1, 2, width=2.0, aspect=0.8)
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
    return fig


def _read_analysis(run: Path) -> dict:
    folder = run / "analysis"
    missing = [n for n in ("summary.json", "categories.csv", "entropy.csv", "perturbation.csv",
                           "ensemble_accuracy.csv", "ensemble_per_example.csv", "calibration.csv")
               if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; make it with {_ANALYZE} {run}")
    tables = {n: pd.read_csv(folder / f"{n}.csv") for n in ("categories", "entropy", "perturbation",
                                                              "ensemble_accuracy", "ensemble_per_example",
                                                              "calibration")}
    tables["summary"] = json.loads((folder / "summary.json").read_text())
    return tables


def make_figures(runs: Path, out: Path) -> list[Path]:
    """The family protocol: read ``runs/MAIN_RUN`` (and any analysed ``COMPARED_RUNS``), write PNG + PDF."""
    from ensemble_nets.plotting import style
    from ensemble_nets.training.runs import load_run

    style.use()
    runs, out = Path(runs), Path(out)
    main = _read_analysis(runs / MAIN_RUN)
    model, _, _ = load_run(runs / MAIN_RUN)
    params = parameter_frame(model, tol=main["summary"]["categories_tol"])
    written = []
    written += style.save(plot_parameters(params), out, "ensemble_parameters")
    compared = [(label, _read_analysis(runs / name)["categories"]) for name, label in COMPARED_RUNS.items()
                if (runs / name / "analysis" / "summary.json").is_file()]
    fractions = pd.concat([table.assign(run=label) for label, table in compared], ignore_index=True)
    written += style.save(plot_categories(fractions), out, "ensemble_categories")
    written += style.save(plot_perturbation(main["perturbation"]), out, "ensemble_perturbation")
    written += style.save(plot_entropy(main["entropy"], params), out, "ensemble_entropy")
    written += style.save(plot_accuracy(main["ensemble_accuracy"]["accuracy"], main["summary"]), out,
                          "ensemble_accuracy")
    written += style.save(plot_mean_variance(params), out, "ensemble_mean_variance")
    written += style.save(plot_uncertainty(main["ensemble_per_example"], main["calibration"], main["summary"]), out,
                          "ensemble_uncertainty")
    return written
