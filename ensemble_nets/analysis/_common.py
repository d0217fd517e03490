# SPDX-License-Identifier: MIT
"""Helpers shared by the analysis modules: layers by name, test tensors, members' outputs."""
from __future__ import annotations

import functools

import torch
from torch import nn

from ensemble_nets.layers.spike_slab import spike_slab_layers


def keeps_global_rng(function):
    """Run ``function`` without moving torch's global random stream.

    The analysis draws from its own seeded generators, but building a plain
    ``nn.Linear`` initializes it from the global stream; forking keeps a
    training or analysis script reproducible whatever is analysed in between.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return function(*args, **kwargs)

    return wrapper


def checked_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """:func:`~ensemble_nets.layers.spike_slab_layers` of ``model``, or a clear error when it has none."""
    layers = spike_slab_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no spike-and-slab layers (parameters pi and xi); "
                         f"pass an ensemble such as en.EnsembleMLP or a model loaded with en.load_run")
    return layers


def named_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[("layer1", module), ...]`` from input to output, named as in :func:`categorize`."""
    return [(f"layer{i}", module) for i, (_, module) in enumerate(checked_layers(model), start=1)]


def resolve_layer(model: nn.Module, layer: int | str) -> tuple[str, int]:
    """``(name, index)`` of ``layer``, given as 1-based int or ``"layerN"``."""
    names = [name for name, _ in named_layers(model)]
    name = f"layer{layer}" if isinstance(layer, int) else layer
    if name not in names:
        raise ValueError(f"layer must be one of {names} (or 1..{len(names)}), got {layer!r}")
    return name, names.index(name)


def test_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_test, y_test)`` of a :class:`~ensemble_nets.data.Dataset`, or ``data`` itself when it is ``(x, y)``."""
    if hasattr(data, "x_test") and hasattr(data, "y_test"):
        return data.x_test, data.y_test
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same number of examples, got {x.shape[0]} and {y.shape[0]}")
        return x, y
    raise ValueError(f"data must be an ensemble_nets Dataset or a tuple (x, y), got {type(data).__name__}")


def check_n_networks(n_networks: int, minimum: int = 1) -> None:
    if not (isinstance(n_networks, int) and n_networks >= minimum):
        raise ValueError(f"n_networks must be an integer >= {minimum}, got {n_networks!r}")


@torch.no_grad()
def logits_of(net: nn.Module, x: torch.Tensor, batch_size: int = 10_000) -> torch.Tensor:
    """Logits of a plain network on ``x``, in batches: ``(N, C)``."""
    return torch.cat([net(x[start:start + batch_size]) for start in range(0, x.shape[0], batch_size)])


def draw_network(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """One network drawn from q (:func:`ensemble_nets.models.sample_network`): any model holding
    spike-and-slab layers (an EnsembleMLP, a CNN, a model converted with ``en.to_ensemble``)."""
    from ensemble_nets.models.convert import sample_network

    checked_layers(model)  # a clear error when there is nothing to sample
    return sample_network(model, generator)


@keeps_global_rng
@torch.no_grad()
def sampled_log_probs(model: nn.Module, x: torch.Tensor, n_networks: int, seed: int = 0,
                      batch_size: int = 10_000, progress: bool = False) -> torch.Tensor:
    """Log-softmax outputs of ``n_networks`` networks drawn from q: ``(K, N, C)``.

    Network k is :func:`draw_network` ``(model, generator)`` with one generator seeded by
    ``seed``, so the same seed gives the same members.
    """
    check_n_networks(n_networks)
    from tqdm.auto import tqdm

    generator = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    for _ in tqdm(range(n_networks), disable=not progress, desc="sampled networks", unit="net", leave=False):
        out.append(torch.log_softmax(logits_of(draw_network(model, generator), x, batch_size), dim=-1))
    return torch.stack(out)  # (K, N, C)
