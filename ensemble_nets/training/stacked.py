# SPDX-License-Identifier: MIT
"""K models of one structure as ONE vectorized model: parameters with a leading run dimension.

:func:`stack_models` turns K ``nn.Sequential`` stacks (``EnsembleMLP``,
``ModeMLP``, ``MLP``, or any ``nn.Sequential`` of the layers below) into a
:class:`StackedModel` whose every parameter is ``(K, *shape)``, and whose
forward maps inputs ``(K, B, n_in)`` to logits ``(K, B, n_out)`` with batched
matrix products. Run k sees only its own parameters, so the gradient of
``sum_k loss_k`` in the slice k is the gradient of run k alone.

Layers, each the batched twin of its module (``k`` the run, ``@`` a bmm)::

    SpikeSlabLinear  h_k = (x_k mu_k^T + sqrt(x_k^2 var_k^T + floor) * eps_k) / sqrt(N_in)   (DESIGN.md 2)
    ScaledLinear     h_k = x_k (W_k / sqrt(N_in))^T (+ b_k)
    nn.Linear        h_k = x_k W_k^T (+ b_k)
    ModeLinear       h_k = ((x_k xi_in,k) * Sigma_k * scale) xi_out,k^T              (DESIGN.md 3)
    activations      applied elementwise to the whole (K, B, n) tensor

and, for convolutional stacks (``EnsembleCNN``, ``CNN``), inputs ``(K, B, C, *spatial)``::

    SpikeSlabConv1d/2d, ScaledConv2d, nn.Conv1d/2d   on CUDA one convolution with groups = K * groups over
                     the runs' channels side by side, (B, K C, *spatial): run k's kernels see only run k's
                     channels; on CPU one convolution per run (grouped convolutions are 3x slower there)
    MaxPool/AvgPool 1d/2d   applied per channel, so per run
    nn.Flatten       (K, B, C, *spatial) -> (K, B, C prod(spatial))

The noise eps_k of a spike-and-slab layer comes from run k's own generator,
drawn from the layer's ``noise`` source as ``(B, N_out)`` (``torch.randn`` by
default), exactly what the module draws from the global generator in
:func:`~ensemble_nets.training.train`; so run k of a
stack consumes the same random numbers, in the same order, as run k alone.
The spike-and-slab pass is the layer's own hand-written gBP
(:class:`~ensemble_nets.layers.spike_slab._MeanFieldFunction`, which takes a
leading run axis and then uses batched products), checked against autograd in
the tests.

To support another layer: add a ``_op_*`` builder returning a ``_Op`` and
list it in :func:`_make_op`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ensemble_nets.distributions import spike_slab_moments
from ensemble_nets.layers import (
    ModeLinear, ScaledConv2d, ScaledLinear, SpikeSlabConv1d, SpikeSlabConv2d, SpikeSlabLinear,
)
from ensemble_nets.layers.base import project_counts_
from ensemble_nets.layers.conv import _ConvMeanFieldFunction
from ensemble_nets.layers.noise import standard_normal_
from ensemble_nets.layers.spike_slab import _MeanFieldFunction, _fused_project_, fused_kernel

__all__ = ["GROUPED_CONV_DEVICES", "StackedModel", "check_stackable", "stack_models", "structure_difference"]

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Identity, nn.LeakyReLU, nn.GELU, nn.Sigmoid, nn.ELU, nn.SiLU, nn.Softplus)


def _project_counts_(pi, xi):
    """Clip pi to [0, 1] and xi to >= 0 in place; entries moved per run ``(K,)``."""
    return project_counts_(pi, xi, pi.shape[0])


#: The batched gBP is the layer's own: :class:`~ensemble_nets.layers.spike_slab._MeanFieldFunction` takes
#: x ``(K, B, N_in)``, pi/m/xi ``(K, N_out, N_in)``, eps ``(K, B, N_out)`` (batched products), and with
#: ``compiled`` runs its elementwise work as fused ``torch.compile`` kernels.
_StackedMeanField = _MeanFieldFunction


def stacked_mean_field(x, pi, m, xi, eps, floor: float) -> torch.Tensor:
    """The batched mean-field pre-activation by autograd (the reference for :class:`_StackedMeanField`)."""
    keep = 1.0 - pi
    mean = torch.bmm(x, (keep * m).mT)
    delta = torch.sqrt(torch.bmm(x.square(), (keep * (xi + pi * m * m)).mT) + floor)
    return (mean + delta * eps) / math.sqrt(x.shape[-1])


@dataclass
class _Op:
    """One child of the stack: ``fn(x, params, generators) -> h`` and the parameter names it reads."""

    name: str
    fn: Callable
    reads: tuple[str, ...] = ()
    projected: dict = field(default_factory=dict)  # {"pi": name, "xi": name} for spike-and-slab layers


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _op_spike_slab(prefix, layer, names_of, compiled=False):
    pi, m, xi = (_prefixed(prefix, n) for n in ("pi", "m", "xi"))
    bias = _prefixed(prefix, "bias") if layer.bias is not None else None
    floor, n_out, noise = layer.floor, layer.out_features, layer.noise

    def fn(x, params, generators):
        eps = x.new_empty(x.shape[0], x.shape[1], n_out)  # (K, B, N_out)
        for eps_k, g in zip(eps, generators):  # run k's own stream: the numbers run k alone draws
            standard_normal_(eps_k, noise, generator=g)
        h = _MeanFieldFunction.apply(x, params[pi], params[m], params[xi], eps, floor, compiled)
        return h if bias is None else h + params[bias].unsqueeze(1)

    reads = (pi, m, xi) + ((bias,) if bias else ())
    return _Op(prefix, fn, reads, {"pi": pi, "xi": xi})


def _op_linear(prefix, layer, names_of):
    weight = _prefixed(prefix, "weight")
    bias = _prefixed(prefix, "bias") if layer.bias is not None else None
    root_n = math.sqrt(layer.in_features) if isinstance(layer, ScaledLinear) else None

    def fn(x, params, generators):
        w = params[weight] if root_n is None else params[weight] / root_n  # (K, N_out, N_in), as ScaledLinear
        return torch.bmm(x, w.mT) if bias is None else torch.baddbmm(params[bias].unsqueeze(1), x, w.mT)

    return _Op(prefix, fn, (weight,) + ((bias,) if bias else ()))


def _op_modes(prefix, layer, names_of):
    modes_in, modes_out = names_of(layer.modes_in), names_of(layer.modes_out)
    strengths = _prefixed(prefix, "strengths")
    scale = layer.scale

    def fn(x, params, generators):
        # (K, B, N_in) @ (K, N_in, P) -> (K, B, P); times Sigma; @ (K, P, N_out) -> (K, B, N_out)
        return torch.bmm(torch.bmm(x, params[modes_in]) * (params[strengths] * scale).unsqueeze(1),
                         params[modes_out].mT)

    return _Op(prefix, fn, (modes_in, modes_out, strengths))


def _op_elementwise(prefix, module, names_of):
    return _Op(prefix, lambda x, params, generators: [module(t) for t in x] if isinstance(x, list) else module(x))


def _side_by_side(x: torch.Tensor) -> torch.Tensor:
    """``(K, B, C, *spatial)`` -> ``(B, K C, *spatial)``: the runs' channels side by side (free when ``x``
    came from :func:`_runs_first`)."""
    return x.transpose(0, 1).reshape(x.shape[1], x.shape[0] * x.shape[2], *x.shape[3:])


def _runs_first(y: torch.Tensor, n_runs: int) -> torch.Tensor:
    """``(B, K C, *spatial)`` -> ``(K, B, C, *spatial)``, a view."""
    return y.view(y.shape[0], n_runs, y.shape[1] // n_runs, *y.shape[2:]).transpose(0, 1)


#: Device types whose stacked convolutions run as ONE grouped convolution over the runs (else one per run).
GROUPED_CONV_DEVICES = {"cuda"}


def _grouped(x: torch.Tensor) -> bool:
    return x.device.type in GROUPED_CONV_DEVICES


def _conv_padding(layer) -> tuple[tuple[int, ...], tuple | None, str]:
    """``(padding for the conv, F.pad argument or None, F.pad mode)``, as the layer pads."""
    if layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        return tuple(layer.padding), None, "constant"
    if isinstance(layer, SpikeSlabConv1d | SpikeSlabConv2d):
        pads = layer._explicit_padding()
    else:  # nn.ConvNd: its own reversed padding (valid, same or explicit)
        pads = tuple(layer._reversed_padding_repeated_twice)
    return (0,) * len(layer.kernel_size), pads, "constant" if layer.padding_mode == "zeros" else layer.padding_mode


def _op_spike_slab_conv(prefix, layer, names_of, compiled=False):
    pi, m, xi = (_prefixed(prefix, n) for n in ("pi", "m", "xi"))
    bias = _prefixed(prefix, "bias") if layer.bias is not None else None
    padding, pads, mode = _conv_padding(layer)
    conv, fan_in, n_dims = type(layer)._conv, layer.fan_in, layer._n_dims
    stride, dilation, groups = layer.stride, layer.dilation, layer.groups

    def fn(x, params, generators):
        n_runs, grouped = len(generators), not isinstance(x, list) and _grouped(x)
        xs = _side_by_side(x) if grouped else x if isinstance(x, list) else list(x.unbind(0))
        if pads is not None:  # per channel, so per run
            xs = F.pad(xs, pads, mode=mode) if grouped else [F.pad(t, pads, mode=mode) for t in xs]
        mu, var = spike_slab_moments(params[pi], params[m], params[xi])  # (K, C_out, C_in / groups, *kernel)
        mu_s, var_s = mu / math.sqrt(fan_in), var / fan_in
        floor_s = layer.floor / fan_in
        if grouped:
            out = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, p, d, k, s in
                   zip(xs.shape[2:], padding, dilation, layer.kernel_size, stride)]
            eps = x.new_empty(n_runs, x.shape[1], layer.out_channels, *out)  # run k's stream, as randn_like(h)
            for eps_k, g in zip(eps, generators):
                standard_normal_(eps_k, layer.noise, generator=g)
            h = _runs_first(_ConvMeanFieldFunction.apply(xs, mu_s.flatten(0, 1), var_s.flatten(0, 1),
                                                         _side_by_side(eps), floor_s, conv, stride, padding, dilation,
                                                         groups * n_runs), n_runs)
            return h if bias is None else h + params[bias].view(n_runs, 1, -1, *(1,) * n_dims)
        # one run at a time, kept as a list of K tensors until nn.Flatten (large activations stay per run);
        # run k's noise is drawn inside from its own generator: the numbers run k alone draws
        outs = []
        for k, x_k in enumerate(xs):
            h_k = _ConvMeanFieldFunction.apply(x_k, mu_s[k], var_s[k], None, floor_s, conv, stride, padding, dilation,
                                               groups, generators[k], layer.noise)
            outs.append(h_k if bias is None else h_k + params[bias][k].view(-1, *(1,) * n_dims))
        return outs

    reads = (pi, m, xi) + ((bias,) if bias else ())
    return _Op(prefix, fn, reads, {"pi": pi, "xi": xi})


def _op_conv(prefix, layer, names_of):
    weight = _prefixed(prefix, "weight")
    bias = _prefixed(prefix, "bias") if layer.bias is not None else None
    padding, pads, mode = _conv_padding(layer)
    conv = F.conv2d if len(layer.kernel_size) == 2 else F.conv1d
    root_n = math.sqrt(layer.fan_in) if isinstance(layer, ScaledConv2d) else None

    def fn(x, params, generators):
        n_runs, grouped = len(generators), not isinstance(x, list) and _grouped(x)
        xs = _side_by_side(x) if grouped else x if isinstance(x, list) else list(x.unbind(0))
        if pads is not None:
            xs = F.pad(xs, pads, mode=mode) if grouped else [F.pad(t, pads, mode=mode) for t in xs]
        w = params[weight] if root_n is None else params[weight] / root_n  # as ScaledConv2d
        b = None if bias is None else params[bias]
        if grouped:
            return _runs_first(conv(xs, w.flatten(0, 1), None if b is None else b.flatten(), layer.stride, padding,
                                    layer.dilation, layer.groups * n_runs), n_runs)
        return [conv(xs[k], w[k], None if b is None else b[k], layer.stride, padding, layer.dilation, layer.groups)
                for k in range(n_runs)]  # per run, a list (see _op_spike_slab_conv)

    return _Op(prefix, fn, (weight,) + ((bias,) if bias else ()))


def _op_pool(prefix, module, names_of):
    def fn(x, params, generators):
        if isinstance(x, list):  # per run, as the per-run convolutions leave it
            return [module(t) for t in x]
        return _runs_first(module(_side_by_side(x)), len(generators))  # per channel of (B, K C, *spatial)

    return _Op(prefix, fn)


def _op_flatten(prefix, module, names_of):
    if module.start_dim != 1 or module.end_dim != -1:
        raise NotImplementedError(f"train_many stacks nn.Flatten(start_dim=1, end_dim=-1) only; {prefix!r} has "
                                  f"start_dim={module.start_dim}, end_dim={module.end_dim}")
    def fn(x, params, generators):
        return torch.stack([t.flatten(1) for t in x]) if isinstance(x, list) else x.flatten(2)

    return _Op(prefix, fn)


#: Layer type -> builder of its stacked op (elementwise activations apart).
_BUILDERS = {
    SpikeSlabLinear: _op_spike_slab, ScaledLinear: _op_linear, nn.Linear: _op_linear, ModeLinear: _op_modes,
    SpikeSlabConv2d: _op_spike_slab_conv, SpikeSlabConv1d: _op_spike_slab_conv,
    ScaledConv2d: _op_conv, nn.Conv2d: _op_conv, nn.Conv1d: _op_conv,
    nn.MaxPool2d: _op_pool, nn.AvgPool2d: _op_pool, nn.MaxPool1d: _op_pool, nn.AvgPool1d: _op_pool,
    nn.Flatten: _op_flatten,
}
_WITH_COMPILED = (_op_spike_slab, _op_spike_slab_conv)


def _make_op(prefix: str, module: nn.Module, names_of, compiled: bool = False) -> _Op:
    build = _BUILDERS.get(type(module))
    if build is not None:
        return build(prefix, module, names_of, compiled) if build in _WITH_COMPILED else build(prefix, module,
                                                                                               names_of)
    if isinstance(module, _ELEMENTWISE):
        return _op_elementwise(prefix, module, names_of)
    raise NotImplementedError(
        f"train_many cannot vectorize module {prefix!r} of type {type(module).__name__}; it supports "
        f"{', '.join(t.__name__ for t in _BUILDERS)} and elementwise activations "
        f"({', '.join(t.__name__ for t in _ELEMENTWISE)}) in an nn.Sequential; train such models one by one "
        f"with en.train"
    )


def _describe(module: nn.Module) -> list[tuple[str, str]]:
    """What must agree between stacked models: module types, parameter and buffer shapes, forward options."""
    rows = []
    for name, sub in module.named_modules():
        rows.append((f"module {name or '<root>'}", type(sub).__name__))
        for attr in ("floor", "scale_input", "in_features", "out_features", "n_modes", "shared", "negative_slope",
                     "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode", "ceil_mode",
                     "count_include_pad", "start_dim", "end_dim"):
            if attr in vars(sub):
                rows.append((f"{name or '<root>'}.{attr}", repr(getattr(sub, attr))))
    rows += [(f"parameter {n}", f"shape {tuple(p.shape)}, {p.dtype}") for n, p in module.named_parameters()]
    rows += [(f"buffer {n}", f"shape {tuple(b.shape)}, {b.dtype}") for n, b in module.named_buffers()]
    return rows


def structure_difference(a: nn.Module, b: nn.Module) -> str | None:
    """The first difference of structure between two models (``None`` when they can be stacked)."""
    rows_a, rows_b = _describe(a), _describe(b)
    for (key_a, val_a), (key_b, val_b) in zip(rows_a, rows_b):
        if key_a != key_b:
            return f"{key_a} = {val_a} against {key_b} = {val_b}"
        if val_a != val_b:
            return f"{key_a}: {val_a} against {val_b}"
    if len(rows_a) != len(rows_b):
        longer, extra = ("first", rows_a[len(rows_b)]) if len(rows_a) > len(rows_b) else ("second",
                                                                                         rows_b[len(rows_a)])
        return f"only the {longer} model has {extra[0]} = {extra[1]}"
    return None


class StackedModel:
    """K models of one structure as one: ``params[name]`` is ``(K, *shape)``, a leaf that trains.

    :param models: K ``nn.Sequential`` models of identical structure (checked by :func:`stack_models`).
    :param compiled: run the elementwise work on spike-and-slab parameters (moments, gradients,
        projection) as ``torch.compile``d kernels (needs a C++ compiler on CPU; the first step compiles).
    """

    def __init__(self, models: Sequence[nn.Module], compiled: bool = False):
        self.compiled = bool(compiled)
        template = models[0]
        self.names = [name for name, _ in template.named_parameters()]
        by_id = {id(p): name for name, p in template.named_parameters()}

        def names_of(tensor):
            if id(tensor) not in by_id:
                raise NotImplementedError("a layer reads a tensor that is not a parameter of the model")
            return by_id[id(tensor)]

        self.ops = [_make_op(name, child, names_of, self.compiled) for name, child in template.named_children()]
        read = {n for op in self.ops for n in op.reads}
        unread = [n for n in self.names if n not in read]
        if unread:
            raise NotImplementedError(f"train_many does not know how the forward uses parameters {unread}; "
                                      f"train this model with en.train")
        self.params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_()
                       for name in self.names}

    @property
    def n_runs(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def __call__(self, x: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Logits ``(K, B, n_out)`` of inputs ``(K, B, n_in)``; ``generators[k]`` feeds run k's noise."""
        for op in self.ops:
            x = op.fn(x, self.params, generators)
        return x

    @torch.no_grad()
    def project_(self) -> torch.Tensor:
        """pi to [0, 1], xi to >= 0 in every spike-and-slab layer; entries moved per run, ``(K,)``."""
        moved = torch.zeros(self.n_runs, dtype=torch.long, device=next(iter(self.params.values())).device)
        project = fused_kernel(_fused_project_) if self.compiled else _project_counts_
        for op in self.ops:
            if op.projected:
                moved += project(self.params[op.projected["pi"]].detach(), self.params[op.projected["xi"]].detach())
        return moved

    @torch.no_grad()
    def keep_(self, runs: Sequence[int]) -> None:
        """Keep only the runs ``runs`` (indices into the current stack), in that order."""
        index = torch.as_tensor(list(runs), dtype=torch.long, device=next(iter(self.params.values())).device)
        self.params = {name: p.detach().index_select(0, index).requires_grad_() for name, p in self.params.items()}

    @torch.no_grad()
    def copy_to_(self, k: int, model: nn.Module) -> None:
        """Write run k's parameters into ``model`` (same structure)."""
        for name, param in model.named_parameters():
            param.copy_(self.params[name][k])

    def state_of(self, k: int) -> dict[str, torch.Tensor]:
        """Run k's parameters, detached copies, by name."""
        return {name: p.detach()[k].clone() for name, p in self.params.items()}


def stack_models(models: Sequence[nn.Module], *, compiled: bool = False) -> StackedModel:
    """Check that ``models`` share one structure and stack them; errors name the first difference."""
    check_stackable(models)
    return StackedModel(list(models), compiled=compiled)


def check_stackable(models: Sequence[nn.Module]) -> None:
    """Raise a clear error unless ``models`` can be stacked (same structure, one device, supported layers)."""
    models = list(models)
    if not models:
        raise ValueError("train_many needs at least one model")
    for k, model in enumerate(models):
        if not isinstance(model, nn.Sequential):
            raise NotImplementedError(
                f"models[{k}] is a {type(model).__name__}; train_many vectorizes nn.Sequential stacks "
                f"(EnsembleMLP, ModeMLP, MLP); train other models with en.train")
        if type(model) is not type(models[0]):
            raise ValueError(f"models[{k}] is a {type(model).__name__} but models[0] is a "
                             f"{type(models[0]).__name__}; train_many needs models of one structure")
        difference = structure_difference(models[0], model)
        if difference is not None:
            raise ValueError(f"models[{k}] differs from models[0] in structure: {difference}; train_many needs "
                             f"models of identical structure (group them by structure, one call per group)")
        devices = {p.device for p in model.parameters()} | {next(models[0].parameters()).device}
        if len(devices) > 1:
            raise ValueError(f"models[{k}] lives on {sorted(map(str, devices))}; move every model to one device")
    template = models[0]
    for name, child in template.named_children():  # supported layers only (raises NotImplementedError)
        if not isinstance(child, _ELEMENTWISE) and type(child) not in _BUILDERS:
            _make_op(name, child, None)
        if isinstance(child, nn.Flatten):
            _op_flatten(name, child, None)  # its supported form only
