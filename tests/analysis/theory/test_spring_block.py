# SPDX-License-Identifier: MIT
"""First-order spring-block chain (DESIGN.md 4.2): symmetric friction by default, the asymmetric option apart."""
import numpy as np
import pytest

from ensemble_nets.analysis.theory import simulate_spring_block, spring_forces


def test_forces_at_rest_and_at_equilibrium():
    assert np.allclose(spring_forces(np.zeros(4), pull=1.0, stiffness=2.0), [0, 0, 0, 1.0])
    x = np.cumsum(np.full(4, 0.5))  # every spring at F/k = 0.5: no net force
    assert np.allclose(spring_forces(x, pull=1.0, stiffness=2.0), 0.0)


def test_friction_without_noise_stretches_only_deep_springs():
    d = simulate_spring_block(8, friction=0.3, noise=0.0, n_steps=2000).extensions
    # k d_l = max(0, F - (L - l + 1) mu): 0.7, 0.4, 0.1 for the last three springs, none before
    np.testing.assert_allclose(d, [0, 0, 0, 0, 0, 0.1, 0.4, 0.7], atol=1e-6)


def test_no_friction_no_noise_equal_springs():
    d = simulate_spring_block(8, friction=0.0, noise=0.0, n_steps=3000).extensions
    np.testing.assert_allclose(d, 1.0, atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moderate_noise_equalizes(seed):
    d = simulate_spring_block(8, friction=0.3, noise=0.4, n_steps=4000, seed=seed).mean_extensions
    assert d.min() > 0.9 and d.max() / d.min() < 1.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symmetric_default_has_no_convex_phase(seed):
    # the notebook's symmetric friction (the default): strong shaking (sigma = 2 > 6 mu) keeps the
    # springs near F/k = 1 with no trend in depth (the asymmetric option at eta = 0.05 is convex here)
    d = simulate_spring_block(8, friction=0.3, noise=2.0, n_steps=4000, seed=seed).mean_extensions
    assert np.abs(d - 1.0).max() < 0.2
    assert d[:2].mean() < 1.2 * d[-2:].mean()
    rectified = simulate_spring_block(8, friction=0.3, noise=2.0, asymmetry=0.05, n_steps=4000,
                                      seed=seed).mean_extensions
    assert rectified[:2].mean() > 1.3 * rectified[-2:].mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asymmetric_option_stretches_shallow_springs_most(seed):
    # the documented option: mobility 1 +- eta rectifies the shaking into a forward drift (convex)
    d = simulate_spring_block(8, friction=0.3, noise=6.0, asymmetry=0.05, n_steps=4000, seed=seed).mean_extensions
    assert d[:2].mean() > 1.5 * d[-2:].mean()
    assert np.corrcoef(np.arange(8), d)[0, 1] < -0.8  # decreasing with depth


def test_notebook_setting_concave_then_equal():
    # DESIGN.md 4.2 first order: L = 7, k = 1, eta = 0.01, mu = 0.1; no noise: only deep springs stretch
    quiet = simulate_spring_block(7, friction=0.1, noise=0.0, dt=0.01, n_steps=40_000).extensions
    np.testing.assert_allclose(quiet, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], atol=1e-3)
    shaken = simulate_spring_block(7, friction=0.1, noise=0.1, dt=0.01, n_steps=40_000).mean_extensions
    assert np.abs(shaken - 1.0).max() < 0.05


def test_more_friction_needs_more_noise():
    # at the same moderate shaking, a rougher table is still stuck near the input
    smooth = simulate_spring_block(8, friction=0.3, noise=0.3, n_steps=4000).mean_extensions
    rough = simulate_spring_block(8, friction=0.6, noise=0.3, n_steps=4000).mean_extensions
    assert rough[0] < 0.8 * smooth[0] and rough[-1] > rough[0]


def test_langevin_symmetric_stays_equal():
    result = simulate_spring_block(8, friction=0.3, noise=0.0, temperature=0.2, asymmetry=0.0, n_steps=4000)
    assert result.positions.shape == (41, 9) and np.all(result.positions[:, 0] == 0)
    assert np.abs(result.mean_extensions - 1.0).max() < 0.3


def test_rejects_unstable_step():
    with pytest.raises(ValueError, match="stable"):
        simulate_spring_block(4, dt=1.0)
