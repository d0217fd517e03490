# SPDX-License-Identifier: MIT
"""Figures (seaborn). Imported on demand: ``import ensemble_nets`` does not load seaborn.

matplotlib and seaborn are the ``plot`` extra (``pip install 'ensemble_nets[plot]'``).
The figure modules import them inside their functions; this package checks for
them once, on import, so that a missing extra fails here with the command that
installs it (:func:`ensemble_nets._optional.require`).
"""
from ensemble_nets._optional import require

require("matplotlib", "plot")
require("seaborn", "plot")
