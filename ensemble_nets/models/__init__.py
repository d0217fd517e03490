# SPDX-License-Identifier: MIT
"""Model builders. ``build_model(model_args)`` rebuilds any registered model."""
from __future__ import annotations

from torch import nn

from ensemble_nets.models.cnn import CNN, EnsembleCNN
from ensemble_nets.models.convert import mean_network, sample_network, to_ensemble
from ensemble_nets.models.deep import DeepMLP, PhaseMLP, StackedPhaseMLP
from ensemble_nets.models.mdl import ModeMLP
from ensemble_nets.models.mlp import ACTIVATIONS, MLP, EnsembleMLP, LayerStack

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "DeepMLP",
    "EnsembleCNN",
    "EnsembleMLP",
    "LayerStack",
    "MLP",
    "MODEL_KINDS",
    "ModeMLP",
    "PhaseMLP",
    "StackedPhaseMLP",
    "build_model",
    "mean_network",
    "sample_network",
    "to_ensemble",
]

#: Registered model families by ``kind``.
MODEL_KINDS: dict[str, type[nn.Module]] = {
    EnsembleMLP.kind: EnsembleMLP, MLP.kind: MLP, ModeMLP.kind: ModeMLP, DeepMLP.kind: DeepMLP,
    PhaseMLP.kind: PhaseMLP, EnsembleCNN.kind: EnsembleCNN, CNN.kind: CNN,
}


def build_model(model_args: dict) -> nn.Module:
    """Build a model from its ``model_args`` (as stored in checkpoints)."""
    args = dict(model_args)
    kind = args.pop("kind", None)
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind](**args)
