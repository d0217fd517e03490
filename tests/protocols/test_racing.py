# SPDX-License-Identifier: MIT
"""The race simulated by gradient descent against its reduction (issue 12 item 6a)."""
import numpy as np
import pytest
import torch

from ensemble_nets.layers.gated import gdln_loss
from ensemble_nets.protocols.racing import RaceConfig, pathway_strengths, race_batch, race_network, run_race


def _small(**kwargs):
    base = dict(n_domains=3, hidden=8, lr=0.02, n_steps=1000, record_every=50)
    return RaceConfig(**{**base, **kwargs})


def test_gates_and_aligned_start():
    cfg = _small(n_shared=2, gain=0.2)
    net, batch = race_network(cfg), race_batch(cfg)
    assert batch.inputs["x"].shape == (12, 4) and batch.targets["y"].shape == (12, 7)
    assert batch.node_gates["shared"].tolist() == [1.0] * 8 + [0.0] * 4
    assert batch.node_gates["private1"].tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 4
    np.testing.assert_allclose(pathway_strengths(net, cfg), 0.04, atol=1e-12)  # every pathway gain^2 U V^T
    # a domain-2 example sees only its private pathway
    out = net(batch.inputs, batch.node_gates)["y"]
    alone = (net.pathway_map(["private2_in", "private2_out"]) @ batch.inputs["x"][8:].T).T
    torch.testing.assert_close(out[8:], alone)


@pytest.mark.parametrize("n_shared,expected", [(1, "tie"), (3, "shared")])
def test_shared_pathway_wins_and_theory_follows(n_shared, expected):
    frame, summary = run_race(_small(n_shared=n_shared))
    assert summary["winner"] == expected
    assert summary["final_loss"] < 1e-6
    np.testing.assert_allclose(summary["shared_share_sim"], summary["shared_share_closed_form"], atol=2e-3)
    np.testing.assert_allclose(summary["shared_share_theory"], summary["shared_share_closed_form"], atol=1e-3)
    assert summary["max_error"] < 0.05
    if n_shared == 3:
        assert min(summary["shared_share_sim"]) > 0.97
    assert set(frame["pathway"]) == {"shared", "private0", "private1", "private2"}


def test_theory_error_is_the_step_size():
    coarse = run_race(_small(n_shared=3, n_steps=400, record_every=20))[1]["max_error"]
    fine = run_race(_small(n_shared=3, lr=0.01, n_steps=800, record_every=40))[1]["max_error"]
    assert fine < 0.6 * coarse


def test_private_head_start_wins():
    summary = run_race(_small(n_shared=2, gain=0.1, private_gain=1.5))[1]
    assert summary["winner"] == "private" and max(summary["shared_share_sim"]) < 0.5
    np.testing.assert_allclose(summary["shared_share_sim"], summary["shared_share_closed_form"], atol=0.02)


def test_loss_is_the_gdln_loss():
    cfg = _small()
    net, batch = race_network(cfg), race_batch(cfg)
    loss = gdln_loss(net(batch.inputs, batch.node_gates), batch.targets)
    assert loss.item() == pytest.approx(((batch.targets["y"] - net(batch.inputs, batch.node_gates)["y"]) ** 2)
                                        .sum().item() / 12)


def test_bad_config():
    with pytest.raises(ValueError, match="n_shared"):
        RaceConfig(n_domains=3, n_shared=4)
    with pytest.raises(ValueError, match="init="):
        RaceConfig(init="xavier")
