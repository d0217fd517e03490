# SPDX-License-Identifier: MIT
"""The spring-block model of layer-wise feature learning (DESIGN.md 4.2; Shi, Pan & Dokmanic 2024).

A chain of ``L`` blocks on a rough table: block ``l`` (a layer) sits at ``x_l``, block 0 (the
input) is pinned at ``x_0 = 0``, spring ``l`` joins blocks ``l - 1`` and ``l`` with extension
``d_l = x_l - x_{l-1}`` (what layer ``l`` adds to the data separation, ``-Delta log D_l``), and
the loss pulls the last block with force ``F``. The force on block ``l`` is::

    f_l = k (d_{l+1} - d_l)        (l < L),        f_L = F - k d_L

Overdamped dynamics with static (Coulomb) friction: a block moves only when the force on it
exceeds the friction threshold, and then with the excess::

    dx_l/dt = (1 + eta) g(f_l + s_l)  if g > 0,   (1 - eta) g(f_l + s_l)  if g < 0
    g(f) = f - mu  if f > mu,   f + mu  if f < -mu,   0 otherwise

``mu`` (``friction``) plays the nonlinearity; ``eta`` (``asymmetry``) makes sliding forward
(gaining separation) slightly easier than sliding back. Shaking (``noise``): ``s_l`` is a random force,
fresh every step, of standard deviation ``sigma``. The Langevin version adds thermal motion,
``dx_l = g(f_l + s_l) dt + sqrt(2 T dt) z_l``.

Without shaking the pull only gets past the friction near the pulled end: ``k d_l =
max(0, F - (L - l + 1) mu)``, so only the deep springs stretch (a concave load curve).
Shaking unsticks the blocks; with a symmetric response (``eta = 0``) it relaxes the chain to
the frictionless state ``d_l = F/k`` (equal springs, a linear load curve). With ``eta > 0``
(our modelling choice; the source paper's exact noise term may differ) the shaking is
rectified into a forward drift on every block, ``c ~ eta sigma sqrt(2/pi)`` once ``sigma >> mu``,
which a backward spring force must balance; the stationary chain is then ``k d_l ~ F + (L - l
+ 1) c``: the shallow springs carry the drift of every block behind them and stretch most (a
convex load curve). Moderate noise breaks the friction while ``c`` is still small against
``F``: nearly equal springs. More friction needs more shaking to reach that band.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpringBlockResult", "simulate_spring_block", "spring_forces"]


@dataclass(frozen=True)
class SpringBlockResult:
    """Trajectory of a spring-block chain.

    :param times: ``(n_saved,)`` times of the saved states.
    :param positions: ``(n_saved, L + 1)`` block positions, ``x_0 = 0`` first.
    :param extensions: ``(L,)`` final spring extensions ``d_l``.
    :param mean_extensions: ``(L,)`` extensions averaged over the second half of the run
        (the stationary state under shaking; equal to ``extensions`` without noise).
    """

    times: np.ndarray
    positions: np.ndarray
    extensions: np.ndarray
    mean_extensions: np.ndarray

    @property
    def load_curve(self) -> np.ndarray:
        """``(L + 1,)`` minus the mean block positions: the model's ``log D_l`` up to a constant."""
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
    asymmetry: float = 0.05,
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
