# SPDX-License-Identifier: MIT
"""Deep narrow MLPs with BatchNorm and LeakyReLU: the phase-diagram network (DESIGN.md 4.2).

``depth`` hidden blocks, then a linear readout::

    block_l = Linear(n_{l-1}, width) -> BatchNorm1d(width) -> LeakyReLU(alpha) [-> Dropout(p)]
    logits  = Linear(width, n_classes)

``alpha`` is the nonlinearity knob of Shi, Pan & Dokmanic (2024): ``alpha = 0``
is ReLU, ``alpha = 1`` makes every block linear. ``layer="spike_slab"``
builds every weight layer as a :class:`~ensemble_nets.layers.SpikeSlabLinear`
(an ensemble of such networks, whose sampling noise is set by ``xi_max`` and
``pi_init``). :func:`ensemble_nets.analysis.separation` reads one feature per
block, after its LeakyReLU.
"""
from __future__ import annotations

from torch import nn

from ensemble_nets.layers import SpikeSlabLinear

__all__ = ["DeepMLP", "LAYER_KINDS"]

LAYER_KINDS = ("linear", "spike_slab")


class DeepMLP(nn.Sequential):
    """``depth`` blocks Linear-BatchNorm-LeakyReLU(alpha)(-Dropout) and a linear readout.

    :param n_in: input width (100 for 10x10 MNIST).
    :param n_classes: output width.
    :param width: hidden width (reference: 100).
    :param depth: number of hidden blocks (reference: 8).
    :param alpha: LeakyReLU negative slope in [0, 1] (0: ReLU, 1: linear).
    :param dropout: dropout probability after every block, in [0, 1).
    :param batchnorm: BatchNorm1d after every hidden linear layer (reference: yes).
    :param layer: ``"linear"`` (``nn.Linear``) or ``"spike_slab"`` (:class:`SpikeSlabLinear`).
    :param layer_kwargs: passed to every :class:`SpikeSlabLinear` (``m_std``, ``xi_max``, ``pi_init``, ...).
    """

    kind = "deep"

    def __init__(self, n_in: int, n_classes: int, *, width: int = 100, depth: int = 8, alpha: float = 0.0,
                 dropout: float = 0.0, batchnorm: bool = True, layer: str = "linear", **layer_kwargs):
        if min(n_in, n_classes, width, depth) < 1:
            raise ValueError(f"n_in, n_classes, width and depth must be >= 1, got {n_in}, {n_classes}, {width}, {depth}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha (LeakyReLU slope) must lie in [0, 1], got {alpha}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if layer not in LAYER_KINDS:
            raise ValueError(f"layer must be one of {LAYER_KINDS}, got {layer!r}")
        if layer == "linear" and layer_kwargs:
            raise ValueError(f"layer_kwargs {sorted(layer_kwargs)} only apply to layer='spike_slab'")

        def make(n_i, n_o, bias):
            if layer == "linear":
                return nn.Linear(n_i, n_o, bias=bias)
            return SpikeSlabLinear(n_i, n_o, bias, **layer_kwargs)

        modules: list[nn.Module] = []
        for i in range(depth):
            modules.append(make(n_in if i == 0 else width, width, not batchnorm))
            if batchnorm:
                modules.append(nn.BatchNorm1d(width))
            modules.append(nn.LeakyReLU(alpha))
            if dropout > 0:
                modules.append(nn.Dropout(dropout))
        modules.append(make(width, n_classes, True))
        super().__init__(*modules)
        self._args = {"n_in": n_in, "n_classes": n_classes, "width": width, "depth": depth, "alpha": alpha,
                      "dropout": dropout, "batchnorm": batchnorm, "layer": layer, **layer_kwargs}

    @property
    def model_args(self) -> dict:
        return {"kind": self.kind, **self._args}
