# SPDX-License-Identifier: MIT
import math

import pytest
import torch

import ensemble_nets as en
from tests.common import assert_same_training
from ensemble_nets.training import lr_at, make_optimizer, parameter_groups
from ensemble_nets.training.runs import CHECKPOINT, METRICS, SUMMARY, load_checkpoint, load_run, read_json

FAST = dict(batch_size=100, lr=0.05, lr_halve_every=2, n_eval_networks=3, device="cpu")


def _model(sizes=(784, 32, 10)):
    torch.manual_seed(0)
    return en.EnsembleMLP(sizes, m_std=1.0)


def test_training_learns_and_keeps_constraints(tiny_mnist):
    model = _model()
    result = en.train(model, tiny_mnist, en.TrainConfig(epochs=3, **FAST), progress=False)
    assert result.history[-1]["train_acc"] > 0.7
    assert result.history[-1]["test_acc_sampled_mean"] > 0.6
    assert result.history[-1]["projected"] > 0  # the projection did work
    for layer in model.linear_layers:
        assert layer.pi.min() >= 0 and layer.pi.max() <= 1 and layer.xi.min() >= 0
    categories = en.analysis.categorize(model).fractions()
    assert categories["layer1"]["important"] > 0  # exact zeros exist after projection


def test_plain_mlp_trains_with_same_loop(tiny_mnist):
    torch.manual_seed(0)
    result = en.train(en.MLP((784, 32, 10), w_std=1.0), tiny_mnist, en.TrainConfig(epochs=2, **FAST), progress=False)
    row = result.history[-1]
    assert row["test_acc_mean"] == row["test_acc_sampled_mean"] and row["test_acc_sampled_std"] == 0
    assert row["test_acc_mean"] > 0.6


def test_resume_reproduces_uninterrupted_run(tiny_mnist, tmp_path):
    config = en.TrainConfig(epochs=4, **FAST)
    full = en.train(_model(), tiny_mnist, config, run_dir=tmp_path / "full", progress=False)
    half = en.TrainConfig(epochs=2, **FAST)
    en.train(_model(), tiny_mnist, half, run_dir=tmp_path / "cut", progress=False)
    resumed = en.train(_model(), tiny_mnist, config, run_dir=tmp_path / "cut", resume=True, progress=False)
    assert_same_training(resumed, full)


def test_run_folder_contents(tiny_mnist, tmp_path):
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=2, **FAST), run_dir=tmp_path, progress=False)
    summary = read_json(tmp_path / SUMMARY)
    assert summary["epochs"] == 2 and summary["n_train"] == 1000
    assert summary["test_acc_sampled"]["n_networks"] == 3
    assert len((tmp_path / METRICS).read_text().strip().splitlines()) == 3
    model, config, _ = load_run(tmp_path)
    assert config["train"]["epochs"] == 2 and isinstance(model, en.EnsembleMLP)
    assert not list(tmp_path.glob(".*.tmp"))  # no leftovers of atomic writes


def test_existing_run_is_not_overwritten(tiny_mnist, tmp_path):
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, **FAST), run_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT).read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, **FAST), run_dir=tmp_path, progress=False)
    assert (tmp_path / CHECKPOINT).read_bytes() == before


def test_resume_with_changed_options_is_refused(tiny_mnist, tmp_path):
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, **FAST), run_dir=tmp_path, progress=False)
    changed = en.TrainConfig(epochs=2, **{**FAST, "lr": 0.5})
    with pytest.raises(ValueError, match="training options changed"):
        en.train(_model(), tiny_mnist, changed, run_dir=tmp_path, resume=True, progress=False)


def test_truncated_checkpoint_gives_clear_error(tiny_mnist, tmp_path):
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, **FAST), run_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        en.train(_model(), tiny_mnist, en.TrainConfig(epochs=2, **FAST), run_dir=tmp_path, resume=True,
                 progress=False)


def test_checkpoint_with_pi_outside_unit_interval_is_rejected(tiny_mnist, tmp_path):
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, **FAST), run_dir=tmp_path, progress=False)
    payload = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    payload["model"]["0.pi"][0, 0] = 1.7
    torch.save(payload, tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match=r"pi must lie in \[0, 1\]"):
        load_run(tmp_path)


def test_missing_run_folder_and_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_run(tmp_path)


def test_divergence_is_reported_not_hidden(tiny_mnist):
    model = _model()
    with torch.no_grad():
        model.linear_layers[0].m[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="diverged"):
        en.train(model, tiny_mnist, en.TrainConfig(epochs=1, **FAST), progress=False)


def test_wrong_input_width_is_reported(tiny_mnist):
    with pytest.raises(ValueError, match="does not match the data"):
        en.train(en.EnsembleMLP((100, 10)), tiny_mnist, en.TrainConfig(epochs=1, **FAST), progress=False)


@pytest.mark.parametrize("bad", [dict(epochs=-1), dict(batch_size=0), dict(lr=0.0), dict(lr=math.nan),
                                 dict(n_eval_networks=1), dict(device="tpu")])
def test_train_config_validation(bad):
    with pytest.raises(ValueError):
        en.TrainConfig(**bad)


def test_lr_schedule_and_decay_groups():
    assert [lr_at(e, 0.1, 20) for e in (0, 19, 20, 45)] == [0.1, 0.1, 0.05, 0.025]
    assert lr_at(100, 0.1, 0) == 0.1
    model = en.EnsembleMLP((5, 3))
    groups = {g["name"]: g for g in parameter_groups(model, weight_decay=1e-4)}
    assert {id(p) for p in groups["decayed"]["params"]} == {id(model[0].m), id(model[0].xi)}
    groups = {g["name"]: g for g in parameter_groups(model, weight_decay=1e-4, decay=("pi", "m", "xi"))}
    assert len(groups["decayed"]["params"]) == 3
    assert isinstance(make_optimizer(model, lr=0.1), torch.optim.AdamW)


def test_decoupled_decay_shrinks_parameters_by_lr_times_decay():
    model = en.EnsembleMLP((5, 3))
    optimizer = make_optimizer(model, lr=0.1, weight_decay=0.5)
    before = model[0].m.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert torch.allclose(model[0].m, before * (1 - 0.1 * 0.5))


def test_resume_on_other_data_is_refused(tiny_mnist, tmp_path):
    en.train(_model(), tiny_mnist, en.TrainConfig(epochs=1, **FAST), run_dir=tmp_path, progress=False)
    other = tiny_mnist.subset(n_train=500)
    with pytest.raises(ValueError, match="same data set"):
        en.train(_model(), other, en.TrainConfig(epochs=2, **FAST), run_dir=tmp_path, resume=True, progress=False)


def test_decay_names_must_match_parameters():
    with pytest.raises(ValueError, match=r"match no parameter.*\['weight'\]"):
        parameter_groups(en.MLP((5, 3)), weight_decay=1e-4, decay=("m", "xi"))
    groups = {g["name"]: g for g in parameter_groups(en.MLP((5, 3)), weight_decay=1e-4)}
    assert len(groups["decayed"]["params"]) == 1  # the plain layer decays its weight by default
    model = en.EnsembleMLP((5, 3), decay_pi=True)
    groups = {g["name"]: g for g in parameter_groups(model, weight_decay=1e-4)}
    assert len(groups["decayed"]["params"]) == 3


def test_reference_presets_decay_what_the_protocol_says():
    for name, model, expected in [("reference", "ensemble", 6), ("reference", "mlp", 3),
                                  ("reference-2022", "ensemble", 9)]:
        config = en.ExperimentConfig.from_preset(name, model=model)
        groups = {g["name"]: g for g in parameter_groups(config.build_model(), weight_decay=1e-4,
                                                         decay=config.train.decay)}
        assert len(groups["decayed"]["params"]) == expected, name


def test_unknown_preset_training_option_is_a_value_error():
    with pytest.raises(ValueError, match="unknown training options"):
        en.ExperimentConfig.from_preset("default", train={"epoch": 3})
