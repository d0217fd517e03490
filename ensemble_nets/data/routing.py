# SPDX-License-Identifier: MIT
"""The routing task of Saxe, Sodhani & Lewallen (ICML 2022, arXiv 2207.10430; DESIGN.md 4.3).

``M`` input domains and ``M`` output domains. Each input domain holds the
same ``n_items = 4`` one-hot items; each output domain has 7 features
arranged as a two-level hierarchy over the items (root, two branches, four
leaves) with feature magnitudes ``(6, 4, 3)``::

    Y = [ 6 6 6 6 ]   root
        [ 4 4 0 0 ]   branch 1
        [ 0 0 4 4 ]   branch 2
        [ 3 0 0 0 ]   leaves
        [ 0 3 0 0 ]
        [ 0 0 3 0 ]
        [ 0 0 0 3 ]                      shape (7, 4), column i = target of item i

Construction of the singular values: the one-hot items give ``X = I_4``, and
the input-output correlation of one domain pair, summed over its items, is
``Sigma_yx = Y X^T = Y``. ``Y^T Y = 36 J_4 + 16 blockdiag(J_2, J_2) + 9 I_4``
(``J`` all-ones) has eigenvalues ``4*36 + 2*16 + 9 = 185`` (all-ones vector),
``2*16 + 9 = 41`` (branch contrast) and ``9`` twice (within-branch
contrasts), so the singular values are ``sqrt(185) = 13.60``,
``sqrt(41) = 6.40``, ``3``, ``3``, as DESIGN.md requires. Every domain pair
shares this ``Sigma_yx`` (same items, same hierarchy).

Training pairs are cyclic: input domain ``m`` trains output domains
``m, m+1, ..., m+K-1 (mod M)``, so every output domain is also trained from
exactly ``K`` inputs (the design that makes the aligned network decouple into
the scalar ODE of :mod:`ensemble_nets.analysis.theory.gdln`). The other
``M (M - K)`` pairs are held out for zero-shot testing.

A batch is one example per (input domain, item): ``P = M n_items`` examples.
Example ``(m, i)`` switches on input node ``in{m}`` and the output nodes of
the chosen pairs of ``m``; its target on every output node is column ``i`` of
``Y``. Node names match :func:`ensemble_nets.models.routing.routing_network`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["REFERENCE_SINGULAR_VALUES", "RoutingBatch", "RoutingTask", "hierarchical_targets", "routing_batch",
           "split_pairs"]

#: Singular values of the per-pair Sigma_yx that DESIGN.md 4.3 prescribes.
REFERENCE_SINGULAR_VALUES = (13.60, 6.40, 3.0, 3.0)


def hierarchical_targets(scales: tuple[float, float, float] = (6.0, 4.0, 3.0), *,
                         dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``(7, 4)`` target matrix ``Y`` (column ``i`` = target of item ``i``) with root, branch, leaf scales."""
    if len(scales) != 3 or min(scales) <= 0:
        raise ValueError(f"scales={scales!r} must be three positive numbers (root, branch, leaf)")
    root, branch, leaf = scales
    y = torch.zeros(7, 4, dtype=dtype)
    y[0] = root
    y[1, :2] = branch
    y[2, 2:] = branch
    y[3:] = leaf * torch.eye(4, dtype=dtype)
    return y


@dataclass(frozen=True)
class RoutingTask:
    """``n_domains`` (M) input and output domains; each input trains ``n_trained`` (K) output domains."""

    n_domains: int = 7
    n_trained: int = 4
    scales: tuple[float, float, float] = (6.0, 4.0, 3.0)
    n_items: int = field(default=4, init=False)
    n_features: int = field(default=7, init=False)

    def __post_init__(self):
        if self.n_domains < 1:
            raise ValueError(f"n_domains={self.n_domains} must be a positive integer (DESIGN.md: 7)")
        if not 1 <= self.n_trained <= self.n_domains:
            raise ValueError(f"n_trained={self.n_trained} must lie in [1, n_domains={self.n_domains}] "
                             "(DESIGN.md: 4)")

    @property
    def targets(self) -> Tensor:
        """``Y``, shape (7, 4)."""
        return hierarchical_targets(self.scales)

    @property
    def sigma_yx(self) -> Tensor:
        """Per-pair input-output correlation ``Sigma_yx = Y X^T`` summed over the items, shape (7, 4)."""
        return self.targets @ torch.eye(self.n_items, dtype=torch.float64)

    def svd(self) -> tuple[Tensor, Tensor, Tensor]:
        """``U (7, 4), s (4,), V (4, 4)`` with ``Sigma_yx = U diag(s) V^T``."""
        u, s, vh = torch.linalg.svd(self.sigma_yx, full_matrices=False)
        return u, s, vh.T

    def trained_pairs(self) -> list[tuple[int, int]]:
        """(input, output) domain pairs seen in training: ``n = m + j mod M``, ``j < K``."""
        return [(m, (m + j) % self.n_domains) for m in range(self.n_domains) for j in range(self.n_trained)]

    def held_out_pairs(self) -> list[tuple[int, int]]:
        """Pairs never trained, used to measure zero-shot generalisation."""
        trained = set(self.trained_pairs())
        return [(m, n) for m in range(self.n_domains) for n in range(self.n_domains) if (m, n) not in trained]


@dataclass
class RoutingBatch:
    """Inputs, targets and gates in the form :class:`~ensemble_nets.layers.gated.GatedDeepLinearNetwork` takes."""

    inputs: dict[str, Tensor]      # in{m}: (P, 4)
    targets: dict[str, Tensor]     # out{n}: (P, 7)
    node_gates: dict[str, Tensor]  # in{m}, out{n}: (P,)
    domain: Tensor                 # (P,) input domain of each example
    item: Tensor                   # (P,) item index of each example


def split_pairs(task, split: str) -> list[tuple[int, int]]:
    """The (input, output) domain pairs that are on in ``split``: "train" the trained pairs, "test" the held-out ones.

    ``task`` is any task with ``trained_pairs()`` and ``held_out_pairs()`` (:class:`RoutingTask`,
    :class:`~ensemble_nets.data.domains.PermutedDomains`).
    """
    if split == "train":
        return task.trained_pairs()
    if split == "test":
        return task.held_out_pairs()
    raise ValueError(f"split={split!r}; use 'train' or 'test'")


def routing_batch(task: RoutingTask, split: str = "train", *, dtype: torch.dtype = torch.float32) -> RoutingBatch:
    """The full batch of ``split`` ("train": trained pairs on; "test": held-out pairs on)."""
    pairs = split_pairs(task, split)
    m_dom, n_items = task.n_domains, task.n_items
    domain = torch.arange(m_dom).repeat_interleave(n_items)  # (P,)
    item = torch.arange(n_items).repeat(m_dom)                # (P,)
    eye = torch.eye(n_items, dtype=dtype)
    y = task.targets.to(dtype).T[item]                        # (P, 7)
    inputs, targets, gates = {}, {}, {}
    for m in range(m_dom):
        on = (domain == m).to(dtype)
        inputs[f"in{m}"] = on[:, None] * eye[item]
        gates[f"in{m}"] = on
    for n in range(m_dom):
        sources = torch.tensor([m for m, n2 in pairs if n2 == n], dtype=torch.long)
        gates[f"out{n}"] = torch.isin(domain, sources).to(dtype)
        targets[f"out{n}"] = y
    return RoutingBatch(inputs, targets, gates, domain, item)
