# SPDX-License-Identifier: MIT
"""Analysis of trained networks: returns tensors and tables, never plots."""
from ensemble_nets.analysis import theory
from ensemble_nets.analysis.aggregate import (
    GAP_PAIRS,
    RunsSummary,
    check_same_architecture,
    perturbation_gaps,
    summarize_runs,
)
from ensemble_nets.analysis.categories import (
    CATEGORIES,
    LABELS,
    Categories,
    categorize,
    connection_categories,
    filter_table,
    input_activity,
)
from ensemble_nets.analysis.compare import CategoryModeComparison, compare_categories_modes, rank_auc
from ensemble_nets.analysis.ensemble_stats import (
    EnsembleStats,
    calibration_table,
    ensemble_statistics,
    hdi,
    predictive_scores,
)
from ensemble_nets.analysis.entropy import connection_entropy, entropy_table
from ensemble_nets.analysis.frames import parameter_frame, spring_block_frames
from ensemble_nets.analysis.inference_data import load_inference_data, save_inference_data, to_inference_data
from ensemble_nets.analysis.modes import (
    PowerLawFit,
    accuracy_vs_leading_modes,
    fit_piecewise_power_law,
    mode_removal_curve,
    mode_spectrum,
    model_spectra,
)
from ensemble_nets.analysis.perturb import PERTURBATIONS, perturbation_curves, summarize_perturbations
from ensemble_nets.analysis.spectral import coord_check, coord_slopes, spectral_diagnostics, transfer_optima
from ensemble_nets.analysis.separation import class_covariances, load_curve_shape, reference_curvature, separation
from ensemble_nets.analysis.stats import spearman
from ensemble_nets.analysis.tolerance import Tolerance, choose_tolerance, parameter_histograms
from ensemble_nets.analysis.width_sweep import fit_log, p_min_table

__all__ = [
    "CATEGORIES",
    "Categories",
    "CategoryModeComparison",
    "EnsembleStats",
    "GAP_PAIRS",
    "LABELS",
    "PERTURBATIONS",
    "PowerLawFit",
    "RunsSummary",
    "Tolerance",
    "accuracy_vs_leading_modes",
    "calibration_table",
    "categorize",
    "check_same_architecture",
    "choose_tolerance",
    "class_covariances",
    "compare_categories_modes",
    "connection_categories",
    "connection_entropy",
    "coord_check",
    "coord_slopes",
    "ensemble_statistics",
    "entropy_table",
    "filter_table",
    "fit_log",
    "fit_piecewise_power_law",
    "hdi",
    "input_activity",
    "load_curve_shape",
    "reference_curvature",
    "load_inference_data",
    "mode_removal_curve",
    "mode_spectrum",
    "model_spectra",
    "p_min_table",
    "parameter_frame",
    "parameter_histograms",
    "perturbation_curves",
    "perturbation_gaps",
    "predictive_scores",
    "rank_auc",
    "save_inference_data",
    "separation",
    "spearman",
    "spectral_diagnostics",
    "transfer_optima",
    "spring_block_frames",
    "summarize_perturbations",
    "summarize_runs",
    "theory",
    "to_inference_data",
]
