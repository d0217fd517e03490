# SPDX-License-Identifier: MIT
import itertools

import numpy as np
import pytest
import torch

import math

from ensemble_nets.analysis import calibration_table, ensemble_statistics, hdi
from ensemble_nets.analysis.ensemble_stats import predictive_scores
from ensemble_nets.analysis._common import sampled_log_probs
from ensemble_nets.models import EnsembleMLP


def test_statistics_match_their_definitions(trained_ensemble, test_split):
    stats = ensemble_statistics(trained_ensemble, test_split, n_networks=6, seed=3)
    x, y = test_split
    log_p = sampled_log_probs(trained_ensemble, x, 6, seed=3).double()  # the same six members
    members = log_p.argmax(-1)
    assert np.allclose(stats.accuracies, (members == y).double().mean(1).numpy())
    # agreement: brute force over all member pairs
    pairs = [(members[a] == members[b]).double() for a, b in itertools.combinations(range(6), 2)]
    assert np.allclose(stats.per_example["agreement"], torch.stack(pairs).mean(0).numpy())
    frame = stats.per_example
    assert (frame["mutual_information"] >= -1e-12).all()
    assert np.allclose(frame["predictive_entropy"] - frame["expected_entropy"], frame["mutual_information"])
    s = stats.summary
    assert s["accuracy_hdi_low"] <= s["accuracy_mean"] <= s["accuracy_hdi_high"]
    assert 0 <= s["ece"] <= 1 and 0 < s["agreement_mean"] <= 1
    filled = stats.calibration[stats.calibration["count"] > 0]
    ece = (filled["count"] / len(y) * (filled["accuracy"] - filled["confidence"]).abs()).sum()
    assert s["ece"] == pytest.approx(ece) and stats.calibration["count"].sum() == len(y)
    # predictive scores against a brute-force loop over examples and members
    probs = log_p.exp()
    lppd = sum(math.log(sum(probs[k, i, y[i]].item() for k in range(6)) / 6) for i in range(len(y)))
    assert s["lppd"] == pytest.approx(lppd, rel=1e-9) and s["nll"] == pytest.approx(-lppd / len(y), rel=1e-9)
    brier = ((probs.mean(0) - torch.eye(10, dtype=torch.float64)[y]) ** 2).sum(-1).mean().item()
    assert s["brier"] == pytest.approx(brier, rel=1e-9)
    assert s["nll"] <= s["nll_members_mean"]  # Jensen: the average of the members predicts better
    # members disagree more where the ensemble is wrong
    assert s["mutual_information_wrong"] > s["mutual_information_correct"]


def test_deterministic_ensemble_has_no_disagreement(test_split):
    model = EnsembleMLP((784, 16, 10), m_std=1.0)
    with torch.no_grad():
        for layer in model.linear_layers:
            layer.xi.zero_()
            layer.pi.copy_((torch.rand_like(layer.pi) < 0.3).float())  # pi in {0, 1}: every member the same
    stats = ensemble_statistics(model, test_split, n_networks=4)
    assert np.ptp(stats.accuracies) == 0 and stats.summary["agreement_mean"] == 1.0
    assert np.allclose(stats.per_example["mutual_information"], 0.0, atol=1e-12)


def test_calibration_table_on_planted_values():
    confidence = torch.tensor([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = torch.tensor([True, True, True, False, True, False])
    table = calibration_table(confidence, correct, n_bins=10)
    top, middle = table.iloc[9], table.iloc[5]
    assert top["count"] == 4 and top["accuracy"] == 0.75 and top["confidence"] == pytest.approx(0.95)
    assert middle["count"] == 2 and middle["accuracy"] == 0.5
    assert table["count"].sum() == 6


def test_hdi_of_a_normal_sample():
    values = np.random.default_rng(0).normal(size=20_000)
    low, high = hdi(values, 0.94)
    assert low == pytest.approx(-1.88, abs=0.05) and high == pytest.approx(1.88, abs=0.05)
    with pytest.raises(ValueError, match="hdi_prob"):
        hdi(values, 1.5)


def test_needs_two_networks(trained_ensemble, test_split):
    with pytest.raises(ValueError, match="n_networks"):
        ensemble_statistics(trained_ensemble, test_split, n_networks=1)


def test_predictive_scores_of_a_hand_computed_case():
    probs = torch.tensor([[[0.5, 0.5], [0.9, 0.1]],
                          [[1.0, 0.0], [0.3, 0.7]]], dtype=torch.float64)  # (K=2, N=2, C=2); member 2 rules out a class
    scores = predictive_scores(probs.log(), torch.tensor([0, 1]))
    assert scores["lppd"] == pytest.approx(math.log(0.75) + math.log(0.4))
    assert scores["nll"] == pytest.approx(-(math.log(0.75) + math.log(0.4)) / 2)
    assert scores["brier"] == pytest.approx((0.125 + 0.72) / 2)
    assert scores["brier_members_mean"] == pytest.approx((1.06 + 0.09) / 2)
    assert scores["nll_members_mean"] == pytest.approx(-(math.log(0.5) + math.log(0.1) + math.log(0.7)) / 4)
    with pytest.raises(ValueError, match="shape"):
        predictive_scores(probs.log()[0], torch.tensor([0, 1]))
