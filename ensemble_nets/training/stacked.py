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

The noise eps_k of a spike-and-slab layer comes from run k's own generator,
drawn as ``torch.randn(B, N_out)``, exactly what the module draws from the
global generator in :func:`~ensemble_nets.training.train`; so run k of a
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
from torch import nn

from ensemble_nets.layers import ModeLinear, ScaledLinear, SpikeSlabLinear
from ensemble_nets.layers.base import project_counts_
from ensemble_nets.layers.spike_slab import _MeanFieldFunction, _fused_project_, fused_kernel

__all__ = ["StackedModel", "check_stackable", "stack_models", "structure_difference"]

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
    floor, n_out = layer.floor, layer.out_features

    def fn(x, params, generators):
        eps = x.new_empty(x.shape[0], x.shape[1], n_out)  # (K, B, N_out)
        for eps_k, g in zip(eps, generators):  # run k's own stream: the numbers of torch.randn(B, N_out)
            eps_k.normal_(generator=g)
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
    return _Op(prefix, lambda x, params, generators: module(x))


def _make_op(prefix: str, module: nn.Module, names_of, compiled: bool = False) -> _Op:
    if type(module) is SpikeSlabLinear:
        return _op_spike_slab(prefix, module, names_of, compiled)
    if type(module) in (ScaledLinear, nn.Linear):
        return _op_linear(prefix, module, names_of)
    if type(module) is ModeLinear:
        return _op_modes(prefix, module, names_of)
    if isinstance(module, _ELEMENTWISE):
        return _op_elementwise(prefix, module, names_of)
    raise NotImplementedError(
        f"train_many cannot vectorize module {prefix!r} of type {type(module).__name__}; it supports "
        f"SpikeSlabLinear, ScaledLinear, nn.Linear, ModeLinear and elementwise activations "
        f"({', '.join(t.__name__ for t in _ELEMENTWISE)}) in an nn.Sequential; train such models one by one "
        f"with en.train"
    )


def _describe(module: nn.Module) -> list[tuple[str, str]]:
    """What must agree between stacked models: module types, parameter and buffer shapes, forward options."""
    rows = []
    for name, sub in module.named_modules():
        rows.append((f"module {name or '<root>'}", type(sub).__name__))
        for attr in ("floor", "scale_input", "in_features", "out_features", "n_modes", "shared", "negative_slope"):
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
        if not isinstance(child, _ELEMENTWISE) and type(child) not in (SpikeSlabLinear, ScaledLinear, nn.Linear,
                                                                       ModeLinear):
            _make_op(name, child, None)
