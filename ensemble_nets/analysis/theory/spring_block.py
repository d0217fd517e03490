# SPDX-License-Identifier: MIT
"""The spring-block models of layer-wise feature learning (DESIGN.md 4.2; Shi, Pan & Dokmanic 2024).

Blocks are layers, springs the per-layer separation, friction the nonlinearity, shaking the
noise. Two models, both returning :class:`SpringBlockResult`:

**First order** (:func:`simulate_spring_block`, the notebook's first-order chain). ``L``
blocks on a rough table: block ``l`` (a layer) sits at ``x_l``, block 0 (the input) is pinned
at ``x_0 = 0``, spring ``l`` joins blocks ``l - 1`` and ``l`` with extension
``d_l = x_l - x_{l-1}`` (what layer ``l`` adds to the data separation, ``-Delta log D_l``), and
the loss pulls the last block with force ``F``. The force on block ``l`` is::

    f_l = k (d_{l+1} - d_l)        (l < L),        f_L = F - k d_L

Overdamped dynamics with static (Coulomb) friction: a block moves only when the force on it
exceeds the friction threshold, and then with the excess::

    dx_l/dt = (1 + eta) g(f_l + s_l)  if g > 0,   (1 - eta) g(f_l + s_l)  if g < 0
    g(f) = f - mu  if f > mu,   f + mu  if f < -mu,   0 otherwise

``mu`` (``friction``) plays the nonlinearity. Shaking (``noise``): ``s_l`` is a random force,
fresh every step and every block, of standard deviation ``sigma``. The Langevin variant adds
thermal motion, ``dx_l = g(f_l + s_l) dt + sqrt(2 T dt) z_l``.

Without shaking the pull only gets past the friction near the pulled end: ``k d_l =
max(0, F - (L - l + 1) mu)``, so only the deep springs stretch (a concave load curve).
Shaking unsticks the blocks; with the notebook's symmetric friction (``eta = 0``, the default)
it relaxes the chain to the frictionless state ``d_l = F/k`` (equal springs, a linear load
curve) and stronger shaking keeps it there: the first-order model has no convex phase.

``eta`` (``asymmetry``) is an option of this project, not of the notebook (the default was
0.05 before issue 12): a mobility ``1 + eta`` forward and ``1 - eta`` backward rectifies the
shaking into a forward drift on every block, ``c ~ eta sigma sqrt(2/pi)`` once ``sigma >> mu``,
which a backward spring force must balance; the stationary chain is then ``k d_l ~ F + (L - l
+ 1) c``: the shallow springs carry the drift of every block behind them and stretch most (a
convex load curve).

**Second order** (:func:`simulate_spring_langevin`, the authors' Langevin chain between two
walls ``x_0 = 0`` and ``x_{L+1} = 1``, ``L + 1`` springs, inertia, viscous damping, Coulomb
friction ``mu_+`` forward and ``mu_-`` backward and ONE shaking force shared by every block;
equations in its docstring). Two exact statements frame what it can show:

* noise 0, blocks starting at ``x = 0``: the pull travels back from the target wall and each
  block sticks as soon as its net spring force falls to ``mu_+``, so
  ``d_{l+1} - d_l = mu_+ / k``: springs lengthen with depth (concave);
* symmetric friction (``mu_+ = mu_-``): the map ``x_i -> 1 - x_{L+1-i}`` (with the noise
  ``eta -> -eta``, equal in law) leaves the equations unchanged, so the stationary law of the
  extensions is mirror symmetric, ``E d_l = E d_{L+2-l}``: shared shaking alone cannot make the
  time-averaged chain convex. With ``mu_- > mu_+`` a block that slides both ways loses
  ``(mu_- - mu_+) / 2`` of friction per unit time on average in the forward direction; the
  springs balance it with a tilt ``d_l - d_{l+1} ~ (mu_- - mu_+) / (2 k)`` (0.005 for the
  reference values): a mildly convex chain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpringBlockResult", "langevin_elongations", "langevin_max_dt", "simulate_spring_block",
           "simulate_spring_langevin", "spring_forces"]


@dataclass(frozen=True)
class SpringBlockResult:
    """Trajectory of a spring-block chain.

    ``S`` is the number of springs: ``L`` in the first-order chain (block 0 pinned, the last
    block pulled), ``L + 1`` in the second-order chain (both ends are walls).

    :param times: ``(n_saved,)`` times of the saved states.
    :param positions: ``(n_saved, S + 1)`` positions, ``x_0 = 0`` first (and the wall
        ``x_{L+1} = 1`` last in the second-order chain).
    :param extensions: ``(S,)`` final spring extensions ``d_l``.
    :param mean_extensions: ``(S,)`` extensions averaged over the second half of the run
        (the stationary state under shaking; equal to ``extensions`` without noise).
    """

    times: np.ndarray
    positions: np.ndarray
    extensions: np.ndarray
    mean_extensions: np.ndarray

    @property
    def load_curve(self) -> np.ndarray:
        """``(S + 1,)`` minus the cumulated mean extensions: the model's ``log D_l`` up to a constant."""
        return -np.concatenate([[0.0], np.cumsum(self.mean_extensions)])


def spring_forces(x: np.ndarray, pull: float, stiffness: float) -> np.ndarray:
    """Net spring force on blocks ``1..L``; ``x`` is ``(..., L)`` (block 0 pinned at 0)."""
    d = np.diff(x, prepend=0.0, axis=-1)  # (..., L) extensions
    ahead = np.concatenate([d[..., 1:], np.full(d.shape[:-1] + (1,), pull / stiffness)], axis=-1)
    return stiffness * (ahead - d)


def _slip(f: np.ndarray, mu: float, asymmetry: float) -> np.ndarray:
    """Velocity of a block under net force ``f``: dead zone ``|f| <= mu``, mobility ``1 +- eta``."""
    g = np.sign(f) * np.maximum(np.abs(f) - mu, 0.0)
    return g * np.where(g > 0, 1.0 + asymmetry, 1.0 - asymmetry)


def simulate_spring_block(
    n_blocks: int = 8,
    *,
    friction: float = 0.3,
    noise: float = 0.0,
    asymmetry: float = 0.0,
    temperature: float = 0.0,
    pull: float = 1.0,
    stiffness: float = 1.0,
    dt: float = 0.1,
    n_steps: int = 6_000,
    save_every: int = 100,
    seed: int = 0,
) -> SpringBlockResult:
    """Integrate the chain from rest (all ``x_l = 0``); see the module docstring for the equations.

    :param n_blocks: ``L``, the number of moving blocks (layers).
    :param friction: ``mu >= 0``, the static friction threshold (the nonlinearity).
    :param noise: ``sigma >= 0``, std of the shaking force (fresh every step).
    :param asymmetry: ``eta`` in ``[0, 1)``: mobility ``1 + eta`` forward, ``1 - eta`` backward.
        Default 0 (symmetric, as in the authors' notebook; no convex phase). Issue 12 changed
        the default from 0.05: pass ``asymmetry=0.05`` for the earlier behaviour, whose convex
        phase under strong shaking comes from this asymmetry.
    :param temperature: ``T >= 0``; ``T > 0`` is the Langevin version (thermal position noise).
    :param pull: ``F``, the force on the last block.
    :param stiffness: ``k > 0``, every spring's constant.
    :param dt: time step (stable for ``dt * stiffness * (1 + eta) < 0.5``).
    :param n_steps: number of steps; ``save_every``: keep every that many states.
    :param seed: seed of the noise.
    """
    if n_blocks < 1 or n_steps < 2 or save_every < 1:
        raise ValueError(f"n_blocks, n_steps, save_every must be >= 1, 2, 1, got {n_blocks}, {n_steps}, {save_every}")
    if friction < 0 or noise < 0 or temperature < 0:
        raise ValueError(f"friction, noise and temperature must be >= 0, got {friction}, {noise}, {temperature}")
    if not 0 <= asymmetry < 1:
        raise ValueError(f"asymmetry must lie in [0, 1), got {asymmetry}")
    if stiffness <= 0 or not 0 < dt * stiffness * (1 + asymmetry) < 0.5:
        raise ValueError(f"need stiffness > 0 and 0 < dt * stiffness * (1 + asymmetry) < 0.5 for a stable "
                         f"step, got stiffness={stiffness}, dt={dt}")
    rng = np.random.default_rng(seed)
    x = np.zeros(n_blocks)
    saved_t, saved_x = [0.0], [np.concatenate([[0.0], x])]
    running, n_avg = np.zeros(n_blocks), 0
    for step in range(1, n_steps + 1):
        force = spring_forces(x, pull, stiffness)
        if noise > 0:
            force = force + noise * rng.standard_normal(n_blocks)
        x = x + dt * _slip(force, friction, asymmetry)
        if temperature > 0:
            x = x + np.sqrt(2 * temperature * dt) * rng.standard_normal(n_blocks)
        if step > n_steps // 2:
            running += np.diff(x, prepend=0.0)
            n_avg += 1
        if step % save_every == 0:
            saved_t.append(step * dt)
            saved_x.append(np.concatenate([[0.0], x]))
    return SpringBlockResult(np.array(saved_t), np.array(saved_x), np.diff(x, prepend=0.0), running / n_avg)


def langevin_max_dt(*, mass: float = 1.0, damping: float = 1.0, stiffness: float = 0.1) -> float:
    """Largest stable step of :func:`simulate_spring_langevin`'s semi-implicit Euler scheme.

    The chain's stiffest mode has ``omega^2 < 4 k / m``; the damped semi-implicit Euler map is
    stable for ``k dt^2 / m + gamma dt / (2 m) < 1`` (Jury conditions on its 2 x 2 matrix), i.e.::

        dt < dt_max = m (sqrt(gamma^2 / (4 m^2) + 4 k / m) - gamma / (2 m)) / (2 k)

    (1.53 for the defaults m = 1, gamma = 1, k = 0.1).
    """
    if mass <= 0 or damping < 0 or stiffness <= 0:
        raise ValueError(f"need mass > 0, damping >= 0, stiffness > 0, got {mass}, {damping}, {stiffness}")
    half_rate = damping / (2 * mass)
    return mass * (np.sqrt(half_rate**2 + 4 * stiffness / mass) - half_rate) / (2 * stiffness)


def simulate_spring_langevin(
    n_blocks: int = 7,
    *,
    mass: float = 1.0,
    damping: float = 1.0,
    stiffness: float = 0.1,
    friction_forward: float = 0.003,
    friction_back: float = 0.004,
    noise: float = 0.003,
    noise_decay: float = 0.001,
    dt: float = 0.05,
    t_max: float = 700.0,
    save_every: int = 100,
    seed: int = 0,
) -> SpringBlockResult:
    """The authors' second-order (Langevin) spring-block chain between two walls (DESIGN.md 4.2).

    ``L`` blocks at ``x_1..x_L`` between walls ``x_0 = 0`` (the input) and ``x_{L+1} = 1`` (the
    target), joined by ``L + 1`` springs of extension ``d_l = x_l - x_{l-1}``::

        m x_i'' = k (x_{i+1} - 2 x_i + x_{i-1}) - gamma x_i' - mu_(+/-) sign(x_i')
                  + noise * exp(-noise_decay * t) * eta(t)

    ``mu_+`` (``friction_forward``) acts on a block sliding towards the target (``x_i' > 0``),
    ``mu_-`` (``friction_back``) on one sliding back. ``eta(t)`` is ONE white noise shared by
    every block (the whole table is shaken): in each step a single ``z ~ N(0, 1)`` gives every
    block the same velocity kick ``noise * exp(-noise_decay t) * sqrt(dt) * z / m``
    (Euler-Maruyama). The blocks start at rest at ``x = 0``, so only the last spring is
    stretched; the pull travels back through the chain.

    Friction is Coulomb friction with sticking: in each step the trial velocity
    ``v* = v + dt (F - gamma v) / m + kick`` (``F`` the spring force) is reduced towards zero by
    ``mu dt / m`` (``mu`` chosen by the sign of ``v*``) and set to zero when friction would
    reverse it, so a block stays put while its drive is below the threshold. Positions then
    move by ``dt v`` (semi-implicit Euler; stable for ``dt <`` :func:`langevin_max_dt`).

    Expected (DESIGN.md): noise 0: concave (springs lengthen with depth); noise 0.003-0.03:
    about equal springs; noise 0.1: convex (the first spring longest).

    :param n_blocks: (int) ``L``, the number of moving blocks (the network's layers; 7).
    :param mass, damping, stiffness: (float) ``m > 0``, ``gamma >= 0``, ``k > 0``.
    :param friction_forward, friction_back: (float) ``mu_+ >= 0`` and ``mu_- >= 0``; equal values give
        symmetric friction.
    :param noise, noise_decay: (float) ``eps >= 0`` and ``lambda >= 0``: the shaking amplitude and its
        decay rate.
    :param dt, t_max: (float) Time step and duration (``round(t_max / dt)`` steps).
    :param save_every: (int) Keep every that many states in ``positions``.
    :param seed: (int) Seed of the noise.
    :returns: (SpringBlockResult) ``positions`` ``(n_saved, L + 2)`` with both walls; ``extensions``
        ``(L + 1,)`` the final spring lengths (they sum to 1); ``mean_extensions`` their average over the
        second half.
    """
    if n_blocks < 1 or save_every < 1:
        raise ValueError(f"n_blocks and save_every must be >= 1, got {n_blocks}, {save_every}")
    if min(friction_forward, friction_back, noise, noise_decay) < 0:
        raise ValueError(f"friction_forward, friction_back, noise and noise_decay must be >= 0, got "
                         f"{friction_forward}, {friction_back}, {noise}, {noise_decay}")
    dt_max = langevin_max_dt(mass=mass, damping=damping, stiffness=stiffness)
    if not 0 < dt < dt_max:
        raise ValueError(f"dt={dt} is outside the stable range 0 < dt < {dt_max:.4g} for mass={mass}, "
                         f"damping={damping}, stiffness={stiffness} (semi-implicit Euler needs "
                         f"k dt^2/m + gamma dt/(2m) < 1); lower dt")
    n_steps = int(round(t_max / dt))
    if n_steps < 2:
        raise ValueError(f"t_max={t_max} must cover at least two steps of dt={dt}")
    rng = np.random.default_rng(seed)
    kicks = noise * np.exp(-noise_decay * dt * np.arange(n_steps)) * np.sqrt(dt) / mass * rng.standard_normal(n_steps)
    x, v = np.zeros(n_blocks + 2), np.zeros(n_blocks)  # x with both walls: x[0] = 0, x[-1] = 1
    x[-1] = 1.0
    saved_t, saved_x = [0.0], [x.copy()]
    running, n_avg = np.zeros(n_blocks + 1), 0
    for step in range(1, n_steps + 1):
        force = stiffness * (x[2:] - 2 * x[1:-1] + x[:-2])  # (L,) spring force on the moving blocks
        trial = v + dt * (force - damping * v) / mass + kicks[step - 1]
        brake = dt / mass * np.where(trial > 0, friction_forward, friction_back)
        v = np.sign(trial) * np.maximum(np.abs(trial) - brake, 0.0)  # friction stops, never reverses
        x[1:-1] += dt * v
        if step > n_steps // 2:
            running += np.diff(x)
            n_avg += 1
        if step % save_every == 0:
            saved_t.append(step * dt)
            saved_x.append(x.copy())
    return SpringBlockResult(np.array(saved_t), np.array(saved_x), np.diff(x), running / n_avg)


def langevin_elongations(noises=(0.0, 0.003, 0.01, 0.03, 0.1), frictions=((0.003, 0.004), (0.003, 0.003)),
                         seeds=range(5), **kwargs):
    """Spring lengths of :func:`simulate_spring_langevin` over noise x friction x seed, as a tidy frame.

    :param noises: shaking amplitudes ``eps``.
    :param frictions: ``(mu_+, mu_-)`` pairs; the defaults are the reference (asymmetric) and
        symmetric friction.
    :param seeds: noise seeds.
    :param kwargs: other options of :func:`simulate_spring_langevin`.
    :returns: ``pandas.DataFrame``, one row per (noise, friction, seed, spring): ``noise``,
        ``friction_forward``, ``friction_back``, ``seed``, ``spring`` (1..L+1), ``extension``
        (final) and ``mean_extension`` (second half of the run).
    """
    import pandas as pd

    rows = []
    for noise in noises:
        for mu_plus, mu_minus in frictions:
            for seed in seeds:
                result = simulate_spring_langevin(noise=noise, friction_forward=mu_plus, friction_back=mu_minus,
                                                  seed=seed, **kwargs)
                for spring, (d, d_mean) in enumerate(zip(result.extensions, result.mean_extensions), start=1):
                    rows.append({"noise": noise, "friction_forward": mu_plus, "friction_back": mu_minus,
                                 "seed": seed, "spring": spring, "extension": d, "mean_extension": d_mean})
    return pd.DataFrame(rows)
