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

The race between pathways (:func:`race_ode_rhs`, :func:`integrate_race_ode`,
:func:`race_outcome`): a shared pathway and private per-domain pathways that can each
solve the task, one ODE term per pathway; the network and its simulation are in
:mod:`ensemble_nets.protocols.racing`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["balanced_time", "fixed_point", "integrate_race_ode", "integrate_routing_ode", "ode_time_per_epoch",
           "race_ode_rhs", "race_outcome", "representation_similarity", "routing_modes", "routing_ode_rhs"]


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


# --- the race between pathways (DESIGN.md 4.3: "the reduction has one term per pathway") -------------------------
#
# Pathways ``p`` (each a two-or-more-layer linear chain from the shared input to the shared output) compete for
# the same targets. With aligned initialisation every pathway keeps, per singular mode ``alpha`` (value ``s``), one
# scalar per layer ``b_{p,1..N}``; its strength is ``a_p = prod_k b_{p,k}``. Pathway ``p`` is gated on for the
# domains in ``S_p``; domain ``m``'s error is ``e_m = s - sum_{p: m in S_p} a_p``, and with ODE time
# ``t = step * lr * 2 / P`` (loss (1/P) sum ||y - yhat||^2 over P examples, one-hot items)::
#
#     db_{p,k}/dt = (a_p / b_{p,k}) sum_{m in S_p} e_m
#
# Each pathway's speed is the sum of the errors of the domains it serves: a pathway shared by D domains races
# D times faster than a private one. Two-layer balanced pathways (b_{p,1} = b_{p,2}) obey
# d ln a_p / dt = 2 sum_{m in S_p} e_m; for a shared pathway serving D domains, each of which also has a private
# pathway (all private inits equal), the errors are equal, so ln(a/a0) = D ln(c/c0) for all t and the race ends at
#
#     a_inf = a0 (c_inf / c0)^D,     a_inf + c_inf = s          (:func:`race_outcome`)
#
# D = 1 with a0 = c0 is a tie (each carries s/2); with D > 1 and small init the shared pathway carries nearly all
# of s: c_inf ~ (s c0^D / a0)^(1/D) ... -> 0 as the init shrinks.


def race_ode_rhs(b: np.ndarray, s: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """``db/dt`` of the pathway race.

    :param b: (ndarray, shape (n_modes, n_paths, depth)) Layer scalars of every pathway per mode.
    :param s: (ndarray, shape (n_modes,)) Singular values of the per-domain ``Sigma_yx``.
    :param membership: (ndarray, shape (n_paths, n_domains)) 1 where pathway ``p`` is gated on for domain
        ``m``, else 0.
    """
    strength = b.prod(-1)                                    # (n_modes, n_paths) a_p
    err = s[:, None] - strength @ membership                 # (n_modes, n_domains) e_m
    drive = err @ membership.T                               # (n_modes, n_paths) sum_{m in S_p} e_m
    others = np.stack([np.delete(b, k, axis=-1).prod(-1) for k in range(b.shape[-1])], axis=-1)  # a_p / b_pk
    return others * drive[..., None]


def integrate_race_ode(s, b0, membership, times, *, max_step: float = 1e-3) -> np.ndarray:
    """Integrate :func:`race_ode_rhs` (fourth-order Runge-Kutta); returns ``b`` at ``times``.

    :param s: ``(n_modes,)`` singular values.
    :param b0: ``(n_modes, n_paths, depth)`` initial layer scalars.
    :param membership: ``(n_paths, n_domains)`` 0/1 gating of pathways by domain.
    :param times: ``(T,)`` non-decreasing output times starting at 0 (ODE time, see the section comment).
    :param max_step: largest RK4 step.
    :returns: ``(T, n_modes, n_paths, depth)``.
    """
    s = np.asarray(s, dtype=np.float64)
    x = np.array(b0, dtype=np.float64)
    membership = np.asarray(membership, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if x.ndim != 3 or x.shape[:2] != (s.shape[0], membership.shape[0]):
        raise ValueError(f"b0 must be (n_modes={s.shape[0]}, n_paths={membership.shape[0]}, depth), got {x.shape}")
    if times.ndim != 1 or times[0] != 0 or (np.diff(times) < 0).any():
        raise ValueError("times must be a non-decreasing 1-D array starting at 0")
    out, t = [x.copy()], 0.0
    for t_next in times[1:]:
        n_steps = max(1, math.ceil((t_next - t) / max_step))
        h = (t_next - t) / n_steps
        for _ in range(n_steps):
            k1 = race_ode_rhs(x, s, membership)
            k2 = race_ode_rhs(x + h / 2 * k1, s, membership)
            k3 = race_ode_rhs(x + h / 2 * k2, s, membership)
            k4 = race_ode_rhs(x + h * k3, s, membership)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t = t_next
        out.append(x.copy())
    return np.stack(out)


def race_outcome(s, shared_init, private_init, n_shared: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the race of a balanced two-layer shared pathway against private ones ends.

    Solves ``a = a0 (c / c0)^D``, ``a + c = s`` (section comment) for every mode.

    :param s: ``(n_modes,)`` singular values (> 0).
    :param shared_init: ``a0 > 0``, the shared pathway's initial strength (``gain^2`` for aligned init).
    :param private_init: ``c0 > 0``, every private pathway's initial strength (below ``s``).
    :param n_shared: ``D >= 1``, the number of domains the shared pathway serves.
    :returns: ``(a_inf, c_inf)``, each ``(n_modes,)``: what the shared pathway and each private pathway of a
        shared domain carry at the end.
    """
    s = np.atleast_1d(np.asarray(s, dtype=np.float64))
    if n_shared < 1 or not shared_init > 0 or not private_init > 0 or (s <= 0).any():
        raise ValueError(f"need n_shared >= 1, shared_init > 0, private_init > 0 and s > 0; got {n_shared}, "
                         f"{shared_init}, {private_init}, {s}")
    a0, c0, d = float(shared_init), float(private_init), int(n_shared)
    lo, hi = np.zeros_like(s), s.copy()  # g(c) = a0 (c/c0)^D + c - s is increasing in c
    for _ in range(200):
        mid = (lo + hi) / 2
        above = a0 * np.exp(d * (np.log(mid) - np.log(c0))) + mid > s
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    c = (lo + hi) / 2
    return s - c, c
