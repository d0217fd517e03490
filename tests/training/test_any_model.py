# SPDX-License-Identifier: MIT
"""en.train and en.evaluate on any nn.Module: CNNs, converted models, image data, DataLoaders."""
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ensemble_nets as en
from ensemble_nets.models import CNN, EnsembleCNN, build_model
from tests.common import _one_thread  # noqa: F401  (autouse: one intra-op thread for this module)


class TinyResNet(nn.Module):
    """A user's own model: conv, BatchNorm, a residual addition, pooling, a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.head = nn.Linear(3 * 7 * 7, 10)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        h = torch.relu(h + self.conv2(h))
        return self.head(nn.functional.max_pool2d(h, 4).flatten(1))


@pytest.fixture(scope="module")
def images(tiny_mnist):
    return tiny_mnist.reshape(1, 28, 28).subset(n_train=200, n_test=100)


def small_cnn():
    return EnsembleCNN(channels=(2, 3), hidden=8)


def small_resnet():
    return en.to_ensemble(TinyResNet(), init="reference", m_std=1.0)


CONFIG = dict(epochs=2, batch_size=50, lr=0.01, n_eval_networks=2, device="cpu")


def strip_times(history):
    return [{k: v for k, v in row.items() if k != "train_seconds"} for row in history]


@pytest.mark.parametrize("make", [small_cnn, small_resnet], ids=["EnsembleCNN", "converted-resnet"])
def test_resume_of_a_cnn_run_is_exact_on_cpu(images, tmp_path, make):
    torch.manual_seed(0)
    full = en.train(make(), images, en.TrainConfig(**CONFIG), run_dir=tmp_path / "full", progress=False)
    torch.manual_seed(0)
    en.train(make(), images, en.TrainConfig(**{**CONFIG, "epochs": 1}), run_dir=tmp_path / "part", progress=False)
    torch.manual_seed(0)
    resumed = en.train(make(), images, en.TrainConfig(**CONFIG), run_dir=tmp_path / "part", resume=True,
                       progress=False)
    assert strip_times(resumed.history) == strip_times(full.history)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.history[-1]["test_acc_sampled_std"] >= 0 and full.summary["epochs"] == 2


def test_cnn_rebuilds_from_model_args_and_trains(images):
    model = small_cnn()
    clone = build_model(model.model_args)
    clone.load_state_dict(model.state_dict())
    x = images.x_test[:5]
    assert torch.equal(model.mean_network()(x), clone.mean_network()(x))
    plain = CNN(channels=(2, 3), hidden=8)
    result = en.train(plain, images, en.TrainConfig(**{**CONFIG, "epochs": 1}), progress=False)
    row = result.history[0]
    assert row["test_acc_sampled_std"] == 0.0 and row["test_acc_mean"] == row["test_acc_sampled_mean"]
    assert type(build_model(plain.model_args)) is CNN


def test_dataloader_training_matches_its_own_resume_and_evaluates(images, tmp_path):
    def loaders():
        train = DataLoader(TensorDataset(images.x_train, images.y_train), batch_size=50, shuffle=True)
        test = DataLoader(TensorDataset(images.x_test, images.y_test), batch_size=40)
        return train, test

    torch.manual_seed(0)
    train, test = loaders()
    full = en.train(small_cnn(), train, en.TrainConfig(**CONFIG), test_data=test, run_dir=tmp_path / "a",
                    progress=False)
    torch.manual_seed(0)
    train, test = loaders()
    en.train(small_cnn(), train, en.TrainConfig(**{**CONFIG, "epochs": 1}), test_data=test, run_dir=tmp_path / "b",
             progress=False)
    torch.manual_seed(0)
    train, test = loaders()
    resumed = en.train(small_cnn(), train, en.TrainConfig(**CONFIG), test_data=test, run_dir=tmp_path / "b",
                       resume=True, progress=False)
    assert strip_times(resumed.history) == strip_times(full.history)
    assert full.summary["n_train"] == 200 and full.summary["n_test"] == 100
    # a DataLoader test set and the same tensors give the same numbers
    by_loader = en.evaluate(full.model, test, None, n_networks=2, seed=3)
    by_tensor = en.evaluate(full.model, images.x_test, images.y_test, n_networks=2, seed=3, batch_size=40)
    deterministic = ("acc_mean", "acc_sampled_mean", "acc_sampled_std")  # the loader's iterator draws a seed
    assert [by_loader[k] for k in deterministic] == pytest.approx([by_tensor[k] for k in deterministic])
    with pytest.raises(ValueError, match="needs test_data"):
        en.train(small_cnn(), train, en.TrainConfig(**CONFIG), progress=False)
    with pytest.raises(ValueError, match="test_data is for training from a DataLoader"):
        en.train(small_cnn(), images, en.TrainConfig(**CONFIG), test_data=test, progress=False)


def test_wrong_input_shapes_fail_before_anything_is_written(images, tmp_path):
    with pytest.raises(ValueError, match=r'shape=\\?"flat"\\?.*x.flatten\(1\)'):
        en.train(en.EnsembleMLP((784, 8, 10)), images, en.TrainConfig(**CONFIG), run_dir=tmp_path / "mlp",
                 progress=False)
    flat = images.reshape(784)
    with pytest.raises(ValueError, match=r'shape=\\?"image"'):
        en.train(small_cnn(), flat, en.TrainConfig(**CONFIG), run_dir=tmp_path / "cnn", progress=False)
    three = replace(images, x_train=images.x_train.expand(-1, 3, -1, -1), x_test=images.x_test.expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="C=1 channels"):
        en.train(small_cnn(), three, en.TrainConfig(**CONFIG), run_dir=tmp_path / "rgb", progress=False)
    assert not any(tmp_path.iterdir())


def test_converted_model_evaluates_and_keeps_the_global_stream(images):
    model = small_resnet()
    torch.manual_seed(5)
    expected = torch.randn(3)
    torch.manual_seed(5)
    result = en.evaluate(model, images.x_test, images.y_test, n_networks=3)
    assert torch.equal(torch.randn(3), expected)
    assert set(result) == {"acc_mean_field", "loss_mean_field", "acc_mean", "acc_sampled_mean", "acc_sampled_std"}
    assert result["acc_sampled_std"] > 0 and model.training


def test_eval_batch_size_is_validated_and_used(images):
    with pytest.raises(ValueError, match="eval_batch_size"):
        en.TrainConfig(eval_batch_size=0)
    result = en.train(CNN(channels=(2, 3), hidden=8), images,
                      en.TrainConfig(**{**CONFIG, "epochs": 1, "eval_batch_size": 7}), progress=False)
    expected = en.evaluate(result.model, images.x_test, images.y_test, n_networks=2)["acc_mean"]
    assert result.history[0]["test_acc_mean"] == pytest.approx(expected)
