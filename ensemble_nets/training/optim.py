# SPDX-License-Identifier: MIT
"""Optimizer pieces: decay groups, decoupled weight decay, the step schedule, the projection.

Layers say what is decayed (``decayed_parameters``) and how they are
projected (``project_``); this module only collects. The reference weight
decay is DECOUPLED (DESIGN.md section 2)::

    theta <- theta - lr (adam_step + weight_decay * theta)        (AdamW)

and after every step pi is clipped to [0, 1] and xi to >= 0.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["lr_at", "make_optimizer", "parameter_groups", "project_", "resolve_device", "step_and_project"]


def parameter_groups(model: nn.Module, *, weight_decay: float, decay: Iterable[str] | None = None) -> list[dict]:
    """Two optimizer groups: decayed and not decayed.

    :param decay: parameter names (the last part of the dotted name, e.g. ``"m"``) to decay;
        ``None`` asks each layer through its ``decayed_parameters`` attribute. A name that
        matches no parameter of ``model`` is an error (a misspelt name would silently
        turn the decay off). A parameter shared by several layers is listed once.
    """
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
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, *, lr: float, weight_decay: float = 1e-4,
                   decay: Iterable[str] | None = None, decoupled: bool = True,
                   fused_step: bool = False) -> torch.optim.Optimizer:
    """Adam with weight decay on the chosen groups: decoupled (AdamW, the reference) or coupled L2.

    Uses the fused kernel (one per step) when every parameter is a float tensor on CPU or CUDA,
    else the multi-tensor (foreach) implementation. ``fused_step=True``: a
    :class:`~ensemble_nets.training.fused_adam.SpikeSlabAdamW`, which also projects the
    spike-and-slab layers, one compiled kernel per layer (optional: ``torch.compile`` needs a C++
    compiler on CPU); step it with :func:`step_and_project`.
    """
    groups = parameter_groups(model, weight_decay=weight_decay, decay=decay)
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
