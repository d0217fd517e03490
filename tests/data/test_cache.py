# SPDX-License-Identifier: MIT
"""The parsed-data cache: hits give the same arrays, corrupt or stale files are rebuilt with a warning."""
import shutil

import numpy as np
import pytest
import torch

from ensemble_nets.data import load_dataset
from ensemble_nets.data.cache import CACHE_ENV, cache_dir, cached_arrays


def _build(calls):
    def build():
        calls.append(1)
        return {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.array([0, 1, 2])}
    return build


def test_builds_once_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    calls = []
    first = cached_arrays("toy", "source v1", _build(calls))
    second = cached_arrays("toy", "source v1", _build(calls))
    assert calls == [1] and (tmp_path / "toy.npz").is_file()
    assert first.keys() == second.keys() == {"x", "y"}
    assert np.array_equal(first["x"], second["x"]) and second["x"].dtype == np.uint8


def test_stale_fingerprint_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    calls = []
    cached_arrays("toy", "source v1", _build(calls))
    with pytest.warns(UserWarning, match=r"toy\.npz is stale"):
        cached_arrays("toy", "source v2", _build(calls))
    assert calls == [1, 1]
    cached_arrays("toy", "source v2", _build(calls))  # the rebuilt file is keyed by the new source
    assert calls == [1, 1]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape"])
def test_corrupt_file_is_rebuilt_with_a_warning(tmp_path, monkeypatch, damage):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    calls = []
    cached_arrays("toy", "v1", _build(calls))
    path = tmp_path / "toy.npz"
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        np.savez(path, x=np.zeros((2, 2)), y=np.zeros(5), __format__=np.array(1), __fingerprint__=np.array("v1"))

    def check(arrays):
        if arrays["x"].shape[0] != arrays["y"].shape[0]:
            raise ValueError("x and y differ in length")

    with pytest.warns(UserWarning, match=rf"cache file {path} is corrupt"):
        arrays = cached_arrays("toy", "v1", _build(calls), check=check)
    assert calls == [1, 1] and arrays["x"].shape == (3, 4)
    assert cached_arrays("toy", "v1", _build(calls), check=check)["x"].shape == (3, 4) and calls == [1, 1]


def test_unwritable_cache_costs_speed_not_data(tmp_path, monkeypatch):
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match=f"could not write the cache file.*{CACHE_ENV}"):
        arrays = cached_arrays("toy", "v1", _build([]))
    assert arrays["x"].shape == (3, 4)


def test_cache_folder_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "ensemble_nets"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here"


def test_reserved_keys_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="may not start with '__'"):
        cached_arrays("toy", "v1", lambda: {"__format__": np.zeros(1)})


def _same(a, b):
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "y_train", "x_test", "y_test"))


def test_mnist5k_from_a_corrupt_cache_is_rebuilt_and_identical(data_cache, tmp_path, monkeypatch):
    reference = load_dataset("mnist5k", tmp_path / "no-test-set", download=False)  # fills the session cache
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(data_cache / "mnist5k.npz", cache / "mnist5k.npz")
    monkeypatch.setenv(CACHE_ENV, str(cache))
    assert _same(load_dataset("mnist5k", tmp_path / "no-test-set", download=False), reference)  # a cache hit
    stored = dict(np.load(cache / "mnist5k.npz"))
    stored["y"] = stored["y"] + 10  # labels out of range: a damaged file that still unzips
    np.savez(cache / "mnist5k.npz", **stored)
    with pytest.warns(UserWarning, match=r"mnist5k\.npz is corrupt \(ValueError: labels"):
        rebuilt = load_dataset("mnist5k", tmp_path / "no-test-set", download=False)
    assert _same(rebuilt, reference)
    assert _same(load_dataset("mnist5k", tmp_path / "no-test-set", download=False), reference)  # no warning: fixed
