# SPDX-License-Identifier: MIT
"""Analysis of trained networks: returns tensors and tables, never plots."""
from ensemble_nets.analysis.categories import CATEGORIES, Categories, categorize, connection_categories

__all__ = ["CATEGORIES", "Categories", "categorize", "connection_categories"]
