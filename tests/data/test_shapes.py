# SPDX-License-Identifier: MIT
"""Data of any shape: flat vectors for MLPs, images for convolutions."""
import pytest
import torch

from ensemble_nets.data import Dataset, load_dataset


def test_image_shape_is_the_flat_data_reshaped(mnist_root):
    flat = load_dataset("mnist5k", mnist_root, download=False)
    images = load_dataset("mnist5k", mnist_root, download=False, shape="image")
    assert images.x_train.shape == (5000, 1, 28, 28) and images.x_test.shape == (flat.n_test, 1, 28, 28)
    assert images.input_shape == (1, 28, 28) and flat.input_shape == (784,)
    assert images.n_features == flat.n_features == 784
    assert torch.equal(images.x_train.flatten(1), flat.x_train) and torch.equal(images.y_test, flat.y_test)
    assert images.fingerprint() == flat.fingerprint()
    assert images.subset(10, 20).x_test.shape == (20, 1, 28, 28)
    assert torch.equal(flat.reshape(1, 28, 28).x_test, images.x_test)


def test_bad_shapes_raise_clear_errors(mnist_root, tmp_path):
    with pytest.raises(ValueError, match="shape must be one of"):
        load_dataset("mnist5k", mnist_root, download=False, shape="square")
    x, y = torch.rand(4, 2, 3), torch.zeros(4, dtype=torch.long)
    data = Dataset(x, y, x, y, name="toy", test_source="toy")
    assert data.input_shape == (2, 3) and data.n_features == 6
    with pytest.raises(ValueError, match="cannot reshape"):
        data.reshape(5)
    with pytest.raises(ValueError, match="different shapes"):
        Dataset(x, y, torch.rand(4, 3, 2), y, name="toy", test_source="toy")
    with pytest.raises(ValueError, match=r"expected x of shape \(n, \.\.\.\)"):
        Dataset(torch.rand(4), y, x, y, name="toy", test_source="toy")
