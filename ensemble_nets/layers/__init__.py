# SPDX-License-Identifier: MIT
"""Layers: one family per module (spike-and-slab ensembles, plain scaled linear)."""
from ensemble_nets.layers.linear import ScaledLinear
from ensemble_nets.layers.spike_slab import (
    EVAL_MODES,
    GBP_IMPLEMENTATIONS,
    REFERENCE_M_STD,
    SpikeSlabLinear,
    mean_field_preactivation,
)

__all__ = [
    "EVAL_MODES",
    "GBP_IMPLEMENTATIONS",
    "REFERENCE_M_STD",
    "ScaledLinear",
    "SpikeSlabLinear",
    "mean_field_preactivation",
]
