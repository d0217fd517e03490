# SPDX-License-Identifier: MIT
"""The ensemble as a distribution over networks: K members drawn from q, and what they say together.

With p_k(y | x) the softmax output of member k (k = 1..K) and the ensemble's
predictive p(y | x) = (1/K) sum_k p_k(y | x)::

    accuracy_k          accuracy of member k alone; its distribution over k, mean, std and HDI
    predictive entropy  H[p(. | x)]                          total uncertainty
    expected entropy    (1/K) sum_k H[p_k(. | x)]            aleatoric part
    mutual information  H[p] - (1/K) sum_k H[p_k] >= 0       the part from disagreement between members
                                                             (BALD; Houlsby et al. 2011)
    agreement(x)        fraction of member pairs with the same argmax on x
    ECE                 sum_b (n_b / N) |acc_b - conf_b| over equal-width confidence bins
                        of the ensemble predictive (Guo et al. 2017)
    lppd                sum_i log (1/K) sum_k p_k(y_i | x_i)     log pointwise predictive density
                                                                 of the test set (Gelman et al. 2014)
    NLL                 -lppd / N                                per test example, in nats
    NLL of members      (1/K) sum_k (1/N) sum_i -log p_k(y_i | x_i)    one network at a time
    Brier               (1/N) sum_i sum_c (p(c | x_i) - [c = y_i])^2   in [0, 2]; also per member

The K members are independent networks drawn from q, each with its own
weights for every test example (``model.sample_network``), not one weight
draw per example; under the reference objective q is not a posterior under
a prior, so these are scores of the ensemble as trained, not of a Bayesian
posterior predictive.

The highest-density interval of the member accuracies is ``arviz.hdi``
(default 94%, ArviZ's convention). Entropies are in nats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble_nets._optional import require
from ensemble_nets.analysis._common import check_n_networks, sampled_log_probs, test_tensors

__all__ = ["EnsembleStats", "calibration_table", "ensemble_statistics", "hdi", "predictive_scores"]


def hdi(values, hdi_prob: float = 0.94) -> tuple[float, float]:
    """Highest-density interval of 1-d ``values`` (``arviz.hdi``)."""
    if not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must lie in (0, 1), got {hdi_prob}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz announces its 1.0 refactor on import
        az = require("arviz", "bayes")
    low, high = az.hdi(np.asarray(values, dtype=float), hdi_prob=hdi_prob)
    return float(low), float(high)


def calibration_table(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> pd.DataFrame:
    """Reliability table: per equal-width confidence bin, ``count``, ``confidence`` and ``accuracy``."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    conf = confidence.double().cpu()
    hits = correct.double().cpu()
    index = torch.bucketize(conf, edges[1:-1], right=True)  # bin b holds (edge_b, edge_b+1]; 0 falls in bin 0
    rows = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        rows.append({"bin_low": edges[b].item(), "bin_high": edges[b + 1].item(), "count": count,
                     "confidence": conf[mask].mean().item() if count else float("nan"),
                     "accuracy": hits[mask].mean().item() if count else float("nan")})
    return pd.DataFrame(rows)


def predictive_scores(log_p: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """lppd, NLL and Brier score of K members' log-probabilities ``log_p`` ``(K, N, C)`` on labels ``y`` ``(N,)``.

    See the module docstring for the formulas. ``-inf`` log-probabilities are allowed
    (a member sure of another class); a label that every member rules out gives lppd = -inf.
    """
    if log_p.dim() != 3 or y.shape != log_p.shape[1:2]:
        raise ValueError(f"log_p must have shape (K, N, C) and y shape (N,), got {tuple(log_p.shape)} and "
                         f"{tuple(y.shape)}")
    log_p = log_p.double()
    n_networks, n_examples, n_classes = log_p.shape
    true = log_p.gather(2, y.reshape(1, -1, 1).expand(n_networks, -1, 1))[..., 0]  # (K, N): log p_k(y_i | x_i)
    log_predictive = torch.logsumexp(true, dim=0) - math.log(n_networks)  # (N,)
    lppd = log_predictive.sum().item()
    onehot = torch.nn.functional.one_hot(y, n_classes).double()  # (N, C)
    probs = log_p.exp()
    brier_members = (probs - onehot).square().sum(-1).mean(-1)  # (K,)
    return {
        "lppd": lppd, "nll": -lppd / n_examples,
        "nll_members_mean": (-true).mean().item(),
        "brier": (probs.mean(0) - onehot).square().sum(-1).mean().item(),
        "brier_members_mean": brier_members.mean().item(),
    }


@dataclass
class EnsembleStats:
    """What :func:`ensemble_statistics` measures."""

    accuracies: np.ndarray  # (K,) test accuracy of each sampled network
    summary: dict  # accuracy mean/std/HDI, ensemble accuracy, ECE, lppd, NLL, Brier, agreement, MI
    per_example: pd.DataFrame  # one row per test example
    calibration: pd.DataFrame  # reliability table of the ensemble predictive


@torch.no_grad()
def ensemble_statistics(model: nn.Module, data, *, n_networks: int = 50, seed: int = 0, hdi_prob: float = 0.94,
                        n_bins: int = 15, batch_size: int = 10_000, progress: bool = False) -> EnsembleStats:
    """Accuracy distribution, predictive scores, uncertainty, calibration and agreement of ``n_networks`` members.

    :param model: a trained ensemble; members are ``model.sample_network`` draws seeded by ``seed``.
    :param data: a :class:`~ensemble_nets.data.Dataset` (test split) or ``(x, y)``.
    :param n_networks: members K (>= 2 for a spread and agreement).
    :param hdi_prob: probability mass of the highest-density interval.
    :param n_bins: confidence bins of the ECE.
    """
    check_n_networks(n_networks, minimum=2)
    x, y = test_tensors(data)
    log_p = sampled_log_probs(model, x, n_networks, seed, batch_size, progress).double()  # (K, N, C)
    probs = log_p.exp()
    member_pred = log_p.argmax(-1)  # (K, N)
    accuracies = (member_pred == y).double().mean(1).cpu().numpy()  # (K,)

    mean_p = probs.mean(0)  # (N, C): the ensemble predictive
    predictive_entropy = -torch.xlogy(mean_p, mean_p).sum(-1)
    expected_entropy = (-torch.xlogy(probs, probs).sum(-1)).mean(0)
    mutual_information = predictive_entropy - expected_entropy  # >= 0 by Jensen (float64: rounding ~1e-16)
    confidence, prediction = mean_p.max(-1)
    correct = prediction == y
    votes = torch.nn.functional.one_hot(member_pred, mean_p.shape[-1]).sum(0).double()  # (N, C) members per class
    agreement = (votes * (votes - 1)).sum(-1) / (n_networks * (n_networks - 1))  # agreeing pairs / all pairs

    per_example = pd.DataFrame({
        "label": y.cpu().numpy(), "prediction": prediction.cpu().numpy(), "correct": correct.cpu().numpy(),
        "confidence": confidence.double().cpu().numpy(),
        "predictive_entropy": predictive_entropy.double().cpu().numpy(),
        "expected_entropy": expected_entropy.double().cpu().numpy(),
        "mutual_information": mutual_information.double().cpu().numpy(),
        "agreement": agreement.cpu().numpy(),
    })
    calibration = calibration_table(confidence, correct, n_bins)
    filled = calibration[calibration["count"] > 0]
    ece = float((filled["count"] / len(y) * (filled["accuracy"] - filled["confidence"]).abs()).sum())
    low, high = hdi(accuracies, hdi_prob)
    mi_right = per_example.loc[per_example["correct"], "mutual_information"]
    mi_wrong = per_example.loc[~per_example["correct"], "mutual_information"]
    summary = {
        "n_networks": n_networks, "n_examples": int(len(y)), "seed": seed,
        "accuracy_mean": float(accuracies.mean()), "accuracy_std": float(accuracies.std(ddof=1)),
        "accuracy_min": float(accuracies.min()), "accuracy_max": float(accuracies.max()),
        "hdi_prob": hdi_prob, "accuracy_hdi_low": low, "accuracy_hdi_high": high,
        "ensemble_accuracy": float(correct.double().mean()),
        "ece": ece, "n_bins": n_bins,
        **predictive_scores(log_p, y),
        "agreement_mean": float(agreement.mean()),
        "predictive_entropy_mean": float(predictive_entropy.mean()),
        "mutual_information_mean": float(mutual_information.mean()),
        "mutual_information_correct": float(mi_right.mean()) if len(mi_right) else math.nan,
        "mutual_information_wrong": float(mi_wrong.mean()) if len(mi_wrong) else math.nan,
    }
    return EnsembleStats(accuracies=accuracies, summary=summary, per_example=per_example, calibration=calibration)
