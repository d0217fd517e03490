# SPDX-License-Identifier: MIT
"""Mode decomposition layer (Li & Huang 2023, DESIGN.md section 3).

The weight matrix is never a parameter; it is built from P modes::

    W = xi_out diag(strengths) xi_in^T = sum_mu strengths_mu xi_out[:, mu] xi_in[:, mu]^T
    h = W a                  (scale_input=False, the reference: no 1/sqrt(N) factor)
    h = W a / sqrt(n_in)     (scale_input=True)

``xi_in`` (``n_in x P``) and ``xi_out`` (``n_out x P``) are the mode vectors
of the two neuron layers the weight layer joins; ``strengths`` (Sigma, P
numbers) belong to the weight layer. Here ``xi`` names MODE VECTORS, not the
slab variance of :mod:`ensemble_nets.layers.spike_slab`; the attributes are
called ``modes_in``/``modes_out`` so no analysis mistakes this layer for a
spike-and-slab one.

A layer either owns its modes (the unshared variant) or is bound to mode
tensors owned by its model (:meth:`ModeLinear.bind_modes`, the shared variant
of :class:`~ensemble_nets.models.ModeMLP`), in which case they are plain
references: the model's ``state_dict`` and optimizer see each tensor once and
it receives gradients from both adjacent weight layers.

Reference initialization: every factor entry ~ c(N) N(0, 1) with
``c(N) = (N ln N)^(-1/6)``, N the width of the factor's neuron layer. For the
strengths, which belong to no neuron layer, we use N = n_in (documented
choice; with it the preactivation variance at init is about P / ln(N) times
the input's).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ModeLinear", "mode_init_std"]


def mode_init_std(n: int) -> float:
    """``(N ln N)^(-1/6)``, the reference init std of a mode factor of a width-N layer (N ln N floored at 1)."""
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive integer width, got {n!r}")
    return max(n * math.log(n), 1.0) ** (-1.0 / 6.0)


class ModeLinear(nn.Module):
    """Linear layer with weight ``W = modes_out diag(strengths) modes_in^T``, no bias.

    :param in_features: N_in.
    :param out_features: N_out.
    :param n_modes: P, the number of modes.
    :param scale_input: apply W / sqrt(N_in) instead of W.
    :param own_modes: create and own ``modes_in``/``modes_out`` (unshared variant);
        ``False`` leaves them to :meth:`bind_modes`.
    """

    bias = None  # no bias: the plain-copy conversion of LayerStack reads ``layer.bias``

    def __init__(self, in_features: int, out_features: int, n_modes: int, *, scale_input: bool = False,
                 own_modes: bool = True) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features), ("n_modes", n_modes)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_features, self.out_features, self.n_modes = in_features, out_features, n_modes
        self.scale_input = bool(scale_input)
        self.own_modes = bool(own_modes)
        self.strengths = nn.Parameter(torch.empty(n_modes))
        if self.own_modes:
            self.modes_in = nn.Parameter(torch.empty(in_features, n_modes))
            self.modes_out = nn.Parameter(torch.empty(out_features, n_modes))
        #: Parameters that receive weight decay (train/optim.py); bound modes are decayed by their owner.
        self.decayed_parameters = ("strengths", "modes_in", "modes_out") if self.own_modes else ("strengths",)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Reference init of what this layer owns: entries ~ (N ln N)^(-1/6) N(0, 1)."""
        self.strengths.normal_(0.0, mode_init_std(self.in_features))
        if self.own_modes:
            self.modes_in.normal_(0.0, mode_init_std(self.in_features))
            self.modes_out.normal_(0.0, mode_init_std(self.out_features))

    def bind_modes(self, modes_in: nn.Parameter, modes_out: nn.Parameter) -> None:
        """Use mode tensors owned elsewhere (shared modes): kept as references, not registered here."""
        if self.own_modes:
            raise ValueError("this layer owns its modes (own_modes=True); build it with own_modes=False to bind")
        for name, tensor, n in (("modes_in", modes_in, self.in_features), ("modes_out", modes_out, self.out_features)):
            if tuple(tensor.shape) != (n, self.n_modes):
                raise ValueError(f"{name} must have shape ({n}, {self.n_modes}), got {tuple(tensor.shape)}")
        # Plain attributes (bypassing Module.__setattr__): the owner registers them, this layer only reads them.
        self.__dict__["modes_in"] = modes_in
        self.__dict__["modes_out"] = modes_out

    def _modes(self) -> tuple[torch.Tensor, torch.Tensor]:
        if "modes_in" not in self.__dict__ and "modes_in" not in self._parameters:
            raise RuntimeError("ModeLinear has no modes: call bind_modes(modes_in, modes_out) first")
        return self.modes_in, self.modes_out

    @property
    def scale(self) -> float:
        """Factor applied to W in the forward pass: 1 or 1/sqrt(N_in)."""
        return 1.0 / math.sqrt(self.in_features) if self.scale_input else 1.0

    @property
    def weight(self) -> torch.Tensor:
        """The effective W = modes_out diag(strengths) modes_in^T, shape ``(out_features, in_features)``."""
        modes_in, modes_out = self._modes()
        return (modes_out * self.strengths) @ modes_in.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"ModeLinear expects inputs of shape (..., {self.in_features}), got {tuple(x.shape)}")
        modes_in, modes_out = self._modes()
        # (x xi_in) Sigma xi_out^T: O(N P) per example instead of O(N_in N_out)
        return ((x @ modes_in) * (self.strengths * self.scale)) @ modes_out.T

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, n_modes={self.n_modes}, "
                f"scale_input={self.scale_input}, shared={not self.own_modes}")
