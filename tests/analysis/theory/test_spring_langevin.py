# SPDX-License-Identifier: MIT
"""Second-order (Langevin) spring-block chain of DESIGN.md 4.2: walls at 0 and 1, one shared shaking force."""
import numpy as np
import pytest

from ensemble_nets.analysis.theory import langevin_elongations, langevin_max_dt, simulate_spring_langevin


def _tilt(d: np.ndarray) -> float:
    """Least-squares slope of the spring lengths against depth (< 0: shallow springs longest, convex)."""
    return float(np.polyfit(np.arange(len(d)), d, 1)[0])


def test_shapes_walls_and_total_length():
    result = simulate_spring_langevin(7, noise=0.03, t_max=50.0, save_every=100)
    assert result.extensions.shape == (8,) and result.mean_extensions.shape == (8,)
    assert result.positions.shape == (11, 9)  # 1000 steps, every 100th saved, plus the start
    assert np.all(result.positions[:, 0] == 0) and np.all(result.positions[:, -1] == 1)
    assert result.extensions.sum() == pytest.approx(1.0) and result.mean_extensions.sum() == pytest.approx(1.0)


def test_no_noise_concave_with_steps_of_forward_friction():
    # the pull travels back from the target wall; each block sticks when its net force falls to mu_+,
    # so consecutive springs differ by mu_+ / k = 0.03: springs lengthen with depth
    d = simulate_spring_langevin(noise=0.0).extensions
    np.testing.assert_allclose(np.diff(d), 0.003 / 0.1, atol=1e-3)
    assert d[-1] > 5 * d[0]


@pytest.mark.parametrize("noise", [0.01, 0.1])
def test_friction_asymmetry_sets_the_convex_tilt(noise):
    # same noise path, mu_- = 0.004 versus 0.003: the tilt differs by -(mu_- - mu_+) / (2 k) = -0.005
    for seed in range(3):
        asym = simulate_spring_langevin(noise=noise, seed=seed).mean_extensions
        sym = simulate_spring_langevin(noise=noise, friction_back=0.003, seed=seed).mean_extensions
        assert _tilt(asym - sym) == pytest.approx(-0.005, rel=0.15)


def test_symmetric_friction_is_not_convex_under_shaking():
    # Issue 12 expected a convex chain at large noise with symmetric friction too. With one shaking
    # force shared by every block and mu_+ = mu_-, x_i -> 1 - x_{L+1-i} maps the dynamics onto
    # itself, so the stationary chain is mirror symmetric: the time-averaged tilt over seeds is
    # zero within its standard error, while the reference (asymmetric) friction tilts it to -0.005.
    sym = np.array([_tilt(simulate_spring_langevin(noise=0.01, friction_back=0.003, seed=s).mean_extensions)
                    for s in range(10)])
    asym = np.array([_tilt(simulate_spring_langevin(noise=0.01, seed=s).mean_extensions) for s in range(10)])
    standard_error = sym.std(ddof=1) / np.sqrt(len(sym))
    assert abs(sym.mean()) < 3 * standard_error
    assert asym.mean() < sym.mean() - 0.003 and asym.mean() < -3 * standard_error


def test_elongations_frame():
    frame = langevin_elongations(noises=(0.0,), frictions=((0.003, 0.004),), seeds=[0, 1], t_max=20.0)
    assert len(frame) == 2 * 8 and set(frame["spring"]) == set(range(1, 9))
    assert frame.groupby("seed")["extension"].sum().to_numpy() == pytest.approx([1.0, 1.0])


def test_stability_bound_and_errors():
    assert langevin_max_dt() == pytest.approx(1.531, abs=1e-3)
    with pytest.raises(ValueError, match=r"stable range 0 < dt < 1\.53"):
        simulate_spring_langevin(dt=2.0)
    with pytest.raises(ValueError, match="friction_forward"):
        simulate_spring_langevin(friction_back=-1.0)
    # just inside the bound the chain stays bounded; the scheme is unconditionally damped there
    d = simulate_spring_langevin(noise=0.0, dt=1.5, t_max=3000.0, friction_forward=0.0, friction_back=0.0)
    np.testing.assert_allclose(d.extensions, 1 / 8, atol=1e-6)
