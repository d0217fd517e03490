# SPDX-License-Identifier: MIT
"""SpikeSlab against its formulas: moments, samples, log_prob, entropy and the KL to a prior."""
import math

import pytest
import torch
from torch.distributions import kl_divergence

from ensemble_nets.distributions import SpikeSlab, spike_slab_kl

DT = torch.float64


def _law():
    pi = torch.tensor([0.0, 0.3, 0.7, 1.0, 0.5], dtype=DT)
    m = torch.tensor([1.5, -0.8, 2.0, 0.4, 0.0], dtype=DT)
    xi = torch.tensor([0.2, 0.5, 0.05, 0.3, 1.0], dtype=DT)
    return SpikeSlab(pi, m, xi)


def test_moments_match_formulas_and_samples():
    q = _law()
    assert torch.allclose(q.mean, (1 - q.pi) * q.m)
    assert torch.allclose(q.variance, (1 - q.pi) * (q.xi + q.pi * q.m ** 2))
    draws = q.sample((200_000,), generator=torch.Generator().manual_seed(1))
    assert draws.shape == (200_000, 5)
    assert torch.allclose(draws.mean(0), q.mean, atol=0.01)
    assert torch.allclose(draws.var(0), q.variance, atol=0.02)
    zero_fraction = (draws == 0).to(DT).mean(0)
    assert torch.allclose(zero_fraction, q.pi, atol=0.005)


def test_sample_with_generator_is_reproducible():
    q = _law()
    a = q.sample((3,), generator=torch.Generator().manual_seed(7))
    b = q.sample((3,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_entropy_formula_and_monte_carlo():
    q = _law()
    pi, xi = q.pi, q.xi
    h = -torch.xlogy(pi, pi) - torch.xlogy(1 - pi, 1 - pi) + (1 - pi) * 0.5 * torch.log(2 * math.pi * math.e * xi)
    assert torch.allclose(q.entropy(), h)
    draws = q.sample((200_000,), generator=torch.Generator().manual_seed(2))
    monte_carlo = -q.log_prob(draws).mean(0)  # -E[log q] with the same reference measure
    assert torch.allclose(monte_carlo, q.entropy(), atol=0.02)


def test_entropy_point_mass_conventions():
    pi = torch.tensor([0.0, 1.0, 0.25, 0.25], dtype=DT)
    m = torch.tensor([0.7, 0.7, 0.7, 0.0], dtype=DT)
    xi = torch.zeros(4, dtype=DT)
    h = SpikeSlab(pi, m, xi).entropy()
    bernoulli = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    # deterministic present weight, always absent, two atoms (0 and m), one atom at 0 only
    assert h.tolist() == pytest.approx([0.0, 0.0, bernoulli, 0.0])
    # a narrow slab has negative differential entropy
    assert SpikeSlab(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(1e-4)).entropy() < 0


def test_kl_formula_monte_carlo_and_registration():
    q = _law()
    prior = SpikeSlab(torch.full((5,), 0.4, dtype=DT), torch.zeros(5, dtype=DT), torch.full((5,), 0.8, dtype=DT))
    kl = kl_divergence(q, prior)
    assert torch.equal(kl, spike_slab_kl(q.pi, q.m, q.xi, prior.pi, prior.m, prior.xi))
    draws = q.sample((400_000,), generator=torch.Generator().manual_seed(3))
    monte_carlo = (q.log_prob(draws) - prior.log_prob(draws)).mean(0)
    assert torch.allclose(monte_carlo, kl, atol=0.01)
    assert (kl >= 0).all()
    assert kl_divergence(prior, prior).abs().max() < 1e-12


def test_kl_boundaries_are_finite_where_they_should_be():
    prior = (torch.tensor(0.5, dtype=DT), torch.tensor(0.0, dtype=DT), torch.tensor(1.0, dtype=DT))
    absent = spike_slab_kl(*(torch.tensor(v, dtype=DT) for v in (1.0, 3.0, 0.0)), *prior)
    assert absent.item() == pytest.approx(math.log(2.0))  # pays only for the certain spike
    present = spike_slab_kl(*(torch.tensor(v, dtype=DT) for v in (0.0, 0.0, 1.0)), *prior)
    assert present.item() == pytest.approx(math.log(2.0))
    atom = spike_slab_kl(*(torch.tensor(v, dtype=DT) for v in (0.5, 1.0, 0.0)), *prior)
    assert atom.item() == math.inf  # a deterministic slab is singular w.r.t. a Gaussian prior slab


def test_kl_gradient_is_finite_inside():
    pi = torch.tensor([0.2, 0.9], dtype=DT, requires_grad=True)
    m = torch.tensor([0.3, -1.0], dtype=DT, requires_grad=True)
    xi = torch.tensor([0.1, 2.0], dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b, c: spike_slab_kl(a, b, c, 0.5, 0.0, 1.0), (pi, m, xi))
