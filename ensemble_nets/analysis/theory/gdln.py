# SPDX-License-Identifier: MIT
"""The neural-race reduction of the routing network (Saxe, Sodhani & Lewallen, ICML 2022; DESIGN.md 4.3).

With aligned (decoupled) initialisation (:func:`ensemble_nets.models.routing.routing_network`,
``init="aligned"``) every singular mode ``alpha`` of the task (singular value
``s``) keeps one scalar per layer: ``b_in`` (every encoder), ``b_h`` (the
shared hidden layer), ``b_out`` (every decoder), and with ``p = b_out b_h b_in``::

    tau db_in/dt  = (K/M^2) b_out b_h (s - p)
    tau db_h/dt   = (K/M)   b_out b_in (s - p)
    tau db_out/dt = (K/M^2) b_h  b_in (s - p)

The hidden layer is shared by all ``M K`` trained pathways and moves ``M``
times faster than an encoder or decoder (each used by ``K``): the race that
favours shared representations. ``b_h^2 - M b_in^2`` and ``b_h^2 - M b_out^2``
are conserved, so from the balanced (e.g. vanishing) initialisation
``b_in = b_out = b_h / sqrt(M)`` the mode settles at ``p = s`` with::

    b_h* = (M s)^(1/3),   b_in* = b_out* = b_h* / sqrt(M)

Closed form (balanced init): ``tau dp/dt = 3 K M^(-5/3) p^(4/3) (s - p)``;
with ``q = p^(1/3)``, ``a = s^(1/3)``::

    t(q) = tau M^(5/3) / (K a^3) [F(q) - F(q0)],
    F(q) = -1/q - ln(a - q)/(3a) + ln(q^2 + a q + a^2)/(6a) - arctan((2q + a)/(a sqrt 3))/(a sqrt 3)

so every learning time scales as ``M^(5/3) / K`` (the race with ``K``).

Time mapping. The simulation minimises ``L = (1/P) sum_p sum_v ||g_v y_v - yhat_v||^2``
over ``P = M n_items`` examples with SGD step ``lr``; per mode its gradient is
``(2/P) M^2`` times the ODE's right-hand side, so one epoch is
``lr * 2 M / n_items`` of ODE time (tau = 1): ``3.5 lr`` for M = 7, 4 items,
as DESIGN.md states (:func:`ode_time_per_epoch`; with a ``1/2`` in the loss it
would be ``1.75 lr``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["balanced_time", "fixed_point", "integrate_routing_ode", "ode_time_per_epoch", "representation_similarity",
           "routing_modes", "routing_ode_rhs"]


def ode_time_per_epoch(lr: float, *, n_domains: int = 7, n_items: int = 4) -> float:
    """ODE time (tau = 1) of one full-batch SGD epoch: ``lr * 2 M / n_items`` (3.5 lr for the reference)."""
    return lr * 2.0 * n_domains / n_items


def routing_ode_rhs(b: Tensor, s: Tensor, *, n_domains: int, n_trained: int) -> Tensor:
    """``tau db/dt`` for ``b`` of shape ``(..., 3)`` = ``(b_in, b_h, b_out)`` and singular values ``s`` (...)."""
    m_dom, k = n_domains, n_trained
    b_in, b_h, b_out = b.unbind(-1)
    err = s - b_in * b_h * b_out
    return torch.stack([k / m_dom**2 * b_out * b_h * err, k / m_dom * b_out * b_in * err,
                        k / m_dom**2 * b_h * b_in * err], dim=-1)


def integrate_routing_ode(s: Tensor, b0: Tensor, times: Tensor, *, n_domains: int = 7, n_trained: int = 4,
                          tau: float = 1.0, max_step: float = 0.01) -> Tensor:
    """Integrate the reduced ODE (fourth-order Runge-Kutta) and return ``b`` at ``times``.

    :param s: (Tensor, shape (n_modes,)) Singular values of ``Sigma_yx``.
    :param b0: (Tensor, shape (n_modes, 3) or (3,)) Initial ``(b_in, b_h, b_out)`` per mode.
    :param times: (Tensor, shape (T,)) Non-decreasing output times, starting at 0.
    :param max_step: (float) Largest RK4 step (in units of tau).
    :returns: Tensor, shape (T, n_modes, 3)
    """
    s = torch.as_tensor(s, dtype=torch.float64)
    b = torch.as_tensor(b0, dtype=torch.float64).expand(s.shape[0], 3).clone()
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.ndim != 1 or times[0] != 0 or bool((times.diff() < 0).any()):
        raise ValueError("times must be a non-decreasing 1-D tensor starting at 0")
    # numpy for the many tiny steps (same equations as routing_ode_rhs, ~5x less overhead than torch)
    s_np, x = s.numpy(), b.numpy().copy()
    c_io, c_h = n_trained / n_domains**2 / tau, n_trained / n_domains / tau

    def f(y):
        err = s_np - y[:, 0] * y[:, 1] * y[:, 2]
        return np.stack([c_io * y[:, 2] * y[:, 1] * err, c_h * y[:, 2] * y[:, 0] * err,
                         c_io * y[:, 1] * y[:, 0] * err], axis=-1)

    out, t = [x.copy()], 0.0
    for t_next in times[1:].tolist():
        n_steps = max(1, math.ceil((t_next - t) / max_step))
        h = (t_next - t) / n_steps
        for _ in range(n_steps):
            k1 = f(x)
            k2 = f(x + h / 2 * k1)
            k3 = f(x + h / 2 * k2)
            k4 = f(x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t = t_next
        out.append(x.copy())
    return torch.from_numpy(np.stack(out))


def fixed_point(s: Tensor, *, n_domains: int = 7) -> Tensor:
    """Balanced fixed point ``(b_in, b_h, b_out)`` per mode: ``b_h = (M s)^(1/3)``, ``b_in = b_out = b_h / sqrt(M)``."""
    s = torch.as_tensor(s, dtype=torch.float64)
    b_h = (n_domains * s) ** (1 / 3)
    b_io = b_h / math.sqrt(n_domains)
    return torch.stack([b_io, b_h, b_io], dim=-1)


def _antiderivative(q: Tensor, a: Tensor) -> Tensor:
    r3 = math.sqrt(3.0)
    return (-1 / q - torch.log(a - q) / (3 * a) + torch.log(q**2 + a * q + a**2) / (6 * a)
            - torch.atan((2 * q + a) / (a * r3)) / (a * r3))


def balanced_time(p: Tensor, s: Tensor, p0: Tensor, *, n_domains: int = 7, n_trained: int = 4,
                  tau: float = 1.0) -> Tensor:
    """Closed-form time for the mode strength to go from ``p0`` to ``p`` (balanced init, ``0 < p0 <= p < s``)."""
    p, s, p0 = (torch.as_tensor(x, dtype=torch.float64) for x in (p, s, p0))
    if bool(((p0 <= 0) | (p < p0) | (p >= s)).any()):
        raise ValueError("balanced_time needs 0 < p0 <= p < s (the fixed point p = s is reached only as t -> inf)")
    a, q, q0 = s ** (1 / 3), p ** (1 / 3), p0 ** (1 / 3)
    return tau * n_domains ** (5 / 3) / (n_trained * s) * (_antiderivative(q, a) - _antiderivative(q0, a))


def routing_modes(net, task, *, pairs: list[tuple[int, int]] | None = None) -> dict[str, Tensor]:
    """Project the routing network's weights on the task's singular vectors, per mode (shape (n_modes,) each).

    ``b_in = mean_m ||W_enc^m v||``, ``b_out = mean_n ||W_dec^n^T u||``,
    ``b_h = mean_(m,n) c_n^T W_hid a_m`` with the unit vectors ``a_m = W_enc^m v / ||.||``,
    ``c_n = W_dec^n^T u / ||.||``, and ``p = mean_(m,n) u^T W_dec^n W_hid W_enc^m v`` over
    ``pairs`` (default: the trained pairs). For the aligned network these are the ODE's scalars.
    """
    pairs = task.trained_pairs() if pairs is None else pairs
    u, _, v = task.svd()
    with torch.no_grad():
        w_h = net.weight("hid").double()
        enc = {m: net.weight(f"enc{m}").double() @ v for m in range(task.n_domains)}    # (hidden, r)
        dec = {n: net.weight(f"dec{n}").double().T @ u for n in range(task.n_domains)}  # (hidden, r)
        b_in = torch.stack([e.norm(dim=0) for e in enc.values()]).mean(0)
        b_out = torch.stack([d.norm(dim=0) for d in dec.values()]).mean(0)
        b_h = torch.stack([((dec[n] / dec[n].norm(dim=0)) * (w_h @ (enc[m] / enc[m].norm(dim=0)))).sum(0)
                           for m, n in pairs]).mean(0)
        prod = torch.stack([(dec[n] * (w_h @ enc[m])).sum(0) for m, n in pairs]).mean(0)
    return {"b_in": b_in, "b_h": b_h, "b_out": b_out, "p": prod}


def representation_similarity(h: Tensor) -> Tensor:
    """RSA matrix: Pearson correlation between the rows of ``h`` (n_conditions, n_units)."""
    h = h.double() - h.double().mean(dim=1, keepdim=True)
    h = h / h.norm(dim=1, keepdim=True)
    return h @ h.T
