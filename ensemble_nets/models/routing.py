# SPDX-License-Identifier: MIT
"""The routing network of DESIGN.md 4.3: a gated deep linear network over M domains.

Nodes and edges (names shared with :mod:`ensemble_nets.data.routing`)::

    in{m} (4) --enc{m}--> enc (64) --hid--> hid (64) --dec{n}--> out{n} (7)

``M`` encoders ``W_enc^m (64, 4)``, one shared hidden layer ``W_hid (64, 64)``,
``M`` decoders ``W_dec^n (7, 64)``; the data gates switch on one encoder and
the decoders of the trained (or held-out) pairs of each example.

Initialisations (``init=``):

* ``"orthogonal"``: ``torch.nn.init.orthogonal_`` with ``gain`` on every
  weight (the reference, gain 0.2 = small, rich regime; gain 2.5 = large).
* ``"aligned"``: the decoupled initialisation of the reduction. With the task
  SVD ``Sigma_yx = U diag(s) V^T`` and random orthogonal ``R_a, R_b (64, 64)``::

      W_enc^m = g R_a[:, :r] V^T,  W_hid = g R_b R_a^T,  W_dec^n = g U R_b[:, :r]^T

  so every pathway is ``g^3 U V^T`` and each singular mode evolves by the
  scalar ODE of :mod:`ensemble_nets.analysis.theory.gdln` (``r = 4`` modes).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ensemble_nets.data.routing import RoutingTask
from ensemble_nets.layers.gated import GatedDeepLinearNetwork

__all__ = ["INITS", "hidden_representations", "routing_network"]

INITS = ("orthogonal", "aligned")


def _orthogonal(n_rows: int, n_cols: int, gain: float, generator: torch.Generator, dtype) -> Tensor:
    a = torch.randn(max(n_rows, n_cols), min(n_rows, n_cols), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # Haar-distributed
    q = q if n_rows >= n_cols else q.T     # (n_rows, n_cols), orthonormal columns or rows
    return (gain * q).to(dtype)


def routing_network(task: RoutingTask, *, hidden: int = 64, gain: float = 0.2, init: str = "orthogonal",
                    seed: int = 0, dtype: torch.dtype = torch.float32) -> GatedDeepLinearNetwork:
    """The routing GDLN for ``task`` with ``hidden`` units, initialised by ``init`` at scale ``gain``."""
    if hidden < task.n_items:
        raise ValueError(f"hidden={hidden} must be >= n_items={task.n_items} to carry every singular mode")
    if not gain > 0:
        raise ValueError(f"gain={gain} must be positive (DESIGN.md: 0.2 small, up to 2.5 large)")
    m_dom = task.n_domains
    nodes = {**{f"in{m}": task.n_items for m in range(m_dom)}, "enc": hidden, "hid": hidden,
             **{f"out{n}": task.n_features for n in range(m_dom)}}
    edges = ([(f"enc{m}", f"in{m}", "enc") for m in range(m_dom)] + [("hid", "enc", "hid")]
             + [(f"dec{n}", "hid", f"out{n}") for n in range(m_dom)])
    net = GatedDeepLinearNetwork(nodes, edges, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if init == "orthogonal":
            for name, w in net.weights.items():
                w.copy_(_orthogonal(*w.shape, gain, gen, dtype))
        elif init == "aligned":
            u, s, v = task.svd()
            r = s.shape[0]
            r_a = _orthogonal(hidden, hidden, 1.0, gen, torch.float64)
            r_b = _orthogonal(hidden, hidden, 1.0, gen, torch.float64)
            for m in range(m_dom):
                net.weights[f"enc{m}"].copy_(gain * r_a[:, :r] @ v.T)
            net.weights["hid"].copy_(gain * r_b @ r_a.T)
            for n in range(m_dom):
                net.weights[f"dec{n}"].copy_(gain * u @ r_b[:, :r].T)
        else:
            raise ValueError(f"init={init!r}; use one of {INITS}")
    return net


def hidden_representations(net: GatedDeepLinearNetwork, task: RoutingTask) -> Tensor:
    """Hidden-layer activity ``W_hid W_enc^m x_i`` for every (domain m, item i), shape (M * 4, hidden)."""
    with torch.no_grad():
        rows = [net.weight("hid") @ net.weight(f"enc{m}") for m in range(task.n_domains)]  # (hidden, 4) each
        return torch.cat([r.T for r in rows], dim=0)  # row m * 4 + i = item i of domain m
