# SPDX-License-Identifier: MIT
"""Fixtures shared by the tests: seeds, a private data cache, and a test set that exists everywhere.

The official MNIST test set (two IDX files) is looked for in ``$ENSEMBLE_NETS_MNIST_ROOT``,
else in ``../shared/data/mnist`` beside the checkout. ``ENSEMBLE_NETS_HIDE_OFFICIAL_MNIST=1``
hides it, as on a fresh clone (CI runs the suite so: ``.ci/run``). Then

- ``mnist_root`` is a folder the tests write themselves: a stand-in test set of 2,000
  embedded digits as gzipped IDX files, so every test that needs "a test set under
  ``--data-root``" runs either way;
- ``official_mnist_root`` skips, naming the reason: only tests *about* the official set use it.
"""
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests never touch the network.
os.environ.setdefault("ENSEMBLE_NETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
ROOT_ENV = "ENSEMBLE_NETS_MNIST_ROOT"
HIDE_ENV = "ENSEMBLE_NETS_HIDE_OFFICIAL_MNIST"
SHARED_MNIST = Path(os.environ.get(ROOT_ENV) or REPO.parent / "shared" / "data" / "mnist")
N_STAND_IN = 2000  # digits in the stand-in test set


def official_mnist() -> tuple[Path | None, str]:
    """``(folder, "")`` when the official test set is visible to the tests, else ``(None, why not)``."""
    if os.environ.get(HIDE_ENV, "") not in ("", "0"):
        return None, f"the official MNIST test set is hidden ({HIDE_ENV}={os.environ[HIDE_ENV]})"
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return None, f"no official MNIST test set at {SHARED_MNIST} (set {ROOT_ENV} to its folder)"
    return SHARED_MNIST, ""


def write_idx_test_set(folder: Path, x: torch.Tensor, y: torch.Tensor) -> Path:
    """Write ``x`` (n, 784) in [0, 1] and ``y`` (n,) as gzipped IDX files named like the official test set."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = (x * 255).round().to(torch.uint8).numpy()
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBBIII", 0, 0x08, 3, len(pixels), 28, 28) + pixels.tobytes())
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBBI", 0, 0x08, 1, len(y)) + y.numpy().astype(np.uint8).tobytes())
    return folder


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory) -> Path:
    """The parsed-data cache of the session (``ENSEMBLE_NETS_CACHE``): a temporary folder, never the user's home.

    Set in ``os.environ``, so the scripts that tests start as subprocesses use it too.
    """
    from ensemble_nets.data.cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("cache")
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def official_mnist_root() -> Path:
    """The official 10,000-image MNIST test set; skips (with the reason) when it is hidden or absent."""
    root, why = official_mnist()
    if root is None:
        pytest.skip(f"{why}; this test is about the official set")
    return root


@pytest.fixture(scope="session")
def mnist_root(data_cache, tmp_path_factory) -> Path:
    """A data root with a test set: the official one when visible, else a stand-in written here.

    The stand-in holds the last ``N_STAND_IN`` of the 5,000 embedded digits, in the order
    ``load_dataset("mnist5k")`` gives them, so it shares no digit with a training prefix of
    up to 3,000 (``--n-train 600``); with all 5,000 for training it overlaps them, so its
    accuracies are checks of the machinery, not test accuracies.
    """
    root, _ = official_mnist()
    if root is not None:
        return root
    from ensemble_nets.data import load_dataset

    folder = tmp_path_factory.mktemp("mnist-stand-in")
    held_out = load_dataset("mnist5k", folder, download=False)  # no test set here yet: 1,000 held out
    write_idx_test_set(folder, held_out.x_test, held_out.y_test)  # any test set, to get the 5,000 in order
    digits = load_dataset("mnist5k", folder, download=False)
    return write_idx_test_set(folder, digits.x_train[-N_STAND_IN:], digits.y_train[-N_STAND_IN:])


@pytest.fixture(scope="session")
def tiny_mnist(mnist_root):
    """1,000 embedded training digits and the first 1,000 digits of ``mnist_root``'s test set."""
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
