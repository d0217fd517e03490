# SPDX-License-Identifier: MIT
import pytest
import torch

import ensemble_nets as en


@pytest.fixture(scope="package")
def trained_ensemble(tiny_mnist):
    """A 784-32-10 ensemble trained for 3 quick epochs: crisp categories in both layers."""
    torch.manual_seed(0)
    model = en.EnsembleMLP((784, 32, 10), m_std=1.0)
    config = en.TrainConfig(epochs=3, batch_size=100, lr=0.05, lr_halve_every=2, n_eval_networks=2, device="cpu")
    en.train(model, tiny_mnist, config, progress=False)
    return model.eval()


@pytest.fixture(scope="package")
def test_split(tiny_mnist):
    """500 digits of the test set under ``mnist_root`` as (x, y)."""
    return tiny_mnist.x_test[:500], tiny_mnist.y_test[:500]
