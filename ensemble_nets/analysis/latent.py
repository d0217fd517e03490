# SPDX-License-Identifier: MIT
"""Latent space of a trained network: dimension and class disentanglement per neuron layer.

For the representation ``h`` of neuron layer l (inputs, the hidden layers after
their nonlinearity, the output logits) over a set of examples, with
``lambda_i`` the eigenvalues of its covariance::

    participation ratio   D_PR = (sum_i lambda_i)^2 / sum_i lambda_i^2      (1 <= D_PR <= N_l)

and, with ``U_c`` an orthonormal basis of the top-``n_components`` principal
directions of class c's representations, the class-subspace overlap::

    overlap = mean over class pairs c < c' of mean_i cos(theta_i(c, c')),
    cos(theta_i) = singular values of U_c^T U_c'          (1: same subspace, 0: orthogonal)

Any LayerStack model (MLP, MDL, ensemble: its deterministic mean network) or
plain ``nn.Sequential`` works.
"""
from __future__ import annotations

import itertools

import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import keeps_global_rng, test_tensors
from ensemble_nets.analysis.modes import plain_network

__all__ = ["class_subspace_overlap", "latent_table", "layer_representations", "participation_ratio"]


def participation_ratio(h: torch.Tensor) -> float:
    """``(sum lambda)^2 / sum lambda^2`` of the covariance of ``h`` (examples x features); 0 for constant h."""
    if h.dim() != 2 or h.shape[0] < 2:
        raise ValueError(f"h must be (examples, features) with at least 2 examples, got {tuple(h.shape)}")
    h = h.double() - h.double().mean(0)
    s2 = torch.linalg.svdvals(h) ** 2  # eigenvalues of the covariance, up to 1/(n-1)
    total = (s2 ** 2).sum()
    return float(s2.sum() ** 2 / total) if total > 0 else 0.0


def _basis(h: torch.Tensor, n_components: int) -> torch.Tensor:
    h = h.double() - h.double().mean(0)
    _, _, vh = torch.linalg.svd(h, full_matrices=False)
    return vh[:n_components].T  # (features, d)


def class_subspace_overlap(h: torch.Tensor, y: torch.Tensor, *, n_components: int = 5) -> float:
    """Mean cosine of the principal angles between the per-class PCA subspaces, averaged over class pairs."""
    if not (isinstance(n_components, int) and n_components >= 1):
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    classes = [c for c in torch.unique(y).tolist() if int((y == c).sum()) > n_components]
    if len(classes) < 2:
        raise ValueError(f"need at least two classes with more than n_components={n_components} examples")
    d = min(n_components, h.shape[1])
    bases = {c: _basis(h[y == c], d) for c in classes}
    cosines = [torch.linalg.svdvals(bases[a].T @ bases[b]).clamp(max=1.0).mean().item()
               for a, b in itertools.combinations(classes, 2)]
    return float(sum(cosines) / len(cosines))


@torch.no_grad()
def layer_representations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """``[inputs, hidden_1, ..., hidden_{L-1}, logits]``: each neuron layer's activity on ``x``."""
    net = plain_network(model)
    reps, h = [x], x
    modules = list(net)
    for i, module in enumerate(modules):
        h = module(h)
        is_last = i == len(modules) - 1
        next_is_linear = not is_last and isinstance(modules[i + 1], nn.Linear)
        if is_last or (not isinstance(module, nn.Linear) and next_is_linear):
            reps.append(h)
    return reps


@keeps_global_rng
@torch.no_grad()
def latent_table(model: nn.Module, data, *, n_examples: int = 2000, n_components: int = 5) -> pd.DataFrame:
    """Per neuron layer: width, participation-ratio dimension and class-subspace overlap.

    :param data: a Dataset (its test split) or ``(x, y)``; the first ``n_examples`` are used.
    :returns: rows ``layer`` (0 = input, L = logits), ``kind`` (input/hidden/output), ``width``,
        ``pr_dimension``, ``pr_fraction`` (D_PR / width), ``class_overlap``.
    """
    x, y = test_tensors(data)
    x, y = x[:n_examples], y[:n_examples]
    reps = layer_representations(model, x)
    rows = []
    for l, h in enumerate(reps):
        kind = "input" if l == 0 else "output" if l == len(reps) - 1 else "hidden"
        pr = participation_ratio(h)
        rows.append({"layer": l, "kind": kind, "width": h.shape[1], "pr_dimension": pr,
                     "pr_fraction": pr / h.shape[1],
                     "class_overlap": class_subspace_overlap(h, y, n_components=n_components)})
    return pd.DataFrame(rows)
