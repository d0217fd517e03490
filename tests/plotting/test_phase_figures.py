# SPDX-License-Identifier: MIT
"""make_figures.py --only phase on a small synthetic grid folder."""
import json

import numpy as np

from tests.common import load_script


def _fake_grid(root):
    grid = root / "phase" / "linear-label_noise"
    for alpha in (0.0, 1.0):
        for level in (0.0, 0.2):
            curve = list(np.linspace(1.0, -2.0 + alpha + level, 9) - (1 - alpha) * np.linspace(0, 1, 9) ** 2)
            cell = {"name": f"a{alpha:g}-label_noise{level:g}-s0", "alpha": alpha, "label_noise": level, "seed": 0}
            result = {"log_D": curve, "test_acc": 0.9 - level, "curvature": alpha - 0.5 + level, "shape": "linear",
                      "nonuniformity": 0.3}
            (grid / cell["name"]).mkdir(parents=True)
            (grid / cell["name"] / "summary.json").write_text(json.dumps({"cell": cell, "result": result}))
    return root


def test_phase_figures_written(tmp_path, monkeypatch):
    import matplotlib

    from ensemble_nets.analysis import frames

    matplotlib.use("Agg")
    monkeypatch.setattr(frames, "SPRING_BLOCK_STEPS", 200)
    runs = _fake_grid(tmp_path / "runs")
    out = tmp_path / "figures"
    assert load_script("make_figures").main(["--runs", str(runs), "--out", str(out), "--only", "phase"]) == 0
    for name in ("phase_load_curves_linear-label_noise", "phase_curvature"):
        for suffix in (".png", ".pdf"):
            assert (out / f"{name}{suffix}").stat().st_size > 5_000


def test_grid_frame_reads_cells(tmp_path):
    from ensemble_nets.protocols.phase import grid_frame

    frame = grid_frame(_fake_grid(tmp_path) / "phase" / "linear-label_noise")
    assert len(frame) == 4 and set(frame["level"]) == {0.0, 0.2} and len(frame["log_D"][0]) == 9


def test_curvature_plot_draws_on_given_axes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ensemble_nets.analysis.frames import spring_block_frames
    from ensemble_nets.plotting.phase import plot_curvature
    from ensemble_nets.protocols.phase import grid_frame

    cells = grid_frame(_fake_grid(tmp_path) / "phase" / "linear-label_noise").assign(grid="label noise")
    cells["alpha_label"] = "alpha " + cells["alpha"].map("{:g}".format)
    curves, diagram = spring_block_frames((0.3,), (0.0, 1.0), n_steps=50)
    fig, axes = plt.subplots(1, 3)
    returned = plot_curvature(cells, curves, diagram, rho=0.5, ax=axes)
    assert list(returned) == list(axes) and all(ax.has_data() for ax in axes)
    assert "+0.50" in axes[0].get_title()
    plt.close(fig)
