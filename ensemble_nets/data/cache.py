# SPDX-License-Identifier: MIT
"""A small on-disk cache of parsed data sets: one ``.npz`` per data set, keyed by a fingerprint.

Parsing a text source can cost seconds (the 5,000 embedded MNIST digits: about
2-3 s of ``np.genfromtxt``) where reading the parsed arrays back takes
milliseconds. :func:`cached_arrays` keeps them in::

    $ENSEMBLE_NETS_CACHE/<name>.npz            (default: $XDG_CACHE_HOME/ensemble_nets,
                                                 else ~/.cache/ensemble_nets)

    arrays           whatever ``build()`` returned (a dict of numpy arrays)
    __format__       CACHE_FORMAT, bumped when the layout of a cache file changes
    __fingerprint__  the caller's fingerprint of its source (e.g. a hash of the file's bytes)

A cache file that cannot be read, fails the caller's ``check``, or was built
from another source (stale fingerprint or format) is rebuilt with a warning
naming the file; a cache folder that cannot be written costs speed, never the
data. Files are written to a temporary name and moved into place with
``os.replace``, so concurrent processes never see half a file.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["CACHE_ENV", "CACHE_FORMAT", "cache_dir", "cached_arrays"]

CACHE_ENV = "ENSEMBLE_NETS_CACHE"
CACHE_FORMAT = 1
_META = ("__format__", "__fingerprint__")


def cache_dir() -> Path:
    """The cache folder: ``$ENSEMBLE_NETS_CACHE``, else ``$XDG_CACHE_HOME/ensemble_nets``, else ``~/.cache``'s."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ensemble_nets"


def cached_arrays(name: str, fingerprint: str, build: Callable[[], dict[str, np.ndarray]], *,
                  check: Callable[[dict[str, np.ndarray]], None] | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``build()``, read from ``<cache_dir>/<name>.npz`` when it holds them for ``fingerprint``.

    :param name: (str) File stem of the cache entry (``"mnist5k"``).
    :param fingerprint: (str) Identifies the source the arrays are parsed from; a cache entry with another
        one is stale.
    :param build: (callable) Parses the source; returns ``{key: np.ndarray}`` (keys must not start with
        ``__``).
    :param check: (callable, optional) Raises ``ValueError`` when arrays read back are not what ``build``
        makes (shapes, ranges): such an entry is treated as corrupt.
    :returns: (dict of np.ndarray) The arrays, from the cache or freshly built (and then cached).
    """
    path = cache_dir() / f"{name}.npz"
    if path.is_file():
        try:
            arrays = _read(path, fingerprint)
            if check is not None:
                check(arrays)
            return arrays
        except _Stale as why:
            warnings.warn(f"cache file {path} is stale ({why}); rebuilding it", stacklevel=2)
        except Exception as err:  # noqa: BLE001 - any unreadable cache entry is rebuilt, never fatal
            warnings.warn(f"cache file {path} is corrupt ({type(err).__name__}: {str(err)[:200]}); rebuilding it",
                          stacklevel=2)
    arrays = build()
    if any(key.startswith("__") for key in arrays):
        raise ValueError(f"cache keys may not start with '__' (reserved for {_META}), got {sorted(arrays)}")
    try:
        _write(path, {**arrays, "__format__": np.array(CACHE_FORMAT), "__fingerprint__": np.array(fingerprint)})
    except OSError as err:
        warnings.warn(f"could not write the cache file {path} ({err}); the data will be parsed again next time. "
                      f"Point {CACHE_ENV} to a writable folder to keep it", stacklevel=2)
    return arrays


class _Stale(Exception):
    """A readable cache entry built from another source or in another format."""


def _read(path: Path, fingerprint: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:  # our own handle: np.load leaks its own when the zip is truncated
        stored = np.load(f, allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with stored:
            arrays = {key: stored[key] for key in stored.files}
    missing = [key for key in _META if key not in arrays]
    if missing:
        raise ValueError(f"no {', '.join(missing)} entry")
    if int(arrays.pop("__format__")) != CACHE_FORMAT:
        raise _Stale(f"cache format is not {CACHE_FORMAT}")
    if str(arrays.pop("__fingerprint__")) != fingerprint:
        raise _Stale("built from another version of its source")
    return arrays


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # uncompressed: reading back is a copy, not a decompression
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
