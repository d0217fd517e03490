# SPDX-License-Identifier: MIT
"""On-line teacher-student theory: eps_g, the Gaussian averages, the ODE against simulated increments."""
import math

import numpy as np
import pytest
from scipy import special
import torch

from ensemble_nets.analysis.theory import online
from ensemble_nets.data.teacher import ModeTeacher, committee_output, mode_init_std


def _student(teacher, seed=1, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * mode_init_std(teacher.d) * rng.standard_normal((teacher.n_modes, teacher.d))


def _random_cov(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n + 2)) * 0.7
    return a @ a.T / (n + 2)


def test_generalization_error_matches_monte_carlo():
    torch.manual_seed(0)
    k, d = 4, 20
    w, w_t = torch.randn(k, d, dtype=torch.float64), torch.randn(k, d, dtype=torch.float64) * 1.5
    x = torch.randn(200_000, d, dtype=torch.float64)
    sq = 0.5 * (committee_output(w, x) - committee_output(w_t, x)) ** 2
    mc, se = sq.mean().item(), sq.std().item() / math.sqrt(x.shape[0])
    theory = online.generalization_error(*online.order_parameters(w.numpy(), w_t.numpy())).item()
    assert abs(theory - mc) < 4 * se + 1e-12
    assert theory > 10 * se  # the check is not vacuous


def test_gaussian_averages_match_monte_carlo():
    k, n = 2, 4
    cov = _random_cov(n, 3)
    rng = np.random.default_rng(4)
    u = rng.multivariate_normal(np.zeros(n), cov, size=150_000)             # (samples, n)
    g, gp = special.erf(u / math.sqrt(2)), math.sqrt(2 / math.pi) * np.exp(-u ** 2 / 2)
    i3 = gp[:, :k, None, None] * u[:, None, :, None] * g[:, None, None, :]                          # (s, a, b, c)
    i4 = (gp[:, :k, None, None, None] * gp[:, None, :k, None, None]
          * g[:, None, None, :, None] * g[:, None, None, None, :])                                    # (s, a, b, c, d)
    for table, samples in ((online.i3_table(cov, k), i3), (online.i4_table(cov, k), i4)):
        se = samples.std(0) / math.sqrt(samples.shape[0])
        assert np.all(np.abs(table - samples.mean(0)) < 5 * se + 1e-4)
        assert np.abs(table).max() > 0.1


def test_ode_rhs_matches_averaged_sgd_increment():
    """E[Delta Q] d and E[Delta M] d over one step from a fixed state equal the ODE's right-hand side."""
    d, k, p, eta, n = 200, 4, 2, 5.0, 20_000
    teacher = ModeTeacher.random(d, k, p, seed=3)
    mixing, w_t = teacher.mixing.numpy(), teacher.weight.numpy()
    xi_hat0 = _student(teacher)
    q0, m0, t = online.order_parameters(mixing @ xi_hat0, w_t)
    dq, dm = online.order_parameter_rhs(q0, m0, t, online.preconditioner(mixing), eta)

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    xi_hat = online.sgd_step(np.repeat(xi_hat0[None], n, 0), mixing, x.numpy(), teacher(x).numpy(), eta)
    q1, m1, _ = online.order_parameters(mixing @ xi_hat, w_t)                 # (n, K, K)
    for drift, theory in (((q1 - q0) * d, dq), ((m1 - m0) * d, dm)):
        se = drift.std(0) / math.sqrt(n)
        # 5 standard errors, plus the O(P / d) finite-size term of |x|^2 / d in the eta^2 part
        assert np.all(np.abs(drift.mean(0) - theory) < 5 * se + 4 * p / d * np.abs(theory).max())
        assert np.abs(theory).max() > 10 * se.max()


def test_student_update_is_the_xi_hat_gradient_only():
    teacher = ModeTeacher.random(30, 8, seed=7)
    xi, strengths = teacher.xi.clone(), teacher.strengths.clone()
    xi_hat0 = _student(teacher)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 30, generator=gen, dtype=torch.float64)
    y = teacher(x)
    new = online.sgd_step(xi_hat0[None].copy(), teacher.mixing.numpy(), x.numpy(), y.numpy(), 5.0)[0]

    xi_hat = torch.tensor(xi_hat0, requires_grad=True)
    w = torch.tensor(xi.numpy(), requires_grad=True)
    s = torch.tensor(strengths.numpy(), requires_grad=True)
    loss = 0.5 * (committee_output((w * s) @ xi_hat, x) - y).pow(2).sum()
    loss.backward()
    assert np.allclose(new, xi_hat0 - 5.0 * xi_hat.grad.numpy(), rtol=1e-10, atol=1e-13)
    assert w.grad.abs().max() > 0 and s.grad.abs().max() > 0     # xi, Sigma have gradients, but are not learned
    # the run leaves the shared factors alone and moves W by -eta C grad_W
    sim = online.simulate_online(teacher, xi_hat0, 5.0, [0, 50], [0, 1])
    assert torch.equal(teacher.xi, xi) and torch.equal(teacher.strengths, strengths)
    assert not np.allclose(sim["xi_hat"][0], xi_hat0)
    wt = torch.tensor(teacher.mixing.numpy() @ xi_hat0, requires_grad=True)
    (0.5 * (committee_output(wt, x) - y).pow(2).sum()).backward()
    c = online.preconditioner(teacher.mixing.numpy())
    assert np.allclose(teacher.mixing.numpy() @ new - wt.detach().numpy(), -5.0 * c @ wt.grad.numpy(),
                       rtol=1e-10, atol=1e-13)


def test_student_equal_to_teacher_is_a_fixed_point():
    teacher = ModeTeacher.random(30, 8, seed=7)
    mixing, w_t = teacher.mixing.numpy(), teacher.weight.numpy()
    q, m, t = online.order_parameters(w_t, w_t)
    assert online.generalization_error(q, m, t) == pytest.approx(0.0, abs=1e-14)
    dq, dm = online.order_parameter_rhs(q, m, t, online.preconditioner(mixing), 5.0)
    assert np.abs(dq).max() < 1e-13 and np.abs(dm).max() < 1e-13
    sim = online.simulate_online(teacher, teacher.xi_hat.numpy(), 5.0, [0, 30], [0])
    assert np.allclose(sim["xi_hat"][0], teacher.xi_hat.numpy(), atol=1e-13)
    assert np.all(sim["eps_g"] < 1e-14)
    # a different student is not
    q, m, t = online.order_parameters(mixing @ _student(teacher), w_t)
    assert online.generalization_error(q, m, t) > 1e-3


def test_ode_follows_a_simulation_at_small_size():
    """Early dynamics at d = 200: the mean over example streams stays within 10% of the ODE's eps_g."""
    d, k, p, eta = 200, 4, 2, 5.0
    teacher = ModeTeacher.random(d, k, p, seed=4)
    mixing = teacher.mixing.numpy()
    xi_hat0 = _student(teacher, seed=2)
    steps = np.array([0, 200, 400, 800, 1200])
    sim = online.simulate_online(teacher, xi_hat0, eta, steps, [0, 1, 2, 3])
    q0, m0, t = online.order_parameters(mixing @ xi_hat0, teacher.weight.numpy())
    ode = online.integrate_order_parameters(q0, m0, t, online.preconditioner(mixing), eta, steps / d)
    rel = np.abs(sim["eps_g"].mean(0) - ode["eps_g"]) / ode["eps_g"]
    assert ode["eps_g"][-1] < 0.7 * ode["eps_g"][0]       # it learns over the window
    assert rel.max() < 0.10


def test_teacher_stream_is_seeded_and_bad_arguments_raise():
    teacher = ModeTeacher.random(30, 8, seed=0)
    assert teacher.n_modes == 3 and teacher.weight.shape == (8, 30)
    (x1, y1), (x2, y2) = next(teacher.stream((2,), seed=4, chunk=5)), next(teacher.stream((2,), seed=4, chunk=5))
    assert x1.shape == (5, 2, 30) and y1.shape == (5, 2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    with pytest.raises(ValueError, match="alphas"):
        online.integrate_order_parameters(np.eye(2), np.eye(2), np.eye(2), np.eye(2), 1.0, [1.0, 0.5])
    with pytest.raises(ValueError, match="eta"):
        online.simulate_online(teacher, teacher.xi_hat.numpy(), -1.0, [0, 1], [0])
