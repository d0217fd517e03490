# SPDX-License-Identifier: MIT
"""The paper style, shared by every figure family: theme, palettes, sizes, saving.

Use::

    from ensemble_nets.plotting import style
    style.use()                                   # seaborn theme + rc for print
    fig, axes = style.subplots(1, 3)              # sized in paper columns
    style.save(fig, out, "ensemble_categories")   # -> [out/ensemble_categories.png, .pdf]

A family module imports matplotlib and seaborn inside its functions (or
imports this module lazily), so ``import ensemble_nets`` never loads them.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["ACCENT", "CATEGORY_COLORS", "COLUMN_WIDTH", "DPI", "PERTURBATION_COLORS", "axes_grid", "figure_of", "save",
           "subplots", "use"]

#: Width of one paper column (inches); figures are multiples of it.
COLUMN_WIDTH = 3.4
#: Resolution of the PNG files.
DPI = 200
#: One colour per connection category, everywhere (colour-blind safe: seaborn "colorblind").
CATEGORY_COLORS = {"important": "#0173b2", "unimportant": "#de8f05", "variable": "#029e73", "inactive": "#949494",
                   "all": "#555555"}
#: One colour per perturbation of the credit-assignment test (every name of
#: ``ensemble_nets.analysis.PERTURBATIONS``): the three tests take the colour of the category they touch,
#: their controls related shades.
PERTURBATION_COLORS = {"delete_important": CATEGORY_COLORS["important"],
                       "randomize_unimportant": CATEGORY_COLORS["unimportant"],
                       "delete_variable": CATEGORY_COLORS["variable"], "delete_random": "#7f7f7f",
                       "delete_variable_matched": "#56b4e9", "delete_largest_variable": "#cc78bc",
                       "randomize_variable": "#ca9161", "randomize_important": "#fbafe4"}
#: An accent for reference lines (e.g. the ensemble-average accuracy).
ACCENT = "#d55e00"


def use() -> None:
    """Apply the paper theme: white grid, colour-blind palette, print-sized fonts."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.0)
    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": DPI, "savefig.bbox": "tight", "axes.titlesize": 9,
        "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
        "legend.title_fontsize": 7, "pdf.fonttype": 42,
    })


def subplots(n_rows: int = 1, n_cols: int = 1, *, width: float = 2.0, aspect: float = 0.75, **kwargs):
    """``plt.subplots`` sized as ``width`` paper columns, each panel ``aspect`` times as high as wide."""
    import matplotlib.pyplot as plt

    fig_width = width * COLUMN_WIDTH
    panel_height = fig_width / n_cols * aspect
    return plt.subplots(n_rows, n_cols, figsize=(fig_width, panel_height * n_rows), constrained_layout=True,
                        **kwargs)


def axes_grid(ax, n_rows: int, n_cols: int, *, width: float = 2.0, aspect: float = 0.75, **kwargs):
    """A 2-D array of ``n_rows x n_cols`` axes: ``ax`` reshaped when given, else a new :func:`subplots` figure.

    The ``ax=None`` convention of the ``plot_*`` functions that draw several panels: pass
    ``n_rows * n_cols`` axes (any array shape) to draw into an existing figure.
    """
    import numpy as np

    if ax is None:
        _, axes = subplots(n_rows, n_cols, width=width, aspect=aspect, squeeze=False, **kwargs)
        return axes
    axes = np.asarray(ax, dtype=object)
    if axes.size != n_rows * n_cols:
        raise ValueError(f"this plot draws {n_rows} x {n_cols} panels; ax holds {axes.size} axes "
                         f"(pass ax=None for a new figure)")
    return axes.reshape(n_rows, n_cols)


def figure_of(ax):
    """The figure an axes (or an array of axes) belongs to."""
    import numpy as np

    return np.asarray(ax, dtype=object).flat[0].figure


def save(fig, out: str | Path, name: str) -> list[Path]:
    """Write ``out/name.png`` and ``out/name.pdf``, close the figure, return both paths.

    ``fig`` may also be the axes (or array of axes) a ``plot_*`` function returned.
    """
    import matplotlib.pyplot as plt

    if not hasattr(fig, "savefig"):
        fig = figure_of(fig)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths
