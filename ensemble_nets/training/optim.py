# SPDX-License-Identifier: MIT
"""Optimizer pieces: decay groups, decoupled weight decay, the step schedule, the projection.

Layers say what is decayed (``decayed_parameters``) and how they are
projected (``project_``); this module only collects. The reference weight
decay is DECOUPLED (DESIGN.md section 2)::

    theta <- theta - lr (adam_step + weight_decay * theta)        (AdamW)

and after every step pi is clipped to [0, 1] and xi to >= 0.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

__all__ = ["check_lr_scales", "lr_at", "make_optimizer", "parameter_groups", "project_", "resolve_device",
           "step_and_project"]


def parameter_groups(model: nn.Module, *, weight_decay: float, decay: Iterable[str] | None = None,
                     lr_scales: Mapping[str, float] | None = None) -> list[dict]:
    """Two optimizer groups: decayed and not decayed (split further by ``lr_scales``).

    :param decay: parameter names (the last part of the dotted name, e.g. ``"m"``) to decay;
        ``None`` asks each layer through its ``decayed_parameters`` attribute. A name that
        matches no parameter of ``model`` is an error (a misspelt name would silently
        turn the decay off). A parameter shared by several layers is listed once.
    :param lr_scales: ``{name: scale}`` (e.g. ``{"pi": 0.1, "xi": 0.1}``): the parameters of that
        last name part go into groups of their own (per decayed/not decayed), each group carrying
        ``"lr_scale"``; the optimizer's rate of such a group is ``lr * scale`` (``make_optimizer``
        and the loop's schedule apply it). A name that matches no parameter, or a scale that is
        negative or not finite, is an error. ``None``: the two groups, without ``"lr_scale"``.
    """
    scales = _check_lr_scales(model, lr_scales)
    wanted = None if decay is None else set(decay)
    decayed, plain, seen, names_found = [], [], set(), set()
    for module in model.modules():
        names = wanted if wanted is not None else set(getattr(module, "decayed_parameters", ()))
        for name, param in module.named_parameters(recurse=False):
            names_found.add(name)
            if id(param) in seen:
                continue
            seen.add(id(param))
            (decayed if name in names else plain).append(param)
    if wanted is not None and not wanted <= names_found:
        raise ValueError(f"decay names {sorted(wanted - names_found)} match no parameter of {type(model).__name__}, "
                         f"whose parameters are named {sorted(names_found)}; leave decay unset to use each "
                         f"layer's own choice (decayed_parameters)")
    groups = [{"params": decayed, "weight_decay": weight_decay, "name": "decayed"},
              {"params": plain, "weight_decay": 0.0, "name": "not_decayed"}]
    groups = [g for g in groups if g["params"]]
    if scales is None:
        return groups
    names: dict[int, str] = {}  # a shared parameter takes the name it is first seen under, as above
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            names.setdefault(id(param), name)
    split = []
    for group in groups:  # (decayed, scale): one group per scale, in first-seen order
        by_scale: dict[float, list] = {}
        for param in group["params"]:
            by_scale.setdefault(float(scales.get(names[id(param)], 1.0)), []).append(param)
        split += [{**group, "params": params, "lr_scale": scale,
                   "name": group["name"] if scale == 1.0 else f"{group['name']} x{scale:g}"}
                  for scale, params in by_scale.items()]
    return split


def _check_lr_scales(model: nn.Module, lr_scales: Mapping[str, float] | None) -> dict[str, float] | None:
    """``lr_scales`` as a dict of floats; an unknown name or a bad scale is a ``ValueError`` naming the fix."""
    if lr_scales is None:
        return None
    check_lr_scales(lr_scales)
    allowed = sorted({n for module in model.modules() for n, _ in module.named_parameters(recurse=False)})
    unknown = sorted(set(lr_scales) - set(allowed))
    if unknown:
        raise ValueError(f"lr_scales names {unknown} match no parameter of {type(model).__name__}, whose "
                         f"parameters are named {allowed}; use those names (the last part of the dotted name)")
    return {k: float(v) for k, v in lr_scales.items()}


def check_lr_scales(lr_scales: Mapping[str, float]) -> None:
    """A ``ValueError`` unless ``lr_scales`` maps names (str) to finite scales >= 0 (the model is not asked)."""
    if not isinstance(lr_scales, Mapping) or not all(isinstance(k, str) for k in lr_scales):
        raise ValueError(f"lr_scales must be a dict {{parameter name: scale}}, e.g. {{'pi': 0.1, 'xi': 0.1}}, "
                         f"got {lr_scales!r}")
    bad = {k: v for k, v in lr_scales.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"lr_scales {bad}: every scale must be a finite number >= 0 (0 freezes the parameter)")


def make_optimizer(model: nn.Module, *, lr: float, weight_decay: float = 1e-4,
                   decay: Iterable[str] | None = None, decoupled: bool = True,
                   lr_scales: Mapping[str, float] | None = None,
                   fused_step: bool = False) -> torch.optim.Optimizer:
    """Adam with weight decay on the chosen groups: decoupled (AdamW, the reference) or coupled L2.

    ``lr_scales`` (see :func:`parameter_groups`) gives some parameters the rate ``lr * scale``;
    each such group keeps its ``"lr_scale"``, which a schedule multiplies in (the loop does).
    Uses the fused kernel (one per step) when every parameter is a float tensor on CPU or CUDA,
    else the multi-tensor (foreach) implementation. ``fused_step=True``: a
    :class:`~ensemble_nets.training.fused_adam.SpikeSlabAdamW`, which also projects the
    spike-and-slab layers, in one compiled pass per step (optional: ``torch.compile`` needs a C++
    compiler on CPU); step it with :func:`step_and_project`.
    """
    groups = parameter_groups(model, weight_decay=weight_decay, decay=decay, lr_scales=lr_scales)
    for group in groups:
        if "lr_scale" in group:
            group["lr"] = lr * group["lr_scale"]
    if fused_step:
        from ensemble_nets.training.fused_adam import SpikeSlabAdamW, fusable_layers

        layers = fusable_layers(model)
        if layers:  # else nothing to fuse: torch's own (fused) Adam below
            return SpikeSlabAdamW(groups, layers, lr=lr, decoupled=decoupled)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float16, torch.bfloat16, torch.float32,
                                                                  torch.float64) for p in params)
    return cls(groups, lr=lr, fused=True) if fused else cls(groups, lr=lr, foreach=True)


def lr_at(epoch: int, lr: float, halve_every: int) -> float:
    """Step schedule: ``lr * 0.5 ** (epoch // halve_every)`` (constant when ``halve_every`` is 0)."""
    return lr if halve_every <= 0 else lr * 0.5 ** (epoch // halve_every)


def step_and_project(model: nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """``optimizer.step()``, then the projection (:func:`project_`); returns the entries moved.

    An optimizer that projects layers itself (``projected_layers``, e.g.
    :class:`~ensemble_nets.training.fused_adam.SpikeSlabAdamW`) reports their count
    (``projected()``), and only the other layers are projected here.
    """
    optimizer.step()
    own = getattr(optimizer, "projected_layers", None)
    if own is None:
        return project_(model)
    return project_(model, skip=own) + optimizer.projected().to(torch.long)


@torch.no_grad()
def project_(model: nn.Module, *, skip: Iterable[nn.Module] = ()) -> torch.Tensor:
    """Apply every layer's ``project_()`` (pi to [0, 1], xi to >= 0); returns the entries moved.

    ``model`` is a whole network or a single layer (a bare
    :class:`~ensemble_nets.layers.SpikeSlabLinear` is projected too); layers in ``skip`` are
    left alone (an optimizer projected them already). The
    projected modules are the innermost ones that define ``project_``: a
    module whose submodules carry their own ``project_`` is taken to delegate
    to them, so no layer is projected (or counted) twice.
    """
    moved, skip = None, {id(module) for module in skip}
    for module in model.modules():
        if id(module) in skip or not callable(getattr(module, "project_", None)):
            continue
        if any(callable(getattr(sub, "project_", None)) for sub in module.modules() if sub is not module):
            continue  # a container of projected layers: its layers are visited themselves
        count = module.project_()
        moved = count if moved is None else moved + count
    return torch.zeros((), dtype=torch.long) if moved is None else moved


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; an explicit CUDA device must exist."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"unknown device {spec!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but CUDA is not available here; use --device cpu or auto")
    return device
