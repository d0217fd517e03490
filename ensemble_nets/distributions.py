# SPDX-License-Identifier: MIT
"""The weight law of an ensemble network: the spike-and-slab distribution.

Every connection w of a :class:`~ensemble_nets.layers.SpikeSlabLinear` follows::

    q(w) = pi * delta(w) + (1 - pi) * Normal(w; m, xi)

with ``pi`` the probability that the connection is ABSENT, ``m`` the slab
mean and ``xi`` the slab VARIANCE (not a standard deviation). Its moments
(DESIGN.md section 2)::

    mean     = (1 - pi) m
    E[w^2]   = (1 - pi) (xi + m^2)
    variance = (1 - pi) (xi + pi m^2)

Its entropy and its KL divergence to a spike-and-slab prior are taken with
respect to the reference measure of ``log_prob`` (an atom at 0 plus Lebesgue,
see :class:`SpikeSlab`)::

    H[q]      = h(pi) + (1 - pi) * 1/2 log(2 pi e xi)             h(p) = -p log p - (1-p) log(1-p)
    KL(q||p0) = pi log(pi/pi0) + (1-pi) log((1-pi)/(1-pi0)) + (1-pi) KL(N(m, xi) || N(m0, xi0))

:class:`SpikeSlab` is the one definition of q in the package: the layers draw
their weights through it.
"""
from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints, register_kl
from torch.distributions.utils import broadcast_all

__all__ = ["SpikeSlab", "spike_slab_kl", "spike_slab_moments"]


def spike_slab_moments(pi: torch.Tensor, m: torch.Tensor, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q, elementwise::

        mean = (1 - pi) m,    var = (1 - pi) (xi + pi m^2)
    """
    keep = 1.0 - pi
    return keep * m, keep * (xi + pi * m * m)


class SpikeSlab(TorchDistribution):
    """Spike at zero plus a Gaussian slab, one independent law per element.

    ::

        q(w) = pi delta(w) + (1 - pi) Normal(w; m, xi)

    :param torch.Tensor pi: probability of the spike (connection absent), in [0, 1].
    :param torch.Tensor m: slab mean, any real.
    :param torch.Tensor xi: slab variance, >= 0 (``xi = 0`` makes the slab a point mass at ``m``).

    ``log_prob`` is the density with respect to the measure ``counting at 0 +
    Lebesgue``: ``log pi`` at ``w == 0`` exactly, ``log(1 - pi) + log Normal(w; m, xi)``
    elsewhere. With ``xi = 0`` the slab has no Lebesgue density; ``log_prob``
    then returns ``log(1 - pi)`` at ``w == m`` and ``-inf`` elsewhere (a
    counting measure at ``m`` too).

    ``entropy`` is ``-E[log_prob]`` with that same convention: the point mass
    contributes its discrete (Bernoulli) entropy h(pi) >= 0 and the slab its
    DIFFERENTIAL entropy, which is negative for ``xi < 1/(2 pi e)``; so the
    total can be negative, and it is not continuous at ``xi = 0`` (there the
    slab is an atom with entropy 0, and a deterministic weight has H = 0).
    """

    arg_constraints = {
        "pi": constraints.unit_interval,
        "m": constraints.real,
        "xi": constraints.nonnegative,
    }
    support = constraints.real
    has_rsample = False

    def __init__(self, pi, m, xi, *, validate_args=None):
        self.pi, self.m, self.xi = broadcast_all(pi, m, xi)
        super().__init__(self.pi.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SpikeSlab, _instance)
        batch_shape = torch.Size(batch_shape)
        new.pi = self.pi.expand(batch_shape)
        new.m = self.m.expand(batch_shape)
        new.xi = self.xi.expand(batch_shape)
        super(SpikeSlab, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return spike_slab_moments(self.pi, self.m, self.xi)[0]

    @property
    def variance(self) -> torch.Tensor:
        return spike_slab_moments(self.pi, self.m, self.xi)[1]

    def sample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``sample_shape + batch_shape`` weights; ``generator`` makes draws reproducible."""
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            pi, m, xi = (t.detach() for t in (self.pi, self.m, self.xi))
            uniform = torch.rand(shape, generator=generator, dtype=m.dtype, device=m.device)
            noise = torch.randn(shape, generator=generator, dtype=m.dtype, device=m.device)
            slab = m + xi.sqrt() * noise
            return torch.where(uniform < pi, torch.zeros((), dtype=m.dtype, device=m.device), slab)

    def entropy(self) -> torch.Tensor:
        """Entropy per element, ``-E[log_prob(w)]``::

            H = -pi log pi - (1 - pi) log(1 - pi) + (1 - pi) 1/2 log(2 pi e xi)     (xi > 0)
            H = -pi log pi - (1 - pi) log(1 - pi)                                (xi = 0, m != 0)
            H = 0                                                                (xi = 0, m = 0: all mass at 0)
        """
        pi, m, xi = self.pi, self.m, self.xi
        keep = 1.0 - pi
        bernoulli = -torch.xlogy(pi, pi) - torch.xlogy(keep, keep)
        degenerate = xi == 0
        safe_xi = torch.where(degenerate, torch.ones_like(xi), xi)
        slab = torch.where(degenerate, torch.zeros_like(xi), 0.5 * torch.log(2 * math.pi * math.e * safe_xi))
        entropy = bernoulli + keep * slab
        return torch.where(degenerate & (m == 0), torch.zeros_like(entropy), entropy)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        pi, m, xi, value = broadcast_all(self.pi, self.m, self.xi, value)
        log_spike = torch.log(pi)
        log_keep = torch.log1p(-pi)
        degenerate = xi == 0
        safe_xi = torch.where(degenerate, torch.ones_like(xi), xi)
        log_normal = -0.5 * ((value - m) ** 2 / safe_xi + torch.log(2 * math.pi * safe_xi))
        log_point = torch.where(value == m, torch.zeros_like(m), torch.full_like(m, -math.inf))
        log_slab = log_keep + torch.where(degenerate, log_point, log_normal)
        # At w = 0 the reference measure has an atom: q({0}) = pi, plus (1 - pi) when the
        # slab itself is a point mass at m = 0. A Gaussian slab puts no mass on the atom.
        at_zero = torch.where(degenerate, torch.logaddexp(log_spike, log_slab), log_spike)
        return torch.where(value == 0, at_zero, log_slab)


def spike_slab_kl(pi: torch.Tensor, m: torch.Tensor, xi: torch.Tensor,
                  prior_pi, prior_m, prior_xi) -> torch.Tensor:
    """KL(q || p0) per element between two spike-and-slab laws with Gaussian slabs::

        KL = pi log(pi / pi0) + (1 - pi) log((1 - pi) / (1 - pi0))
             + (1 - pi) * 1/2 [ (xi + (m - m0)^2) / xi0 - 1 - log(xi / xi0) ]

    Both laws live on the measure "atom at 0 + Lebesgue", so the spikes are
    compared with each other and the slabs with each other. Finite when
    ``xi > 0`` and ``xi0 > 0`` (a slab with ``xi = 0`` is an atom that a
    Gaussian prior slab does not have: KL = +inf unless ``pi = 1``), and when
    ``0 < pi0 < 1`` or pi sits on the same boundary. ``0 log 0 = 0``.
    Differentiable in ``(pi, m, xi)``; the derivative in pi is infinite at
    pi in {0, 1}, which is why the ELBO objective keeps pi strictly inside.
    """
    pi, m, xi, prior_pi, prior_m, prior_xi = broadcast_all(pi, m, xi, prior_pi, prior_m, prior_xi)
    keep, prior_keep = 1.0 - pi, 1.0 - prior_pi
    spike = torch.xlogy(pi, pi) - torch.xlogy(pi, prior_pi) + torch.xlogy(keep, keep) - torch.xlogy(keep, prior_keep)
    safe_xi = torch.where(keep == 0, prior_xi, xi)  # an absent slab is never evaluated (no 0 * inf)
    ratio = safe_xi / prior_xi
    gauss = 0.5 * (ratio + (m - prior_m).square() / prior_xi - 1.0 - torch.log(ratio))
    # The slab term weighs (1 - pi): an absent connection (pi = 1) pays nothing for its slab.
    slab = torch.where(keep == 0, torch.zeros_like(gauss), keep * gauss)
    return spike + slab


@register_kl(SpikeSlab, SpikeSlab)
def _kl_spike_slab(q: SpikeSlab, p: SpikeSlab) -> torch.Tensor:
    return spike_slab_kl(q.pi, q.m, q.xi, p.pi, p.m, p.xi)
