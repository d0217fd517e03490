# SPDX-License-Identifier: MIT
import os
from pathlib import Path

import pytest
import torch

# Tests never touch the network.
os.environ.setdefault("ENSEMBLE_NETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The official MNIST test set beside the checkout (../shared/data/mnist)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"official MNIST test set not found at {SHARED_MNIST}; tests need ../shared/data/mnist")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def tiny_mnist(mnist_root):
    """1,000 embedded training digits and 1,000 official test digits."""
    from ensemble_nets.data import load_dataset

    data = load_dataset("mnist5k", mnist_root, download=False)
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(data.n_train, generator=generator)[:1000]
    from dataclasses import replace

    return replace(data, x_train=data.x_train[pick], y_train=data.y_train[pick],
                   x_test=data.x_test[:1000], y_test=data.y_test[:1000])
