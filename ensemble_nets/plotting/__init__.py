# SPDX-License-Identifier: MIT
"""Figures (seaborn). Imported on demand: ``import ensemble_nets`` does not load seaborn."""
