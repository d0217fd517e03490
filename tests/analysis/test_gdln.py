# SPDX-License-Identifier: MIT
"""The routing reduction: fixed point, closed form, and the aligned simulation against the ODE."""
import math

import pytest
import torch

from ensemble_nets.analysis.theory.gdln import (balanced_time, fixed_point, integrate_routing_ode, ode_time_per_epoch,
                                               representation_similarity, routing_modes, routing_ode_rhs)
from ensemble_nets.data.routing import RoutingTask, routing_batch
from ensemble_nets.models.routing import hidden_representations, routing_network
from ensemble_nets.protocols.gated import train_gdln


@pytest.mark.parametrize("m_dom,k", [(7, 4), (3, 1), (5, 5)])
def test_routing_ode_fixed_point(m_dom, k):
    s = torch.tensor([13.6, 6.4, 3.0], dtype=torch.float64)
    b_star = fixed_point(s, n_domains=m_dom)
    torch.testing.assert_close(b_star[:, 1], (m_dom * s) ** (1 / 3))
    assert routing_ode_rhs(b_star, s, n_domains=m_dom, n_trained=k).abs().max() < 1e-12
    # integrated from a small balanced init it converges there
    b0 = torch.stack([torch.full((3,), 0.05), torch.full((3,), 0.05 * math.sqrt(m_dom)), torch.full((3,), 0.05)], -1)
    b = integrate_routing_ode(s, b0, torch.tensor([0.0, 150.0]), n_domains=m_dom, n_trained=k, max_step=0.05)[-1]
    torch.testing.assert_close(b, b_star, rtol=1e-6, atol=1e-6)


def test_balanced_closed_form_matches_integration():
    m_dom, k, s = 7, 4, torch.tensor([13.6, 3.0], dtype=torch.float64)
    b_h0 = torch.tensor(0.3, dtype=torch.float64)
    b0 = torch.stack([b_h0 / math.sqrt(m_dom), b_h0, b_h0 / math.sqrt(m_dom)]).expand(2, 3)
    times = torch.linspace(0, 30, 61, dtype=torch.float64)
    b = integrate_routing_ode(s, b0, times, n_domains=m_dom, n_trained=k)
    p = b.prod(-1)
    inside = (p < 0.999 * s) & (p > b0.prod(-1))
    t_closed = balanced_time(p[inside], s.expand_as(p)[inside], b0.prod(-1).expand_as(p)[inside],
                             n_domains=m_dom, n_trained=k)
    torch.testing.assert_close(t_closed, times[:, None].expand_as(p)[inside], rtol=1e-5, atol=1e-5)
    # the race: learning times scale as 1/K
    t4 = balanced_time(s / 2, s, b0.prod(-1), n_domains=m_dom, n_trained=4)
    t2 = balanced_time(s / 2, s, b0.prod(-1), n_domains=m_dom, n_trained=2)
    torch.testing.assert_close(t2 / t4, torch.full_like(t2, 2.0))


def test_aligned_simulation_matches_ode():
    """Small routing network (M = 3, K = 2, 8 hidden units) from aligned init: every mode follows the ODE."""
    task = RoutingTask(n_domains=3, n_trained=2)
    lr, n_epochs, gain = 0.0025, 1200, 0.3
    net = routing_network(task, hidden=8, gain=gain, init="aligned", seed=0, dtype=torch.float64)
    batch = routing_batch(task, "train", dtype=torch.float64)
    rows = train_gdln(net, batch, lr=lr, n_epochs=n_epochs, record_every=120,
                      record=lambda e, n: {k: v for k, v in routing_modes(n, task).items()})
    _, s, _ = task.svd()
    per_epoch = ode_time_per_epoch(lr, n_domains=3, n_items=4)
    times = torch.tensor([r["epoch"] for r in rows], dtype=torch.float64) * per_epoch
    ode = integrate_routing_ode(s, torch.full((3,), gain), times, n_domains=3, n_trained=2)
    sim = torch.stack([torch.stack([r["b_in"], r["b_h"], r["b_out"]], -1) for r in rows])
    assert ode[-1, 0, 1] > 5 * gain  # the top mode has been learned within the window
    torch.testing.assert_close(sim, ode, rtol=0.02, atol=0.01)
    # while a different time mapping (the 1/2-loss constant) would not match
    ode_half = integrate_routing_ode(s, torch.full((3,), gain), times / 2, n_domains=3, n_trained=2)
    assert (sim - ode_half).abs().max() > 0.5


def test_rsa_of_aligned_network_is_domain_invariant():
    task = RoutingTask(n_domains=3, n_trained=2)
    net = routing_network(task, hidden=8, gain=0.5, init="aligned", seed=1, dtype=torch.float64)
    rsa = representation_similarity(hidden_representations(net, task))
    assert rsa.shape == (12, 12)
    torch.testing.assert_close(rsa[:4, :4], rsa[4:8, 4:8])
    torch.testing.assert_close(rsa[:4, 4:8], rsa[:4, :4])  # same item in another domain: same representation
