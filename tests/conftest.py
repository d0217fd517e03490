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


@pytest.fixture(scope="session")
def analyzed_tiny_run(tmp_path_factory, mnist_root):
    """runs/default-ensemble-s0 of a tiny 784-24-10 ensemble, trained 2 epochs and analysed (issue 3)."""
    from tests.common import load_script

    runs = tmp_path_factory.mktemp("runs")
    run = runs / "default-ensemble-s0"
    load_script("run_mnist").main(["--dataset", "mnist5k", "--n-train", "600", "--sizes", "784", "24", "10",
                                   "--epochs", "2", "--batch-size", "100", "--n-eval-networks", "2", "--device",
                                   "cpu", "--no-progress", "--data-root", str(mnist_root), "--out", str(run)])
    load_script("analyze_run").main([str(run), "--n-networks", "4", "--perturb-networks", "2", "--fractions", "0",
                                     "0.5", "1", "--max-weights", "50", "--no-progress"])
    return run
