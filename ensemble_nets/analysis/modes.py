# SPDX-License-Identifier: MIT
"""Modes of any trained network: importance spectra, power-law fits, mode removal.

Every weight matrix is written as a sum of rank-one modes::

    W = sum_mu Sigma_mu xi_out[:, mu] xi_in[:, mu]^T

For an MDL layer (:class:`~ensemble_nets.layers.ModeLinear`) these are its
trained factors (``xi`` = MODE VECTORS here, not a slab variance); for any
other matrix (a plain layer's weight, an ensemble's mean weight
``(1 - pi) m``) they are the singular value decomposition, singular values
playing Sigma. Importance scores per mode (Li & Huang 2023)::

    sigma      |Sigma_mu|
    tau        |Sigma_mu| + gamma (||xi_out_mu|| + ||xi_in_mu||),
               gamma = mean_mu |Sigma_mu| / mean_mu (||xi_out_mu|| + ||xi_in_mu||)
    magnitude  |Sigma_mu| ||xi_out_mu|| ||xi_in_mu||   (Frobenius norm of the rank-one term)

For an SVD the vectors have unit norm, so tau = s + mean(s) and all three
scores rank the modes alike. Mode removal works on plain copies of the
network (ensembles: the deterministic mean network); the model is never
modified.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import keeps_global_rng, test_tensors
from ensemble_nets.training.evaluate import accuracy

__all__ = [
    "MODE_SCORES",
    "REMOVAL_ORDERS",
    "PowerLawFit",
    "accuracy_vs_leading_modes",
    "fit_piecewise_power_law",
    "layer_factors",
    "mode_removal_curve",
    "mode_spectrum",
    "model_spectra",
    "plain_network",
    "weight_layers",
]

#: Importance scores a spectrum can be ranked by.
MODE_SCORES = ("tau", "sigma", "magnitude")
#: Removal orders of :func:`mode_removal_curve`.
REMOVAL_ORDERS = ("least_first", "most_first", "random")


# ---------------------------------------------------------------- factors and spectra

def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The weight layers of a LayerStack model (``linear_layers``) or of a plain ``nn.Sequential``."""
    if hasattr(model, "linear_layers"):
        return list(model.linear_layers)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no weight layers; pass an en.MLP, en.EnsembleMLP, "
                         f"en.ModeMLP or an nn.Sequential of nn.Linear")
    return layers


def _layer_index(model: nn.Module, layer: int | str) -> int:
    n = len(weight_layers(model))
    index = int(layer[5:]) if isinstance(layer, str) and layer.startswith("layer") and layer[5:].isdigit() else layer
    if not (isinstance(index, int) and 1 <= index <= n):
        raise ValueError(f"layer must be 1..{n} or 'layer1'..'layer{n}', got {layer!r}")
    return index - 1


@torch.no_grad()
def layer_factors(layer: nn.Module | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(xi_out, Sigma, xi_in)`` with ``W = xi_out diag(Sigma) xi_in^T``.

    An MDL layer gives its trained factors (Sigma signed); anything else (a
    layer with ``weight``, or a matrix) gives its SVD (Sigma >= 0, descending).
    """
    if hasattr(layer, "modes_in") and hasattr(layer, "strengths"):
        return layer.modes_out.detach().clone(), layer.strengths.detach().clone(), layer.modes_in.detach().clone()
    weight = layer if isinstance(layer, torch.Tensor) else getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"layer must be a 2-d weight matrix or a layer with a 2-d `weight`, "
                         f"got {type(layer).__name__}")
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    dtype = weight.dtype
    return u.to(dtype), s.to(dtype), vh.T.to(dtype)


def mode_spectrum(layer: nn.Module | torch.Tensor) -> pd.DataFrame:
    """Importance of every mode of one layer (or matrix), one row per mode.

    Columns: ``mode`` (index in the layer), ``sigma``, ``norm_term``
    (||xi_out|| + ||xi_in||), ``tau``, ``magnitude``, and ``rank_tau``,
    ``rank_sigma``, ``rank_magnitude`` (1 = most important).
    """
    xi_out, strengths, xi_in = layer_factors(layer)
    sigma = strengths.abs().double()
    norm = (xi_out.norm(dim=0) + xi_in.norm(dim=0)).double()
    gamma = (sigma.mean() / norm.mean()).item() if norm.mean() > 0 else 0.0
    frame = pd.DataFrame({
        "mode": np.arange(len(sigma)),
        "sigma": sigma.numpy(),
        "norm_term": norm.numpy(),
        "tau": (sigma + gamma * norm).numpy(),
        "magnitude": (sigma * xi_out.norm(dim=0).double() * xi_in.norm(dim=0).double()).numpy(),
    })
    for score in MODE_SCORES:
        frame[f"rank_{score}"] = frame[score].rank(ascending=False, method="first").astype(int)
    frame.attrs["gamma"] = gamma
    return frame


def model_spectra(model: nn.Module) -> pd.DataFrame:
    """:func:`mode_spectrum` of every weight layer, with a ``layer`` column (``layer1`` ...) and ``source``.

    ``source`` is ``"modes"`` for MDL layers and ``"svd"`` otherwise (ensembles:
    the SVD of the mean weight ``layer.weight``).
    """
    frames = []
    for i, layer in enumerate(weight_layers(model), start=1):
        frame = mode_spectrum(layer)
        frame.insert(0, "layer", f"layer{i}")
        frame.insert(1, "source", "modes" if hasattr(layer, "strengths") else "svd")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- piecewise power law

@dataclass
class PowerLawFit:
    """``value ~ a1 rank^slope1`` for rank <= breakpoint and ``a2 rank^slope2`` beyond.

    ``*_std`` and ``*_ci`` (2.5 and 97.5 percentiles) come from a residual bootstrap
    that repeats the breakpoint search on every draw.
    """

    breakpoint: float
    slope1: float
    slope2: float
    intercept1: float  # log a1
    intercept2: float  # log a2
    sse: float  # residual sum of squares in log-log
    slope1_std: float
    slope2_std: float
    breakpoint_std: float
    slope1_ci: tuple[float, float]
    slope2_ci: tuple[float, float]
    breakpoint_ci: tuple[float, float]
    n_boot: int

    def predict(self, ranks) -> np.ndarray:
        r = np.asarray(ranks, dtype=float)
        log = np.where(r <= self.breakpoint, self.intercept1 + self.slope1 * np.log(r),
                       self.intercept2 + self.slope2 * np.log(r))
        return np.exp(log)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``y = a + b x``: ``(a, b, sse)``."""
    xm, ym = x.mean(), y.mean()
    b = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    a = float(ym - b * xm)
    return a, b, float(((y - a - b * x) ** 2).sum())


def _best_break(x: np.ndarray, y: np.ndarray, min_points: int) -> tuple[int, float, float, float, float, float]:
    """Index k of the breakpoint (x[k] in both segments) minimizing the total SSE."""
    best = None
    for k in range(min_points - 1, len(x) - min_points + 1):
        a1, b1, s1 = _line(x[:k + 1], y[:k + 1])
        a2, b2, s2 = _line(x[k:], y[k:])
        if best is None or s1 + s2 < best[-1]:
            best = (k, a1, b1, a2, b2, s1 + s2)
    return best


def fit_piecewise_power_law(ranks, values, *, min_points: int = 3, n_boot: int = 200,
                            seed: int = 0) -> PowerLawFit:
    """Two power laws joined at a breakpoint, fitted by least squares in log-log.

    Every breakpoint candidate (a rank shared by both segments, each with at
    least ``min_points`` points) is tried; the one with the least total squared
    error wins. Uncertainty: ``n_boot`` residual-bootstrap refits (the fitted
    values plus resampled residuals of their own segment).

    :param ranks: positive ranks (e.g. 1..P).
    :param values: positive values (tau or singular values), same length.
    """
    r, v = np.asarray(ranks, dtype=float), np.asarray(values, dtype=float)
    if r.shape != v.shape or r.ndim != 1:
        raise ValueError(f"ranks and values must be 1-d of the same length, got {r.shape} and {v.shape}")
    if len(r) < 2 * min_points - 1:
        raise ValueError(f"need at least {2 * min_points - 1} points for min_points={min_points}, got {len(r)}")
    if (r <= 0).any() or (v <= 0).any():
        raise ValueError("ranks and values must be positive (log-log fit); drop zero values first")
    order = np.argsort(r)
    x, y = np.log(r[order]), np.log(v[order])
    k, a1, b1, a2, b2, sse = _best_break(x, y, min_points)
    fitted = np.where(np.arange(len(x)) <= k, a1 + b1 * x, a2 + b2 * x)
    resid = y - fitted
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        y_star = fitted.copy()
        for seg in (np.arange(0, k + 1), np.arange(k + 1, len(x))):
            y_star[seg] += rng.choice(resid[seg], size=len(seg), replace=True)
        kb, _, s1, _, s2, _ = _best_break(x, y_star, min_points)
        boot.append((math.exp(x[kb]), s1, s2))
    boot = np.array(boot) if boot else np.full((1, 3), np.nan)

    def ci(col):
        return (float(np.percentile(boot[:, col], 2.5)), float(np.percentile(boot[:, col], 97.5)))

    return PowerLawFit(breakpoint=float(math.exp(x[k])), slope1=float(b1), slope2=float(b2), intercept1=float(a1),
                       intercept2=float(a2), sse=sse, slope1_std=float(boot[:, 1].std()),
                       slope2_std=float(boot[:, 2].std()), breakpoint_std=float(boot[:, 0].std()),
                       slope1_ci=ci(1), slope2_ci=ci(2), breakpoint_ci=ci(0), n_boot=n_boot)


# ---------------------------------------------------------------- plain copies and removal

@torch.no_grad()
def plain_network(model: nn.Module) -> nn.Sequential:
    """A deterministic plain copy: ensembles give their mean network, MLP/MDL their plain network."""
    for name in ("mean_network", "plain_network"):
        if hasattr(model, name):
            return getattr(model, name)().eval()
    if isinstance(model, nn.Sequential) and all(isinstance(m, nn.Linear) or not list(m.parameters()) for m in model):
        return copy.deepcopy(model).eval()
    raise ValueError(f"cannot make a plain copy of {type(model).__name__}; pass an en.MLP, en.EnsembleMLP, "
                     f"en.ModeMLP or an nn.Sequential of nn.Linear and activations")


def _applied_scale(layer: nn.Module) -> float:
    """Factor between ``layer.weight`` and the weight its plain copy applies."""
    if hasattr(layer, "scale"):
        return float(layer.scale)
    if type(layer) is nn.Linear:
        return 1.0
    return 1.0 / math.sqrt(layer.in_features)  # ScaledLinear, SpikeSlabLinear: W / sqrt(N_in)


class _ModeSurgeon:
    """Plain copy of a model whose layer ``index`` can be rebuilt from any subset of its modes."""

    def __init__(self, model: nn.Module, index: int, by: str):
        if by not in MODE_SCORES:
            raise ValueError(f"by must be one of {MODE_SCORES}, got {by!r}")
        layer = weight_layers(model)[index]
        self.plain = plain_network(model)
        self.target = [m for m in self.plain if isinstance(m, nn.Linear)][index]
        self.factors = layer_factors(layer)
        self.scale = _applied_scale(layer)
        spectrum = mode_spectrum(layer)
        #: mode indices, most important first
        self.order = torch.tensor(spectrum.sort_values(f"rank_{by}")["mode"].to_numpy().copy())
        self.n_modes = len(self.order)

    @torch.no_grad()
    def accuracy_keeping(self, keep: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
        xi_out, strengths, xi_in = self.factors
        weight = (xi_out[:, keep] * strengths[keep]) @ xi_in[:, keep].T
        self.target.weight.copy_(weight.to(self.target.weight) * self.scale)
        return accuracy(self.plain, x, y)[0]


@keeps_global_rng
@torch.no_grad()
def mode_removal_curve(model: nn.Module, data, layer: int | str, *, order: str = "least_first",
                       fractions: Sequence[float] = tuple(i / 10 for i in range(11)), n_random: int = 5,
                       by: str = "tau", seed: int = 0) -> pd.DataFrame:
    """Test accuracy after removing a fraction of one layer's modes (on a plain copy).

    :param model: MLP, ensemble (its mean network is used), MDL network or plain ``nn.Sequential``.
    :param data: a :class:`~ensemble_nets.data.Dataset` (test split) or ``(x, y)``.
    :param layer: 1-based weight layer or ``"layerN"``.
    :param order: ``least_first`` (least important by ``by`` removed first), ``most_first`` or ``random``.
    :param fractions: fractions of the layer's P modes (rank for an SVD) to remove; rounded to whole modes.
    :param n_random: draws for ``order="random"`` (the other orders are deterministic: one draw).
    :param by: importance score, one of :data:`MODE_SCORES`.
    :returns: rows ``layer, order, by, fraction, n_removed, n_modes, draw, accuracy, relative_accuracy``
        (accuracy over the intact network's).
    """
    if order not in REMOVAL_ORDERS:
        raise ValueError(f"order must be one of {REMOVAL_ORDERS}, got {order!r}")
    if not (isinstance(n_random, int) and n_random >= 1):
        raise ValueError(f"n_random must be a positive integer, got {n_random!r}")
    if not len(fractions) or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"fractions must be a non-empty list of numbers in [0, 1], got {list(fractions)}")
    index = _layer_index(model, layer)
    x, y = test_tensors(data)
    surgeon = _ModeSurgeon(model, index, by)
    full = surgeon.accuracy_keeping(surgeon.order, x, y)
    generator = torch.Generator().manual_seed(seed)
    draws = n_random if order == "random" else 1
    rows = []
    for draw in range(draws):
        if order == "random":
            ranking = surgeon.order[torch.randperm(surgeon.n_modes, generator=generator)]
        else:
            ranking = surgeon.order if order == "least_first" else surgeon.order.flip(0)
        for fraction in fractions:
            n_removed = int(round(fraction * surgeon.n_modes))
            keep = ranking[:surgeon.n_modes - n_removed]  # removal starts from the end of the ranking
            acc = surgeon.accuracy_keeping(keep, x, y)
            rows.append({"layer": f"layer{index + 1}", "order": order, "by": by, "fraction": float(fraction),
                         "n_removed": n_removed, "n_modes": surgeon.n_modes, "draw": draw, "accuracy": acc,
                         "relative_accuracy": acc / full if full > 0 else float("nan")})
    return pd.DataFrame(rows)


@keeps_global_rng
@torch.no_grad()
def accuracy_vs_leading_modes(model: nn.Module, data, *, layers: Sequence[int | str] | None = None,
                              ks: Sequence[int] | None = None, by: str = "tau") -> pd.DataFrame:
    """Test accuracy keeping only the k leading modes of one layer (the others intact), per layer.

    :param layers: which layers (default: all).
    :param ks: numbers of modes kept (default: 1..P, P the layer's number of modes); clipped to P.
    :returns: rows ``layer, k, n_modes, by, accuracy``.
    """
    x, y = test_tensors(data)
    n_layers = len(weight_layers(model))
    rows = []
    for layer in layers if layers is not None else range(1, n_layers + 1):
        index = _layer_index(model, layer)
        surgeon = _ModeSurgeon(model, index, by)
        for k in sorted({min(int(k), surgeon.n_modes) for k in (ks if ks is not None
                                                                 else range(1, surgeon.n_modes + 1))}):
            if k < 0:
                raise ValueError(f"ks must be >= 0, got {k}")
            rows.append({"layer": f"layer{index + 1}", "k": k, "n_modes": surgeon.n_modes, "by": by,
                         "accuracy": surgeon.accuracy_keeping(surgeon.order[:k], x, y)})
    return pd.DataFrame(rows)
