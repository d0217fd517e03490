# SPDX-License-Identifier: MIT
"""Analysis of trained networks: returns tensors and tables, never plots."""
from ensemble_nets.analysis.categories import CATEGORIES, Categories, categorize, connection_categories
from ensemble_nets.analysis.ensemble_stats import EnsembleStats, calibration_table, ensemble_statistics, hdi
from ensemble_nets.analysis.entropy import connection_entropy, entropy_table
from ensemble_nets.analysis.inference_data import load_inference_data, save_inference_data, to_inference_data
from ensemble_nets.analysis.perturb import PERTURBATIONS, perturbation_curves, summarize_perturbations
from ensemble_nets.analysis.spectral import coord_check, coord_slopes, spectral_diagnostics

__all__ = [
    "CATEGORIES",
    "Categories",
    "EnsembleStats",
    "PERTURBATIONS",
    "calibration_table",
    "categorize",
    "connection_categories",
    "connection_entropy",
    "coord_check",
    "coord_slopes",
    "ensemble_statistics",
    "entropy_table",
    "hdi",
    "load_inference_data",
    "perturbation_curves",
    "save_inference_data",
    "spectral_diagnostics",
    "summarize_perturbations",
    "to_inference_data",
]
