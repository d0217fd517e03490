# SPDX-License-Identifier: MIT
"""Full-batch gradient descent for gated deep linear networks (DESIGN.md 4.3: SGD, lr 0.02, 500 epochs)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ensemble_nets.layers.gated import GatedDeepLinearNetwork, gdln_loss

__all__ = ["train_gdln"]


def train_gdln(net: GatedDeepLinearNetwork, batch, *, lr: float = 0.02, n_epochs: int = 500,
               record: Callable[[int, GatedDeepLinearNetwork], dict] | None = None,
               record_every: int = 1) -> list[dict]:
    """Plain full-batch SGD ``W <- W - lr dL/dW`` on :func:`~ensemble_nets.layers.gated.gdln_loss`.

    ``batch`` has ``inputs``, ``targets`` and ``node_gates`` (e.g. a
    :class:`~ensemble_nets.data.routing.RoutingBatch`). Returns one row per
    recorded epoch (0 = before training): ``epoch``, ``train_loss`` and what
    ``record(epoch, net)`` adds. Raises ``FloatingPointError`` if the loss diverges.
    """
    if not lr > 0 or n_epochs < 0 or record_every < 1:
        raise ValueError(f"need lr > 0, n_epochs >= 0, record_every >= 1; got {lr}, {n_epochs}, {record_every}")
    rows = []
    for epoch in range(n_epochs + 1):
        net.zero_grad(set_to_none=True)
        loss = gdln_loss(net(batch.inputs, batch.node_gates), batch.targets, batch.node_gates)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}; lower lr={lr} or the init gain")
        if epoch % record_every == 0 or epoch == n_epochs:
            row = {"epoch": epoch, "train_loss": loss.item()}
            if record is not None:
                row.update(record(epoch, net))
            rows.append(row)
        if epoch == n_epochs:
            break
        loss.backward()
        with torch.no_grad():
            for w in net.parameters():
                w -= lr * w.grad
    return rows
