# SPDX-License-Identifier: MIT
"""Any architecture as an ensemble, and any ensemble as plain networks.

- :func:`to_ensemble` copies a model and replaces its ``nn.Linear`` /
  ``nn.Conv2d`` (/ ``nn.Conv1d``) layers by their spike-and-slab counterparts
  (``pi``: probability the connection is ABSENT; ``m``: slab mean; ``xi``: slab
  VARIANCE). Biases stay deterministic; BatchNorm, pooling, residual additions
  and custom modules are untouched. With ``init="from_weights"`` the slab
  means carry the trained weights with the 1/sqrt(fan_in) convention folded
  in (m = W sqrt(fan_in), pi = 0, xi = ``xi_init``), so with ``xi_init=0`` the
  mean network computes the original function::

      mean_network(to_ensemble(net, init="from_weights"))(x) == net(x)   (float tolerance)

- :func:`sample_network` and :func:`mean_network` copy a model that holds
  spike-and-slab layers and replace each layer by the plain module
  (``nn.Linear``, ``nn.Conv2d``, ...) holding one draw of q, or the mean
  weight (1 - pi) m, scaled by 1/sqrt(fan_in): a real member of the ensemble,
  plain torch modules only. An ``nn.Sequential`` subclass that adds nothing to
  ``nn.Sequential.forward`` (e.g. :class:`~ensemble_nets.models.EnsembleMLP`)
  becomes a plain ``nn.Sequential``; any other container keeps its class.

Draws go through the layers in ``spike_slab_layers(model)`` order (input to
output), so one ``generator`` makes one member reproducibly.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ensemble_nets.layers import (
    ScaledConv2d,
    ScaledLinear,
    SpikeSlabConv1d,
    SpikeSlabConv2d,
    SpikeSlabLinear,
    is_spike_slab,
    spike_slab_layers,
)

__all__ = ["CONVERTIBLE", "INITS", "mean_network", "replace_modules", "sample_network", "to_ensemble"]

#: ``init`` choices of :func:`to_ensemble`.
INITS = ("reference", "from_weights")
#: Layer families :func:`to_ensemble` converts, and the classes (exactly these) it can convert.
CONVERTIBLE: dict[type[nn.Module], tuple[type[nn.Module], ...]] = {
    nn.Linear: (nn.Linear, ScaledLinear),
    nn.Conv2d: (nn.Conv2d, ScaledConv2d),
    nn.Conv1d: (nn.Conv1d,),
}
_COUNTERPART: dict[type[nn.Module], Callable[..., nn.Module]] = {
    nn.Linear: SpikeSlabLinear.from_module,
    nn.Conv2d: SpikeSlabConv2d.from_module,
    nn.Conv1d: SpikeSlabConv1d.from_module,
}


def _is_plain_sequential_subclass(module: nn.Module) -> bool:
    return (isinstance(module, nn.Sequential) and type(module) is not nn.Sequential
            and type(module).forward is nn.Sequential.forward)


def replace_modules(model: nn.Module, replacements: dict[int, nn.Module], *, plain_containers: bool = False
                    ) -> nn.Module:
    """A deep copy of ``model`` in which each module ``m`` with ``id(m)`` in ``replacements`` is swapped.

    Replaced modules are never copied (a shared module maps to one replacement). With
    ``plain_containers``, ``nn.Sequential`` subclasses that keep ``nn.Sequential.forward``
    become plain ``nn.Sequential`` (same children, same function).
    """
    if id(model) in replacements:
        return replacements[id(model)]
    memo: dict = dict(replacements)
    if plain_containers:
        # children before parents, so a rebuilt container holds already-rebuilt children
        for module in reversed([m for _, m in model.named_modules()]):
            if id(module) not in memo and _is_plain_sequential_subclass(module):
                children = OrderedDict((name, copy.deepcopy(child, memo)) for name, child in module.named_children())
                memo[id(module)] = nn.Sequential(children).train(module.training)
    return copy.deepcopy(model, memo)


def _layers_of(model: nn.Module) -> list[nn.Module]:
    layers = [layer for _, layer in spike_slab_layers(model)]
    if not layers:
        raise ValueError(f"{type(model).__name__} holds no spike-and-slab layers (parameters pi, m, xi); "
                         f"convert it first with en.to_ensemble(model)")
    return layers


@torch.no_grad()
def sample_network(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """One member of the ensemble: a copy of ``model`` with every spike-and-slab layer a plain module.

    Each layer becomes the plain ``nn.Linear`` / ``nn.Conv2d`` / ``nn.Conv1d`` holding ONE draw
    W ~ q, applied as W / sqrt(fan_in) (folded into its weight), bias copied.

    :param model: any ``nn.Module`` holding spike-and-slab layers (or one such layer); left untouched.
    :param generator: makes the draw reproducible (layers drawn input to output).
    """
    layers = _layers_of(model)
    plain = {id(layer): layer.plain_module(layer.sample_weight(generator)) for layer in layers}
    return replace_modules(model, plain, plain_containers=True)


@torch.no_grad()
def mean_network(model: nn.Module) -> nn.Module:
    """The mean network: a copy of ``model`` with every spike-and-slab layer the plain module of (1 - pi) m."""
    plain = {id(layer): layer.plain_module() for layer in _layers_of(model)}
    return replace_modules(model, plain, plain_containers=True)


def to_ensemble(model: nn.Module, *, init: str = "reference", xi_init: float = 0.0,
                layer_types: Iterable[type[nn.Module]] = (nn.Linear, nn.Conv2d), exclude: Iterable[str] = (),
                **layer_kwargs) -> nn.Module:
    """A copy of ``model`` in which every layer of ``layer_types`` is spike-and-slab.

    :param model: any ``nn.Module``; left untouched.
    :param init: ``"reference"`` (fresh reference init: pi = pi_init, m ~ N(0, m_std^2), xi ~ xi_max U(0,1))
        or ``"from_weights"`` (m = W sqrt(fan_in), pi = 0, xi = ``xi_init``, biases copied).
    :param xi_init: slab variance of every weight under ``init="from_weights"`` (0: exactly the original).
    :param layer_types: families to convert, from :data:`CONVERTIBLE` (``nn.Linear``, ``nn.Conv2d``,
        ``nn.Conv1d``). A subclass of one of them with its own forward cannot be converted and is an
        error (exclude it); :class:`ScaledLinear` and :class:`ScaledConv2d` convert.
    :param exclude: module names (as in ``model.named_modules()``) to keep plain, with everything under them.
    :param layer_kwargs: options of the new layers (``m_std``, ``xi_max``, ``pi_init``, ``floor``,
        ``eval_mode``, ``decay_pi``; ``gbp`` for linear layers).
    :returns: the converted copy, in the same train/eval mode.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    layer_types = tuple(layer_types)
    unknown = [t for t in layer_types if t not in CONVERTIBLE]
    if not layer_types or unknown:
        raise ValueError(f"layer_types must be chosen from {[t.__name__ for t in CONVERTIBLE]}, got "
                         f"{[getattr(t, '__name__', t) for t in layer_types]}")
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    names = [name for name, _ in model.named_modules()]
    unmatched = [e for e in exclude if e not in names]
    if unmatched:
        raise ValueError(f"exclude names {unmatched} match no module of {type(model).__name__}; module names "
                         f"are {[n for n in names if n][:20]}{' ...' if len(names) > 21 else ''}")

    def excluded(name: str) -> bool:
        return any(name == e or name.startswith(e + ".") or e == "" for e in exclude)

    replacements, refused = {}, []
    for name, module in model.named_modules():
        if is_spike_slab(module) or excluded(name):
            continue
        family = next((t for t in layer_types if isinstance(module, t)), None)
        if family is None:
            continue
        if type(module) not in CONVERTIBLE[family]:
            refused.append(f"{name or '<model>'} ({type(module).__name__})")
            continue
        replacements[id(module)] = _COUNTERPART[family](module, init=init, xi_init=xi_init, **layer_kwargs)
    if refused:
        raise TypeError(f"cannot convert {', '.join(refused)}: subclasses of "
                        f"{'/'.join(t.__name__ for t in layer_types)} with their own forward; keep them plain "
                        f"with exclude=[...] or leave their family out of layer_types")
    if not replacements:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"{type(model).__name__} has nothing to convert: no {'/'.join(t.__name__ for t in layer_types)}"
                         f" layers outside exclude (its modules: {kinds})")
    return replace_modules(model, replacements)
