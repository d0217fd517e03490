# SPDX-License-Identifier: MIT
"""benchmarks/bench_peer_mlp.py: argument handling, the peer's draws, the common scoring, tiny runs."""
import json
import sys

import pytest
import torch
from torch import nn

from tests.common import load_script

TINY_PEER = ["--methods", "peer", "--n-train", "200", "--n-test", "200", "--peer-epochs", "1", "--device", "cpu",
             "--no-progress", "--n-networks", "3"]


def _bench():
    return load_script("bench_peer_mlp", "benchmarks")


class _Fixed(nn.Module):
    """A "network" returning the same logits whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[:x.shape[0]]


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "-1"], "--seeds must be distinct integers >= 0"),
    (["--seeds", "1", "1"], "--seeds must be distinct integers >= 0"),
    (["--n-networks", "1"], "--n-networks must be >= 2"),
    (["--peer-lr", "0"], "--peer-lr must be a positive number"),
    (["--peer-lr", "nan"], "--peer-lr must be a positive number"),
    (["--peer-epochs", "0"], "--peer-epochs must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--methods", "ours", "--n-train", "100"], "--n-train / --n-test are for the peer only"),
    (["--methods", "both"], "invalid choice"),
    (["--protocol", "no-such-preset"], "invalid choice"),
])
def test_bad_arguments_exit_with_a_message_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _bench().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_are_the_issue_protocol():
    args = _bench().parse_args([])
    assert (args.peer_epochs, args.peer_lr, args.peer_batch_size, args.n_networks) == (60, 1e-3, 100, 10)
    assert args.methods == ["peer", "ours"] and args.protocol == "ensemble-strong"


def test_average_of_identical_members_is_their_accuracy_and_differs_when_they_disagree():
    bench = _bench()
    x = torch.randn(50, 4)
    y = torch.randint(0, 3, (50,))
    fixed = nn.Linear(4, 3)
    same = bench.score_members(lambda g: fixed, x, y, n_networks=4, seed=0)
    assert same["sampled_std"] == 0.0 and same["average"] == pytest.approx(same["sampled_mean"])
    # two members, one always right with low confidence, one always wrong with high confidence: the average
    # follows the confident one, so it is not the mean of the members' accuracies
    right, wrong = torch.nn.functional.one_hot(y, 3).float(), torch.nn.functional.one_hot((y + 1) % 3, 3) * 10.0
    members = iter([_Fixed(right), _Fixed(wrong.float())])
    mixed = bench.score_members(lambda g: next(members), x, y, n_networks=2, seed=0)
    assert mixed["sampled"] == [1.0, 0.0] and mixed["average"] == 0.0


def test_peer_draw_is_mu_plus_softplus_rho_times_eps():
    pytest.importorskip("bayesian_torch.layers")
    bench = _bench()
    torch.manual_seed(0)
    model = bench.BayesMLP(bench.peer_linear(), sizes=(6, 5, 3))
    drawn = model.sample_network(torch.Generator().manual_seed(7))
    stream = torch.Generator().manual_seed(7)
    plain = [m for m in drawn if isinstance(m, nn.Linear)]
    for layer, lin in zip(model.layers, plain):
        w = layer.mu_weight + torch.nn.functional.softplus(layer.rho_weight) * torch.randn(layer.mu_weight.shape,
                                                                                           generator=stream)
        b = layer.mu_bias + torch.nn.functional.softplus(layer.rho_bias) * torch.randn(layer.mu_bias.shape,
                                                                                       generator=stream)
        assert torch.equal(lin.weight, w) and torch.equal(lin.bias, b)
    assert drawn(torch.rand(2, 6)).shape == (2, 3)


def test_tiny_peer_run_writes_its_json(mnist_root, tmp_path):
    pytest.importorskip("bayesian_torch.layers")
    out = tmp_path / "peer.json"
    result = _bench().main([*TINY_PEER, "--data-root", str(mnist_root), "--seeds", "0", "1", "--json", str(out)])
    entry = result["methods"]["bayesian-torch LinearReparameterization"]
    assert set(entry["per_seed"]) == {0, 1}
    assert len(entry["per_seed"][0]["history"]) == 1 and len(entry["per_seed"][0]["sampled"]) == 3
    assert entry["summary"]["average"]["interval95"] is not None
    written = json.loads(out.read_text())
    assert written["n_train"] == 200 and "load average" in written["uptime_before"]


def test_tiny_run_of_ours_keeps_its_run_folder(mnist_root, tmp_path):
    result = _bench().main(["--methods", "ours", "--epochs", "1", "--batch-size", "250", "--data-root", str(mnist_root),
                            "--device", "cpu", "--no-progress", "--n-networks", "2", "--runs-root", str(tmp_path)])
    entry = result["methods"]["ensemble_nets ensemble-strong-e1-b250"]["per_seed"][0]
    config = json.loads((tmp_path / "ensemble-strong-e1-b250-s0" / "config.json").read_text())
    assert config["train"]["batch_size"] == 250 and config["train"]["epochs"] == 1
    assert set(entry["categories"]["layer1"]) == {"important", "unimportant", "variable"}
    assert 0.5 < entry["sampled_mean"] <= 1 and 0.5 < entry["average"] <= 1


def test_without_bayesian_torch_the_peer_stops_with_the_install_line(mnist_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "bayesian_torch", None)
    monkeypatch.setitem(sys.modules, "bayesian_torch.layers", None)
    with pytest.raises(ImportError, match="pip install --no-deps bayesian-torch"):
        _bench().main([*TINY_PEER, "--data-root", str(mnist_root)])
