# SPDX-License-Identifier: MIT
"""Run folders: what a training run leaves behind, written atomically.

A run folder holds::

    config.json      the resolved configuration (data, model, training)
    metrics.csv      one row per epoch
    checkpoint.pt    model, optimizer and RNG states, history: enough to resume exactly
    summary.json     best and final numbers, data provenance, wall time, device
    .lock            while a process trains in the folder: which one (see below)

Every file is written to a temporary name in the same folder and moved into
place with ``os.replace``, so an interrupted write never leaves a half file
and never destroys the previous version. :func:`load_run` is the one loader
that analysis and figure scripts use.

One process trains in a folder at a time: :class:`RunLock` takes an exclusive
``fcntl.flock`` on ``.lock`` for the run's life (``train(..., run_dir=...)``
does) and writes its PID, host and start time there; a second process refuses
at once with :class:`RunFolderLocked`, naming them. The operating system drops
the lock when its process exits or is killed, so an interrupted run can always
be resumed; a clean exit also deletes ``.lock``. Where ``fcntl`` is missing, ``msvcrt.locking`` (Windows) does the
same; where neither works, the run goes on unlocked, with a warning.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import functools
import io
import json
import os
import pickle
import socket
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
try:
    import msvcrt
except ImportError:
    msvcrt = None

import torch
from torch import nn

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "LOCK",
    "METRICS",
    "RunFolderLocked",
    "RunLock",
    "SUMMARY",
    "load_checkpoint",
    "load_run",
    "locks_run_dir",
    "model_from_checkpoint",
    "read_json",
    "save_checkpoint",
    "write_atomic",
    "write_json",
    "write_metrics",
]

CONFIG, METRICS, CHECKPOINT, SUMMARY = "config.json", "metrics.csv", "checkpoint.pt", "summary.json"
LOCK = ".lock"
CHECKPOINT_FORMAT = 1
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the run that wrote it may have been damaged") from err


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    """Per-epoch rows as CSV (columns from the first row)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(path, buffer.getvalue().encode())


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """``torch.save`` through a temporary file, so the previous checkpoint survives a crash."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, with clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first (experiments/run_mnist.py --out {path.parent})")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {str(err)[:200]}); "
            f"delete it to start the run over, or restore it from a backup"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an ensemble_nets checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return payload


def model_from_checkpoint(payload: dict, source: str = "checkpoint") -> nn.Module:
    """Rebuild the model of a checkpoint and check its parameters against the layers' constraints."""
    from ensemble_nets.models import build_model

    model = build_model(payload["model_args"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise ValueError(f"{source}: parameters do not fit the stored architecture ({err})") from err
    for name, module in model.named_modules():
        if hasattr(module, "check_constraints"):
            try:
                module.check_constraints()
            except ValueError as err:
                raise ValueError(f"{source} holds invalid parameters in layer {name!r}: {err}") from err
    return model


def load_run(run_dir: str | os.PathLike, map_location="cpu") -> tuple[nn.Module, dict, dict]:
    """``(model, config, summary)`` of a finished or interrupted run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist; make it with experiments/run_mnist.py --out {run_dir}")
    payload = load_checkpoint(run_dir / CHECKPOINT, map_location)
    model = model_from_checkpoint(payload, str(run_dir / CHECKPOINT))
    config = read_json(run_dir / CONFIG) if (run_dir / CONFIG).is_file() else payload.get("config", {})
    summary = read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else {}
    return model, config, summary


# -- one process per run folder ----------------------------------------------------------
class RunFolderLocked(FileExistsError):
    """Another process (or another run in this one) trains in the run folder now."""


class RunLock:
    """An exclusive lock on a run folder, held from :meth:`acquire` to :meth:`release` or the process's end.

    Use as ``with RunLock(run_dir): ...``. While held, ``run_dir/.lock`` names the holder
    (``pid=... host=... since=...``). :meth:`release` deletes it, and the folder too when the lock
    created it and nothing else was written there (a run refused for bad options leaves nothing).
    A killed process leaves its ``.lock`` behind, unlocked: the next run takes it over.
    """

    _MSVCRT_BYTE = 1 << 20  # msvcrt locks a byte range: one far past the note, which stays readable
    _ATTEMPTS = 20  # the lock file was deleted under us this many times in a row: give up

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._fd: int | None = None
        self._made_folder = False

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`RunFolderLocked` naming the holder; never waits."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        for _ in range(self._ATTEMPTS):
            made = not self.run_dir.is_dir()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # no O_TRUNC: the holder's note stays
            except FileNotFoundError:  # the folder went away between mkdir and open (a releasing holder)
                continue
            try:
                locked = self._try_lock(fd)
                # A holder deletes the file before unlocking it: a lock on a deleted file is no lock.
                current = locked and _same_file(fd, self.path)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                os.close(fd)
                raise RunFolderLocked(
                    f"run folder {self.run_dir} is in use by another training process ({self._holder()}); wait "
                    f"for it to finish or stop it, or choose another output folder. Its lock ({self.path}) is "
                    f"released when that process exits, so the run can then be resumed"
                )
            if current:
                break
            os.close(fd)
        else:
            raise RuntimeError(f"could not lock {self.path}: it was deleted {self._ATTEMPTS} times while locking")
        self._fd, self._made_folder = fd, made
        note = f"pid={os.getpid()} host={socket.gethostname()} since={time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, note.encode())
        return self

    def release(self) -> None:
        """Drop the lock and delete its file (the process's exit drops it too); a no-op when not held."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)  # while still locked: see acquire
            if self._made_folder:
                self.run_dir.rmdir()  # only when empty: a run that wrote nothing leaves nothing
        except OSError:
            pass  # a folder with files in it; or Windows, which cannot delete an open file
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            elif msvcrt is not None:  # pragma: no cover - Windows
                os.lseek(fd, self._MSVCRT_BYTE, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass  # closing the descriptor below releases the lock anyway
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _try_lock(self, fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as err:
                if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return False
                why = f"flock failed: {err}"  # e.g. a file system without locks (ENOLCK)
        elif msvcrt is not None:  # pragma: no cover - Windows
            os.lseek(fd, self._MSVCRT_BYTE, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                return False
        else:  # pragma: no cover - neither fcntl nor msvcrt
            why = "this platform has neither fcntl nor msvcrt"
        warnings.warn(f"cannot lock the run folder {self.run_dir} ({why}); training without a lock: make sure "
                      f"no other process writes to it", stacklevel=3)
        return True

    def _holder(self) -> str:
        try:
            note = self.path.read_text().strip()
        except OSError:
            note = ""
        if not note:
            return "its PID not yet written"
        fields = dict(item.partition("=")[::2] for item in note.split())
        if fields.get("pid") == str(os.getpid()) and fields.get("host") == socket.gethostname():
            return f"this very process, PID {fields['pid']}, since {fields.get('since', '?')}"
        return f"PID {fields.get('pid', '?')} on host {fields.get('host', '?')}, since {fields.get('since', '?')}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def locks_run_dir(fn: Callable) -> Callable:
    """Decorator: while ``fn`` runs, hold the :class:`RunLock` of its ``run_dir=`` keyword argument (if not None)."""

    @functools.wraps(fn)
    def locked(*args, **kwargs):
        run_dir = kwargs.get("run_dir")
        if run_dir is None:
            return fn(*args, **kwargs)
        with RunLock(run_dir):
            return fn(*args, **kwargs)

    return locked


def locks_run_dirs(fn: Callable) -> Callable:
    """Decorator: while ``fn`` runs, hold the :class:`RunLock` of every folder of its ``run_dirs=`` keyword."""

    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            for run_dir in kwargs.get("run_dirs") or ():
                stack.enter_context(RunLock(run_dir))
            return fn(*args, **kwargs)

    return locked
