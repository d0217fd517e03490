# SPDX-License-Identifier: MIT
"""Run folders: what a training run leaves behind, written atomically.

A run folder holds::

    config.json      the resolved configuration (data, model, training)
    metrics.csv      one row per epoch
    checkpoint.pt    model, optimizer and RNG states, history: enough to resume exactly
    summary.json     best and final numbers, data provenance, wall time, device

Every file is written to a temporary name in the same folder and moved into
place with ``os.replace``, so an interrupted write never leaves a half file
and never destroys the previous version. :func:`load_run` is the one loader
that analysis and figure scripts use.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "METRICS",
    "SUMMARY",
    "load_checkpoint",
    "load_run",
    "model_from_checkpoint",
    "read_json",
    "save_checkpoint",
    "write_atomic",
    "write_json",
    "write_metrics",
]

CONFIG, METRICS, CHECKPOINT, SUMMARY = "config.json", "metrics.csv", "checkpoint.pt", "summary.json"
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
