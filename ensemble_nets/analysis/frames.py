# SPDX-License-Identifier: MIT
"""Tidy tables the figures draw: every connection of an ensemble, and the spring-block model's curves.

    parameter_frame       one row per connection: layer, category, pi, m, xi, mean, variance, entropy
    spring_block_frames   spring-block load curves (one friction) and the curvature over friction x noise

Symbols as in DESIGN.md: ``pi`` is the probability that a connection is ABSENT, ``xi`` the slab VARIANCE::

    mean = (1 - pi) m,   variance = (1 - pi)(xi + pi m^2)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import named_layers
from ensemble_nets.analysis.categories import CATEGORIES, categorize
from ensemble_nets.analysis.separation import load_curve_shape
from ensemble_nets.analysis.tolerance import Tolerance

__all__ = ["SPRING_BLOCK_STEPS", "parameter_frame", "spring_block_frames"]

#: Steps of each spring-block simulation of the phase figure.
SPRING_BLOCK_STEPS = 3000


def parameter_frame(model: nn.Module, *, tol: float | Tolerance | dict = 0.0) -> pd.DataFrame:
    """One row per connection of every spike-and-slab layer, categorized with tolerance ``tol``.

    Columns: ``layer``, ``category`` (ordered as :data:`CATEGORIES`), ``pi``, ``m``, ``xi``,
    ``mean`` = (1 - pi) m, ``variance`` = (1 - pi)(xi + pi m^2), ``entropy`` (nats, of q).
    """
    labels = categorize(model, tol=tol).labels
    frames = []
    for (name, label), (_, layer) in zip(labels.items(), named_layers(model)):
        with torch.no_grad():
            columns = {"pi": layer.pi, "m": layer.m, "xi": layer.xi, "mean": layer.weight,
                       "variance": layer.weight_variance}
            columns["entropy"] = layer.distribution().entropy()
        frame = pd.DataFrame({k: v.detach().flatten().double().cpu().numpy() for k, v in columns.items()})
        frame.insert(0, "category", pd.Categorical([CATEGORIES[i] for i in label.flatten().tolist()],
                                                   categories=list(CATEGORIES)))
        frame.insert(0, "layer", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def spring_block_frames(frictions: Sequence[float] = (0.15, 0.3, 0.45, 0.6),
                        noises: Sequence[float] = (0.0, 0.2, 0.4, 1.0, 2.0, 4.0, 8.0), *, n_blocks: int = 8,
                        n_steps: int | None = None, curve_friction: float = 0.3,
                        asymmetry: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(curves, diagram)`` of the spring-block chain (:func:`~ensemble_nets.analysis.theory.simulate_spring_block`).

    ``curves``: ``noise``, ``block`` (0..n_blocks), ``load`` (the load curve of blocks 1..L scaled so the
    total drop is -1, 0 prepended) at ``curve_friction``; ``diagram``: ``friction``, ``noise``,
    ``curvature`` (:func:`~ensemble_nets.analysis.load_curve_shape`) of every pair.
    ``asymmetry``: the forward/backward mobility asymmetry, this project's choice (0.05): with the
    symmetric friction of the model's default the chain has no convex phase (docs/phase.md).
    """
    from ensemble_nets.analysis.theory.spring_block import simulate_spring_block  # theory/ needs scipy

    n_steps = n_steps or SPRING_BLOCK_STEPS
    curves, diagram = [], []
    for friction in frictions:
        for noise in noises:
            result = simulate_spring_block(n_blocks, friction=friction, noise=noise, asymmetry=asymmetry,
                                           n_steps=n_steps)
            curve = result.load_curve[1:]  # blocks 1..L, as the network's hidden blocks
            shape = load_curve_shape(np.exp(curve))
            diagram.append({"friction": friction, "noise": noise, "curvature": shape["curvature"]})
            if friction == curve_friction:
                scaled = curve / abs(curve[-1]) if curve[-1] != 0 else curve  # total drop -> -1: shapes compare
                curves.append(pd.DataFrame({"noise": noise, "block": np.arange(0, n_blocks + 1),
                                            "load": np.concatenate([[0.0], scaled])}))
    return pd.concat(curves, ignore_index=True), pd.DataFrame(diagram)
