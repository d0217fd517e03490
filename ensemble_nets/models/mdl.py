# SPDX-License-Identifier: MIT
"""Mode decomposition learning (MDL) network: weights built from P modes per layer.

Weight layer l (joining neuron layers l and l+1)::

    W^l = xi^{l+1} diag(Sigma^l) (xi^l)^T

With ``shared=True`` (the reference) neuron layer l owns ONE mode tensor
``xi^l`` (``N_l x P``), registered on the model as ``modes{l}`` and used both
as the output modes of weight layer l-1 and the input modes of weight layer
l. With ``shared=False`` every weight layer owns its own input and output
modes. Parameter counts (L weight layers, widths N_0 .. N_L)::

    shared:    P (N_0 + ... + N_L) + L P
    unshared:  sum_l P (N_l + N_{l+1} + 1)

784-100-100-10 with P = 30, shared: 30 * 994 + 90 = 29,910 (33.5% of 89,400).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ensemble_nets.layers.modes import ModeLinear, mode_init_std
from ensemble_nets.models.mlp import LayerStack, _check_sizes

__all__ = ["ModeMLP"]


class ModeMLP(LayerStack):
    """MLP whose weight layers are :class:`~ensemble_nets.layers.ModeLinear`.

    :param sizes: widths, input to output, e.g. ``(784, 100, 100, 10)``.
    :param n_modes: P, modes per weight layer.
    :param shared: adjacent weight layers share the mode vectors of the neuron layer between them.
    :param activation: hidden nonlinearity.
    :param scale_input: apply W / sqrt(N_in) (default: no such factor, as in the reference).
    """

    kind = "mdl"

    def __init__(self, sizes: Sequence[int], n_modes: int, shared: bool = True, activation: str = "relu", *,
                 scale_input: bool = False):
        sizes = _check_sizes(sizes)
        if not (isinstance(n_modes, int) and not isinstance(n_modes, bool) and n_modes >= 1):
            raise ValueError(f"n_modes must be a positive integer, got {n_modes!r}")
        self.n_modes, self.shared, self.scale_input = n_modes, bool(shared), bool(scale_input)
        super().__init__(sizes, activation, lambda n_in, n_out: ModeLinear(
            n_in, n_out, n_modes, scale_input=scale_input, own_modes=not shared))
        if self.shared:
            # Registered as parameters of the model (not modules, so nn.Sequential's forward never sees them).
            for l, n in enumerate(sizes):
                self.register_parameter(f"modes{l}", nn.Parameter(torch.empty(n, n_modes)))
            self.decayed_parameters = tuple(f"modes{l}" for l in range(len(sizes)))
            for l, layer in enumerate(self.linear_layers):
                layer.bind_modes(getattr(self, f"modes{l}"), getattr(self, f"modes{l + 1}"))
            self.reset_modes()

    @torch.no_grad()
    def reset_modes(self) -> None:
        """Reference init of the shared mode tensors: entries ~ (N_l ln N_l)^(-1/6) N(0, 1)."""
        for l, n in enumerate(self.sizes):
            getattr(self, f"modes{l}").normal_(0.0, mode_init_std(n))

    @property
    def model_args(self) -> dict:
        return {"kind": self.kind, "sizes": list(self.sizes), "n_modes": self.n_modes, "shared": self.shared,
                "activation": self.activation, "scale_input": self.scale_input}

    @property
    def n_parameters(self) -> int:
        """Trainable parameters (each shared tensor counted once)."""
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def parameter_count(sizes: Sequence[int], n_modes: int, shared: bool = True) -> int:
        """``P sum_l N_l + L P`` (shared) or ``sum_l P (N_l + N_{l+1} + 1)`` (unshared)."""
        sizes = _check_sizes(sizes)
        n_layers = len(sizes) - 1
        if shared:
            return n_modes * sum(sizes) + n_layers * n_modes
        return sum(n_modes * (a + b + 1) for a, b in zip(sizes[:-1], sizes[1:]))

    @torch.no_grad()
    def plain_network(self) -> nn.Sequential:
        """The same function as plain ``nn.Linear`` layers (weights W, or W / sqrt(N_in) with scale_input)."""
        # _plain_copy divides by sqrt(N_in); undo it where this model applies W itself.
        return self._plain_copy([layer.weight * (layer.scale * layer.in_features ** 0.5)
                                 for layer in self.linear_layers])
