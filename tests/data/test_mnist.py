# SPDX-License-Identifier: MIT
import gzip
import shutil

import pytest
import torch

from ensemble_nets.data import Dataset, load_dataset, read_idx
from ensemble_nets.data.mnist import HELD_OUT_TEST, OFFICIAL_TEST


def test_mnist5k_with_official_test_set(official_mnist_root):
    data = load_dataset("mnist5k", official_mnist_root)
    assert (data.n_train, data.n_test, data.n_features) == (5000, 10000, 784)
    assert data.test_source == OFFICIAL_TEST
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1 and data.x_test.max() <= 1
    assert torch.bincount(data.y_test).min() > 800


def test_mnist5k_without_test_set_holds_out(tmp_path):
    data = load_dataset("mnist5k", tmp_path, holdout=1000)
    assert (data.n_train, data.n_test) == (4000, 1000)
    assert data.test_source == HELD_OUT_TEST
    assert torch.equal(torch.bincount(data.y_test), torch.full((10,), 100))


def test_auto_falls_back_and_says_so(mnist_root):
    data = load_dataset("auto", mnist_root, download=False)
    assert data.name == "mnist5k" and "full MNIST not found" in data.note


def test_full_mnist_missing_gives_instructions(tmp_path):
    with pytest.raises(FileNotFoundError, match="--dataset mnist5k"):
        load_dataset("mnist", tmp_path, download=False)


def test_mnist5k_with_a_test_set_under_root(mnist_root):
    # The official set, or the stand-in the tests write when it is hidden: read the same way.
    data = load_dataset("mnist5k", mnist_root)
    n_test = len(read_idx(mnist_root / "t10k-labels-idx1-ubyte.gz"))
    assert (data.n_train, data.n_test, data.n_features) == (5000, n_test, 784)
    assert data.test_source == OFFICIAL_TEST and n_test >= 2000
    assert 0 <= data.x_test.min() and data.x_test.max() <= 1 and data.x_test.max() > 0.9
    assert torch.bincount(data.y_test, minlength=10).min() > 0.05 * n_test
    # No test digit is one of the first 3,000 training digits (tests train on such prefixes).
    train_rows = {row.numpy().tobytes() for row in data.x_train[:3000]}
    assert not any(row.numpy().tobytes() in train_rows for row in data.x_test)


def test_full_mnist_from_torchvision_layout(tmp_path, mnist_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    n = len(read_idx(mnist_root / "t10k-labels-idx1-ubyte.gz"))
    # Build a small fake "training set" from the test files, gz and raw mixed.
    for split in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            src = mnist_root / f"t10k-{kind}-ubyte.gz"
            if split == "train":
                with gzip.open(src) as f_in, open(raw / f"train-{kind}-ubyte", "wb") as f_out:
                    shutil.copyfileobj(f_in, f_out)
            else:
                shutil.copy(src, raw / src.name)
    data = load_dataset("mnist", tmp_path, download=False)
    assert data.name == "mnist" and data.n_train == n and data.n_test == n


def test_truncated_idx_file_is_reported(tmp_path, mnist_root):
    payload = gzip.open(mnist_root / "t10k-labels-idx1-ubyte.gz").read()
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(payload[:100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(bad)


def test_dataset_rejects_nan_and_bad_labels():
    x, y = torch.rand(4, 3), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        Dataset(x.clone().fill_(float("nan")), y, x, y, name="t", test_source="t")
    with pytest.raises(ValueError, match="labels must be int64"):
        Dataset(x, y + 10, x, y, name="t", test_source="t")
    with pytest.raises(ValueError, match="convert with y.long"):
        Dataset(x, y.int(), x, y, name="t", test_source="t")
    with pytest.raises(ValueError, match="expected x of shape"):
        Dataset(x, y[:2], x, y, name="t", test_source="t")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("cifar")
