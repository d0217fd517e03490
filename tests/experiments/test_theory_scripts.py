# SPDX-License-Identifier: MIT
"""experiments/spring_langevin.py, racing.py and zero_shot.py at toy sizes: they run and print what they claim."""
import pytest

from tests.common import load_script


def test_spring_langevin_prints_concave_chain_at_zero_noise(capsys):
    script = load_script("spring_langevin")
    assert script.main(["--noises", "0", "--seeds", "2", "--t-max", "300"]) == 0
    out = capsys.readouterr().out
    assert "final state" in out and "second-half time average" in out and "d1-d8" in out
    frame = script.langevin_elongations(noises=(0.0,), frictions=((0.003, 0.004),), seeds=range(2), t_max=300.0)
    table = script.tilt_table(frame, "extension")
    assert (table["d1-d8"] < 0).all()  # no noise: springs lengthen with depth (concave)
    assert (table["frac_convex"] == 0).all()


def test_spring_langevin_refuses_one_seed():
    with pytest.raises(SystemExit):
        load_script("spring_langevin").main(["--seeds", "1"])


def test_racing_prints_shares_and_the_tie_gain(capsys):
    script = load_script("racing")
    assert script.main(["--n-shared", "1", "2", "--domains", "2", "--steps", "300", "--lr", "0.01",
                        "--head-start"]) == 0
    out = capsys.readouterr().out
    assert "share_sim" in out and "D = 2: a private pathway ties at init gain" in out
    assert script.tie_gain(13.6, 0.1, 2) == pytest.approx(0.511, abs=0.002)  # docs/gated.md: 0.51 at D = 2
    assert script.tie_gain(13.6, 0.1, 7) == pytest.approx(1.64, abs=0.01)


def test_zero_shot_runs_a_toy_sweep(capsys, mnist_root):
    script = load_script("zero_shot")
    assert script.main(["--data-root", str(mnist_root), "--gains", "0.1", "--seeds", "0", "--steps", "3",
                        "--domains", "2", "--trained", "1", "--hidden", "8", "--n-train", "200"]) == 0
    out = capsys.readouterr().out
    assert "acc_zero_shot" in out and "3 steps" in out
