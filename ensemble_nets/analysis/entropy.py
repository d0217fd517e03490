# SPDX-License-Identifier: MIT
"""Entropy of q per connection, and its layer averages.

With ``pi`` the probability that a connection is ABSENT and ``xi`` the slab
VARIANCE, the entropy of one connection is (:meth:`SpikeSlab.entropy`)::

    H = h(pi) + (1 - pi) * 1/2 log(2 pi e xi),     h(pi) = -pi log pi - (1 - pi) log(1 - pi)

taken with respect to "counting measure at 0 + Lebesgue": the point mass
contributes its Bernoulli entropy h(pi) (in nats, >= 0), the slab its
DIFFERENTIAL entropy, negative when xi < 1/(2 pi e) ~ 0.059, so H can be
negative. A slab with xi = 0 is an atom at m, counted with entropy 0: an
important connection (pi = 0, xi = 0) and an unimportant one (pi = 1) both
have H = 0 exactly, and H jumps at xi = 0 (a narrow slab tends to -inf).
The two parts are reported apart (``spike`` = h(pi), ``slab`` = the rest).

With ``data`` (training inputs, as in :func:`~ensemble_nets.analysis.categorize`),
connections whose input is zero on every training example form their own
group ``inactive`` and leave the three categories; ``active`` averages the
rest. An inactive connection never learned: its entropy is its initial one.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import named_layers
from ensemble_nets.analysis.categories import LABELS, Tolerance, categorize

__all__ = ["connection_entropy", "entropy_table"]


@torch.no_grad()
def connection_entropy(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{layer: H}`` with H shaped like the layer's ``pi`` (``(out_features, in_features)``, or a kernel
    ``(out_channels, in_channels / groups, *kernel_size)``), in nats."""
    return {name: layer.distribution().entropy().detach() for name, layer in named_layers(model)}


@torch.no_grad()
def entropy_table(model: nn.Module, *, tol: float | Tolerance = 0.0, data=None) -> pd.DataFrame:
    """Layer averages of the entropy, over all connections and per category.

    Columns: ``layer``, ``category`` (``"all"``, a name in :data:`CATEGORIES` and,
    with ``data``, ``"active"`` and ``"inactive"``), ``count``, ``entropy_mean``,
    ``entropy_std``, ``spike_mean`` (mean h(pi)), ``slab_mean`` (mean (1 - pi)
    times the slab's differential entropy). Empty groups have ``count`` 0 and
    NaN averages.

    :param tol: category tolerance, as in :func:`~ensemble_nets.analysis.categorize`.
    :param data: training inputs; labels the inactive connections (see ``categorize``).
    """
    categories = categorize(model, tol=tol, data=data)
    names = LABELS if data is not None else LABELS[:-1]
    rows = []
    for name, layer in named_layers(model):
        pi = layer.pi.detach()
        total = layer.distribution().entropy().detach()
        spike = -torch.xlogy(pi, pi) - torch.xlogy(1 - pi, 1 - pi)
        slab = total - spike
        labels = categories.labels[name]
        groups = [("all", torch.ones_like(labels, dtype=torch.bool))]
        if data is not None:
            groups.append(("active", categories.active[name]))
        groups += [(category, labels == index) for index, category in enumerate(names)]
        for category, mask in groups:
            count = int(mask.sum())
            values = total[mask].double()
            rows.append({
                "layer": name, "category": category, "count": count,
                "entropy_mean": values.mean().item() if count else float("nan"),
                "entropy_std": values.std().item() if count > 1 else float("nan"),
                "spike_mean": spike[mask].double().mean().item() if count else float("nan"),
                "slab_mean": slab[mask].double().mean().item() if count else float("nan"),
            })
    return pd.DataFrame(rows)
