# SPDX-License-Identifier: MIT
"""Training objectives: the reference cross-entropy, or the evidence lower bound (ELBO).

The reference (Li & Huang 2020, DESIGN.md section 2) minimizes the
cross-entropy of the noisy mean-field network and has no prior. The Bayesian
alternative minimizes the negative ELBO per training example::

    loss = CE(mean-field network; batch) + kl_weight * KL(q || p0) / n_train
    KL(q || p0) = sum over every connection of spike_slab_kl(pi, m, xi; pi0, 0, xi0)

with the prior p0(w) = pi0 delta(w) + (1 - pi0) Normal(w; 0, xi0) on every
weight (before the 1/sqrt(N_in) factor of the forward, the scale of m).
Scaling the KL by 1/n_train makes the sum over the data set the usual ELBO
(``kl_weight = 1``); ``kl_weight < 1`` tempers the prior, as is common when a
network has far more weights than the data have examples.

The KL is finite only inside the constraint set: its derivative in pi is
infinite at pi in {0, 1}, and a slab with xi = 0 is an atom that the Gaussian
prior slab does not have (KL = +inf). So under the ELBO the projection after
every step keeps ``margin <= pi <= 1 - margin`` and ``xi >= margin``
(:meth:`Elbo.project_`), and the categories of an ELBO-trained ensemble are
read with ``tol = margin`` (``categorize(model, tol=margin)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ensemble_nets.distributions import spike_slab_kl
from ensemble_nets.layers.spike_slab import spike_slab_layers

__all__ = ["OBJECTIVES", "Elbo"]

#: Objectives the trainer knows: the reference cross-entropy, and the ELBO.
OBJECTIVES = ("reference", "elbo")


def _spike_slab_layers(model: nn.Module) -> list[nn.Module]:
    return [module for _, module in spike_slab_layers(model)]


@dataclass
class Elbo:
    """The KL part of the negative ELBO, and the projection that keeps it finite.

    :param n_train: training-set size; the KL is divided by it.
    :param prior_pi: pi0, prior probability that a connection is absent, in (0, 1).
    :param prior_variance: xi0, variance of the prior slab (mean 0), > 0.
    :param margin: pi is kept in [margin, 1 - margin] and xi >= margin, in (0, 0.5).
    :param kl_weight: factor on the KL term (1: the ELBO; < 1 tempers the prior), > 0.
    """

    n_train: int
    prior_pi: float = 0.5
    prior_variance: float = 1.0
    margin: float = 1e-6
    kl_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.kl_weight > 0:
            raise ValueError(f"kl_weight must be > 0, got {self.kl_weight}; use objective='reference' for no prior")
        if self.n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {self.n_train}")
        if not 0.0 < self.prior_pi < 1.0:
            raise ValueError(f"prior_pi must lie strictly inside (0, 1) for a finite KL, got {self.prior_pi}")
        if not self.prior_variance > 0:
            raise ValueError(f"prior_variance must be > 0, got {self.prior_variance}")
        if not 0.0 < self.margin < 0.5:
            raise ValueError(f"margin must lie in (0, 0.5), got {self.margin}; it keeps pi and xi off the "
                             f"boundary where the KL is infinite")

    def kl(self, model: nn.Module) -> torch.Tensor:
        """Total KL(q || p0) over every spike-and-slab connection of ``model`` (a 0-d tensor, differentiable)."""
        layers = _spike_slab_layers(model)
        if not layers:
            raise ValueError(f"{type(model).__name__} has no spike-and-slab layers; the ELBO objective needs an "
                             f"ensemble (--model ensemble)")
        return sum(spike_slab_kl(layer.pi, layer.m, layer.xi, self.prior_pi, 0.0, self.prior_variance).sum()
                   for layer in layers)

    def scaled_kl(self, model: nn.Module) -> torch.Tensor:
        """kl_weight * KL(q || p0) / n_train: the per-example KL term of the loss."""
        return self.kl(model) * (self.kl_weight / self.n_train)

    @torch.no_grad()
    def project_(self, model: nn.Module) -> torch.Tensor:
        """Keep pi in [margin, 1 - margin] and xi >= margin (after the layers' own projection).

        Returns the number of entries moved (a 0-d tensor).
        """
        low, high = self.margin, 1.0 - self.margin
        counts = []
        for layer in _spike_slab_layers(model):
            counts.append(torch.count_nonzero(layer.pi < low) + torch.count_nonzero(layer.pi > high)
                          + torch.count_nonzero(layer.xi < low))
            layer.pi.clamp_(low, high)
            layer.xi.clamp_(min=low)
        return torch.stack(counts).sum() if counts else torch.zeros((), dtype=torch.long)
