# SPDX-License-Identifier: MIT
"""The pathway race of DESIGN.md 4.3: one ODE term per pathway, its conserved quantity and where it ends."""
import numpy as np
import pytest

from ensemble_nets.analysis.theory.gdln import integrate_race_ode, race_ode_rhs, race_outcome

S = np.array([13.6, 6.4, 3.0])


def _membership(n_domains, n_shared):
    out = np.zeros((1 + n_domains, n_domains))
    out[0, :n_shared] = 1
    out[1:] = np.eye(n_domains)
    return out


def test_rhs_is_sum_of_served_domain_errors():
    membership = _membership(3, 2)
    b = np.random.default_rng(0).uniform(0.1, 1.0, size=(3, 4, 2))
    rhs = race_ode_rhs(b, S, membership)
    a = b.prod(-1)
    err = S[:, None] - np.stack([a[:, 0] + a[:, 1], a[:, 0] + a[:, 2], a[:, 3]], axis=-1)  # domains 0, 1, 2
    np.testing.assert_allclose(rhs[:, 0, 0], b[:, 0, 1] * (err[:, 0] + err[:, 1]))  # shared serves 0 and 1
    np.testing.assert_allclose(rhs[:, 1, 1], b[:, 1, 0] * err[:, 0])                # private0 serves 0
    np.testing.assert_allclose(rhs[:, 3, 0], b[:, 3, 1] * err[:, 2])
    # at a solution of every domain nothing moves
    b_star = np.stack([np.sqrt(S / 2)] * 2, -1)[:, None, :].repeat(4, axis=1)
    b_star[:, 3] = np.sqrt(S)[:, None]  # domain 2 has only its private pathway
    b_star[:, 2] = b_star[:, 1]
    assert np.abs(race_ode_rhs(b_star, S, membership)).max() < 1e-12


@pytest.mark.parametrize("n_shared", [1, 2, 5])
def test_closed_form_matches_integration_and_conservation(n_shared):
    n_domains = 5
    b0 = np.full((3, 1 + n_domains, 2), 0.1)
    b0[:, 0] = 0.05  # the shared pathway starts smaller: a0 = 0.0025 against c0 = 0.01
    times = np.linspace(0, 8, 9)
    b = integrate_race_ode(S, b0, _membership(n_domains, n_shared), times, max_step=2e-3)
    a, c = b[..., 0, :].prod(-1), b[..., 1, :].prod(-1)  # shared, private0 (a shared domain)
    # ln(a / a0) = D ln(c / c0) along the whole path (balanced two-layer pathways)
    np.testing.assert_allclose(np.log(a / 0.0025), n_shared * np.log(c / 0.01), rtol=1e-5, atol=1e-5)
    a_inf, c_inf = race_outcome(S, 0.0025, 0.01, n_shared)
    np.testing.assert_allclose(a[-1], a_inf, rtol=1e-4)
    np.testing.assert_allclose(c[-1], c_inf, rtol=1e-4, atol=1e-6)
    # an unshared domain is carried by its private pathway alone
    np.testing.assert_allclose(b[-1, :, -1].prod(-1), S if n_shared < n_domains else b[-1, :, 1].prod(-1), rtol=1e-4)


def test_outcome_moves_with_sharing_and_init():
    shares = [race_outcome(S, 0.01, 0.01, d)[0] / S for d in (1, 2, 4, 7)]
    np.testing.assert_allclose(shares[0], 0.5)  # equal speed, equal start: a tie
    assert all((later > earlier).all() for earlier, later in zip(shares, shares[1:]))
    assert (shares[-1] > 0.99).all()
    # smaller init: a more decisive race; a big enough private head start wins it back
    assert (race_outcome(S, 1e-4, 1e-4, 2)[0] > race_outcome(S, 1e-2, 1e-2, 2)[0]).all()
    a_inf, c_inf = race_outcome(S, 0.01, 4.0, 2)
    assert (c_inf > a_inf).all()


def test_bad_input():
    with pytest.raises(ValueError, match="n_shared >= 1"):
        race_outcome(S, 0.01, 0.01, 0)
    with pytest.raises(ValueError, match="b0 must be"):
        integrate_race_ode(S, np.zeros((3, 2, 2)), _membership(3, 3), np.array([0.0, 1.0]))
