# SPDX-License-Identifier: MIT
"""Layer-wise data separation and the load curve (DESIGN.md section 4.2).

Shi, Pan & Dokmanic (2024, arXiv 2407.19353) measure how much each layer of a
trained network separates the classes. From the features ``x_i`` of the
training set at layer ``l`` (eval mode), with class means ``mu_c`` (``n_c``
examples) and global mean ``mu``::

    Sigma_w = (1/n) sum_i (x_i - mu_{y_i}) (x_i - mu_{y_i})^T      within-class
    Sigma_b = sum_c (n_c/n) (mu_c - mu) (mu_c - mu)^T               between-class
    D_l     = Tr(Sigma_w) / Tr(Sigma_b)                              data separation
    D_l^HS  = Tr(Sigma_w Sigma_b^+)                                  He & Su (2023)

The load curve is ``log D_l`` against ``l`` (``l = 0`` the input, then the
output of every hidden block, after its nonlinearity); the load of layer ``l``
is ``log D_{l-1} - log D_l``. Its shape classifies training: concave (shallow
layers lazy, deep layers do the work), linear (equal loads), convex (shallow
layers do the work). :func:`load_curve_shape` reduces a curve to a normalized
curvature, a non-uniformity and that label; :func:`reference_curvature` to the
reference code's ``c = d_0 - d_last`` and ``v = std(d)``.

A model with a ``representations(x)`` method (:class:`~ensemble_nets.models.deep.PhaseMLP`)
is read at the points it names (input after its BatchNorm, every block, the logits);
any other through forward hooks on its nonlinearities.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["FEATURE_TYPES", "class_covariances", "load_curve_shape", "reference_curvature", "separation"]

#: Modules after which :func:`separation` records features (the end of a hidden block).
FEATURE_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.GELU, nn.ELU, nn.SiLU, nn.Sigmoid, nn.Softplus, nn.Identity,
)
SHAPES = ("concave", "linear", "convex")


def class_covariances(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Within- and between-class covariances ``(Sigma_w, Sigma_b)``, each ``(d, d)`` float64.

    :param x: ``(n, d)`` features (any leading shape is flattened to ``d``).
    :param y: ``(n,)`` integer class labels.
    """
    x = x.detach().reshape(x.shape[0], -1).to(torch.float64)  # (n, d)
    y = y.detach().reshape(-1)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must hold the same n >= 2 examples")
    classes, index, counts = torch.unique(y, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"separation needs at least two classes in y, got {classes.tolist()}")
    sums = torch.zeros(len(classes), x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, index, x)
    means = sums / counts.to(x.dtype)[:, None]  # (C, d) class means
    centered = x - means[index]  # (n, d)
    sigma_w = centered.t() @ centered / x.shape[0]
    weights = counts.to(x.dtype) / x.shape[0]  # (C,) n_c / n
    between = means - weights @ means  # (C, d): mu_c - mu
    sigma_b = between.t() @ (between * weights[:, None])
    return sigma_w, sigma_b


def _features(model: nn.Module, x: torch.Tensor, feature_types) -> list[tuple[str, torch.Tensor]]:
    """The input, then the output of every ``feature_types`` module in forward order."""
    names = {module: name for name, module in model.named_modules()}
    records: list[tuple[str, torch.Tensor]] = [("input", x)]
    handles = [
        module.register_forward_hook(lambda mod, inp, out: records.append((names[mod], out.detach())))
        for module in model.modules() if isinstance(module, feature_types) and module is not model
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return records


@torch.no_grad()
def separation(
    model: nn.Module,
    data,
    *,
    feature_types: Sequence[type[nn.Module]] = FEATURE_TYPES,
    rcond: float = 1e-6,
) -> pd.DataFrame:
    """Per-layer data separation of the training set (the load curve); the model is run in eval mode.

    :param model: (nn.Module) Any network. One with ``representations(x)`` (``[(name, (n, d))]``, e.g.
        :class:`~ensemble_nets.models.deep.PhaseMLP`) is read at those points; any other with forward hooks on its
        ``feature_types`` modules (default: the nonlinearities, so each hidden block counts once, after its
        activation), the raw input first.
    :param data: (Dataset or (x, y)) A :class:`~ensemble_nets.data.Dataset` (its training split is used) or a pair
        of tensors ``x (n, n_in)``, ``y (n,)``.
    :param rcond: (float) Relative cutoff of the pseudo-inverse ``Sigma_b^+`` (He & Su form).
    :returns: pandas.DataFrame: one row per layer ``l = 0..L``: ``layer``, ``module`` (name; ``"input"`` for
        ``l = 0``), ``n_features``, ``tr_within``, ``tr_between``, ``D`` = Tr(Sigma_w)/Tr(Sigma_b), ``log_D``,
        ``D_hs`` = Tr(Sigma_w Sigma_b^+), ``log_D_hs``.
    """
    x, y = (data.x_train, data.y_train) if hasattr(data, "x_train") else data
    was_training = model.training
    model.eval()
    try:
        if hasattr(model, "representations"):
            records = [(name, h.detach()) for name, h in model.representations(x)]
        else:
            records = _features(model, x, tuple(feature_types))
    finally:
        model.train(was_training)
    rows = []
    for layer, (name, feats) in enumerate(records):
        sigma_w, sigma_b = class_covariances(feats, y)
        tr_w, tr_b = sigma_w.trace().item(), sigma_b.trace().item()
        d_hs = torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, rtol=rcond, hermitian=True)).item()
        ratio = tr_w / tr_b if tr_b > 0 else float("inf")
        rows.append({
            "layer": layer, "module": name, "n_features": sigma_w.shape[0],
            "tr_within": tr_w, "tr_between": tr_b,
            "D": ratio, "log_D": float(np.log(ratio)) if ratio > 0 else float("-inf"),
            "D_hs": d_hs, "log_D_hs": float(np.log(d_hs)) if d_hs > 0 else float("-inf"),
        })
    return pd.DataFrame(rows)


def load_curve_shape(d: Sequence[float] | np.ndarray | torch.Tensor, *, tol: float = 0.25,
                     skip_input: bool = False) -> dict:
    """Curvature, non-uniformity and shape of a load curve ``log D_l``, ``l = 0..L``.

    With ``t = l / L`` in [0, 1] and ``y = log D_l``, fit ``y ~ a t^2 + b t + c`` and
    normalize by the total drop ``Delta = y_0 - y_L``::

        curvature      = a / |Delta|         (0 linear; -1 for y = y_0 - Delta t^2, +1 for its mirror)
        loads          r_l = y_{l-1} - y_l   (what layer l contributes)
        nonuniformity  = std(r) / |mean(r)|  (0 when every layer contributes equally)
        shape          = "concave" if curvature < -tol, "convex" if > tol, else "linear"
                         ("undefined" when Delta = 0)

    :param d: (sequence of float) Separations ``D_l > 0`` (not their logs), input first.
    :param tol: (float) Half-width of the "linear" band of normalized curvature.
    :param skip_input: (bool) Drop ``D_0`` (the raw input) before fitting.
    :returns: dict: ``curvature``, ``nonuniformity``, ``shape``, ``drop`` (``Delta``), ``n_layers``.
    """
    d = d.detach().cpu().numpy() if torch.is_tensor(d) else d
    d = np.array(d, dtype=np.float64).reshape(-1)
    if skip_input:
        d = d[1:]
    if d.size < 3:
        raise ValueError(f"a load curve needs at least 3 points to have a curvature, got {d.size}")
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError(f"separations must be finite and > 0 (pass D, not log D), got {d}")
    y = np.log(d)
    t = np.linspace(0.0, 1.0, d.size)
    a = np.polyfit(t, y, 2)[0]
    drop = y[0] - y[-1]
    scale = abs(drop) if abs(drop) > 1e-12 else float("nan")
    loads = -np.diff(y)
    mean_load = loads.mean()
    curvature = float(a / scale)
    if not np.isfinite(curvature):
        shape = "undefined"  # no net separation change: the curve has no scale
    else:
        shape = "linear" if abs(curvature) <= tol else ("concave" if curvature < 0 else "convex")
    return {
        "curvature": curvature,
        "nonuniformity": float(loads.std() / abs(mean_load)) if abs(mean_load) > 1e-12 else float("nan"),
        "shape": shape,
        "drop": float(drop),
        "n_layers": int(d.size - 1),
    }


def reference_curvature(log_d: Sequence[float] | np.ndarray) -> dict:
    """The reference code's curvature and non-uniformity of a load curve (``v_and_c`` in the
    authors' ``src/utils.py``), from ``log D_l``, ``l = 0..L``::

        d_l = log D_l - log D_{l+1}       (the load of layer l + 1; l = 0..L-1)
        c   = d_0 - d_{L-1}               (= sum of d_l - d_{l+1}; c > 0 convex, c < 0 concave)
        v   = std(d)                      (population std; 0 when every layer does the same)

    The reference applies it to ``log Tr(Sigma_w Sigma_b^+)`` at the input after the BatchNorm and
    after every block, the logits dropped (``remove_last_layer=True``); pass the points to use.
    Unlike :func:`load_curve_shape` it is not normalized by the total drop.

    :param log_d: (sequence of float) ``log D_l`` at ``L + 1 >= 3`` points, input first.
    :returns: dict: ``c``, ``v``.
    """
    y = np.asarray(log_d, dtype=np.float64).reshape(-1)
    if y.size < 3:
        raise ValueError(f"c and v need at least 3 points of the load curve, got {y.size}")
    d = y[:-1] - y[1:]  # (L,) loads
    return {"c": float(d[0] - d[-1]), "v": float(d.std())}
