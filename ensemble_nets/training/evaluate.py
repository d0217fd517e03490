# SPDX-License-Identifier: MIT
"""Test-time numbers of a model, ensemble or plain.

For an ensemble (any model holding spike-and-slab layers) three views of accuracy::

    mean_field   the noisy mean-field pass the network was trained with
    mean         the noiseless mean network, weights (1 - pi) m
    sampled      K networks drawn from q, each a plain network: mean and std over K

A plain network has one deterministic function; its three numbers coincide
(std 0), so plain and ensemble runs are compared in the same columns.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ensemble_nets.layers import spike_slab_layers
from ensemble_nets.models.convert import mean_network, sample_network

__all__ = ["accuracy", "evaluate"]


def _batches(x, y, batch_size: int, device=None, dtype=None):
    """``(inputs, labels)`` batches of tensors ``(x, y)``, or of a DataLoader ``x`` (``y`` None) moved to
    ``device`` (floating-point inputs cast to ``dtype``; integer inputs such as token ids kept)."""
    if isinstance(x, DataLoader):
        if y is not None:
            raise ValueError("pass y=None with a DataLoader: its batches carry the labels")
        for xb, yb in x:
            xb = xb.to(device, dtype if xb.is_floating_point() else None, non_blocking=True)
            yield xb, yb.to(device, non_blocking=True)
        return
    for start in range(0, x.shape[0], batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


@torch.no_grad()
def accuracy(net: nn.Module, x, y, batch_size: int = 10_000) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``net`` on ``(x, y)``, in batches.

    :param x: ``(N, ...)`` inputs, or a ``DataLoader`` of ``(inputs, labels)`` batches (then ``y=None``;
        batches are moved to the device of ``net``'s parameters).
    """
    return _accuracies([net], x, y, batch_size)[0]


def _accuracies(nets: list[nn.Module], x, y, batch_size: int) -> list[tuple[float, float]]:
    """:func:`accuracy` of several networks in one pass over the data (a DataLoader is read once)."""
    param = next(nets[0].parameters()) if isinstance(x, DataLoader) else None
    device, dtype = (param.device, param.dtype) if param is not None else (None, None)
    correct, loss, n = [0] * len(nets), [0.0] * len(nets), 0
    for xb, yb in _batches(x, y, batch_size, device, dtype):
        for i, net in enumerate(nets):
            logits = net(xb)
            correct[i] += (logits.argmax(-1) == yb).sum().item()
            loss[i] += F.cross_entropy(logits, yb, reduction="sum").item()
        n += yb.shape[0]
    return [(c / n, l / n) for c, l in zip(correct, loss)]


@torch.no_grad()
def evaluate(model: nn.Module, x, y, *, n_networks: int = 10, seed: int = 0,
             batch_size: int = 10_000) -> dict[str, float]:
    """Accuracy (and loss) of the mean-field pass, the mean network and ``n_networks`` sampled networks.

    Works for any model: one that holds spike-and-slab layers (:func:`spike_slab_layers`) is
    an ensemble; any other is plain. Runs in eval mode and restores the previous mode and the
    layers' ``eval_mode``; its randomness comes from ``seed`` alone, so evaluating never shifts
    the training run's random stream.

    :param x: ``(N, ...)`` test inputs, or a ``DataLoader`` of ``(inputs, labels)`` (then ``y=None``).
    """
    was_training = model.training
    device = x.device if isinstance(x, torch.Tensor) else next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    layers = [layer for _, layer in spike_slab_layers(model)]
    try:
        with torch.random.fork_rng(devices=devices):
            torch.random.default_generator.manual_seed(seed)
            for dev in devices:  # only the devices fork_rng restores
                with torch.cuda.device(dev):
                    torch.cuda.manual_seed(seed)
            if not layers:
                model.eval()
                acc, loss = accuracy(model, x, y, batch_size)
                return {"acc_mean_field": acc, "loss_mean_field": loss, "acc_mean": acc,
                        "acc_sampled_mean": acc, "acc_sampled_std": 0.0}
            generator = torch.Generator(device=device).manual_seed(seed)
            networks = [mean_network(model)] + [sample_network(model, generator) for _ in range(n_networks)]
            previous_modes = [layer.eval_mode for layer in layers]
            try:
                for layer in layers:
                    layer.eval_mode = "mean_field"
                model.eval()
                # one pass over the data for all 2 + n_networks networks (a DataLoader is read once)
                (acc_mf, loss_mf), (acc_mean, _), *rest = _accuracies([model, *networks], x, y, batch_size)
            finally:
                for layer, mode in zip(layers, previous_modes):
                    layer.eval_mode = mode
            sampled = [acc for acc, _ in rest]
    finally:
        with torch.random.fork_rng(devices=devices):  # eval_mode="sample" layers draw when entering eval
            model.train(was_training)
    mean = sum(sampled) / len(sampled)
    std = math.sqrt(sum((a - mean) ** 2 for a in sampled) / max(len(sampled) - 1, 1))
    return {"acc_mean_field": acc_mf, "loss_mean_field": loss_mf, "acc_mean": acc_mean,
            "acc_sampled_mean": mean, "acc_sampled_std": std}
