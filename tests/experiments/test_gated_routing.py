# SPDX-License-Identifier: MIT
"""experiments/gated_routing.py at a toy size, then the "gated" figure family on its run folder."""
import json

import pandas as pd

from tests.common import load_script


def test_gated_routing_writes_run_and_figures(tmp_path, monkeypatch):
    script = load_script("gated_routing")
    out = tmp_path / "gated-routing"
    argv = ["--out", str(out), "--domains", "3", "--trained", "2", "--hidden", "8", "--epochs", "150", "--lr", "0.05",
            "--seeds", "1", "--gains", "0.2", "2.0", "--race-k", "1", "2", "--race-epochs", "150",
            "--record-every", "20"]
    assert script.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["part"]) == {"dynamics", "sweep", "race"}
    assert summary["theory_vs_sim"]["aligned"]["median_rel_err"] < 0.05
    table = {row["gain"]: row for row in summary["init_sweep"]}
    assert table[2.0]["zeroshot_rel"] > table[0.2]["zeroshot_rel"]
    assert summary["race"]["fits"]["aligned"]["slope_log_t_half_vs_log_K"] < -0.8

    import matplotlib.pyplot as plt

    from ensemble_nets.plotting import gated, style

    def fake_save(axes, out, name):  # plot_* return their axes
        fig = style.figure_of(axes)  # drawing PNG + PDF is matplotlib's job and slow; check what would be saved
        assert fig.axes and all(ax.has_data() for ax in fig.axes if ax.get_label() != "<colorbar>")
        plt.close(fig)
        return [tmp_path / f"{name}.png"]

    from ensemble_nets.protocols.gated import figure_tables, missing_runs

    monkeypatch.setattr(style, "save", fake_save)
    assert missing_runs(tmp_path) == {}
    written = gated.draw_figures(figure_tables(tmp_path), tmp_path / "figures")
    assert {p.name for p in written} >= {"gated_dynamics.png", "gated_init_sweep.png", "gated_rsa.png",
                                         "gated_race.png"}
