# SPDX-License-Identifier: MIT
"""Test-time numbers of a model, ensemble or plain.

For an ensemble (a model with ``sample_network``) three views of accuracy::

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

__all__ = ["accuracy", "evaluate"]


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 10_000) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``net`` on ``(x, y)``, in batches."""
    correct, loss = 0, 0.0
    for start in range(0, x.shape[0], batch_size):
        logits = net(x[start:start + batch_size])
        target = y[start:start + batch_size]
        correct += (logits.argmax(-1) == target).sum().item()
        loss += F.cross_entropy(logits, target, reduction="sum").item()
    return correct / x.shape[0], loss / x.shape[0]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_networks: int = 10, seed: int = 0,
             batch_size: int = 10_000) -> dict[str, float]:
    """Accuracy (and loss) of the mean-field pass, the mean network and ``n_networks`` sampled networks.

    Runs in eval mode and restores the previous mode; its randomness comes from
    ``seed`` alone, so evaluating never shifts the training run's random stream.
    """
    was_training = model.training
    model.eval()
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.random.default_generator.manual_seed(seed)
            for device in devices:  # only the devices fork_rng restores
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            if not hasattr(model, "sample_network"):
                if any(hasattr(m, "sample_weight") for m in model.modules()):
                    raise TypeError(f"{type(model).__name__} holds spike-and-slab layers but no sample_network(); "
                                    f"build it as en.EnsembleMLP, or evaluate its members yourself")
                acc, loss = accuracy(model, x, y, batch_size)
                return {"acc_mean_field": acc, "loss_mean_field": loss, "acc_mean": acc,
                        "acc_sampled_mean": acc, "acc_sampled_std": 0.0}
            previous_mode, model.eval_mode = model.eval_mode, "mean_field"
            try:
                acc_mf, loss_mf = accuracy(model, x, y, batch_size)
            finally:
                model.eval_mode = previous_mode
            acc_mean, _ = accuracy(model.mean_network(), x, y, batch_size)
            generator = torch.Generator(device=x.device).manual_seed(seed)
            sampled = [accuracy(model.sample_network(generator), x, y, batch_size)[0] for _ in range(n_networks)]
    finally:
        model.train(was_training)
    mean = sum(sampled) / len(sampled)
    std = math.sqrt(sum((a - mean) ** 2 for a in sampled) / max(len(sampled) - 1, 1))
    return {"acc_mean_field": acc_mf, "loss_mean_field": loss_mf, "acc_mean": acc_mean,
            "acc_sampled_mean": mean, "acc_sampled_std": std}
