# SPDX-License-Identifier: MIT
"""A LeNet-style convolutional network: the spike-and-slab ensemble and its plain baseline.

::

    conv(k x k) -> ReLU -> maxpool 2 -> conv(k x k) -> ReLU -> maxpool 2 -> flatten -> linear -> ReLU -> linear

Every weight layer applies the 1/sqrt(fan_in) convention of the ensemble
(DESIGN.md section 2): :class:`EnsembleCNN` uses
:class:`~ensemble_nets.layers.SpikeSlabConv2d` and
:class:`~ensemble_nets.layers.SpikeSlabLinear`; :class:`CNN` uses
:class:`~ensemble_nets.layers.ScaledConv2d` and
:class:`~ensemble_nets.layers.ScaledLinear`, i.e. the ensemble frozen at pi = xi = 0,
so both train with the same optimizer on equal terms. Inputs ``(N, C, H, W)``
(``load_dataset(..., shape="image")``); outputs logits ``(N, n_classes)``.
Like the MLPs, each model rebuilds from ``model.model_args``
(:func:`ensemble_nets.models.build_model`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ensemble_nets.layers import ScaledConv2d, ScaledLinear, SpikeSlabConv2d, SpikeSlabLinear
from ensemble_nets.layers.noise import noise_args
from ensemble_nets.models.convert import mean_network, sample_network

__all__ = ["CNN", "ConvStack", "EnsembleCNN"]

#: Init std of m (and of the plain W) for the CNNs: variance-preserving through ReLU with the 1/sqrt(fan_in) scale.
CNN_M_STD = math.sqrt(2.0)


def _conv_out(size: int, kernel: int, padding: int) -> int:
    return size + 2 * padding - kernel + 1


class ConvStack(nn.Sequential):
    """The LeNet skeleton shared by the ensemble and the plain CNN.

    :param input_shape: ``(channels, height, width)`` of one example (MNIST: ``(1, 28, 28)``).
    :param channels: output channels of the two convolutions.
    :param hidden: width of the hidden linear layer.
    :param n_classes: number of outputs.
    :param kernel_size: side of the square kernels.
    :param padding: zero padding of both convolutions.
    :param make_conv: ``make_conv(c_in, c_out, kernel_size, padding) -> nn.Module``.
    :param make_linear: ``make_linear(n_in, n_out) -> nn.Module``.
    """

    kind = "convstack"
    #: The data layout it takes (``load_dataset(..., shape=data_shape)``).
    data_shape = "image"

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], hidden: int, n_classes: int,
                 kernel_size: int, padding: int, make_conv: Callable[..., nn.Module],
                 make_linear: Callable[[int, int], nn.Module]) -> None:
        input_shape, channels = tuple(input_shape), tuple(channels)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (channels, height, width), got {input_shape}")
        if len(channels) != 2 or min(channels) < 1 or hidden < 1 or n_classes < 1:
            raise ValueError(f"channels must be two positive counts and hidden, n_classes >= 1, got "
                             f"{channels}, {hidden}, {n_classes}")
        side = list(input_shape[1:])
        for _ in range(2):  # conv then 2x2 max-pool, twice
            side = [_conv_out(s, kernel_size, padding) // 2 for s in side]
        if min(side) < 1:
            raise ValueError(f"input {input_shape} is too small for two {kernel_size}x{kernel_size} convolutions "
                             f"with padding {padding} and 2x2 pooling")
        n_flat = channels[1] * side[0] * side[1]
        super().__init__(
            make_conv(input_shape[0], channels[0], kernel_size, padding), nn.ReLU(), nn.MaxPool2d(2),
            make_conv(channels[0], channels[1], kernel_size, padding), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), make_linear(n_flat, hidden), nn.ReLU(), make_linear(hidden, n_classes),
        )
        self.input_shape, self.channels, self.hidden, self.n_classes = input_shape, channels, hidden, n_classes
        self.kernel_size, self.padding = kernel_size, padding

    def _geometry(self) -> dict:
        return {"input_shape": list(self.input_shape), "channels": list(self.channels), "hidden": self.hidden,
                "n_classes": self.n_classes, "kernel_size": self.kernel_size, "padding": self.padding}

    @property
    def weight_layers(self) -> list[nn.Module]:
        """The four weight layers, input to output."""
        return [self[0], self[3], self[7], self[9]]


class EnsembleCNN(ConvStack):
    """An ensemble of LeNet-style CNNs: every kernel entry and weight is spike-and-slab.

    :param layer_kwargs: passed to every spike-and-slab layer (``m_std``, ``xi_max``, ``pi_init``,
        ``floor``, ``eval_mode``, ``decay_pi``, ``gbp``, ``noise``); ``m_std`` defaults to sqrt(2) here.
    """

    kind = "cnn"

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), channels: Sequence[int] = (16, 32),
                 hidden: int = 128, n_classes: int = 10, *, kernel_size: int = 5, padding: int = 0,
                 bias: bool = False, **layer_kwargs) -> None:
        layer_kwargs.setdefault("m_std", CNN_M_STD)
        self._layer_kwargs, self._bias = dict(layer_kwargs), bias
        super().__init__(input_shape, channels, hidden, n_classes, kernel_size, padding,
                         lambda c_in, c_out, k, p: SpikeSlabConv2d(c_in, c_out, k, padding=p, bias=bias,
                                                                   **layer_kwargs),
                         lambda n_in, n_out: SpikeSlabLinear(n_in, n_out, bias, **layer_kwargs))

    @property
    def model_args(self) -> dict:
        layer_args = {k: v for k, v in self._layer_kwargs.items() if k not in ("device", "dtype")}
        layer_args["eval_mode"] = self[0].eval_mode  # may have been changed after construction
        layer_args.pop("noise", None)
        layer_args.update(noise_args(self[0].noise))
        return {"kind": self.kind, **self._geometry(), "bias": self._bias, **layer_args}

    @property
    def eval_mode(self) -> str:
        """What eval mode computes, for every layer (see :class:`~ensemble_nets.layers.SpikeSlabConv2d`)."""
        return self[0].eval_mode

    @eval_mode.setter
    def eval_mode(self, mode: str) -> None:
        for layer in self.weight_layers:
            layer.eval_mode = mode

    def sample_network(self, generator: torch.Generator | None = None) -> nn.Sequential:
        """One member as plain ``nn.Conv2d`` / ``nn.Linear`` layers (:func:`~ensemble_nets.models.sample_network`)."""
        return sample_network(self, generator)

    def mean_network(self) -> nn.Sequential:
        """The mean network as plain layers (:func:`~ensemble_nets.models.mean_network`)."""
        return mean_network(self)


class CNN(ConvStack):
    """The plain baseline of :class:`EnsembleCNN`: the same network with deterministic weights.

    :param w_std: init std of every weight (default sqrt(2), as the ensemble's m).
    """

    kind = "cnn-plain"

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), channels: Sequence[int] = (16, 32),
                 hidden: int = 128, n_classes: int = 10, *, kernel_size: int = 5, padding: int = 0,
                 bias: bool = False, w_std: float = CNN_M_STD, device=None, dtype=None) -> None:
        self._bias, self._w_std = bias, w_std
        factory = {"device": device, "dtype": dtype}
        super().__init__(input_shape, channels, hidden, n_classes, kernel_size, padding,
                         lambda c_in, c_out, k, p: ScaledConv2d(c_in, c_out, k, padding=p, bias=bias, w_std=w_std,
                                                                **factory),
                         lambda n_in, n_out: ScaledLinear(n_in, n_out, bias, w_std=w_std, **factory))

    @property
    def model_args(self) -> dict:
        return {"kind": self.kind, **self._geometry(), "bias": self._bias, "w_std": self._w_std}
