# SPDX-License-Identifier: MIT
"""The runs behind the paper figures: what each figure family needs, what is missing, and running it.

Each family is a protocol module of this package that provides::

    REQUIRED_RUNS: dict[str, str]        run folder (relative to the runs folder) -> the command that makes it
    BUDGETS: {"quick": config, "paper": config}
    missing_runs(runs) -> dict[str, str] the REQUIRED_RUNS entries not finished under ``runs``
    jobs(runs, config) -> list[Job]      what to run for the missing ones, in order
    figure_tables(runs) -> dict          the tables its figures draw (``plotting.<family>.draw_figures``)

:func:`run_missing` runs a family's jobs through :func:`~ensemble_nets.training.run_grid`
(local Ray workers, a cluster with ``address``, or in-process with ``backend="serial"``):
every job is resumable, a finished one is skipped. It records the budget of each family's runs
in ``runs/figure-budgets.json``, and refuses to add runs of one budget to a family's runs of
another (the two share folder names): a figure is never drawn from a mix, or from quick runs
when the paper budget was asked for.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ensemble_nets.training.grid import run_grid
from ensemble_nets.training.runs import SUMMARY, read_json, write_json

__all__ = ["BUDGET_NAMES", "BUDGET_RECORD", "FAMILIES", "JOBS_DIR", "Job", "check_budget", "family",
           "recorded_budget", "run_missing", "single_run_family", "single_run_job", "with_data_root"]

#: Figure families, in the order the paper shows them: name -> protocol module.
FAMILIES: dict[str, str] = {
    "ensemble": "ensemble_nets.protocols.ensemble",
    "modes": "ensemble_nets.protocols.modes",
    "online": "ensemble_nets.protocols.online",
    "spectral": "ensemble_nets.protocols.spectral",
    "phase": "ensemble_nets.protocols.phase",
    "gated": "ensemble_nets.protocols.gated",
    "width_law": "ensemble_nets.protocols.width_law",
}
BUDGET_NAMES = ("quick", "paper")
#: Bookkeeping of single-run jobs (one run_grid cell each), under the runs folder.
JOBS_DIR = ".jobs"
#: ``{family: budget}`` of the runs :func:`run_missing` made, under the runs folder.
BUDGET_RECORD = "figure-budgets.json"


def recorded_budget(runs: str | Path, name: str) -> str | None:
    """The budget at which :func:`run_missing` made family ``name``'s runs under ``runs`` (None: not recorded,
    e.g. runs made by the experiment scripts themselves, or none of the family's run folders is there)."""
    record = Path(runs) / BUDGET_RECORD
    if not record.is_file():
        return None
    protocol = family(name)
    if not any((Path(runs) / run).exists() for run in protocol.REQUIRED_RUNS):
        return None  # the runs were deleted since: the record is stale
    return read_json(record).get(name)


def check_budget(name: str, runs: str | Path, budget: str) -> None:
    """Raise ``ValueError`` when family ``name``'s runs under ``runs`` were made at another budget than ``budget``."""
    made = recorded_budget(runs, name)
    if made is not None and made != budget:
        raise ValueError(f"the {name} runs under {runs} were made at budget {made!r}, and the {budget!r} runs would "
                         f"share their folder names; pass --runs another folder (e.g. {Path(runs) / budget}), or "
                         f"delete the {made!r} runs first")


@dataclass
class Job:
    """One :func:`~ensemble_nets.training.run_grid` call: ``cells`` run by ``fn`` under ``out_dir``.

    ``done`` (optional) says whether a cell's real output is complete; a cell whose grid
    summary exists but whose output is not is run again.
    """

    out_dir: Path
    fn: Callable[[dict, Path], dict]
    cells: list[dict]
    done: Callable[[dict], bool] | None = None


def family(name: str):
    """The protocol module of figure family ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown figure family {name!r}; choose from {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[name])


def single_run_job(runs: Path, name: str, fn: Callable[[dict, Path], dict], run_dir: Path, config,
                   done: Callable[[dict], bool], **extra) -> Job:
    """A job of one cell writing the run folder ``run_dir``; its grid bookkeeping lives in ``runs/.jobs``."""
    from dataclasses import asdict

    cell = {"name": name, "run_dir": str(run_dir), "config": asdict(config), **extra}
    return Job(Path(runs) / JOBS_DIR, fn, [cell], done)


def single_run_family(name: str, required_runs: dict[str, str], fn: Callable[[dict, Path], dict],
                      finished: Callable[[Path], bool]):
    """``(missing_runs, jobs)`` of a family whose figures need one run folder, ``runs/name``.

    ``finished(run_dir)`` says whether that run is complete; ``fn`` is its run_grid cell
    (:func:`single_run_job`). ``missing_runs(runs)`` gives ``required_runs`` while it is not finished;
    ``jobs(runs, config)`` is the one job that runs ``config`` into it then, else nothing.
    """

    def missing_runs(runs: str | Path) -> dict[str, str]:
        return {} if finished(Path(runs) / name) else dict(required_runs)

    def jobs(runs: str | Path, config) -> list[Job]:
        if not missing_runs(runs):
            return []
        return [single_run_job(runs, name, fn, Path(runs) / name, config, lambda cell: finished(cell["run_dir"]))]

    missing_runs.__doc__ = f"The run folder ``{name}`` of the figures, with its command, when it is not finished."
    jobs.__doc__ = f"The run of ``config`` into ``runs/{name}`` when it is missing."
    return missing_runs, jobs


def with_data_root(config, data_root: str | Path | None):
    """``config`` (or each config of a tuple) with ``data_root`` made absolute, so any worker finds it."""
    from dataclasses import fields, replace

    if data_root is None:
        return config
    if isinstance(config, tuple):
        return tuple(with_data_root(c, data_root) for c in config)
    if "data_root" in {f.name for f in fields(config)}:
        return replace(config, data_root=str(Path(data_root).resolve()))
    return config


def run_missing(name: str, runs: str | Path, budget: str, *, backend: str = "ray", address: str | None = None,
                n_workers: int | None = None, progress: bool = True,
                data_root: str | Path | None = None) -> list[str]:
    """Run what family ``name`` misses under ``runs`` at ``budget``; the names of the cells run or resumed.

    ``data_root`` (the MNIST test set folder) replaces the budgets' relative default, made absolute.
    """
    if budget not in BUDGET_NAMES:
        raise ValueError(f"unknown budget {budget!r}; choose from {BUDGET_NAMES}")
    check_budget(name, runs, budget)
    protocol = family(name)
    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    record = runs / BUDGET_RECORD
    budgets = read_json(record) if record.is_file() else {}
    write_json(record, {**budgets, name: budget})  # before running: an interrupted run is of this budget too
    names = []
    for job in protocol.jobs(runs, with_data_root(protocol.BUDGETS[budget], data_root)):
        for cell in job.cells:  # an output deleted or left unfinished since its cell was marked done: redo it
            summary = Path(job.out_dir) / cell["name"] / SUMMARY
            if job.done is not None and summary.is_file() and not job.done(cell):
                summary.unlink()
        run_grid(job.cells, job.fn, job.out_dir, backend=backend, address=address, n_workers=n_workers,
                 progress=progress)
        names += [cell["name"] for cell in job.cells]
    return names
