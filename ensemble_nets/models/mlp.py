# SPDX-License-Identifier: MIT
"""Multilayer perceptrons: the spike-and-slab ensemble and its plain baseline.

Both are ``nn.Sequential`` stacks ``layer, activation, ..., layer`` that end
in logits (softmax + cross-entropy belong to the loss). ``sizes`` lists the
widths from input to output, e.g. ``(784, 100, 100, 10)``. Each model knows
how to rebuild itself: ``model.model_args`` is a JSON-able dict that
:func:`ensemble_nets.models.build_model` turns back into the same architecture
(this is what checkpoints store).

To add a model family: subclass :class:`LayerStack`, give it a ``kind`` and a
``model_args`` property, and register it in ``ensemble_nets/models/__init__.py``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ensemble_nets.layers import REFERENCE_M_STD, ScaledLinear, SpikeSlabLinear
from ensemble_nets.layers.noise import noise_args
from ensemble_nets.models.convert import mean_network, replace_modules, sample_network

__all__ = ["ACTIVATIONS", "EnsembleMLP", "LayerStack", "MLP"]

#: Hidden-unit nonlinearities by name.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def _is_activation(module: nn.Module) -> bool:
    return isinstance(module, tuple(ACTIVATIONS.values()))


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(sizes)
    if len(sizes) < 2 or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise ValueError(f"sizes must list at least two positive integer widths (input ... output), got {sizes}")
    return sizes


class LayerStack(nn.Sequential):
    """``layer, activation, ..., layer``: the shared skeleton of every MLP here.

    :param sizes: widths from input to output.
    :param activation: a name in :data:`ACTIVATIONS`.
    :param make_layer: ``make_layer(n_in, n_out) -> nn.Module``.
    """

    kind = "stack"

    def __init__(self, sizes: Sequence[int], activation: str, make_layer: Callable[[int, int], nn.Module]):
        sizes = _check_sizes(sizes)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        modules: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                modules.append(ACTIVATIONS[activation]())
            modules.append(make_layer(n_in, n_out))
        super().__init__(*modules)
        self.sizes = sizes
        self.activation = activation

    @property
    def linear_layers(self) -> list[nn.Module]:
        """The weight layers, input to output (every other module of the stack)."""
        return [module for module in self if not _is_activation(module)]

    @property
    def model_args(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define model_args")

    def _plain_copy(self, weights: Sequence[torch.Tensor]) -> nn.Sequential:
        """``nn.Sequential`` of ``nn.Linear`` computing x -> W x / sqrt(N_in) (+ b) per layer."""
        layers = self.linear_layers
        if len(weights) != len(layers):
            raise ValueError(f"{len(layers)} weights needed (one per layer), got {len(weights)}")
        plain = {id(layer): _plain_linear(layer, weight) for layer, weight in zip(layers, weights)}
        return replace_modules(self, plain, plain_containers=True)


@torch.no_grad()
def _plain_linear(layer: nn.Module, weight: torch.Tensor) -> nn.Linear:
    if hasattr(layer, "plain_module"):  # spike-and-slab layers know their plain module
        return layer.plain_module(weight)
    # skip_init: no Kaiming init, so building a copy never moves the global RNG
    plain = nn.utils.skip_init(nn.Linear, layer.in_features, layer.out_features, bias=layer.bias is not None,
                               device=weight.device, dtype=weight.dtype)
    plain.weight.copy_(weight / math.sqrt(layer.in_features))
    if layer.bias is not None:
        plain.bias.copy_(layer.bias)
    return plain.train(layer.training)


class EnsembleMLP(LayerStack):
    """An ensemble of MLPs: every weight is spike-and-slab (:class:`SpikeSlabLinear`).

    :param sizes: widths, input to output, e.g. ``(784, 100, 100, 10)``.
    :param activation: hidden nonlinearity (reference: ``"relu"``).
    :param bias: deterministic biases (reference: none).
    :param layer_kwargs: passed to every :class:`SpikeSlabLinear` (``m_std``,
        ``xi_max``, ``pi_init``, ``floor``, ``eval_mode``, ``gbp``, ``noise``).
    """

    kind = "ensemble"

    def __init__(self, sizes: Sequence[int], activation: str = "relu", *, bias: bool = False, **layer_kwargs):
        self._layer_kwargs = dict(layer_kwargs)
        self._bias = bias
        super().__init__(sizes, activation, lambda n_in, n_out: SpikeSlabLinear(n_in, n_out, bias, **layer_kwargs))

    @property
    def model_args(self) -> dict:
        layer_args = {k: v for k, v in self._layer_kwargs.items() if k not in ("device", "dtype")}
        for name in ("eval_mode", "gbp"):  # may have been changed after construction
            layer_args[name] = getattr(self.linear_layers[0], name)
        layer_args.pop("noise", None)
        layer_args.update(noise_args(self.linear_layers[0].noise))
        return {"kind": self.kind, "sizes": list(self.sizes), "activation": self.activation,
                "bias": self._bias, **layer_args}

    @property
    def eval_mode(self) -> str:
        """What eval mode computes, for every layer (see :class:`SpikeSlabLinear`)."""
        return self.linear_layers[0].eval_mode

    @eval_mode.setter
    def eval_mode(self, mode: str) -> None:
        for layer in self.linear_layers:
            layer.eval_mode = mode

    def sample_network(self, generator: torch.Generator | None = None) -> nn.Sequential:
        """One member of the ensemble as plain ``nn.Linear`` layers (weights W ~ q, scaled by 1/sqrt(N_in)).

        Same as :func:`ensemble_nets.models.sample_network` (``en.sample_network(model, generator)``).
        """
        return sample_network(self, generator)

    def mean_network(self) -> nn.Sequential:
        """The mean network, weights (1 - pi) m / sqrt(N_in), as plain ``nn.Linear`` layers (:func:`mean_network`)."""
        return mean_network(self)


class MLP(LayerStack):
    """Plain MLP with the ensemble's 1/sqrt(N_in) convention (:class:`ScaledLinear`): the baseline.

    :param w_std: init std of every weight (default: the ensemble's reference m_std).
    """

    kind = "mlp"

    def __init__(self, sizes: Sequence[int], activation: str = "relu", *, bias: bool = False,
                 w_std: float = REFERENCE_M_STD, device=None, dtype=None):
        self._bias, self._w_std = bias, w_std
        super().__init__(sizes, activation, lambda n_in, n_out: ScaledLinear(n_in, n_out, bias, w_std=w_std,
                                                                            device=device, dtype=dtype))

    @property
    def model_args(self) -> dict:
        return {"kind": self.kind, "sizes": list(self.sizes), "activation": self.activation,
                "bias": self._bias, "w_std": self._w_std}

    @torch.no_grad()
    def plain_network(self) -> nn.Sequential:
        """The same function as plain ``nn.Linear`` layers."""
        return self._plain_copy([layer.weight for layer in self.linear_layers])
