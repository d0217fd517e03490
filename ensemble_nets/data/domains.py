# SPDX-License-Identifier: MIT
"""Permuted-domain MNIST: the naturalistic routing task of Saxe, Sodhani & Lewallen (ICML 2022; DESIGN.md 4.3).

``M`` input domains, each a fixed pixel permutation ``sigma_m`` of the images, and ``M`` output
domains, each a fixed class permutation ``tau_n`` of the labels. A pair ``(m, n)`` asks for
``tau_n(y)`` given ``sigma_m(x)``. Input domain ``m`` is trained with the output domains
``m, m+1, ..., m+K-1 (mod M)`` (cyclic, as :class:`ensemble_nets.data.routing.RoutingTask`);
the other ``M (M - K)`` pairs are never trained and measure zero-shot generalisation.

The loss of a linear network depends on the data only through second moments; for budgets,
:func:`domain_statistics` gives them per input domain and per pair (exactly the moments of
:func:`domain_batch`'s gated batch), and :func:`pool_images` shrinks the images first.

A batch holds every image once per input domain (``P = M n`` examples): example ``(m, j)`` is
image ``j`` permuted by ``sigma_m`` on input node ``in{m}``; every output node ``out{n}`` gets the
one-hot target of ``tau_n(y_j)`` and is gated on when ``(m, n)`` is a pair of the split. Node
names match a gated network with nodes ``in{m}``, ``out{n}``
(:class:`~ensemble_nets.layers.gated.GatedDeepLinearNetwork`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ensemble_nets.data.routing import RoutingBatch, split_pairs

__all__ = ["PermutedDomains", "domain_batch", "domain_statistics", "pool_images"]


@dataclass(frozen=True)
class PermutedDomains:
    """``n_domains`` (M) pixel and class permutations; each input domain trains ``n_trained`` (K) outputs.

    Domain 0 is the identity in both (the original digits); the others are drawn from ``seed``.
    """

    n_domains: int = 4
    n_trained: int = 2
    n_pixels: int = 784
    n_classes: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.n_domains < 2:
            raise ValueError(f"n_domains={self.n_domains} must be >= 2 (one trained and one held-out pathway)")
        if not 1 <= self.n_trained < self.n_domains:
            raise ValueError(f"n_trained={self.n_trained} must lie in [1, n_domains - 1 = {self.n_domains - 1}] "
                             "so that some pairs are left for zero-shot testing")

    def permutations(self) -> tuple[Tensor, Tensor]:
        """``(pixel (M, n_pixels), cls (M, n_classes))`` permutations, row 0 the identity."""
        gen = torch.Generator().manual_seed(self.seed)
        pix = [torch.arange(self.n_pixels)] + [torch.randperm(self.n_pixels, generator=gen)
                                               for _ in range(self.n_domains - 1)]
        cls = [torch.arange(self.n_classes)] + [torch.randperm(self.n_classes, generator=gen)
                                                for _ in range(self.n_domains - 1)]
        return torch.stack(pix), torch.stack(cls)

    def trained_pairs(self) -> list[tuple[int, int]]:
        """(input, output) pairs seen in training: ``n = m + j mod M``, ``j < K``."""
        return [(m, (m + j) % self.n_domains) for m in range(self.n_domains) for j in range(self.n_trained)]

    def held_out_pairs(self) -> list[tuple[int, int]]:
        """The ``M (M - K)`` pairs never trained (zero-shot)."""
        trained = set(self.trained_pairs())
        return [(m, n) for m in range(self.n_domains) for n in range(self.n_domains) if (m, n) not in trained]


def domain_batch(task: PermutedDomains, x: Tensor, y: Tensor, split: str = "train") -> RoutingBatch:
    """The gated batch of ``split`` ("train": trained pairs on; "test": held-out pairs on).

    :param x: ``(n, n_pixels)`` images (already centred/scaled as the caller wants).
    :param y: ``(n,)`` integer labels in ``[0, n_classes)``.
    :returns: a :class:`~ensemble_nets.data.routing.RoutingBatch` with ``inputs`` ``in{m}: (P, n_pixels)``,
        ``targets`` ``out{n}: (P, n_classes)`` one-hot of ``tau_n(y)``, ``node_gates``, ``domain`` (input
        domain of each example) and ``item`` (the image index).
    """
    pairs = split_pairs(task, split)
    if x.ndim != 2 or x.shape[1] != task.n_pixels or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, {task.n_pixels}) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
    pix, cls = task.permutations()
    n, m_dom = x.shape[0], task.n_domains
    domain = torch.arange(m_dom).repeat_interleave(n)  # (P,)
    item = torch.arange(n).repeat(m_dom)               # (P,)
    inputs, targets, gates = {}, {}, {}
    for m in range(m_dom):
        on = (domain == m).to(x.dtype)
        inputs[f"in{m}"] = on[:, None] * x[item][:, pix[m]]  # (P, n_pixels), zero outside domain m
        gates[f"in{m}"] = on
    for k in range(m_dom):
        sources = torch.tensor([m for m, n2 in pairs if n2 == k], dtype=torch.long)
        gates[f"out{k}"] = torch.isin(domain, sources).to(x.dtype)
        targets[f"out{k}"] = torch.nn.functional.one_hot(cls[k][y[item]], task.n_classes).to(x.dtype)
    return RoutingBatch(inputs, targets, gates, domain, item)


def pool_images(x: Tensor, size: int = 14) -> Tensor:
    """Average-pool ``(n, 784)`` 28x28 images to ``(n, size * size)`` (``size`` divides 28)."""
    if x.ndim != 2 or x.shape[1] != 784 or 28 % size:
        raise ValueError(f"x must be (n, 784) and size must divide 28, got {tuple(x.shape)} and {size}")
    k = 28 // size
    return x.reshape(-1, size, k, size, k).mean(dim=(2, 4)).reshape(x.shape[0], size * size)  # (n, size^2)


def domain_statistics(task: PermutedDomains, x: Tensor, y: Tensor, split: str = "train") -> dict:
    """Second moments of :func:`domain_batch`'s batch, normalised by its ``P = M n`` examples.

    :returns: ``{"sigma_xx": (M, n_pixels, n_pixels)`` with ``sigma_xx[m] = X_m^T X_m / P``,
        ``"pairs": [(m, n), ...]`` of ``split``, ``"sigma_yx": (n_pairs, n_classes, n_pixels)`` with
        ``Y_n^T X_m / P`` and ``"y_sq": (n_pairs,)`` with ``||Y_n||_F^2 / P}`` (``X_m`` the images permuted by
        ``sigma_m``, ``Y_n`` the one-hot targets of ``tau_n(y)``). The gated squared loss is then
        ``sum_pairs y_sq - 2 tr(W_mn sigma_yx^T) + tr(W_mn sigma_xx[m] W_mn^T)`` with ``W_mn`` the pathway map.
    """
    pairs = task.trained_pairs() if split == "train" else task.held_out_pairs() if split == "test" else None
    if pairs is None:
        raise ValueError(f"split={split!r}; use 'train' or 'test'")
    if x.ndim != 2 or x.shape[1] != task.n_pixels or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, {task.n_pixels}) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
    pix, cls = task.permutations()
    n_examples = task.n_domains * x.shape[0]
    sigma_xx = x.T @ x / n_examples                                          # (n_pixels, n_pixels)
    onehot = torch.nn.functional.one_hot(y, task.n_classes).to(x.dtype)     # (n, n_classes)
    sigma_yx = onehot.T @ x / n_examples                                     # (n_classes, n_pixels)
    inv_cls = torch.argsort(cls, dim=1)  # row c of Y_n^T is row tau_n^{-1}(c) of onehot^T
    return {"sigma_xx": torch.stack([sigma_xx[pix[m]][:, pix[m]] for m in range(task.n_domains)]),
            "pairs": pairs,
            "sigma_yx": torch.stack([sigma_yx[inv_cls[n]][:, pix[m]] for m, n in pairs]),
            "y_sq": torch.full((len(pairs),), x.shape[0] / n_examples, dtype=x.dtype)}
