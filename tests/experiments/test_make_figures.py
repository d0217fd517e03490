# SPDX-License-Identifier: MIT
"""experiments/make_figures.py: bad flags, missing runs named, --run-missing runs then draws (and resumes)."""
import pytest

from tests.common import load_script


@pytest.mark.parametrize("argv, message", [
    (["--budget", "huge", "--run-missing"], "invalid choice: 'huge'"),
    (["--only", "ensembel"], "invalid choice: 'ensembel'"),
    (["--run-missing"], "--run-missing needs --budget"),
    (["--budget", "quick"], "add --run-missing"),
])
def test_bad_flags_name_the_allowed_values(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("make_figures").parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if "huge" in message:
        assert "quick" in err and "paper" in err


def test_unknown_family_lists_every_family(capsys):
    with pytest.raises(SystemExit):
        load_script("make_figures").parse_args(["--only", "nope"])
    err = capsys.readouterr().err
    assert all(name in err for name in ("ensemble", "modes", "online", "spectral", "phase", "gated"))


def test_without_run_missing_nothing_is_trained(tmp_path, capsys):
    status = load_script("make_figures").main(["--runs", str(tmp_path), "--out", str(tmp_path / "f"),
                                               "--only", "gated", "online"])
    assert status == 1
    err = capsys.readouterr().err
    assert "gated_routing.py" in err and "online_teacher_student.py" in err
    assert not list(tmp_path.glob("*/summary.json")) and not (tmp_path / ".jobs").exists()


def test_run_missing_runs_then_draws_and_skips_when_done(tmp_path, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    from ensemble_nets.protocols import gated, online

    monkeypatch.setitem(gated.BUDGETS, "quick", gated.GatedConfig(
        domains=3, trained=2, hidden=8, epochs=60, lr=0.05, seeds=1, gains=(0.2, 2.0), race_k=(1, 2),
        race_epochs=60, record_every=20))
    monkeypatch.setitem(online.BUDGETS, "quick", online.OnlineConfig(d=10, K=2, P=2, alpha_max=2, n_record=6,
                                                                      seeds=(0, 1)))
    argv = ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "f"), "--only", "gated", "online",
            "--run-missing", "--budget", "quick", "--backend", "serial"]
    assert load_script("make_figures").main(argv) == 0
    for name in ("gated_dynamics", "gated_race", "online_dynamics"):
        assert (tmp_path / "f" / f"{name}.png").is_file()
    assert (tmp_path / "runs" / ".jobs" / "gated-routing" / "summary.json").is_file()
    capsys.readouterr()
    before = (tmp_path / "runs" / "gated-routing" / "metrics.csv").stat().st_mtime_ns
    assert load_script("make_figures").main(argv) == 0  # everything there: nothing is rerun
    assert "running the missing runs" not in capsys.readouterr().err
    assert (tmp_path / "runs" / "gated-routing" / "metrics.csv").stat().st_mtime_ns == before
    (tmp_path / "runs" / "online-d30" / "summary.json").unlink()  # a damaged run is made again
    assert load_script("make_figures").main(argv) == 0
    assert (tmp_path / "runs" / "online-d30" / "summary.json").is_file()
    # the runs are recorded as quick: asking for the paper budget over them is refused, not a silent reuse
    capsys.readouterr()
    paper = [a if a != "quick" else "paper" for a in argv]
    assert load_script("make_figures").main(paper) == 1
    err = capsys.readouterr().err
    assert "made at budget 'quick'" in err and "--runs another folder" in err
    assert (tmp_path / "runs" / "gated-routing" / "metrics.csv").stat().st_mtime_ns == before
    # drawing only says which budget the figures come from
    assert load_script("make_figures").main(argv[:6]) == 0
    assert "from runs of budget quick" in capsys.readouterr().out
