# SPDX-License-Identifier: MIT
"""The ``ensemble-strong`` preset: what it changes from the default, and that it trains."""
import math
from dataclasses import asdict

import torch

import ensemble_nets as en
from ensemble_nets.training.presets import PRESETS

NAME = "ensemble-strong"


def _differences(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for key in a:
        if isinstance(a[key], dict):
            out |= _differences(a[key], b[key], f"{prefix}{key}.")
        elif a[key] != b[key]:
            out.add(prefix + key)
    return out


def test_preset_resolves_to_the_default_ensemble_with_only_its_stated_changes():
    strong, default = en.ExperimentConfig.from_preset(NAME), en.ExperimentConfig.from_preset("default")
    stated = {f"train.{k}" for k in PRESETS[NAME].get("train", {})} | {k for k in PRESETS[NAME] if k != "train"}
    assert _differences(asdict(strong), asdict(default)) == stated
    assert strong.model == "ensemble" and strong.sizes == (784, 100, 100, 10)
    assert strong.train.batch_size < default.train.batch_size  # the change that closes the gap
    assert strong.train.objective == "reference"


def test_preset_overrides_still_apply():
    config = en.ExperimentConfig.from_preset(NAME, train={"epochs": 3, "seed": 2})
    assert config.train.epochs == 3 and config.train.seed == 2
    assert config.train.batch_size == PRESETS[NAME]["train"]["batch_size"]


def test_preset_trains_a_few_steps_and_learns(mnist_root):
    config = en.ExperimentConfig.from_preset(NAME, train={"epochs": 2, "n_eval_networks": 2, "device": "cpu"})
    data = en.load_dataset("mnist5k", mnist_root, download=False).subset(n_train=1000, n_test=1000)
    torch.manual_seed(0)
    model = config.build_model()
    result = en.train(model, data, config.train, progress=False)
    first, last = result.history
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
    assert last["train_loss"] < first["train_loss"]
    assert last["test_acc_sampled_mean"] > 0.6  # chance is 0.1; 20 steps of the preset get well above it
    for _, layer in en.spike_slab_layers(result.model):
        layer.check_constraints()  # pi in [0, 1], xi >= 0 after the projection
