# SPDX-License-Identifier: MIT
"""Connection categories of a trained ensemble (Li & Huang 2020, DESIGN.md section 2).

With ``pi`` the probability that a connection is ABSENT and ``xi`` the slab VARIANCE::

    important     pi == 0 and xi == 0    always present, deterministic weight m
    unimportant   pi == 1                always absent
    variable      everything else        0 < pi < 1 or xi > 0
    inactive      (only with data)       the connection's input is zero on every training example

Any spike-and-slab layer is categorized entry by entry: a linear weight
``(out_features, in_features)`` or a convolution kernel ``(out_channels,
in_channels / groups, *kernel_size)`` (one label per kernel entry, shared by
every position the kernel visits); :func:`filter_table` counts the filters
of a convolution (or the rows of a linear layer) by what they hold.

The reference tests exact equality; the projection after every optimizer step
puts many parameters exactly on the boundary, which makes this meaningful.
A tolerance relaxes the tests: a number ``tol`` reads ``pi <= tol``,
``xi <= tol`` and ``pi >= 1 - tol``; a :class:`~ensemble_nets.analysis.tolerance.Tolerance`
gives the three bounds apart, and :func:`~ensemble_nets.analysis.tolerance.choose_tolerance`
picks them from the data (for ELBO-trained ensembles).

Inactive connections. A connection whose input never moves during training
gets no gradient from the data: its pi, m and xi are what initialization and
weight decay left, and the three-way label says nothing about credit. With
``data`` (training inputs), :func:`categorize` labels ``inactive`` every
connection whose input is exactly zero on every training example: dead
pixels in layer 1, and in deeper layers hidden units whose activation is
exactly zero on every training example. Deeper inputs are computed by a
forward pass of the MEAN network (every spike-and-slab layer in
``eval_mode="mean"``, the model in eval mode: weights ``(1 - pi) m``, no
sampling), the ensemble's deterministic path. A unit dead in the mean network
can still fire in some sampled networks; this choice labels a unit by what
the ensemble does on average, and never labels a first-layer connection by
anything but the pixels themselves.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import checked_layers
from ensemble_nets.analysis.tolerance import Tolerance
from ensemble_nets.layers.spike_slab import spike_slab_layers

__all__ = ["CATEGORIES", "LABELS", "Categories", "categorize", "connection_categories", "filter_table",
           "input_activity"]

#: The three categories of the paper; ``connection_categories`` returns indices into this tuple.
CATEGORIES = ("important", "unimportant", "variable")
#: Every label :func:`categorize` can give: the categories and, with data, ``inactive``.
LABELS = CATEGORIES + ("inactive",)
IMPORTANT, UNIMPORTANT, VARIABLE, INACTIVE = range(4)


@torch.no_grad()
def connection_categories(pi: torch.Tensor, xi: torch.Tensor, *, tol: float | Tolerance | dict = 0.0) -> torch.Tensor:
    """Category index per connection (0 important, 1 unimportant, 2 variable), same shape as ``pi``."""
    bounds = Tolerance.of(tol)
    if pi.shape != xi.shape:
        raise ValueError(f"pi and xi must have the same shape, got {tuple(pi.shape)} and {tuple(xi.shape)}")
    labels = torch.full(pi.shape, VARIABLE, dtype=torch.long, device=pi.device)
    labels[(pi <= bounds.pi_low) & (xi <= bounds.xi)] = IMPORTANT
    labels[pi >= 1.0 - bounds.pi_high] = UNIMPORTANT
    return labels


# -- inactive inputs ------------------------------------------------------------------------------
def _input_batches(data, batch_size: int):
    """Training inputs from a tensor, an ensemble_nets Dataset, ``(x, y)``, or a DataLoader of such batches."""
    if hasattr(data, "x_train"):
        data = data.x_train
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        data = data[0]
    if isinstance(data, torch.Tensor):
        if data.dim() < 2 or data.shape[0] == 0:
            raise ValueError(f"training inputs must have shape (n_examples, ...) with n_examples > 0, "
                             f"got {tuple(data.shape)}")
        yield from data.split(batch_size)
        return
    if not hasattr(data, "__iter__"):
        raise ValueError(f"data must be the training inputs (a tensor), an ensemble_nets Dataset, (x, y) or a "
                         f"DataLoader, got {type(data).__name__}")
    for batch in data:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _n_inputs(layer: nn.Module) -> int:
    """Inputs of a layer: features of a linear layer, input channels of a convolution (all groups)."""
    return getattr(layer, "in_channels", layer.pi.shape[1] * getattr(layer, "groups", 1))


def _activity_shape(layer: nn.Module, active: torch.Tensor) -> torch.Tensor:
    """Per-input activity ``(n_in,)`` broadcast over the connections ``pi.shape``.

    A grouped convolution (``groups = g``) has ``pi`` of shape ``(out, in / g, *kernel)``:
    output channel o reads input channels ``group(o) * in / g + j``, ``group(o) = o // (out / g)``.
    """
    groups = getattr(layer, "groups", 1)
    out, per_group = layer.pi.shape[:2]
    group = torch.arange(out, device=active.device) // (out // groups)  # (out,)
    channel = group[:, None] * per_group + torch.arange(per_group, device=active.device)  # (out, in / g)
    return active[channel].reshape(out, per_group, *([1] * (layer.pi.dim() - 2))).expand_as(layer.pi)


@torch.no_grad()
def input_activity(model: nn.Module, data, *, batch_size: int = 10_000) -> dict[str, torch.Tensor]:
    """``{layer: a}``: per input of every spike-and-slab layer, the fraction of training examples where it is nonzero.

    ``a`` has shape ``(n_in,)``: the input features of a linear layer; for a
    convolution its input channels (all groups), an example counting as active
    when the channel is nonzero anywhere in its map. Layer 1 reads the inputs
    themselves; deeper layers read the MEAN network's activations (see the
    module docstring). ``a == 0`` marks an inactive input; for a convolution
    every kernel entry reading an inactive channel is inactive (a channel that
    is zero at some positions only still carries signal through the entries
    that meet its nonzero pixels, so no entry is labelled inactive by position).

    :param data: training inputs shaped as the model takes them (``(n, n_features)`` for an MLP,
        ``(n, C, H, W)`` for a CNN), an ensemble_nets Dataset (its training split),
        ``(x, y)``, or a DataLoader yielding ``x`` or ``(x, y)``.
    """
    layers = checked_layers(model)
    work = copy.deepcopy(model).eval()
    work_layers = [layer for _, layer in spike_slab_layers(work)]
    for layer in work_layers:
        if hasattr(layer, "eval_mode"):
            layer.eval_mode = "mean"
    counts: list[torch.Tensor | None] = [None] * len(work_layers)
    seen = 0

    def hook(index):
        def record(module, inputs):
            x = inputs[0]
            n_in = _n_inputs(module)
            if module.pi.dim() == 2:
                nonzero = (x != 0).reshape(-1, x.shape[-1])  # (examples, n_in)
            elif x.dim() >= 3 and x.shape[1] == n_in:
                nonzero = (x != 0).flatten(2).any(-1)  # (examples, channels): active anywhere in the image
            else:
                raise ValueError(f"{type(module).__name__} with {n_in} input channels got inputs "
                                 f"{tuple(x.shape)}; a convolution needs (N, {n_in}, ...) batches: pass the "
                                 f"training images as the model takes them (shape=\"image\")")
            total = nonzero.sum(0, dtype=torch.long)
            counts[index] = total if counts[index] is None else counts[index] + total
        return record

    handles = [layer.register_forward_pre_hook(hook(i)) for i, layer in enumerate(work_layers)]
    first = work_layers[0]
    n_features = getattr(first, "in_features", first.pi.shape[1])
    try:
        for x in _input_batches(data, batch_size):
            if first.pi.dim() == 2 and x.shape[-1] != n_features:
                raise ValueError(f"data has {x.shape[-1]} features per example but the model's first layer takes "
                                 f"{n_features}; pass the training inputs of the data set the model was trained "
                                 f"on, shaped (n_examples, {n_features}) (flatten images first)")
            try:
                work(x.to(device=first.pi.device, dtype=first.pi.dtype))
            except RuntimeError as err:
                raise ValueError(f"data of shape {tuple(x.shape)} does not fit {type(model).__name__} ({err}); "
                                 f"pass the training inputs of the data set the model was trained on") from err
            seen += x.shape[0] if first.pi.dim() > 2 else x.reshape(-1, x.shape[-1]).shape[0]
    finally:
        for handle in handles:
            handle.remove()
    if seen == 0:
        raise ValueError("data holds no training examples; pass the training inputs the model was trained on")
    return {f"layer{i}": (count.double() / seen).cpu() for i, count in enumerate(counts, start=1)}


# -- the table ----------------------------------------------------------------------------------
@dataclass
class Categories:
    """Labels per connection and the per-layer table of counts and fractions.

    ``table`` columns: ``layer``, ``module``, ``category``, ``count``, ``fraction``
    (among all connections of the layer) and, with data, ``fraction_active``
    (the three categories among the layer's active connections; NaN on the
    ``inactive`` row).
    """

    labels: dict[str, torch.Tensor]  # layer name -> category indices into LABELS, shaped like pi
    table: pd.DataFrame
    tol: Tolerance
    active: dict[str, torch.Tensor] | None = None  # layer name -> bool, shaped like pi (None without data)
    base_labels: dict[str, torch.Tensor] | None = None  # three-way labels, ignoring activity

    def fractions(self, *, among: str = "all") -> dict[str, dict[str, float]]:
        """``{layer: {category: fraction}}``, JSON-ready; ``among="active"`` for the active connections only."""
        if among == "all":
            column = "fraction"
        elif among == "active":
            if self.active is None:
                raise RuntimeError("fractions among active connections need data: categorize(model, data=x_train)")
            column = "fraction_active"
        else:
            raise ValueError(f"among must be 'all' or 'active', got {among!r}")
        table = self.table if among == "all" else self.table[self.table["category"] != "inactive"]
        return {layer: dict(zip(group["category"], group[column].astype(float)))
                for layer, group in table.groupby("layer", sort=False)}

    def inactive_breakdown(self) -> pd.DataFrame:
        """What the three-way labels call the inactive connections: ``layer``, ``category``, ``count``,
        ``fraction_of_category`` (share of that category, over all connections, that is inactive)."""
        if self.active is None:
            raise RuntimeError("the inactive connections are known only with data: categorize(model, data=x_train)")
        rows = []
        for layer, base in self.base_labels.items():
            inactive = ~self.active[layer]
            for index, category in enumerate(CATEGORIES):
                in_category = base == index
                count = int((in_category & inactive).sum())
                total = int(in_category.sum())
                rows.append({"layer": layer, "category": category, "count": count,
                             "fraction_of_category": count / total if total else float("nan")})
        return pd.DataFrame(rows)


def categorize(model: nn.Module, *, tol: float | Tolerance | dict = 0.0, data=None,
               batch_size: int = 10_000) -> Categories:
    """Categories of every spike-and-slab layer of ``model`` (a layer or a whole network).

    Layers are named ``layer1``, ``layer2``, ... from input to output; the table's
    ``module`` column gives the module name inside ``model``.

    :param tol: a number (all three bounds), a :class:`Tolerance` (see :func:`choose_tolerance`) or its dict.
    :param data: training inputs (tensor ``(n, ...)`` shaped as the model takes them, Dataset, ``(x, y)``
        or DataLoader);
        when given, connections whose input is zero on every example are labelled ``inactive``
        (see the module docstring) and the table gives fractions among active connections too.
    """
    bounds = Tolerance.of(tol)
    layers = checked_layers(model)
    activity = input_activity(model, data, batch_size=batch_size) if data is not None else None
    labels, base_labels, active, rows = {}, {}, {}, []
    for index, (module_name, layer) in enumerate(layers, start=1):
        name = f"layer{index}"
        base = connection_categories(layer.pi.detach(), layer.xi.detach(), tol=bounds)
        label = base.clone()
        if activity is not None:
            active[name] = _activity_shape(layer, activity[name].to(base.device) > 0)
            label[~active[name]] = INACTIVE
            base_labels[name] = base
        labels[name] = label
        names = LABELS if activity is not None else CATEGORIES
        counts = torch.bincount(label.flatten(), minlength=len(names)).tolist()
        total = label.numel()
        n_active = total - (counts[INACTIVE] if activity is not None else 0)
        for category, count in zip(names, counts):
            row = {"layer": name, "module": module_name, "category": category, "count": count,
                   "fraction": count / total}
            if activity is not None:
                row["fraction_active"] = (count / n_active if n_active and category != "inactive"
                                          else float("nan"))
            rows.append(row)
    return Categories(labels=labels, table=pd.DataFrame(rows), tol=bounds,
                      active=active if activity is not None else None,
                      base_labels=base_labels if activity is not None else None)


def filter_table(categories: Categories) -> pd.DataFrame:
    """Per layer, how many filters (output channels of a convolution, rows of a linear layer) hold what.

    A filter is the slice ``labels[o]``: all the kernel entries (or weights) feeding output o.
    Columns: ``layer``, ``n_filters``, ``n_entries`` (entries per filter), ``wholly_unimportant``
    (every entry unimportant: output o is identically zero, the bias aside, so the filter and the
    next layer's connections reading it can be pruned), ``prunable`` (every entry unimportant or
    inactive; equals ``wholly_unimportant`` without data), ``wholly_important`` (a deterministic
    filter), ``any_important`` and ``wholly_variable``.

    :param categories: the result of :func:`categorize`.
    """
    rows = []
    for name, labels in categories.labels.items():
        flat = labels.reshape(labels.shape[0], -1)  # (filters, entries per filter)
        rows.append({"layer": name, "n_filters": flat.shape[0], "n_entries": flat.shape[1],
                     "wholly_unimportant": int((flat == UNIMPORTANT).all(1).sum()),
                     "prunable": int(((flat == UNIMPORTANT) | (flat == INACTIVE)).all(1).sum()),
                     "wholly_important": int((flat == IMPORTANT).all(1).sum()),
                     "any_important": int((flat == IMPORTANT).any(1).sum()),
                     "wholly_variable": int((flat == VARIABLE).all(1).sum())})
    return pd.DataFrame(rows)
