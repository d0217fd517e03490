# SPDX-License-Identifier: MIT
"""benchmarks/bench_conv.py --race: the ensemble against bayesian-torch, and without the optional peer."""
import sys

import pytest
import torch

from tests.common import load_script

TINY = ["--race", "--n-train", "100", "--n-test", "100", "--max-epochs", "1", "--device", "cpu"]


def _bench():
    return load_script("bench_conv", "benchmarks")


def test_race_runs_the_three_methods_and_reaches_a_trivial_target(mnist_root, tmp_path):
    pytest.importorskip("bayesian_torch.layers")
    result = _bench().main([*TINY, "--data-root", str(mnist_root), "--target", "0.0",
                            "--json", str(tmp_path / "race.json")])
    assert set(result["methods"]) == {"spike-and-slab ensemble", "bayesian-torch reparameterization",
                                      "bayesian-torch flipout"}
    assert all(entry["reached_at_epoch"] == 0.5 for entry in result["methods"].values())  # 2 scores per epoch
    assert "load average" in (tmp_path / "race.json").read_text()


def test_bayesian_draw_is_mu_plus_softplus_rho_times_eps():
    layers = pytest.importorskip("bayesian_torch.layers")
    torch.manual_seed(0)
    model = _bench()._BayesCNN(layers.Conv2dReparameterization, layers.LinearReparameterization)
    drawn = model.sample_network(torch.Generator().manual_seed(5))
    stream = torch.Generator().manual_seed(5)
    for layer, plain in zip(model.layers, drawn.layers):
        mu = getattr(layer, "mu_kernel", None)
        mu, rho = (layer.mu_kernel, layer.rho_kernel) if mu is not None else (layer.mu_weight, layer.rho_weight)
        eps = torch.randn(mu.shape, generator=stream)
        assert torch.allclose(plain.weight, mu + torch.nn.functional.softplus(rho) * eps)
    x = torch.rand(3, 1, 28, 28)
    assert drawn(x).shape == (3, 10)


def test_without_bayesian_torch_the_peer_is_skipped_with_the_install_line(mnist_root, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bayesian_torch", None)
    monkeypatch.setitem(sys.modules, "bayesian_torch.layers", None)
    result = _bench().main([*TINY, "--data-root", str(mnist_root), "--target", "1.1"])
    assert list(result["methods"]) == ["spike-and-slab ensemble"]
    assert "pip install --no-deps bayesian-torch" in capsys.readouterr().out


def test_race_scores_every_part_epoch_with_each_methods_own_settings(mnist_root):
    bench = _bench()
    result = bench.main([*TINY, "--data-root", str(mnist_root), "--target", "1.1", "--evals-per-epoch", "2",
                         "--methods", "ensemble", "--lr", "ensemble=0.05", "--batch", "ensemble=30",
                         "--halve-every", "ensemble=2"])
    entry = result["methods"]["spike-and-slab ensemble"]
    assert entry["epochs"] == [0.5, 1.0] and len(entry["accuracy"]) == len(entry["seconds"]) == 2
    assert (entry["lr"], entry["batch_size"], entry["halve_every"]) == (0.05, 30, 2)
    assert entry["reached_at_epoch"] is None and entry["seconds_to_target"] is None  # 110% is out of reach
    with pytest.raises(SystemExit, match="METHOD=VALUE"):
        bench.main([*TINY, "--data-root", str(mnist_root), "--lr", "mlp=0.1"])
    with pytest.raises(SystemExit, match="--halve-every must be >= 0"):
        bench.main([*TINY, "--data-root", str(mnist_root), "--halve-every", "ensemble=-1"])
    with pytest.raises(SystemExit, match="not a int"):
        bench.main([*TINY, "--data-root", str(mnist_root), "--batch", "ensemble=ten"])


def test_tune_runs_each_grid_point_and_names_the_fastest(mnist_root, monkeypatch):
    bench = _bench()
    monkeypatch.setitem(bench.TUNE_GRID, "ensemble", {"lr": (0.01, 0.1), "batch_size": (50,)})
    result = bench.main([*TINY, "--tune", "--data-root", str(mnist_root), "--target", "0.0", "--methods", "ensemble"])
    assert set(result["methods"]) == {"ensemble lr=0.01 batch=50", "ensemble lr=0.1 batch=50"}
    assert all(entry["reached_at_epoch"] == 0.5 for entry in result["methods"].values())
    fastest = result["fastest"]["0"]["ensemble"]  # at the target, 0%
    assert fastest["seconds"] == result["methods"][fastest["entry"]]["seconds_to_target"] == min(
        entry["seconds_to_target"] for entry in result["methods"].values())
    assert set(result["fastest"]) == {"0", "0.95", "0.96"}  # the target and the default --tune-thresholds
    assert result["fastest"]["0.95"] == {} or set(result["fastest"]["0.95"]) == {"ensemble"}


def test_sampled_gap_scores_mean_mean_field_and_sampled_networks(mnist_root):
    result = _bench().main([*TINY, "--sampled-gap", "--draws", "2", "--data-root", str(mnist_root)])
    (row,) = result["epochs"]
    assert row["epoch"] == 1 and len(row["sampled"]) == 2
    assert all(0.0 <= row[k] <= 1.0 for k in ("mean_network", "mean_field", "sampled_mean", "pi_mean"))
    assert row["sampled_mean"] == sum(row["sampled"]) / 2


def test_tune_grid_has_the_noise_axis_and_the_same_budget_for_every_method():
    bench = _bench()
    sizes = {kind: [len(values) for values in axes.values()] for kind, axes in bench.TUNE_GRID.items()}
    assert len(set(map(tuple, sizes.values()))) == 1  # the same number of points on each axis
    for kind, axes in bench.TUNE_GRID.items():
        assert bench.NOISE_KEY[kind] in axes and bench.NOISE_KEY[kind] in bench.TUNED_SETTINGS[kind]


def test_tune_noise_axis_reaches_each_methods_optimizer_and_layers(mnist_root, monkeypatch):
    layers = pytest.importorskip("bayesian_torch.layers")
    bench = _bench()
    monkeypatch.setitem(bench.TUNE_GRID, "ensemble", {"lr": (0.1,), "batch_size": (50,), "noise_lr_scale": (1.0, 0.0)})
    monkeypatch.setitem(bench.TUNE_GRID, "reparameterization",
                        {"lr": (1e-2,), "batch_size": (50,), "rho_init": (-3.0, -5.0)})
    result = bench.main([*TINY, "--tune", "--data-root", str(mnist_root), "--target", "0.0",
                         "--methods", "ensemble", "reparameterization"])
    assert set(result["methods"]) == {
        "ensemble lr=0.1 batch=50 noise_lr_scale=1", "ensemble lr=0.1 batch=50 noise_lr_scale=0",
        "reparameterization lr=0.01 batch=50 rho_init=-3", "reparameterization lr=0.01 batch=50 rho_init=-5"}
    assert all(entry["halve_every"] == bench.TUNE_HALVE_EVERY for entry in result["methods"].values())
    # the settings reach the models: a pi/xi scale of 0 leaves pi at its init, rho starts near rho_init
    device, x = torch.device("cpu"), torch.rand(60, 1, 28, 28)
    y = torch.randint(0, 10, (60,))
    for scale, moves in ((0.0, False), (1.0, True)):
        settings = {**bench.DEFAULT_SETTINGS["ensemble"], "noise_lr_scale": scale}
        train, _, model = bench._race_entry("ensemble", settings, device, x, y, seed=0)
        pi = [layer.pi.detach().clone() for layer in model.weight_layers]
        train(x, y, 0, torch.Generator().manual_seed(0))
        assert any(not torch.equal(a, layer.pi) for a, layer in zip(pi, model.weight_layers)) == moves
    for rho in (-3.0, -5.0):
        _, _, model = bench._race_entry("reparameterization", {**bench.DEFAULT_SETTINGS["reparameterization"],
                                                               "rho_init": rho}, device, x, y, seed=0)
        assert isinstance(model.layers[0], layers.Conv2dReparameterization)
        assert abs(float(model.layers[0].rho_kernel.detach().mean()) - rho) < 0.05
    with pytest.raises(SystemExit, match="rate scale must be >= 0"):
        bench.main([*TINY, "--data-root", str(mnist_root), "--noise", "ensemble=-1"])


def test_plot_draws_the_stored_races(tmp_path):
    """--plot reads --race results (those under benchmarks/results) and draws them; bad files are named."""
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    races = sorted(results.glob("conv_race_cpu_tuned4_s*.json"))
    assert races
    table = _bench().race_table(races)
    assert set(table["seed"]) == {int(p.stem.rsplit("_s", 1)[1]) for p in races}
    assert table["accuracy"].between(0, 1).all()
    out = tmp_path / "race.png"
    assert _bench().main(["--plot", *map(str, races), "--out", str(out)])["out"] == str(out) and out.stat().st_size > 0
    with pytest.raises(SystemExit, match="not a --race result"):
        _bench().main(["--plot", str(results / "conv_tune4_cpu_s0.json"), "--out", str(out)])


def test_cost_floor_splits_each_methods_time_and_bounds_the_race(mnist_root, tmp_path):
    pytest.importorskip("bayesian_torch.layers")
    bench = _bench()
    race_json = tmp_path / "race.json"
    bench.main([*TINY, "--data-root", str(mnist_root), "--target", "0.0", "--json", str(race_json)])
    result = bench.main([*TINY[1:], "--cost-floor", "--n-profile", "40", "--data-root", str(mnist_root),
                         "--floor-of", str(race_json)])
    ens, peer = result["ms_per_1000"]["ensemble"], result["ms_per_1000"]["reparameterization"]
    for split in (ens, peer):
        assert split["convolutions"] > 0 and split["total"] == pytest.approx(
            split["convolutions"] + split["max pooling"] + split["other"])
    extra = ens["convolutions"] - peer["convolutions"]  # the mean-field pass's second set of convolutions
    assert result["floor"] == pytest.approx((peer["total"] + extra) / peer["total"])
    (bound,) = result["races"]  # both reached 0% after half an epoch: the bound is the floor itself
    assert bound["time_ratio_at_floor"] == pytest.approx(result["floor"])


def test_cost_floor_without_the_peer_profiles_the_ensemble_alone(mnist_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "bayesian_torch", None)
    monkeypatch.setitem(sys.modules, "bayesian_torch.layers", None)
    result = _bench().main([*TINY[1:], "--cost-floor", "--n-profile", "40", "--data-root", str(mnist_root)])
    assert list(result["ms_per_1000"]) == ["ensemble"] and "floor" not in result
    with pytest.raises(SystemExit, match="--n-profile must be >= 1"):
        _bench().main([*TINY[1:], "--cost-floor", "--n-profile", "0", "--data-root", str(mnist_root)])
    with pytest.raises(SystemExit, match="must include ensemble"):
        _bench().main([*TINY[1:], "--cost-floor", "--methods", "flipout", "--data-root", str(mnist_root)])


def test_cost_floor_names_a_bad_race_file_before_profiling(mnist_root, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="not a readable --race result"):
        _bench().main([*TINY[1:], "--cost-floor", "--data-root", str(mnist_root), "--floor-of", str(bad)])
    alone = tmp_path / "alone.json"
    _bench().main([*TINY, "--methods", "ensemble", "--target", "1.1", "--data-root", str(mnist_root),
                   "--json", str(alone)])
    with pytest.raises(SystemExit, match="with the ensemble and the reparameterization"):
        _bench().main([*TINY[1:], "--cost-floor", "--data-root", str(mnist_root), "--floor-of", str(alone)])
    with pytest.raises(SystemExit, match="not a readable"):
        _bench().main([*TINY[1:], "--cost-floor", "--data-root", str(mnist_root),
                       "--floor-of", str(tmp_path / "missing.json")])


def test_fast_decay_grid_sets_each_entrys_schedule(mnist_root, monkeypatch):
    bench = _bench()
    monkeypatch.setitem(bench.FAST_DECAY_GRID, "ensemble", {"lr": (0.1,), "batch_size": (50,), "halve_every": (1, 2)})
    result = bench.main([*TINY, "--tune", "--tune-grid", "fast-decay", "--data-root", str(mnist_root),
                         "--target", "0.0", "--methods", "ensemble"])
    assert {label: entry["halve_every"] for label, entry in result["methods"].items()} == {
        "ensemble lr=0.1 batch=50 halve_every=1": 1, "ensemble lr=0.1 batch=50 halve_every=2": 2}
    assert result["grid"]["ensemble"]["halve_every"] == (1, 2)
