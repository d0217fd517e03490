# SPDX-License-Identifier: MIT
"""Connection categories versus modes: does the ensemble's credit assignment match the leading modes?

For every layer of a trained ensemble, with categories from
:func:`~ensemble_nets.analysis.categorize` (``pi`` the probability a connection
is ABSENT, ``xi`` the slab VARIANCE) and the modes of its mean weight
``W = (1 - pi) m`` (SVD ``W = sum_mu s_mu u_mu v_mu^T``), the rank-k
reconstruction ``W_k = sum_{mu <= k} s_mu u_mu v_mu^T`` is compared with the
categories in four ways:

mass
    ``mass_share(c, k) = sum_{ij in c} (W_k)_ij^2 / sum_{ij in c} W_ij^2``: the
    share of category c's weight mass the top-k modes carry (NaN where the
    category has no mass: unimportant connections have mean weight 0), and
    ``reconstruction_fraction(c, k) = sum_{ij in c} (W_k)_ij^2 / ||W_k||^2``, where
    the top-k modes put their mass, next to ``connection_fraction(c)``.
auc
    ROC AUC of the mode importance score ``|W_k|_ij`` for separating category
    ``positive`` from ``negative`` (0.5 = chance; rank-based, ties averaged).
    Caveat: at full rank ``|W_k| = |W|``, and unimportant connections have
    ``W = 0`` exactly, so important-vs-unimportant is trivially near 1 at large k;
    small k and important-vs-variable are the informative entries.
neurons
    Jaccard overlap of the top ``top_fraction`` neurons by number of important
    connections and by leading-mode loading (norm of the neuron's row (output
    side) or column (input side) of ``W_k``), with the chance level
    ``q / (2 - q)``, and the Spearman correlation of the two per-neuron numbers.
accuracy
    Test accuracy of the mean network keeping, in one layer, only the top-k
    modes (``n_numbers = k (n_in + n_out + 1)``), only the important connections,
    or the important and variable ones (equal to the intact mean network, whose
    unimportant weights are 0), with ``n_numbers`` the connections kept.

An MDL network trained on the same data has its own hidden units (any
permutation of them is equivalent), so only the input pixels are comparable:
``pixels`` holds the overlap between pixels rich in important first-layer
connections of the ensemble and pixels with large leading-mode input loadings
of the MDL network (modes ranked by tau).

With ``train_data`` (training inputs), connections whose input is zero on every
training example are labelled ``inactive`` (see :func:`categorize`): they get
their own rows in ``mass``, leave both sides of every AUC (``rest`` means the
active connections that are not ``positive``) and count as neither important
nor anything else in the neuron and pixel overlaps.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import keeps_global_rng, named_layers, test_tensors
from ensemble_nets.analysis.categories import (
    CATEGORIES, IMPORTANT, INACTIVE, LABELS, UNIMPORTANT, Tolerance, categorize,
)
from ensemble_nets.analysis.modes import accuracy_vs_leading_modes, layer_factors, mode_spectrum, plain_network
from ensemble_nets.training.evaluate import accuracy

__all__ = ["AUC_PAIRS", "CategoryModeComparison", "compare_categories_modes", "rank_auc"]

#: (positive, negative) category pairs scored by ROC AUC; "rest" = every other category.
AUC_PAIRS = (("important", "unimportant"), ("important", "variable"), ("important", "rest"))


@dataclass
class CategoryModeComparison:
    """Tidy tables of :func:`compare_categories_modes` (one concern each)."""

    mass: pd.DataFrame  # layer, k, category, connection_fraction, mass_share, reconstruction_fraction
    auc: pd.DataFrame  # layer, k, positive, negative, auc
    neurons: pd.DataFrame  # layer, side, k, top_fraction, jaccard, chance, spearman
    accuracy: pd.DataFrame  # layer, kept, k, n_numbers, accuracy (empty without data)
    pixels: pd.DataFrame  # MDL comparison on the input pixels (empty without mdl_model)


def rank_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """ROC AUC = P(score of a random positive > score of a random negative), ties counted 1/2.

    Mann-Whitney form: ``(R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with
    average ranks for ties. NaN when either class is empty.
    """
    scores = np.asarray(torch.as_tensor(scores).detach().cpu().flatten(), dtype=float)
    positive = np.asarray(torch.as_tensor(positive).detach().cpu().flatten(), dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their average rank (scipy's ``rankdata``, without importing scipy)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation: Pearson correlation of the average ranks (NaN for a constant input)."""
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(_average_ranks(np.asarray(a, float)), _average_ranks(np.asarray(b, float)))[0, 1])


def _top(values: np.ndarray, q: float) -> set:
    n = max(1, int(round(q * len(values))))
    return set(np.argsort(-values, kind="stable")[:n].tolist())


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else float("nan")


def _default_ks(rank: int) -> list[int]:
    return list(range(1, rank + 1))


@keeps_global_rng
@torch.no_grad()
def compare_categories_modes(ensemble_model: nn.Module, data=None, *, mdl_model: nn.Module | None = None,
                             ks: Sequence[int] | None = None, tol: float | Tolerance = 0.0, train_data=None,
                             neuron_k: int = 10, top_fraction: float = 0.2) -> CategoryModeComparison:
    """Compare the ensemble's connection categories with the modes of its mean weight, layer by layer.

    :param ensemble_model: a trained :class:`~ensemble_nets.models.EnsembleMLP`; left untouched.
    :param data: a Dataset or ``(x, y)``; gives the accuracy table (skipped when ``None``).
    :param mdl_model: an MDL network trained on the same data (input-pixel comparison), optional.
    :param ks: numbers of leading modes (default: 1 .. rank of each layer); clipped to the rank.
    :param tol: category tolerance, as in :func:`categorize`.
    :param train_data: training inputs; labels the inactive connections (see the module docstring).
    :param neuron_k: leading modes used for the neuron loadings.
    :param top_fraction: fraction q of neurons called "top" on either side.
    """
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction}")
    if not (isinstance(neuron_k, int) and neuron_k >= 1):
        raise ValueError(f"neuron_k must be a positive integer, got {neuron_k!r}")
    labels = categorize(ensemble_model, tol=tol, data=train_data).labels
    names = LABELS if train_data is not None else CATEGORIES
    layers = named_layers(ensemble_model)
    mass_rows, auc_rows, neuron_rows, acc_rows = [], [], [], []
    for name, layer in layers:
        lab = labels[name]
        weight = layer.weight.detach().double()
        u, s, v = layer_factors(weight)
        rank = len(s)
        layer_ks = sorted({min(int(k), rank) for k in (ks if ks is not None else _default_ks(rank))})
        if any(k < 1 for k in layer_ks):
            raise ValueError(f"ks must be positive integers, got {list(ks)}")
        w2 = weight ** 2
        cumulative = torch.zeros_like(weight)
        done = 0
        for k in layer_ks:
            for mu in range(done, k):  # W_k built incrementally: one rank-one term per mode
                cumulative += s[mu] * torch.outer(u[:, mu], v[:, mu])
            done = k
            wk2 = cumulative ** 2
            total_k = wk2.sum().item()
            for c, cat in enumerate(names):
                mask = lab == c
                base = w2[mask].sum().item()
                mass_rows.append({
                    "layer": name, "k": k, "rank": rank, "category": cat,
                    "connection_fraction": mask.double().mean().item(),
                    "mass_share": wk2[mask].sum().item() / base if base > 0 else float("nan"),
                    "reconstruction_fraction": wk2[mask].sum().item() / total_k if total_k > 0 else float("nan"),
                })
            score = cumulative.abs()
            for pos, neg in AUC_PAIRS:
                pos_mask = lab == CATEGORIES.index(pos)
                neg_mask = (~pos_mask & (lab != INACTIVE)) if neg == "rest" else lab == CATEGORIES.index(neg)
                keep = pos_mask | neg_mask
                auc_rows.append({"layer": name, "k": k, "positive": pos, "negative": neg,
                                 "auc": rank_auc(score[keep], pos_mask[keep])})
        # neuron level: rows are output neurons, columns input neurons
        kn = min(neuron_k, rank)
        wk = (u[:, :kn] * s[:kn]) @ v[:, :kn].T
        important = (lab == IMPORTANT).double()
        for side, dim in (("out", 1), ("in", 0)):
            counts = important.sum(dim=dim).numpy()
            loading = wk.norm(dim=dim).numpy()
            neuron_rows.append({
                "layer": name, "side": side, "k": kn, "top_fraction": top_fraction,
                "jaccard": _jaccard(_top(counts, top_fraction), _top(loading, top_fraction)),
                "chance": top_fraction / (2 - top_fraction), "spearman": _spearman(counts, loading),
            })
    if data is not None:
        acc_rows = _accuracy_rows(ensemble_model, data, labels, layers, ks)
    pixels = _pixel_rows(labels[layers[0][0]], mdl_model, neuron_k, top_fraction) if mdl_model is not None else []
    return CategoryModeComparison(mass=pd.DataFrame(mass_rows), auc=pd.DataFrame(auc_rows),
                                  neurons=pd.DataFrame(neuron_rows), accuracy=pd.DataFrame(acc_rows),
                                  pixels=pd.DataFrame(pixels))


def _accuracy_rows(model: nn.Module, data, labels: dict, layers: list, ks) -> list[dict]:
    x, y = test_tensors(data)
    leading = accuracy_vs_leading_modes(model, (x, y), ks=ks, by="sigma")
    rows = []
    for _, row in leading.iterrows():
        layer = layers[int(row["layer"][5:]) - 1][1]
        rows.append({"layer": row["layer"], "kept": "top_k_modes", "k": int(row["k"]),
                     "n_numbers": int(row["k"]) * (layer.in_features + layer.out_features + 1),
                     "accuracy": row["accuracy"]})
    plain = plain_network(model)
    linears = [m for m in plain if isinstance(m, nn.Linear)]
    for index, (name, _) in enumerate(layers):
        target = linears[index]
        original = target.weight.detach().clone()
        # "important+variable" keeps every connection that is not unimportant (inactive ones too): the intact
        # mean network, whose unimportant weights are 0
        for kept, mask in (("important", labels[name] == IMPORTANT),
                           ("important+variable", labels[name] != UNIMPORTANT)):
            target.weight.copy_(original * mask.to(original))
            rows.append({"layer": name, "kept": kept, "k": None, "n_numbers": int(mask.sum()),
                         "accuracy": accuracy(plain, x, y)[0]})
        target.weight.copy_(original)
        rows.append({"layer": name, "kept": "all", "k": None, "n_numbers": original.numel(),
                     "accuracy": accuracy(plain, x, y)[0]})
    return rows


def _pixel_rows(first_labels: torch.Tensor, mdl_model: nn.Module, neuron_k: int, top_fraction: float) -> list[dict]:
    from ensemble_nets.analysis.modes import weight_layers

    layer = weight_layers(mdl_model)[0]
    if layer.in_features != first_labels.shape[1]:
        raise ValueError(f"mdl_model's input width {layer.in_features} differs from the ensemble's "
                         f"{first_labels.shape[1]}; train both on the same data")
    xi_out, strengths, xi_in = layer_factors(layer)
    spectrum = mode_spectrum(layer)
    top = torch.tensor(spectrum.sort_values("rank_tau")["mode"].to_numpy()[:neuron_k].copy())
    # input loading of pixel j: norm of column j of the rank-k MDL reconstruction
    wk = (xi_out[:, top] * strengths[top]) @ xi_in[:, top].T
    loading = wk.norm(dim=0).double().numpy()
    counts = (first_labels == IMPORTANT).double().sum(dim=0).numpy()
    unimportant = (first_labels == UNIMPORTANT).double().mean(dim=0).numpy()
    return [{"layer": "layer1", "side": "in", "k": len(top), "top_fraction": top_fraction,
             "jaccard": _jaccard(_top(counts, top_fraction), _top(loading, top_fraction)),
             "chance": top_fraction / (2 - top_fraction), "spearman": _spearman(counts, loading),
             "spearman_unimportant": _spearman(unimportant, loading)}]


