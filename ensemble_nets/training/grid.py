# SPDX-License-Identifier: MIT
"""Grids of independent runs: one run folder per cell, resumable, dispatched through Ray.

A grid is a list of cells, each a JSON-serializable dict with a unique
``"name"``; a function ``fn(cell, cell_dir) -> dict`` does the work of one
cell and returns its numbers. :func:`run_grid` gives every cell its own run
folder ``out_dir/<name>`` and, when ``fn`` returns, writes
``out_dir/<name>/summary.json`` atomically::

    {"name": ..., "status": "done", "cell": {...}, "result": {...}, "wall_s": ...}

A cell whose ``summary.json`` exists is finished: a second call (after an
interruption, or with more cells appended) skips it and reads its result
back, so a half-finished grid resumes without redoing anything. A finished
cell asked for again with other settings under the same name is still
reused, with a warning naming the changed keys (delete its folder, or use a
new ``out_dir``, to rerun it).

Dispatch: ``backend="ray"`` runs cells in Ray worker processes, local ones by
default (``ray.init(num_cpus=n_workers)``), those of a running Ray cluster
when ``address`` is given (``"auto"`` or ``"ray://host:10001"``): the same
call outgrows one machine without code changes. ``backend="serial"`` runs
them one after the other in this process (tests, debugging, pdb).

Failures: a cell whose ``fn`` raises leaves its traceback in
``out_dir/<name>/error.txt`` and no ``summary.json`` (so the next call retries
it); the other cells keep running and keep their results. At the end
:func:`run_grid` raises :class:`GridError`, whose message names every failed
cell with the last line of its traceback and whose ``frame`` attribute holds
the full table (a ``status`` column: ``"done"``, ``"skipped"``, ``"failed"``).
Pass ``raise_on_error=False`` to get that table back instead.
"""
from __future__ import annotations

import json
import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ensemble_nets._optional import require
from ensemble_nets.training.runs import SUMMARY, read_json, write_atomic, write_json

__all__ = ["ERROR", "GridError", "run_grid"]

ERROR = "error.txt"
BACKENDS = ("ray", "serial")


class GridError(RuntimeError):
    """Some cells of a grid failed; ``frame`` is the table of every cell (``status`` column)."""

    def __init__(self, message: str, frame: pd.DataFrame):
        super().__init__(message)
        self.frame = frame


def run_grid(
    cells: list[dict],
    fn: Callable[[dict, Path], dict],
    out_dir: str | os.PathLike,
    *,
    address: str | None = None,
    n_workers: int | None = None,
    backend: str = "ray",
    progress: bool = True,
    raise_on_error: bool = True,
) -> pd.DataFrame:
    """Run ``fn`` on every cell not finished yet; one row per cell.

    :param cells: (list of dict) JSON-serializable dicts, each with a unique ``"name"`` (a folder
        name: no ``/``).
    :param fn: (callable) ``fn(cell, cell_dir) -> dict`` of JSON-serializable numbers; ``cell_dir`` (a
        ``pathlib.Path``, created beforehand) is the cell's run folder for anything else
        it writes (checkpoints, metrics). With Ray it must be picklable (a module-level
        function, or a closure cloudpickle can ship).
    :param out_dir: (path) The grid folder; cell ``c`` lives in ``out_dir / c["name"]``.
    :param address: (str, optional) A Ray cluster to join (``"auto"``, ``"ray://host:10001"``); default
        starts local workers.
    :param n_workers: (int, optional) Local Ray worker processes (``num_cpus``); default: every core.
        Ignored with ``address``.
    :param backend: (``"ray"`` or ``"serial"``)
    :param progress: (bool) A tqdm bar over the cells still to run.
    :param raise_on_error: (bool) Raise :class:`GridError` at the end when a cell failed (default); else
        return the table with ``status == "failed"`` and the traceback in ``error``.
    :returns: (pandas.DataFrame) One row per cell in the order given: the cell's keys, the result's keys
        (a result key equal to a cell key overrides it in the table; summary.json keeps both),
        ``status`` (``"done"`` run now, ``"skipped"`` read back, ``"failed"``), ``wall_s``
        and ``error``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}; use 'serial' to run in-process")
    if n_workers is not None and n_workers < 1:
        raise ValueError(f"n_workers={n_workers} must be a positive integer (or None for every core)")
    _check_cells(cells)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    outcomes: dict[str, dict] = {}
    todo = []
    changed: dict[str, dict] = {}
    for cell in cells:
        summary = out_dir / cell["name"] / SUMMARY
        if summary.is_file():
            outcomes[cell["name"]] = {**read_json(summary), "status": "skipped"}
            diff = _changed_settings(outcomes[cell["name"]].get("cell"), cell)
            if diff:
                changed[cell["name"]] = diff
        else:
            todo.append(cell)
    if changed:
        name, diff = next(iter(changed.items()))
        shown = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in list(diff.items())[:4])
        warnings.warn(f"{len(changed)} finished cell(s) of {out_dir} were run with other settings than asked "
                      f"(first, {name}: {shown}); their stored results are reused. To rerun them, delete "
                      f"their folders or pass a new out_dir.", UserWarning, stacklevel=2)

    if todo:
        bar = _progress_bar(len(todo), progress, desc=f"grid {out_dir.name}")
        try:
            if backend == "serial":
                for cell in todo:
                    outcome = _run_cell(fn, cell, str(out_dir))
                    outcomes[cell["name"]] = outcome
                    _tick(bar, outcome)
            else:
                for outcome in _run_ray(fn, todo, str(out_dir), address, n_workers):
                    outcomes[outcome["name"]] = outcome
                    _tick(bar, outcome)
        finally:
            if bar is not None:
                bar.close()

    frame = pd.DataFrame([_row(cell, outcomes[cell["name"]]) for cell in cells])
    failed = frame[frame["status"] == "failed"]
    if len(failed) and raise_on_error:
        lines = [
            f"  {name}: {err.strip().splitlines()[-1]} (traceback in {out_dir / name / ERROR})"
            for name, err in zip(failed["name"], failed["error"])
        ]
        raise GridError(
            f"{len(failed)} of {len(cells)} grid cells failed; the other cells' results are saved "
            f"and a second run_grid call retries only the failed ones:\n" + "\n".join(lines),
            frame,
        )
    return frame


def _changed_settings(stored, cell: dict) -> dict[str, tuple]:
    """``{key: (stored, asked)}`` for the keys where a finished cell's stored settings differ from ``cell``."""
    if not isinstance(stored, dict):
        return {}  # a summary written by other code: nothing to compare
    asked = json.loads(json.dumps(cell, default=str))  # as it would be stored (tuples -> lists)
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN equals NaN here
    return {key: (stored.get(key), asked.get(key)) for key in sorted(set(stored) | set(asked))
            if not same(stored.get(key), asked.get(key))}


def _check_cells(cells: list[dict]) -> None:
    seen = set()
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict) or not isinstance(cell.get("name"), str) or not cell["name"]:
            raise ValueError(f"cells[{i}]={cell!r} must be a dict with a non-empty string 'name'")
        name = cell["name"]
        if "/" in name or os.sep in name or name in (".", ".."):
            raise ValueError(f"cells[{i}] name {name!r} must be a plain folder name (no path separators)")
        if name in seen:
            raise ValueError(f"cells[{i}] name {name!r} is repeated; every cell needs a unique name")
        seen.add(name)


def _run_cell(fn: Callable, cell: dict, out_dir: str) -> dict:
    """Run one cell; never raises (the traceback is returned and written to error.txt)."""
    cell_dir = Path(out_dir) / cell["name"]
    cell_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        result = fn(cell, cell_dir)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise TypeError(f"fn returned {type(result).__name__}; it must return a dict of numbers")
        summary = {"name": cell["name"], "status": "done", "cell": cell, "result": result,
                   "wall_s": time.perf_counter() - start}
        write_json(cell_dir / SUMMARY, summary)
        (cell_dir / ERROR).unlink(missing_ok=True)
        return summary
    except Exception:
        err = traceback.format_exc()
        write_atomic(cell_dir / ERROR, err.encode())
        return {"name": cell["name"], "status": "failed", "cell": cell, "result": {},
                "wall_s": time.perf_counter() - start, "error": err}


def _run_ray(fn, todo, out_dir, address, n_workers):
    """Yield outcomes as Ray workers finish them."""
    ray = require("ray", "grid", hint="or pass backend='serial'")
    started = False
    if not ray.is_initialized():
        if address is not None:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        else:
            ray.init(num_cpus=n_workers, include_dashboard=False, log_to_driver=True)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(_run_cell)
        fn_ref = ray.put(fn)
        pending = [remote.remote(fn_ref, cell, out_dir) for cell in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def _progress_bar(total: int, progress: bool, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="cell")


def _tick(bar, outcome: dict) -> None:
    if bar is None:
        return
    if outcome["status"] == "failed":
        bar.write(f"cell {outcome['name']} failed: {outcome['error'].strip().splitlines()[-1]}")
    bar.update(1)


def _row(cell: dict, outcome: dict) -> dict[str, Any]:
    return {**cell, **outcome.get("result", {}), "status": outcome["status"],
            "wall_s": outcome.get("wall_s"), "error": outcome.get("error")}
