# SPDX-License-Identifier: MIT
"""Spike-and-slab convolutions, and the plain scaled convolution they are compared with.

Every kernel entry of :class:`SpikeSlabConv2d` (and :class:`SpikeSlabConv1d`)
is spike-and-slab: ``pi`` (probability the connection is ABSENT), ``m`` (slab
mean) and ``xi`` (slab VARIANCE), each shaped like ``nn.Conv2d.weight``,
``(out_channels, in_channels / groups, *kernel_size)``. The mean-field pass
(DESIGN.md section 2, "Convolutions and any architecture")::

    mu    = (1 - pi) m,   var_w = (1 - pi)(xi + pi m^2)
    mean  = conv(x, mu),  var = conv(x^2, var_w) + floor
    h     = (mean + sqrt(var) eps) / sqrt(fan_in) (+ bias),   fan_in = in_channels / groups * prod(kernel_size)

with ``eps ~ N(0, 1)`` fresh per example, output channel and position.

The one approximation: this local reparameterization treats output
positions as independent, while a network sampled from q shares ONE kernel
over all positions. The marginal of each output (one example, channel and
position) is exact in mean and variance and, by the central limit over the
fan_in products, close to Gaussian; the correlation between positions (and
between examples of a batch) that a shared kernel induces is not
reproduced. ``eval_mode="sample"`` and :func:`ensemble_nets.models.sample_network`
apply real shared kernels.

gBP (``gbp="manual"``, the default) is :class:`_ConvMeanFieldFunction`, a
hand-written backward for the (batch x channel x position) part of the pass;
``gbp="autograd"`` differentiates the same pass by autograd (the tests hold
the two to float tolerance and to ``gradcheck``). With ``S = var + floor``,
``Delta = sqrt(S)`` and g = dL/dh, on the scaled weights mu / sqrt(fan_in)
and var_w / fan_in::

    dL/dmu_s  = conv_weight_grad(g, x)        dL/dvar_s = conv_weight_grad(g eps / (2 Delta), x^2)
    dL/dx     = conv_transpose(g, mu_s) + 2 x conv_transpose(g eps / (2 Delta), var_s)

and autograd carries dL/dmu_s, dL/dvar_s back to pi, m, xi through the small
weight tensors. The forward keeps only x, x^2, the weights and
eps / Delta for the backward (autograd would keep eps, Delta and the sums); the floor
enters as the variance convolution's bias.

To add a dimension: subclass :class:`SpikeSlabConvNd` binding ``_n_dims``,
``_conv`` (the ``torch.nn.functional`` convolution) and ``_plain_type``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ensemble_nets.distributions import spike_slab_moments
from ensemble_nets.layers.base import REFERENCE_M_STD, SpikeSlabLayer
from ensemble_nets.layers.linear import FanInScaled
from ensemble_nets.layers.noise import noisy_output_

__all__ = ["PADDING_MODES", "ScaledConv2d", "SpikeSlabConv1d", "SpikeSlabConv2d", "SpikeSlabConvNd"]

#: Padding modes, as in ``nn.Conv2d``.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


#: How a conv layer's training pass is differentiated (SpikeSlabLinear adds "compiled").
CONV_GBP_IMPLEMENTATIONS = ("manual", "autograd")

def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    return values


class _ConvMeanFieldFunction(torch.autograd.Function):
    """Hand-written gBP of the convolution's noisy mean-field pass (see the module docstring).

    ``forward(x, mu_s, var_s, eps, floor_s, conv, stride, padding, dilation, groups)`` with the
    1/sqrt(fan_in) scale already in the weights (``mu_s = mu / sqrt(fan_in)``,
    ``var_s = var_w / fan_in``, ``floor_s = floor / fan_in``), so no pass over the large
    activations applies it. ``x`` is already padded for non-zero padding modes; ``padding`` is
    a tuple of ints. ``eps`` is ``None`` (drawn here from the ``noise`` source under ``generator``,
    default torch's global one, shaped like the output: one draw per example, channel and position;
    ``noise="torch"`` is the stream of ``torch.randn_like``) or given.
    First derivatives only (``gbp="autograd"`` for double backward).
    """

    @staticmethod
    def forward(ctx, x, mu_s, var_s, eps, floor_s, conv, stride, padding, dilation, groups, generator=None,
                noise="torch"):
        x2 = x.square()
        h = conv(x, mu_s, None, stride, padding, dilation, groups)  # (N, C_out, *out): the mean, then h in place
        floor = var_s.new_full((var_s.shape[0],), floor_s)  # the floor as the conv's bias: no extra pass
        s = conv(x2, var_s, floor, stride, padding, dilation, groups)  # S; Delta = sqrt(S)
        # h = mean + Delta eps in place; eps / Delta = 2 dh/dS in S's memory (the 1/2 is applied in backward)
        h, eps_over_delta = noisy_output_(h, s, noise=noise, eps=eps, generator=generator)
        ctx.save_for_backward(x, x2, mu_s, var_s, eps_over_delta)
        ctx.conv_args = (stride, padding, dilation, groups)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        x, x2, mu_s, var_s, eps_over_delta = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        need_x, need_mu, need_var = ctx.needs_input_grad[:3]
        grad_s2 = grad_h * eps_over_delta  # (N, C_out, *out): 2 dL/dS
        zeros = [0] * len(stride)

        def conv_backward(grad, inp, weight, need_input, need_weight):
            return torch.ops.aten.convolution_backward(grad, inp, weight, None, stride, padding, dilation, False,
                                                       zeros, groups, [need_input, need_weight, False])[:2]

        grad_x_mean, grad_mu = conv_backward(grad_h, x, mu_s, need_x, need_mu)
        grad_x2, grad_var = conv_backward(grad_s2, x2, var_s, need_x, need_var)  # both twice the true value
        grad_x = grad_x_mean.add_(x * grad_x2) if need_x else None  # d(x^2)/dx = 2x, times (2 dL/dx^2) / 2
        grad_var = grad_var.mul_(0.5) if need_var else None
        return grad_x, grad_mu, grad_var, None, None, None, None, None, None, None, None, None


class SpikeSlabConvNd(SpikeSlabLayer):
    """Shared base of the spike-and-slab convolutions; subclasses bind the dimension.

    Arguments as ``nn.ConvNd`` (``bias`` defaults to False, as in the reference),
    then the spike-and-slab options of :class:`~ensemble_nets.layers.base.SpikeSlabLayer`,
    and ``gbp``: ``"manual"`` (the hand-written backward, default) or ``"autograd"``; same gradients.
    """

    _n_dims: int
    _conv = None  # torch.nn.functional.convNd
    _plain_type: type[nn.Module]

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = False, *, padding_mode: str = "zeros",
                 m_std: float = REFERENCE_M_STD, xi_max: float = 0.01, pi_init: float = 0.0, floor: float = 1e-8,
                 eval_mode: str = "mean_field", gbp: str = "manual", decay_pi: bool = False, noise: str = "torch",
                 device=None, dtype=None) -> None:
        n = self._n_dims
        if in_channels < 1 or out_channels < 1 or groups < 1:
            raise ValueError(f"in_channels, out_channels and groups must be >= 1, got "
                             f"({in_channels}, {out_channels}, {groups})")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                             f"divisible by groups ({groups})")
        kernel_size = _tuple(kernel_size, n, "kernel_size")
        stride, dilation = _tuple(stride, n, "stride"), _tuple(dilation, n, "dilation")
        if min(kernel_size + stride + dilation) < 1:
            raise ValueError(f"kernel_size, stride and dilation must be >= 1, got {kernel_size}, {stride}, {dilation}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1 (as in nn.Conv{n}d), got stride {stride}")
        else:
            padding = _tuple(padding, n, "padding")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups, *kernel_size)
        fan_in = in_channels // groups * math.prod(kernel_size)
        super().__init__(shape, fan_in, out_channels, bias, m_std=m_std, xi_max=xi_max, pi_init=pi_init,
                         floor=floor, eval_mode=eval_mode, decay_pi=decay_pi, noise=noise, device=device,
                         dtype=dtype)
        self.gbp = gbp

    @classmethod
    def from_module(cls, module: nn.Module, *, init: str = "from_weights", xi_init: float = 0.0,
                    **layer_kwargs) -> "SpikeSlabConvNd":
        """The spike-and-slab counterpart of a trained ``nn.ConvNd`` (or :class:`ScaledConv2d`).

        ``init="from_weights"``: pi = 0, xi = ``xi_init``, m = W sqrt(fan_in) (the 1/sqrt(fan_in)
        convention folded in), bias copied; with ``xi_init=0`` the mean network computes
        ``module`` exactly. ``init="reference"``: a fresh layer of the same geometry.
        """
        if not isinstance(module, cls._plain_type):
            raise TypeError(f"{cls.__name__}.from_module takes an {cls._plain_type.__name__}, "
                            f"got {type(module).__name__}")
        if getattr(module, "output_padding", None) and any(module.output_padding) or \
                getattr(module, "transposed", False):
            raise TypeError(f"{cls.__name__}.from_module cannot convert a transposed convolution")
        factory = {"device": module.weight.device, "dtype": module.weight.dtype}
        layer = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                    module.dilation, module.groups, module.bias is not None, padding_mode=module.padding_mode,
                    **factory, **layer_kwargs)
        return layer._init_from(module, init, xi_init)

    # -- the map ---------------------------------------------------------------------------
    gbp_kinds = CONV_GBP_IMPLEMENTATIONS  # no "compiled": the fused kernels exist for SpikeSlabLinear only

    def _mean_field(self, x: torch.Tensor) -> torch.Tensor:
        if self.gbp == "autograd":
            return super()._mean_field(x)
        mu, var = spike_slab_moments(self.pi, self.m, self.xi)  # small (weight-shaped): autograd carries them
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            x = F.pad(x, self._explicit_padding(), mode="constant" if self.padding_mode == "zeros" else
                      self.padding_mode)  # pad(x)^2 = pad(x^2) for every mode
            padding = (0,) * self._n_dims
        else:
            padding = self.padding
        return _ConvMeanFieldFunction.apply(x, mu / math.sqrt(self.fan_in), var / self.fan_in, None,
                                            self.floor / self.fan_in, type(self)._conv, self.stride, padding,
                                            self.dilation, self.groups, None, self.noise)

    def _explicit_padding(self) -> tuple[int, ...]:
        """F.pad's argument (last dimension first) for the non-zero padding modes."""
        pads = []
        for i in reversed(range(self._n_dims)):
            if self.padding == "valid":
                left = right = 0
            elif self.padding == "same":
                total = self.dilation[i] * (self.kernel_size[i] - 1)
                left, right = total // 2, total - total // 2
            else:
                left = right = self.padding[i]
            pads += [left, right]
        return tuple(pads)

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.padding_mode == "zeros":
            return type(self)._conv(x, weight, None, self.stride, self.padding, self.dilation, self.groups)
        x = F.pad(x, self._explicit_padding(), mode=self.padding_mode)  # pad(x)^2 = pad(x^2) for these modes
        return type(self)._conv(x, weight, None, self.stride, 0, self.dilation, self.groups)

    def _add_bias(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.bias.view(-1, *(1,) * self._n_dims)  # (C_out, 1, ..., 1) over (N, C_out, *spatial)

    def _check_input(self, x: torch.Tensor) -> None:
        n = self._n_dims
        layout = "(N, C, " + ", ".join("HW"[-n:] if n <= 2 else [f"D{i}" for i in range(n)]) + ")"
        if x.dim() == 2 and n >= 2:
            raise ValueError(
                f"{type(self).__name__} expects images {layout} with C={self.in_channels}, got flat inputs "
                f"{tuple(x.shape)}; load images with load_dataset(..., shape=\"image\") or reshape them, "
                f"e.g. x.view(-1, {self.in_channels}, 28, 28) for MNIST"
            )
        if x.dim() not in (n + 1, n + 2) or x.shape[-n - 1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects inputs {layout} (or unbatched) with C={self.in_channels} "
                f"channels, got shape {tuple(x.shape)}; check the channel count of the layer before"
            )

    def _plain_module(self, weight: torch.Tensor) -> nn.Module:
        # skip_init: no Kaiming init, so building a copy never moves the global RNG
        plain = nn.utils.skip_init(self._plain_type, self.in_channels, self.out_channels, self.kernel_size,
                                   stride=self.stride, padding=self.padding, dilation=self.dilation,
                                   groups=self.groups, bias=self.bias is not None, padding_mode=self.padding_mode,
                                   device=weight.device, dtype=weight.dtype)
        plain.weight.copy_(weight / math.sqrt(self.fan_in))
        if self.bias is not None:
            plain.bias.copy_(self.bias)
        return plain

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}, eval_mode={self.eval_mode!r}, gbp={self.gbp!r}")


class SpikeSlabConv2d(SpikeSlabConvNd):
    """A 2-d convolution whose every kernel entry is spike-and-slab: an ensemble of ``nn.Conv2d``.

    ``SpikeSlabConv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
    groups=1, bias=False, *, padding_mode, m_std, xi_max, pi_init, floor, eval_mode, gbp, decay_pi)``.
    Inputs ``(N, C_in, H, W)``; parameters ``(C_out, C_in / groups, kH, kW)``. See the module docstring
    for the pass and its one approximation.
    """

    _n_dims = 2
    _conv = staticmethod(F.conv2d)
    _plain_type = nn.Conv2d


class SpikeSlabConv1d(SpikeSlabConvNd):
    """A 1-d convolution whose every kernel entry is spike-and-slab: an ensemble of ``nn.Conv1d``.

    Inputs ``(N, C_in, L)``; parameters ``(C_out, C_in / groups, k)``. Same options as :class:`SpikeSlabConv2d`.
    """

    _n_dims = 1
    _conv = staticmethod(F.conv1d)
    _plain_type = nn.Conv1d


class ScaledConv2d(FanInScaled, nn.Conv2d):
    """``nn.Conv2d`` whose weight is applied as W / sqrt(fan_in): the plain baseline of :class:`SpikeSlabConv2d`.

    With the same ``w_std`` as the ensemble's ``m_std`` it is a ``SpikeSlabConv2d`` frozen at
    pi = xi = 0, so a plain CNN and an ensemble trained by the same optimizer compare on equal terms.
    ``bias`` defaults to False (the reference has none).

    :param float w_std: init std of W (default: the ensemble's reference sqrt(2/784)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = False, *, padding_mode: str = "zeros", w_std: float = REFERENCE_M_STD,
                 device=None, dtype=None) -> None:
        if not (math.isfinite(w_std) and w_std >= 0):
            raise ValueError(f"w_std must be finite and >= 0, got {w_std}")
        self.w_std = w_std
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        self.fan_in = in_channels // groups * math.prod(self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight / math.sqrt(self.fan_in), self.bias)
