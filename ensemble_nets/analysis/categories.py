# SPDX-License-Identifier: MIT
"""Connection categories of a trained ensemble (Li & Huang 2020, DESIGN.md section 2).

With ``pi`` the probability that a connection is ABSENT and ``xi`` the slab VARIANCE::

    important     pi == 0 and xi == 0    always present, deterministic weight m
    unimportant   pi == 1                always absent
    variable      everything else        0 < pi < 1 or xi > 0

The reference tests exact equality; the projection after every optimizer step
puts many parameters exactly on the boundary, which makes this meaningful.
``tol`` relaxes the tests to ``pi <= tol``, ``xi <= tol`` and ``pi >= 1 - tol``.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ensemble_nets.layers.spike_slab import spike_slab_layers

__all__ = ["CATEGORIES", "Categories", "categorize", "connection_categories"]

#: Category names; ``connection_categories`` returns indices into this tuple.
CATEGORIES = ("important", "unimportant", "variable")
IMPORTANT, UNIMPORTANT, VARIABLE = range(3)


@torch.no_grad()
def connection_categories(pi: torch.Tensor, xi: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """Category index per connection (0 important, 1 unimportant, 2 variable), same shape as ``pi``."""
    if not 0.0 <= tol < 0.5:
        raise ValueError(f"tol must lie in [0, 0.5), got {tol}")
    if pi.shape != xi.shape:
        raise ValueError(f"pi and xi must have the same shape, got {tuple(pi.shape)} and {tuple(xi.shape)}")
    labels = torch.full(pi.shape, VARIABLE, dtype=torch.long, device=pi.device)
    labels[(pi <= tol) & (xi <= tol)] = IMPORTANT
    labels[pi >= 1.0 - tol] = UNIMPORTANT
    return labels


@dataclass
class Categories:
    """Labels per connection and the per-layer table of counts and fractions."""

    labels: dict[str, torch.Tensor]  # layer name -> (out_features, in_features) category indices
    table: pd.DataFrame  # columns: layer, module, category, count, fraction

    def fractions(self) -> dict[str, dict[str, float]]:
        """``{layer: {category: fraction}}``, JSON-ready."""
        return {layer: dict(zip(group["category"], group["fraction"].astype(float)))
                for layer, group in self.table.groupby("layer", sort=False)}


def categorize(model: nn.Module, tol: float = 0.0) -> Categories:
    """Categories of every spike-and-slab layer of ``model`` (a layer or a whole network).

    Layers are named ``layer1``, ``layer2``, ... from input to output; the table's
    ``module`` column gives the module name inside ``model``.
    """
    layers = spike_slab_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no spike-and-slab layers (parameters pi and xi) to categorize")
    labels, rows = {}, []
    for index, (module_name, layer) in enumerate(layers, start=1):
        name = f"layer{index}"
        labels[name] = connection_categories(layer.pi.detach(), layer.xi.detach(), tol)
        counts = torch.bincount(labels[name].flatten(), minlength=len(CATEGORIES)).tolist()
        total = labels[name].numel()
        rows += [{"layer": name, "module": module_name, "category": c, "count": n, "fraction": n / total}
                 for c, n in zip(CATEGORIES, counts)]
    return Categories(labels=labels, table=pd.DataFrame(rows))
