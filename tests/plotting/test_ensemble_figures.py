# SPDX-License-Identifier: MIT
"""experiments/make_figures.py --only ensemble on a tiny analysed run folder."""
import sys

from tests.common import load_script

FIGURES = ("ensemble_parameters", "ensemble_categories", "ensemble_perturbation", "ensemble_entropy",
           "ensemble_accuracy", "ensemble_mean_variance", "ensemble_uncertainty")


def test_figure_script_writes_every_figure(analyzed_tiny_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    out = tmp_path / "figures"
    status = load_script("make_figures").main(["--runs", str(analyzed_tiny_run.parent), "--out", str(out),
                                               "--only", "ensemble"])
    assert status == 0
    for name in FIGURES:
        for suffix in (".png", ".pdf"):
            path = out / f"{name}{suffix}"
            assert path.is_file() and path.stat().st_size > 5_000, path


def test_missing_runs_name_the_commands(tmp_path, capsys):
    status = load_script("make_figures").main(["--runs", str(tmp_path), "--out", str(tmp_path / "f"),
                                               "--only", "ensemble"])
    assert status == 1
    err = capsys.readouterr().err
    assert "run_mnist.py" in err and "analyze_run.py" in err
    assert not (tmp_path / "f" / "ensemble_parameters.png").exists()


def test_importing_the_package_loads_no_plotting_library():
    import subprocess

    code = ("import sys, ensemble_nets; "
            "print('seaborn' in sys.modules, 'matplotlib' in sys.modules, 'arviz' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False False"


def test_perturbation_figure_draws_every_control(analyzed_tiny_run):
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    from ensemble_nets.analysis import PERTURBATIONS
    from ensemble_nets.plotting import style
    from ensemble_nets.plotting.ensemble import plot_categories, plot_perturbation

    curves = pd.read_csv(analyzed_tiny_run / "analysis" / "perturbation.csv")
    axes = plot_perturbation(curves)
    legend = style.figure_of(axes).legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [k for k in style.PERTURBATION_COLORS if k in PERTURBATIONS]
    assert set(PERTURBATIONS) <= set(style.PERTURBATION_COLORS)
    assert len(set(style.PERTURBATION_COLORS.values())) == len(style.PERTURBATION_COLORS)  # tell them apart
    fractions = pd.read_csv(analyzed_tiny_run / "analysis" / "categories.csv").assign(run="default")
    axes = plot_categories(fractions)
    labels = [t.get_text() for t in style.figure_of(axes).legends[0].get_texts()]
    assert labels == ["important", "unimportant", "variable", "inactive"]
    matplotlib.pyplot.close("all")
