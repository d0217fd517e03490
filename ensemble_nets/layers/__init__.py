# SPDX-License-Identifier: MIT
"""Layers: one family per module (spike-and-slab linear and conv on a shared base, plain scaled, modes;
the mean-field noise sources)."""
from ensemble_nets.layers.base import SpikeSlabLayer
from ensemble_nets.layers.conv import ScaledConv2d, SpikeSlabConv1d, SpikeSlabConv2d, SpikeSlabConvNd
from ensemble_nets.layers.linear import ScaledLinear
from ensemble_nets.layers.modes import ModeLinear, mode_init_std
from ensemble_nets.layers.noise import NOISE_SOURCES
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
    "NOISE_SOURCES",
    "REFERENCE_M_STD",
    "ScaledConv2d",
    "ScaledLinear",
    "SpikeSlabConv1d",
    "SpikeSlabConv2d",
    "SpikeSlabConvNd",
    "SpikeSlabLayer",
    "SpikeSlabLinear",
    "is_spike_slab",
    "mean_field_preactivation",
    "mode_init_std",
    "spike_slab_layers",
]
