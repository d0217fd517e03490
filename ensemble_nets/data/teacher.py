# SPDX-License-Identifier: MIT
"""The teacher of the on-line teacher-student setting: a soft committee machine with mode-decomposed weights.

DESIGN.md section 3 (Li & Huang, Phys. Rev. Research 5, L022011, 2023, the on-line learning part)::

    x ~ N(0, I_d)                          fresh input at every step
    z = W x / sqrt(d)                      K hidden fields
    g(z) = erf(z / sqrt(2))
    out(W, x) = (1/K) sum_k g(z_k)         the committee output
    W_T = xi diag(Sigma) xi-hat_T          xi (K, P), Sigma (P,), xi-hat_T (P, d)

with P = int(ln d) modes (3 for d = 30) and every factor entry drawn as
(ln d)^(-1/6) N(0, 1), so that an entry of W_T has variance P / ln d ~ 1.
The student of :mod:`ensemble_nets.analysis.theory.online` shares ``xi`` and
``strengths`` (Sigma) with the teacher and learns only its own ``xi_hat``.

Weights follow the ``nn.Linear`` shape contract: ``(n_hidden, d)``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["ModeTeacher", "committee_output", "default_n_modes", "erf_activation", "mode_init_std"]


def erf_activation(z: torch.Tensor) -> torch.Tensor:
    """g(z) = erf(z / sqrt(2)), the unit of the soft committee machine (odd, g'(0) = sqrt(2/pi))."""
    return torch.erf(z / math.sqrt(2.0))


def committee_output(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(1/K) sum_k g(W_k . x / sqrt(d)).

    :param weight: (torch.Tensor, shape (K, d))
    :param x: (torch.Tensor, shape (..., d))
    :returns: torch.Tensor, shape (...,)
    """
    d = weight.shape[-1]
    return erf_activation(x @ weight.T / math.sqrt(d)).mean(-1)


def default_n_modes(d: int) -> int:
    """P = int(ln d): the number of modes of the reference teacher (3 for d = 30)."""
    return max(1, int(math.log(d)))


def mode_init_std(d: int) -> float:
    """(ln d)^(-1/6): the standard deviation of every factor entry (xi, Sigma, xi-hat)."""
    if d < 3:
        raise ValueError(f"d={d}: the scale (ln d)^(-1/6) needs ln d > 1; use an input dimension d >= 3")
    return math.log(d) ** (-1.0 / 6.0)


@dataclass
class ModeTeacher:
    """A soft committee teacher W_T = xi diag(strengths) xi_hat with a seeded stream of fresh examples.

    :param xi: (torch.Tensor, shape (K, P)) Hidden-side (output-side) mode vectors, shared with the student.
    :param strengths: (torch.Tensor, shape (P,)) Mode strengths Sigma, shared with the student.
    :param xi_hat: (torch.Tensor, shape (P, d)) Input-side mode vectors of the teacher (the student learns
        its own).
    """

    xi: torch.Tensor
    strengths: torch.Tensor
    xi_hat: torch.Tensor

    def __post_init__(self):
        k, p = self.xi.shape
        if self.strengths.shape != (p,) or self.xi_hat.shape[0] != p or self.xi_hat.ndim != 2:
            raise ValueError(f"shapes xi {tuple(self.xi.shape)}, strengths {tuple(self.strengths.shape)}, "
                             f"xi_hat {tuple(self.xi_hat.shape)} do not fit (K, P), (P,), (P, d)")

    @classmethod
    def random(cls, d: int = 30, n_hidden: int = 8, n_modes: int | None = None, *, seed: int = 0,
               dtype: torch.dtype = torch.float64) -> "ModeTeacher":
        """The reference teacher: every factor entry (ln d)^(-1/6) N(0, 1); P defaults to int(ln d)."""
        n_modes = default_n_modes(d) if n_modes is None else n_modes
        if n_modes < 1 or n_hidden < 1:
            raise ValueError(f"n_modes={n_modes}, n_hidden={n_hidden}: both must be >= 1")
        gen = torch.Generator().manual_seed(seed)
        std = mode_init_std(d)
        xi = std * torch.randn(n_hidden, n_modes, generator=gen, dtype=dtype)
        strengths = std * torch.randn(n_modes, generator=gen, dtype=dtype)
        xi_hat = std * torch.randn(n_modes, d, generator=gen, dtype=dtype)
        return cls(xi, strengths, xi_hat)

    @property
    def d(self) -> int:
        return self.xi_hat.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.xi.shape[0]

    @property
    def n_modes(self) -> int:
        return self.xi.shape[1]

    @property
    def mixing(self) -> torch.Tensor:
        """A = xi diag(Sigma), shape (K, P): W = A xi_hat for teacher and student alike."""
        return self.xi * self.strengths

    @property
    def weight(self) -> torch.Tensor:
        """W_T = xi diag(Sigma) xi_hat, shape (K, d)."""
        return self.mixing @ self.xi_hat

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The label y = (1/K) sum_n g(W_T,n . x / sqrt(d)), shape x.shape[:-1]."""
        return committee_output(self.weight, x)

    def stream(self, batch_shape: tuple[int, ...] = (), *, seed: int = 0,
               chunk: int = 1024) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """An endless seeded stream of fresh examples, ``chunk`` steps at a time.

        Yields ``(x, y)`` with x of shape ``(chunk, *batch_shape, d)`` (x ~ N(0, I_d)) and y of shape
        ``(chunk, *batch_shape)``; the same seed gives the same stream.
        """
        if chunk < 1:
            raise ValueError(f"chunk={chunk} must be >= 1")
        gen = torch.Generator().manual_seed(seed)
        while True:
            x = torch.randn(chunk, *batch_shape, self.d, generator=gen, dtype=self.xi_hat.dtype)
            yield x, self(x)
