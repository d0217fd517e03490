# SPDX-License-Identifier: MIT
import math

import numpy as np
import pytest
import torch

import ensemble_nets as en
from ensemble_nets.distributions import spike_slab_kl
from ensemble_nets.training.objective import Elbo
from ensemble_nets.training.runs import METRICS, SUMMARY, read_json
from tests.common import load_script

FAST = dict(batch_size=100, lr=0.05, lr_halve_every=2, n_eval_networks=2, device="cpu")


def _model():
    torch.manual_seed(0)
    return en.EnsembleMLP((784, 24, 10), m_std=1.0)


def _closed_form_kl(pi, m, xi, pi0, xi0):
    """KL(q || p0) per connection, written out in float64 numpy (independent of spike_slab_kl)::

        pi ln(pi / pi0) + (1 - pi) ln((1 - pi) / (1 - pi0)) + (1 - pi) KL(N(m, xi) || N(0, xi0))
    """
    pi, m, xi = (np.asarray(t.detach(), dtype=np.float64) for t in (pi, m, xi))
    gauss = 0.5 * (np.log(xi0 / xi) + (xi + m ** 2) / xi0 - 1.0)
    return pi * np.log(pi / pi0) + (1 - pi) * np.log((1 - pi) / (1 - pi0)) + (1 - pi) * gauss


def test_kl_matches_an_independent_closed_form():
    model = _model()
    elbo = Elbo(n_train=250, prior_pi=0.3, prior_variance=2.0)
    elbo.project_(model)
    with torch.no_grad():  # move pi and xi inside (0, 1) and (0, inf), away from the margin
        for layer in model.linear_layers:
            layer.pi.uniform_(0.05, 0.95)
            layer.xi.uniform_(0.01, 3.0)
    expected = sum(_closed_form_kl(layer.pi, layer.m, layer.xi, 0.3, 2.0).sum() for layer in model.linear_layers)
    assert elbo.kl(model).item() == pytest.approx(expected, rel=1e-5)
    assert elbo.scaled_kl(model).item() == pytest.approx(expected / 250, rel=1e-5)
    tempered = Elbo(n_train=250, prior_pi=0.3, prior_variance=2.0, kl_weight=0.1)
    assert tempered.scaled_kl(model).item() == pytest.approx(0.1 * expected / 250, rel=1e-5)


def test_kl_matches_a_monte_carlo_estimate():
    """E_q[log q(w) - log p0(w)] on the measure "atom at 0 + Lebesgue", by sampling w ~ q directly."""
    pi = torch.tensor([0.1, 0.5, 0.9, 0.3], dtype=torch.float64)
    m = torch.tensor([1.5, -0.5, 2.0, 0.0], dtype=torch.float64)
    xi = torch.tensor([0.2, 1.0, 0.5, 4.0], dtype=torch.float64)
    pi0, xi0, n = 0.4, 1.5, 400_000
    g = torch.Generator().manual_seed(0)
    present = torch.rand(n, 4, generator=g, dtype=torch.float64) >= pi  # absent with probability pi
    w = torch.where(present, m + xi.sqrt() * torch.randn(n, 4, generator=g, dtype=torch.float64), 0.0)
    slab_q = torch.distributions.Normal(m, xi.sqrt()).log_prob(w) + torch.log1p(-pi)
    slab_p = torch.distributions.Normal(0.0, math.sqrt(xi0)).log_prob(w) + math.log1p(-pi0)
    ratio = torch.where(present, slab_q - slab_p, torch.log(pi) - math.log(pi0))
    estimate, error = ratio.mean(0), ratio.std(0) / math.sqrt(n)
    exact = spike_slab_kl(pi, m, xi, pi0, 0.0, xi0)
    assert ((exact - estimate).abs() < 4 * error).all(), (exact, estimate, error)
    assert (error < 0.01).all()  # the check has teeth: 4 standard errors are below 0.04 nats


def test_project_keeps_the_kl_finite():
    model = _model()  # reference init: pi = 0 exactly, where the KL's slope in pi is infinite
    elbo = Elbo(n_train=10, margin=1e-3)
    moved = elbo.project_(model)
    assert moved.item() >= sum(layer.pi.numel() for layer in model.linear_layers)
    for layer in model.linear_layers:
        assert layer.pi.min() >= 1e-3 and layer.pi.max() <= 1 - 1e-3 and layer.xi.min() >= 1e-3
    elbo.scaled_kl(model).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_elbo_training_logs_nll_and_kl_apart(tiny_mnist, tmp_path):
    config = en.TrainConfig(epochs=2, objective="elbo", **FAST)
    result = en.train(_model(), tiny_mnist, config, run_dir=tmp_path, progress=False)
    row = result.history[-1]
    assert row["train_loss"] == pytest.approx(row["train_nll"] + row["train_kl"])
    assert row["train_kl"] > 0 and math.isfinite(row["train_nll"])
    assert row["test_acc_sampled_mean"] > 0.15  # above chance; with 1,000 digits the KL dominates
    header = (tmp_path / METRICS).read_text().splitlines()[0].split(",")
    assert {"train_nll", "train_kl"} <= set(header)
    assert read_json(tmp_path / SUMMARY)["objective"] == "elbo"
    for layer in result.model.linear_layers:
        assert layer.pi.min() >= config.elbo_margin and layer.pi.max() <= 1 - config.elbo_margin
        assert layer.xi.min() >= config.elbo_margin


def test_reference_objective_has_no_kl_columns(tiny_mnist):
    result = en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, **FAST), progress=False)
    assert "train_kl" not in result.history[0] and result.summary["objective"] == "reference"


def test_elbo_resume_is_exact(tiny_mnist, tmp_path):
    config = en.TrainConfig(epochs=2, objective="elbo", **FAST)
    full = en.train(_model(), tiny_mnist, config, run_dir=tmp_path / "full", progress=False)
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, objective="elbo", **FAST), run_dir=tmp_path / "cut",
             progress=False)
    resumed = en.train(_model(), tiny_mnist, config, run_dir=tmp_path / "cut", resume=True, progress=False)
    drop = {"train_seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in full.history]
    with pytest.raises(ValueError, match="objective"):
        en.train(_model(), tiny_mnist, en.TrainConfig(epochs=3, **FAST), run_dir=tmp_path / "cut", resume=True,
                 progress=False)


@pytest.mark.parametrize("bad, match", [({"objective": "map"}, "objective"),
                                        ({"objective": "elbo", "prior_pi": 1.0}, "prior_pi"),
                                        ({"objective": "elbo", "prior_variance": 0.0}, "prior_variance"),
                                        ({"objective": "elbo", "elbo_margin": 0.0}, "margin"),
                                        ({"objective": "elbo", "kl_weight": 0.0}, "kl_weight")])
def test_bad_options_fail_clearly(bad, match):
    with pytest.raises(ValueError, match=match):
        en.TrainConfig(**bad)


def test_run_mnist_flags_select_the_objective():
    script = load_script("run_mnist")
    config = script.build_config(script.parse_args(["--objective", "elbo", "--prior-pi", "0.2"]))
    assert config.train.objective == "elbo" and config.train.prior_pi == 0.2
    assert script.build_config(script.parse_args([])).train.objective == "reference"
