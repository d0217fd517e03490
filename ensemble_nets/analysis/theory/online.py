# SPDX-License-Identifier: MIT
"""On-line teacher-student learning of a soft committee machine with mode-decomposed weights.

DESIGN.md section 3, last bullet (Li & Huang, Phys. Rev. Research 5, L022011, 2023). Teacher and
student are soft committee machines (see :mod:`ensemble_nets.data.teacher`)::

    sigma(x) = (1/K) sum_i g(x_i),   x_i = W_i . x / sqrt(d)        student, W = A xi_hat
    tau(x)   = (1/K) sum_n g(y_n),   y_n = W_T,n . x / sqrt(d)      teacher, W_T = A xi_hat_T
    A = xi diag(Sigma)  (K, P),      g(u) = erf(u / sqrt(2)),       eps = (sigma - tau)^2 / 2

The student shares xi and Sigma (so A) with the teacher and learns only xi_hat (P, d) by on-line SGD
on one fresh example per step, with the plain gradient and learning rate eta::

    xi_hat <- xi_hat - eta d eps / d xi_hat = xi_hat + (eta / sqrt(d)) A^T delta x^T,
    delta_i = (1/K) g'(x_i) (tau - sigma).

Since W is linear in xi_hat this is exactly ``W <- W + (eta / sqrt(d)) C delta x^T`` with the
preconditioner C = A A^T = xi diag(Sigma)^2 xi^T (K, K).

Scaling convention (Saad & Solla, Phys. Rev. E 52, 4225, 1995). With J_i = W_i / sqrt(d) the fields
are x_i = J_i . x and the order parameters Q = J J^T = W W^T / d, M = J J_T^T = W W_T^T / d (Saad-Solla's
R), T = W_T W_T^T / d. A plain step of size eta on W is J_i <- J_i + (eta / d) (C delta)_i x: Saad-Solla's
``eta / N`` update with N = d. So the time of the ODE is alpha = t / d (t = number of examples) and
no extra factor of d enters the learning rate. Writing delta~ = C delta, to leading order in 1/d
(|x|^2 / d -> 1, and increments self-average)::

    dQ_ik / dalpha = eta < delta~_k x_i + delta~_i x_k > + eta^2 < delta~_i delta~_k >
                   = eta [ (C D_x)_ki + (C D_x)_ik ] + eta^2 (C D_2 C)_ik
    dM_in / dalpha = eta < delta~_i y_n > = eta (C D_y)_in
    dT / dalpha    = 0

with D_x[j, i] = < delta_j x_i >, D_y[j, n] = < delta_j y_n >, D_2[j, l] = < delta_j delta_l >. Stack the
fields as u = (x_1..x_K, y_1..y_K), jointly Gaussian with covariance ``[[Q, M], [M^T, T]]``, and write
tau - sigma = sum_c s_c g(u_c) with s = (-1/K, ..., -1/K, +1/K, ..., +1/K). Then::

    < delta_j u_b >      = (1/K) sum_c s_c I3(j, b, c)
    < delta_j delta_l >  = (1/K^2) sum_cd s_c s_d I4(j, l, c, d)

with the Gaussian averages of Saad & Solla (1995) for g = erf(u / sqrt(2)), C_ab the covariances::

    I3(a, b, c)    = < g'(u_a) u_b g(u_c) >
                   = (2 / pi) / sqrt(L3) * (C_bc (1 + C_aa) - C_ab C_ac) / (1 + C_aa),
                     L3 = (1 + C_aa)(1 + C_cc) - C_ac^2
    I4(a, b, c, d) = < g'(u_a) g'(u_b) g(u_c) g(u_d) >
                   = (4 / pi^2) / sqrt(L4) * arcsin(L0 / sqrt(L1 L2)),
                     L4 = (1 + C_aa)(1 + C_bb) - C_ab^2
                     L0 = L4 C_cd - C_bc C_bd (1 + C_aa) - C_ac C_ad (1 + C_bb) + C_ab C_ac C_bd + C_ab C_ad C_bc
                     L1 = L4 (1 + C_cc) - C_bc^2 (1 + C_aa) - C_ac^2 (1 + C_bb) + 2 C_ab C_ac C_bc
                     L2 = L4 (1 + C_dd) - C_bd^2 (1 + C_aa) - C_ad^2 (1 + C_bb) + 2 C_ab C_ad C_bd

and the generalization error, from I2(a, b) = < g(u_a) g(u_b) > = (2/pi) arcsin(C_ab / sqrt((1 + C_aa)(1 + C_bb)))
and eps_g = < (sigma - tau)^2 > / 2 = (1 / (2 K^2)) sum_cd K^2 s_c s_d I2(c, d)::

    eps_g = (1/K^2) [ sum_ij (1/pi) arcsin(Q_ij / sqrt((1 + Q_ii)(1 + Q_jj)))
                    + sum_nm (1/pi) arcsin(T_nm / sqrt((1 + T_nn)(1 + T_mm)))
                    - 2 sum_in (1/pi) arcsin(M_in / sqrt((1 + Q_ii)(1 + T_nn))) ]

Everything here is numpy float64: the simulation is a loop over tiny arrays, where numpy's per-call
cost is a few times lower than torch's. Matrices follow the shapes above: Q, M, T, C are (K, K),
xi_hat is (P, d), a batch of independent students adds a leading axis (n_runs, P, d).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ensemble_nets._optional import require

__all__ = ["i3_table", "i4_table", "generalization_error", "integrate_order_parameters", "order_parameters",
           "order_parameter_rhs", "preconditioner", "sgd_step", "simulate_online", "specialization"]

_SQRT2 = math.sqrt(2.0)
_GPRIME = math.sqrt(2.0 / math.pi)


def erf(x):
    """``scipy.special.erf``; scipy (the ``theory`` extra) is imported on first use."""
    return require("scipy.special", "theory").erf(x)


def preconditioner(mixing: np.ndarray) -> np.ndarray:
    """C = A A^T = xi diag(Sigma)^2 xi^T, shape (K, K), from A = xi diag(Sigma) of shape (K, P)."""
    mixing = np.asarray(mixing, dtype=np.float64)
    return mixing @ mixing.T


def order_parameters(weight: np.ndarray, teacher_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q = W W^T / d, M = W W_T^T / d, T = W_T W_T^T / d; ``weight`` may carry leading batch axes."""
    weight = np.asarray(weight, dtype=np.float64)
    teacher_weight = np.asarray(teacher_weight, dtype=np.float64)
    d = weight.shape[-1]
    q = weight @ np.swapaxes(weight, -1, -2) / d
    m = weight @ teacher_weight.T / d
    t = teacher_weight @ teacher_weight.T / d
    return q, m, t


def _i2(cov_ab: np.ndarray, var_a: np.ndarray, var_b: np.ndarray) -> np.ndarray:
    """(pi/2) I2 = arcsin(C_ab / sqrt((1 + C_aa)(1 + C_bb))), broadcasting var_a over rows, var_b over columns."""
    return np.arcsin(cov_ab / np.sqrt((1.0 + var_a[..., :, None]) * (1.0 + var_b[..., None, :])))


def generalization_error(q: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """eps_g(Q, M, T) = < (sigma - tau)^2 > / 2 for erf units and 1/K outputs (module docstring).

    :param q, m: (np.ndarray, shape (..., K, K)) Student-student and student-teacher overlaps.
    :param t: (np.ndarray, shape (K, K)) Teacher-teacher overlaps.
    :returns: np.ndarray, shape (...,)
    """
    q, m, t = (np.asarray(a, dtype=np.float64) for a in (q, m, t))
    k = q.shape[-1]
    dq = np.diagonal(q, axis1=-2, axis2=-1)
    dt = np.diagonal(t, axis1=-2, axis2=-1)
    total = (_i2(q, dq, dq).sum((-1, -2)) + _i2(t, dt, dt).sum((-1, -2))
             - 2.0 * _i2(m, dq, np.broadcast_to(dt, dq.shape)).sum((-1, -2)))
    return total / (math.pi * k * k)


def i3_table(cov: np.ndarray, n_student: int) -> np.ndarray:
    """I3(a, b, c) = < g'(u_a) u_b g(u_c) > for a < n_student and every b, c; shape (n_student, n, n)."""
    cov = np.asarray(cov, dtype=np.float64)
    var = np.diag(cov)
    caa = 1.0 + var[:n_student, None, None]                    # (Ka, 1, 1)
    cab = cov[:n_student, :, None]                             # (Ka, n, 1)
    cac = cov[:n_student, None, :]                             # (Ka, 1, n)
    cbc = cov[None, :, :]                                      # (1, n, n)
    l3 = caa * (1.0 + var[None, None, :]) - cac ** 2
    return (2.0 / math.pi) / np.sqrt(l3) * (cbc * caa - cab * cac) / caa


def i4_table(cov: np.ndarray, n_student: int) -> np.ndarray:
    """I4(a, b, c, d) = < g'(u_a) g'(u_b) g(u_c) g(u_d) > for a, b < n_student; shape (Ka, Ka, n, n)."""
    cov = np.asarray(cov, dtype=np.float64)
    var = np.diag(cov)
    k = n_student
    oa = 1.0 + var[:k, None, None, None]                       # 1 + C_aa  (Ka, 1, 1, 1)
    ob = 1.0 + var[None, :k, None, None]                       # 1 + C_bb  (1, Ka, 1, 1)
    cab = cov[:k, :k, None, None]
    cac = cov[:k, None, :, None]
    cad = cov[:k, None, None, :]
    cbc = cov[None, :k, :, None]
    cbd = cov[None, :k, None, :]
    ccd = cov[None, None, :, :]
    occ = 1.0 + var[None, None, :, None]
    odd = 1.0 + var[None, None, None, :]
    l4 = oa * ob - cab ** 2
    l0 = l4 * ccd - cbc * cbd * oa - cac * cad * ob + cab * cac * cbd + cab * cad * cbc
    l1 = l4 * occ - cbc ** 2 * oa - cac ** 2 * ob + 2.0 * cab * cac * cbc
    l2 = l4 * odd - cbd ** 2 * oa - cad ** 2 * ob + 2.0 * cab * cad * cbd
    return (4.0 / math.pi ** 2) / np.sqrt(l4) * np.arcsin(l0 / np.sqrt(l1 * l2))   # l1, l2 = l0 + l4 at c = d


def order_parameter_rhs(q: np.ndarray, m: np.ndarray, t: np.ndarray, precond: np.ndarray,
                        eta: float) -> tuple[np.ndarray, np.ndarray]:
    """dQ/dalpha and dM/dalpha of the preconditioned Saad-Solla ODEs (module docstring), each (K, K)."""
    k = q.shape[0]
    cov = np.block([[q, m], [m.T, t]])                         # (2K, 2K) covariance of (x, y)
    s = np.concatenate([-np.ones(k), np.ones(k)]) / k
    d1 = i3_table(cov, k) @ s / k                              # (K, 2K): <delta_j u_b>
    d2 = np.einsum("jlcd,c,d->jl", i4_table(cov, k), s, s) / k ** 2   # (K, K): <delta_j delta_l>
    g = precond @ d1[:, :k]                                    # (K, K): g[k, i] = <delta~_k x_i>
    dq = eta * (g + g.T) + eta ** 2 * precond @ d2 @ precond
    dm = eta * precond @ d1[:, k:]
    return dq, dm


def integrate_order_parameters(q0: np.ndarray, m0: np.ndarray, t: np.ndarray, precond: np.ndarray, eta: float,
                               alphas: Sequence[float], *, rtol: float = 1e-7, atol: float = 1e-10,
                               method: str = "LSODA") -> dict[str, np.ndarray]:
    """Integrate the order-parameter ODEs from (Q0, M0) and report them at ``alphas``.

    :returns: dict with "alpha" (n,), "q" (n, K, K), "m" (n, K, K), "eps_g" (n,).
    """
    solve_ivp = require("scipy.integrate", "theory").solve_ivp

    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or np.any(np.diff(alphas) <= 0) or alphas[0] < 0:
        raise ValueError("alphas must be a non-empty increasing sequence of times >= 0")
    k = q0.shape[0]

    def rhs(_alpha, state):
        q = state[: k * k].reshape(k, k)
        m = state[k * k:].reshape(k, k)
        dq, dm = order_parameter_rhs(q, m, t, precond, eta)
        return np.concatenate([dq.ravel(), dm.ravel()])

    state0 = np.concatenate([np.asarray(q0, np.float64).ravel(), np.asarray(m0, np.float64).ravel()])
    sol = solve_ivp(rhs, (0.0, float(alphas[-1])), state0, method=method, t_eval=alphas, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the ODE integration failed at alpha={sol.t[-1] if sol.t.size else 0}: {sol.message}")
    q = sol.y[: k * k].T.reshape(-1, k, k)
    m = sol.y[k * k:].T.reshape(-1, k, k)
    return {"alpha": sol.t, "q": q, "m": m, "eps_g": generalization_error(q, m, t)}


def sgd_step(xi_hat: np.ndarray, mixing: np.ndarray, x: np.ndarray, y: np.ndarray, eta: float) -> np.ndarray:
    """One on-line step of every student in a batch, in place: xi_hat += (eta / sqrt(d)) A^T delta x^T.

    The gradient of (sigma - y)^2 / 2 with respect to xi_hat only: xi and Sigma (``mixing``) stay fixed.

    :param xi_hat: (np.ndarray, shape (n_runs, P, d)) Students' input-side modes (updated in place and returned).
    :param mixing: (np.ndarray, shape (K, P)) A = xi diag(Sigma), shared with the teacher.
    :param x: (np.ndarray, shape (n_runs, d)) One fresh input per student.
    :param y: (np.ndarray, shape (n_runs,)) The teacher's labels.
    """
    k = mixing.shape[0]
    root_d = math.sqrt(x.shape[-1])
    h = np.matmul(xi_hat, x[:, :, None])[:, :, 0] / root_d     # (n_runs, P): xi_hat x / sqrt(d)
    z = h @ mixing.T                                           # (n_runs, K): fields x_i
    err = y - erf(z / _SQRT2).mean(-1)                         # (n_runs,): tau - sigma
    delta = _GPRIME * np.exp(-0.5 * z * z) * (err[:, None] / k)  # (n_runs, K): delta_i
    step = (eta / root_d) * (delta @ mixing)                   # (n_runs, P): (eta/sqrt(d)) A^T delta
    xi_hat += step[:, :, None] * x[:, None, :]
    return xi_hat


def simulate_online(teacher, xi_hat0: np.ndarray, eta: float, record_steps: Sequence[int],
                    seeds: Sequence[int], *, chunk: int = 4096) -> dict[str, np.ndarray]:
    """On-line SGD of students sharing the teacher's xi and Sigma, one fresh example per step and seed.

    :param teacher: (ensemble_nets.data.teacher.ModeTeacher)
    :param xi_hat0: (np.ndarray, shape (P, d)) Initial input-side modes of the student (the same for every seed:
        the seeds vary the examples).
    :param eta: (float) Learning rate of the plain gradient step on xi_hat.
    :param record_steps: (sequence of int) Steps t (examples seen) at which to record; alpha = t / d.
    :param seeds: (sequence of int) One example stream per seed (``teacher.stream(seed=...)``).
    :returns: dict with "step" (n,), "alpha" (n,), "q", "m" (n_seeds, n, K, K), "eps_g" (n_seeds, n), "t" (K, K)
        and "xi_hat" (n_seeds, P, d), the final students.
    """
    record_steps = np.unique(np.asarray(record_steps, dtype=np.int64))
    if record_steps.size == 0 or record_steps[0] < 0:
        raise ValueError("record_steps must hold at least one step >= 0")
    if eta <= 0:
        raise ValueError(f"eta={eta} must be > 0")
    mixing = teacher.mixing.numpy()
    w_t = teacher.weight.numpy()
    d, n_seeds = teacher.d, len(seeds)
    xi_hat = np.repeat(np.asarray(xi_hat0, dtype=np.float64)[None], n_seeds, axis=0)   # (n_seeds, P, d)
    streams = [teacher.stream(seed=int(s), chunk=chunk) for s in seeds]
    qs, ms = [], []
    step, pos, xs, ys = 0, chunk, None, None
    for target in record_steps:
        while step < target:
            if pos == chunk:
                pairs = [next(s) for s in streams]
                xs = np.stack([p[0].numpy() for p in pairs], axis=1)                  # (chunk, n_seeds, d)
                ys = np.stack([p[1].numpy() for p in pairs], axis=1)                  # (chunk, n_seeds)
                pos = 0
            sgd_step(xi_hat, mixing, xs[pos], ys[pos], eta)
            pos += 1
            step += 1
        q, m, t = order_parameters(mixing @ xi_hat, w_t)
        qs.append(q)
        ms.append(m)
    q = np.stack(qs, axis=1)
    m = np.stack(ms, axis=1)
    return {"step": record_steps, "alpha": record_steps / d, "q": q, "m": m, "t": t,
            "eps_g": generalization_error(q, m, t), "xi_hat": xi_hat}


def specialization(q: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Normalized overlaps R_in = M_in / sqrt(Q_ii T_nn), shaped like ``m``.

    Student and teacher share xi and Sigma, so student unit i learns teacher unit i: R_ii -> 1 at the end.
    """
    dq = np.diagonal(q, axis1=-2, axis2=-1)
    dt = np.diag(t)
    return m / np.sqrt(dq[..., :, None] * dt[..., None, :])
