# SPDX-License-Identifier: MIT
"""experiments/online_teacher_student.py on a tiny setting, and its figure family."""
import json

import pandas as pd
import pytest

from tests.common import load_script


@pytest.fixture(scope="module")
def online_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "online-d30"
    summary = load_script("online_teacher_student").main(
        ["--d", "20", "--K", "3", "--P", "2", "--alpha-max", "5", "--n-record", "12", "--seeds", "0", "1",
         "--teacher-seed", "1", "--out", str(run)])
    return run, summary


def test_run_folder_holds_config_metrics_summary(online_run):
    run, summary = online_run
    config = json.loads((run / "config.json").read_text())
    assert config["d"] == 20 and config["P"] == 2 and config["n_steps"] == 100
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"alpha", "eps_g_sim_mean", "eps_g_sim_std", "eps_g_ode", "r_sim_2", "r_ode_2"} <= set(metrics.columns)
    assert metrics["alpha"].iloc[0] == 0 and metrics["alpha"].iloc[-1] == pytest.approx(5.0)
    # both start from the same order parameters, and both learn
    assert metrics["eps_g_sim_mean"].iloc[0] == pytest.approx(metrics["eps_g_ode"].iloc[0], rel=1e-12)
    assert metrics["eps_g_ode"].iloc[-1] < metrics["eps_g_ode"].iloc[0]
    assert json.loads((run / "summary.json").read_text())["discrepancy"]["n_alphas"] == summary["discrepancy"][
        "n_alphas"] > 0


def test_online_figure(online_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    run, _ = online_run
    from ensemble_nets.protocols.online import missing_runs

    assert missing_runs(run.parent) == {}
    status = load_script("make_figures").main(["--runs", str(run.parent), "--out", str(tmp_path), "--only", "online"])
    assert status == 0
    assert (tmp_path / "online_dynamics.png").stat().st_size > 5_000
    assert (tmp_path / "online_dynamics.pdf").is_file()


def test_bad_flags_are_rejected():
    with pytest.raises(SystemExit):
        load_script("online_teacher_student").parse_args(["--eta", "-1"])
