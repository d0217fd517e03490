# SPDX-License-Identifier: MIT
"""Plain linear layer with the ensemble's 1/sqrt(N_in) convention: the baseline.

::

    h = W a / sqrt(in_features) (+ bias),   W ~ N(0, w_std^2) at init

With the same ``w_std`` as the ensemble's ``m_std`` it is exactly a
:class:`~ensemble_nets.layers.SpikeSlabLinear` frozen at pi = xi = 0, so a plain
network and an ensemble trained by the same optimizer are compared on equal terms.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ensemble_nets.layers.spike_slab import REFERENCE_M_STD

__all__ = ["ScaledLinear"]


class FanInScaled:
    """What the plain scaled layers share (a mixin before their ``nn`` base): the weight is applied as
    W / sqrt(fan_in), only W is decayed, and W ~ N(0, w_std^2), bias = 0 at init (``self.w_std``)."""

    #: Parameters that receive weight decay.
    decayed_parameters = ("weight",)
    #: The forward divides the weight by sqrt(fan_in) (read by ``from_module`` conversions).
    applies_fan_in_scale = True

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """W ~ N(0, w_std^2), bias = 0."""
        self.weight.normal_(0.0, self.w_std)
        if self.bias is not None:
            self.bias.zero_()


class ScaledLinear(FanInScaled, nn.Linear):
    """``nn.Linear`` whose weight is applied as W / sqrt(in_features).

    :param float w_std: init std of W (default: the ensemble's reference sqrt(2/784)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        w_std: float = REFERENCE_M_STD,
        device=None,
        dtype=None,
    ) -> None:
        if w_std < 0:
            raise ValueError(f"w_std must be >= 0, got {w_std}")
        self.w_std = w_std
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"ScaledLinear expects inputs of shape (..., {self.in_features}), got {tuple(x.shape)}"
            )
        return nn.functional.linear(x, self.weight / math.sqrt(self.in_features), self.bias)
