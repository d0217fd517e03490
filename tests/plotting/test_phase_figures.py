# SPDX-License-Identifier: MIT
"""make_figures.py --only phase on small synthetic grid folders (the new c, v and nine readout points)."""
import json

import numpy as np

from tests.common import load_script


def _fake_grid(root, folder="phase-quick/linear-data_noise", knob="data_noise", levels=(0.0, 0.4, 0.8)):
    grid = root / folder
    for alpha in (0.0, 1.0):
        for level in levels:
            for seed in (0, 1):
                t = np.linspace(0, 1, 9)
                curve = list(2.0 - 3 * t + (1 - alpha - 2 * level) * t * (1 - t) + 0.01 * seed)
                d = -np.diff(curve[:-1])
                cell = {"name": f"a{alpha:g}-{knob}{level:g}-s{seed}", "model": "linear", "alpha": alpha,
                        knob: level, "seed": seed}
                result = {"log_D": curve, "log_D_hs": curve, "test_acc": 0.9 - 0.05 * abs(d[0] - d[-1]),
                          "c": float(d[0] - d[-1]), "v": float(d.std()), "curvature": 0.0, "shape": "linear"}
                (grid / cell["name"]).mkdir(parents=True)
                (grid / cell["name"] / "summary.json").write_text(json.dumps({"cell": cell, "result": result}))
    return root


def _cheap_spring(monkeypatch):
    from ensemble_nets.analysis import phase_claims

    original = phase_claims.spring_panel
    monkeypatch.setattr(phase_claims, "spring_panel",
                        lambda: original(noises=(0.0, 0.03), seeds=range(2), t_max=40.0))


def test_phase_figures_written(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    _cheap_spring(monkeypatch)
    runs = _fake_grid(tmp_path / "runs")
    out = tmp_path / "figures"
    assert load_script("make_figures").main(["--runs", str(runs), "--out", str(out), "--only", "phase"]) == 0
    for name in ("phase_c_maps", "phase_load_curves_linear-data_noise", "phase_curvature"):
        for suffix in (".png", ".pdf"):
            assert (out / f"{name}{suffix}").stat().st_size > 5_000


def test_paper_grids_preferred_and_claims_computed(tmp_path, monkeypatch):
    from ensemble_nets.protocols.phase import figure_tables, grid_frame

    _cheap_spring(monkeypatch)
    runs = _fake_grid(tmp_path)
    _fake_grid(tmp_path, "phase-paper/linear-dropout", "dropout", (0.0, 0.1, 0.3))
    frame = grid_frame(runs / "phase-paper/linear-dropout")
    assert len(frame) == 12 and set(frame["level"]) == {0.0, 0.1, 0.3} and len(frame["log_D"][0]) == 9
    tables = figure_tables(runs)
    assert list(tables["grids"]) == ["phase-paper/linear-dropout"]  # the quick grid is not mixed in
    assert set(tables["claims"]["claim_d"]["grid"]) == {"dropout"}
    assert set(tables["spring"]["friction"]) == {"asymmetric", "symmetric"}


def test_claims_plot_draws_on_given_axes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ensemble_nets.analysis.phase_claims import claims_tables
    from ensemble_nets.plotting.phase import plot_claims
    from ensemble_nets.protocols.phase import grid_frame

    frame = grid_frame(_fake_grid(tmp_path) / "phase-quick/linear-data_noise")
    grids = {"g": ("data noise", frame)}
    fig, axes = plt.subplots(1, 2)
    returned = plot_claims(grids, claims_tables({"data noise": frame}, n_boot=20), ax=axes)
    assert list(returned) == list(axes) and all(ax.has_data() for ax in axes)
    plt.close(fig)
