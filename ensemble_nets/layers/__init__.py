# SPDX-License-Identifier: MIT
"""Layers: one family per module (spike-and-slab ensembles, plain scaled linear)."""
from ensemble_nets.layers.linear import ScaledLinear
from ensemble_nets.layers.modes import ModeLinear, mode_init_std
from ensemble_nets.layers.spike_slab import (
    EVAL_MODES,
    GBP_IMPLEMENTATIONS,
    REFERENCE_M_STD,
    SpikeSlabLinear,
    is_spike_slab,
    mean_field_preactivation,
    spike_slab_layers,
)

__all__ = [
    "EVAL_MODES",
    "GBP_IMPLEMENTATIONS",
    "ModeLinear",
    "REFERENCE_M_STD",
    "ScaledLinear",
    "SpikeSlabLinear",
    "is_spike_slab",
    "mean_field_preactivation",
    "mode_init_std",
    "spike_slab_layers",
]
