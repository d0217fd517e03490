# SPDX-License-Identifier: MIT
"""Small statistics shared by the protocols and the figures."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["spearman"]


def spearman(a, b) -> float:
    """Spearman rank correlation: the Pearson correlation of the ranks (ties get their mean rank).

    NaN when fewer than 3 pairs or when either side has a single rank (nothing to correlate).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"spearman needs two sequences of one length, got {a.shape} and {b.shape}")
    ra, rb = pd.Series(a).rank(), pd.Series(b).rank()
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return float("nan")  # no ranking to correlate
    return float(np.corrcoef(ra, rb)[0, 1])
