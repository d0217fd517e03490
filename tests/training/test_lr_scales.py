# SPDX-License-Identifier: MIT
"""TrainConfig.lr_scales / make_optimizer(lr_scales=...): per-parameter Adam rates, kept by the schedule."""
import math

import pytest
import torch

import ensemble_nets as en
from ensemble_nets.training import make_optimizer, parameter_groups
from ensemble_nets.training.runs import CONFIG, read_json
from tests.common import assert_same_training

FAST = dict(batch_size=100, lr=0.05, lr_halve_every=2, n_eval_networks=3, device="cpu")


def _model(sizes=(784, 32, 10)):
    torch.manual_seed(0)
    return en.EnsembleMLP(sizes, m_std=1.0)


def _rate_of(optimizer, param) -> float:
    (group,) = [g for g in optimizer.param_groups if any(p is param for p in g["params"])]
    return group["lr"]


def test_groups_split_by_decay_and_scale_and_carry_their_rate():
    model = en.EnsembleMLP((5, 4, 3))
    optimizer = make_optimizer(model, lr=0.2, lr_scales={"pi": 0.1, "xi": 0.5})
    for layer in model.linear_layers:
        assert _rate_of(optimizer, layer.m) == pytest.approx(0.2)
        assert _rate_of(optimizer, layer.pi) == pytest.approx(0.02)
        assert _rate_of(optimizer, layer.xi) == pytest.approx(0.1)
    decay = {g["name"]: g["weight_decay"] for g in optimizer.param_groups}
    # m and xi are decayed by default, pi is not: three groups, each keeping the decay of its parent
    assert decay == {"decayed": 1e-4, "decayed x0.5": 1e-4, "not_decayed x0.1": 0.0}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_without_lr_scales_the_groups_are_as_before():
    model = en.EnsembleMLP((5, 3))
    groups = parameter_groups(model, weight_decay=1e-4)
    assert [g["name"] for g in groups] == ["decayed", "not_decayed"]
    assert all("lr_scale" not in g for g in groups)
    assert all(g["lr"] == 0.1 for g in make_optimizer(model, lr=0.1).param_groups)


def test_an_adam_step_moves_a_scaled_parameter_by_scale_times_lr():
    model = en.EnsembleMLP((5, 3))
    optimizer = make_optimizer(model, lr=0.1, weight_decay=0.0, lr_scales={"pi": 0.25})
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()  # Adam's first step moves every entry by lr (the gradient's sign), here -lr
    moved = {name: (before[name] - p).abs() for name, p in model.named_parameters()}
    assert torch.allclose(moved["0.pi"], torch.full_like(moved["0.pi"], 0.025), atol=1e-6)
    assert torch.allclose(moved["0.m"], torch.full_like(moved["0.m"], 0.1), atol=1e-6)


def test_the_schedule_keeps_the_ratio_and_a_zero_scale_freezes_pi(tiny_mnist):
    model = _model()
    pi_before = [layer.pi.detach().clone() for layer in model.linear_layers]
    m_before = [layer.m.detach().clone() for layer in model.linear_layers]
    result = en.train(model, tiny_mnist, en.TrainConfig(epochs=3, lr_scales={"pi": 0.0, "xi": 0.5}, **FAST),
                      progress=False)
    for layer, pi, m in zip(model.linear_layers, pi_before, m_before):
        assert torch.equal(layer.pi, pi)  # rate 0 (and no decay on pi): untouched, projection included
        assert not torch.equal(layer.m, m)
    assert [row["lr"] for row in result.history] == [0.05, 0.05, 0.025]
    assert result.history[-1]["train_acc"] > 0.6


def test_lr_scales_round_trip_through_config_json_and_resume_exactly(tiny_mnist, tmp_path):
    scales = {"pi": 0.1, "xi": 0.1}
    config = en.TrainConfig(epochs=4, lr_scales=scales, **FAST)
    full = en.train(_model(), tiny_mnist, config, run_dir=tmp_path / "full", progress=False)
    stored = read_json(tmp_path / "full" / CONFIG)["train"]
    assert stored["lr_scales"] == scales and en.TrainConfig.from_dict(stored) == config
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=2, lr_scales=scales, **FAST), run_dir=tmp_path / "cut",
             progress=False)
    resumed = en.train(_model(), tiny_mnist, config, run_dir=tmp_path / "cut", resume=True, progress=False)
    assert_same_training(resumed, full)
    with pytest.raises(ValueError, match="lr_scales"):  # a resume with other scales is another run
        en.train(_model(), tiny_mnist, en.TrainConfig(epochs=5, lr_scales={"pi": 1.0}, **FAST),
                 run_dir=tmp_path / "cut", resume=True, progress=False)


@pytest.mark.parametrize("scales, match", [
    ({"pi": -0.1}, "finite number >= 0"), ({"xi": math.inf}, "finite number >= 0"),
    ({"pi": math.nan}, "finite number >= 0"), ({"pi": "0.1"}, "finite number >= 0"),
    ({"pi": True}, "finite number >= 0"), ([("pi", 0.1)], "must be a dict"), ({1: 0.1}, "must be a dict"),
])
def test_bad_scales_are_refused_by_the_config_and_the_optimizer(scales, match):
    with pytest.raises(ValueError, match=match):
        en.TrainConfig(lr_scales=scales)
    with pytest.raises(ValueError, match=match):
        make_optimizer(en.EnsembleMLP((5, 3)), lr=0.1, lr_scales=scales)


def test_an_unknown_name_is_refused_naming_the_allowed_ones(tiny_mnist):
    with pytest.raises(ValueError, match=r"\['sigma'\] match no parameter.*\['m', 'pi', 'xi'\]"):
        make_optimizer(en.EnsembleMLP((5, 3)), lr=0.1, lr_scales={"sigma": 0.1})
    with pytest.raises(ValueError, match=r"\['pi'\] match no parameter.*\['weight'\]"):
        en.train(en.MLP((784, 32, 10)), tiny_mnist, en.TrainConfig(epochs=1, lr_scales={"pi": 0.1}, **FAST),
                 progress=False)
