# SPDX-License-Identifier: MIT
"""Category tolerances: fixed, or read from the trained parameters (ELBO-trained ensembles).

With ``pi`` the probability that a connection is ABSENT and ``xi`` the slab
VARIANCE, a :class:`Tolerance` reads a connection as important when
``pi <= pi_low and xi <= xi`` and as unimportant when ``pi >= 1 - pi_high``.

Why a tolerance from the data: the ELBO's KL is infinite on the boundary, so
its projection keeps ``margin <= pi <= 1 - margin`` and ``xi >= margin``, and
reading the categories at ``tol = margin`` makes every connection "variable"
by construction, whatever was learned. :func:`choose_tolerance` reads the
bounds where the log-scale histograms of pi, 1 - pi and xi separate the
connections pushed towards the boundary from the rest, never beyond a cap;
:func:`parameter_histograms` gives those histograms, to be shown beside the
categories.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import checked_layers

__all__ = ["Tolerance", "choose_tolerance", "parameter_histograms"]


@dataclass(frozen=True)
class Tolerance:
    """Separate category tolerances: important ``pi <= pi_low and xi <= xi``, unimportant ``pi >= 1 - pi_high``."""

    pi_low: float = 0.0
    pi_high: float = 0.0
    xi: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.pi_low < 0.5 and 0.0 <= self.pi_high < 0.5):
            raise ValueError(f"pi_low and pi_high must lie in [0, 0.5), got {self.pi_low} and {self.pi_high}")
        if not (math.isfinite(self.xi) and self.xi >= 0.0):
            raise ValueError(f"the xi tolerance is a variance bound and must be finite and >= 0, got {self.xi}")

    @classmethod
    def of(cls, tol: float | Tolerance | dict) -> Tolerance:
        """``tol`` itself, the :class:`Tolerance` that reads a number for all three bounds, or one from
        the dict ``{"pi_low": ..., "pi_high": ..., "xi": ...}`` (``dataclasses.asdict`` of one, as JSON holds it)."""
        if isinstance(tol, Tolerance):
            return tol
        if isinstance(tol, dict):
            if set(tol) != {"pi_low", "pi_high", "xi"}:
                raise ValueError(f"a tolerance dict needs exactly the keys pi_low, pi_high and xi, got {sorted(tol)}")
            return cls(**{k: float(v) for k, v in tol.items()})
        if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and 0.0 <= tol < 0.5):
            raise ValueError(f"tol must be a number in [0, 0.5), a Tolerance or its dict, got {tol!r}")
        return cls(float(tol), float(tol), float(tol))


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the split of ``values`` into two classes with the largest between-class variance."""
    counts, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)  # class "below" up to and including bin b
    total = weight[-1]
    moment = np.cumsum(counts * centers)
    below, above = weight[:-1], total - weight[:-1]
    valid = (below > 0) & (above > 0)
    mean_below = np.where(valid, moment[:-1] / np.maximum(below, 1), 0.0)
    mean_above = np.where(valid, (moment[-1] - moment[:-1]) / np.maximum(above, 1), 0.0)
    between = np.where(valid, below * above * (mean_below - mean_above) ** 2, -1.0)
    return float(edges[1:-1][int(np.argmax(between))])  # the upper edge of the last bin "below"


def _gap_bound(values: torch.Tensor, cap: float) -> float:
    """A bound on small positive ``values`` read at the valley of their log10 histogram, at most ``cap``."""
    positive = values[values > 0].double().cpu().numpy()
    if positive.size < 2 or np.ptp(np.log10(positive)) == 0:
        return 0.0 if positive.size == 0 or positive.min() > cap else cap
    return min(10.0 ** _otsu(np.log10(positive)), cap)


@torch.no_grad()
def choose_tolerance(model: nn.Module, *, prior_variance: float, max_pi: float = 0.02,
                     max_xi_fraction: float = 0.02) -> Tolerance:
    """Category tolerances read from the parameters of ``model`` (for ELBO-trained ensembles).

    Pooled over every spike-and-slab layer::

        pi_low  = min( 10^otsu(log10 pi),         max_pi )                          over pi > 0
        pi_high = min( 10^otsu(log10 (1 - pi)),   max_pi )                          over pi < 1
        xi      = min( 10^otsu(log10 xi),         max_xi_fraction * prior_variance )  over xi > 0

    ``otsu`` is Otsu's threshold (the two-class split of largest between-class
    variance) of the log10 histogram: where the connections pushed towards
    the boundary (held at the ELBO margin, or near it) separate from the rest.
    The caps are the fixed reading "pi < 2%, pi > 98%, xi below 2% of the prior
    variance": a histogram without a gap below the cap gives the cap, so the
    rule never calls pi = 0.3 "absent". Report the tolerance with the
    categories, and look at the histograms of pi and xi beside them.

    :param prior_variance: xi0 of the ELBO prior (the scale the xi bound is relative to), > 0.
    :param max_pi: cap on ``pi_low`` and ``pi_high``, in (0, 0.5).
    :param max_xi_fraction: cap on the xi bound as a fraction of ``prior_variance``, > 0.
    """
    if not prior_variance > 0:
        raise ValueError(f"prior_variance must be > 0, got {prior_variance}")
    if not 0.0 < max_pi < 0.5:
        raise ValueError(f"max_pi must lie in (0, 0.5), got {max_pi}")
    if not max_xi_fraction > 0:
        raise ValueError(f"max_xi_fraction must be > 0, got {max_xi_fraction}")
    layers = checked_layers(model)
    pi = torch.cat([layer.pi.detach().flatten() for _, layer in layers])
    xi = torch.cat([layer.xi.detach().flatten() for _, layer in layers])
    return Tolerance(pi_low=_gap_bound(pi, max_pi), pi_high=_gap_bound(1.0 - pi, max_pi),
                     xi=_gap_bound(xi, max_xi_fraction * prior_variance))


@torch.no_grad()
def parameter_histograms(model: nn.Module, *, bins: int = 60, low: float = -8.0) -> pd.DataFrame:
    """Log10 histograms of pi, 1 - pi and xi per layer, with the exact boundary values counted apart.

    Columns: ``layer``, ``quantity`` (``"pi"``, ``"1-pi"``, ``"xi"``), ``bin_low``, ``bin_high``
    (log10 edges, ``bins`` equal bins from ``low`` to the largest value), ``count``. A row with
    ``bin_low = bin_high = -inf`` counts the values exactly 0 (on the boundary); values in (0, 10^low)
    fall in the first bin.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    rows = []
    for index, (_, layer) in enumerate(checked_layers(model), start=1):
        pi, xi = layer.pi.detach().double().flatten().cpu(), layer.xi.detach().double().flatten().cpu()
        for quantity, values in (("pi", pi), ("1-pi", 1.0 - pi), ("xi", xi)):
            zero = int((values <= 0).sum())
            rows.append({"layer": f"layer{index}", "quantity": quantity, "bin_low": -math.inf,
                         "bin_high": -math.inf, "count": zero})
            logs = np.log10(values[values > 0].numpy()).clip(min=low)
            high = max(float(logs.max()) if logs.size else low + 1.0, low + 1e-9)
            counts, edges = np.histogram(logs, bins=bins, range=(low, high))
            rows += [{"layer": f"layer{index}", "quantity": quantity, "bin_low": float(a), "bin_high": float(b),
                      "count": int(c)} for a, b, c in zip(edges[:-1], edges[1:], counts)]
    return pd.DataFrame(rows)
