# SPDX-License-Identifier: MIT
"""The mode width sweep: how many modes a network of width N needs (MDL against the full-rank network).

A cell (width, P or "plain", seed) trains a plain network (``n_modes`` None) or an MDL network
(:class:`~ensemble_nets.models.ModeMLP`) of one hidden width with the shared trainer in its own
run folder ``<out>/cells/w<N>-<p<P>|plain>-s<seed>/run`` and returns its row of the sweep's table;
:func:`run` dispatches the cells through :func:`~ensemble_nets.training.run_grid` (finished cells
are skipped, an interrupted one resumes from its checkpoint), then writes ``cells.csv``,
``pmin.csv``, ``savings.csv`` and ``fit.json`` (:mod:`ensemble_nets.analysis.width_sweep`).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ensemble_nets.analysis.width_sweep import fit_log, p_min_table
from ensemble_nets.cli import non_negative_float, positive_float, positive_int
from ensemble_nets.data import DATASETS, load_dataset
from ensemble_nets.models import MLP, ModeMLP
from ensemble_nets.training.grid import run_grid
from ensemble_nets.training.loop import TrainConfig, train
from ensemble_nets.training.runs import write_atomic, write_json

__all__ = ["BUDGETS", "WidthSweepConfig", "cell_name", "grid_cells", "run", "summarize", "sweep_data",
           "train_width_cell"]


@dataclass(frozen=True)
class WidthSweepConfig:
    """The sweep's grid and training budget; the defaults are the CPU reference grid (784-N-N-10)."""

    widths: tuple = field(default=(25, 50, 100, 200, 400, 800), metadata={"type": positive_int,
                                                                          "help": "hidden widths N"})
    modes: tuple = field(default=(1, 2, 4, 8, 16, 32), metadata={"type": positive_int, "help": "numbers of modes P"})
    seeds: tuple = (0,)
    depth: int = field(default=2, metadata={"type": positive_int, "help": "hidden layers (784-N-...-N-10)"})
    epochs: int = field(default=3, metadata={"type": positive_int})
    lr: float = field(default=0.01, metadata={"type": positive_float, "help": "Adam learning rate (MDL reference)"})
    batch_size: int = field(default=100, metadata={"type": positive_int})
    tolerance: float = field(default=0.01, metadata={"type": non_negative_float,
                                                     "help": "accuracy tolerance for P_min (absolute)"})
    dataset: str = field(default="mnist5k", metadata={"choices": DATASETS})
    data_root: str = "data"
    n_train: int | None = field(default=None, metadata={"type": positive_int,
                                                        "help": "use only the first N training examples"})
    n_test: int | None = field(default=None, metadata={"type": positive_int,
                                                       "help": "evaluate on the first N test examples only"})
    device: str = "cpu"

    def __post_init__(self):
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be integers >= 0, got {self.seeds}")


#: The figure budgets: ``quick`` is the reduced grid of docs/modes.md, ``paper`` the CPU reference grid.
BUDGETS = {"quick": WidthSweepConfig(widths=(25, 50, 100, 200), modes=(2, 8, 32), epochs=2, n_test=2000),
           "paper": WidthSweepConfig()}


def cell_name(width: int, n_modes: int | None, seed: int) -> str:
    return f"w{width}-{'plain' if n_modes is None else f'p{n_modes}'}-s{seed}"


def grid_cells(config: WidthSweepConfig) -> list[dict]:
    """Every (width, P or plain, seed) cell, with what a worker needs to run it."""
    common = {k: getattr(config, k) for k in ("depth", "epochs", "lr", "batch_size", "dataset", "n_train", "n_test",
                                               "device")}
    common["data_root"] = str(config.data_root)
    return [{"name": cell_name(w, p, s), "width": w, "n_modes": p, "seed": s, **common}
            for w in config.widths for p in [None, *config.modes] for s in config.seeds]


@functools.lru_cache(maxsize=2)
def sweep_data(dataset: str, data_root: str, n_train: int | None, n_test: int | None):
    """The sweep's data, loaded once per worker process."""
    data = load_dataset(dataset, data_root, download=False)
    return data.subset(n_train=n_train, n_test=n_test) if (n_train or n_test) else data


def train_width_cell(cell: dict, cell_dir: Path) -> dict:
    """One grid cell: train a plain (``n_modes`` None) or MDL network of one width; its row of ``cells.csv``.

    The training run lives in ``cell_dir/run`` (resumed if an earlier call was interrupted);
    :func:`ensemble_nets.training.run_grid` writes ``cell_dir/summary.json`` once this returns.
    """
    data = sweep_data(cell["dataset"], cell["data_root"], cell["n_train"], cell["n_test"])
    width, n_modes, seed = cell["width"], cell["n_modes"], cell["seed"]
    sizes = (data.n_features, *([width] * cell["depth"]), data.n_classes)
    run = Path(cell_dir) / "run"
    torch.manual_seed(seed)
    model = MLP(sizes, w_std=1.0) if n_modes is None else ModeMLP(sizes, n_modes)
    config = TrainConfig(epochs=cell["epochs"], lr=cell["lr"], lr_halve_every=30, batch_size=cell["batch_size"],
                         seed=seed, device=cell["device"])
    summary = train(model, data, config, run_dir=run, resume=(run / "checkpoint.pt").is_file(), progress=False,
                    extra_config={"sweep": cell}).summary
    return {"width": width, "n_modes": n_modes if n_modes is not None else -1, "model": summary["model"],
            "seed": seed, "n_parameters": summary["n_parameters"], "test_acc": summary["test_acc_mean"]["final"],
            "best_test_acc": summary["test_acc_mean"]["best"]["value"], "epochs": summary["epochs"]}


def summarize(frame: pd.DataFrame, config: WidthSweepConfig, data=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(cells, pmin, fit)`` of a finished grid table (:func:`run_grid`'s frame)."""
    cells = frame[[c for c in ("width", "n_modes", "model", "seed", "n_parameters", "test_acc", "best_test_acc",
                               "epochs", "status") if c in frame.columns]]
    pmin = p_min_table(cells, tolerance=config.tolerance)
    fit = fit_log(pmin)
    fit.update(tolerance=config.tolerance, epochs=config.epochs, seeds=list(config.seeds), modes=list(config.modes),
               widths=list(config.widths))
    if data is not None:
        fit.update(dataset=data.name, n_train=data.n_train, n_test=data.n_test)
    return cells, pmin, fit


def run(config: WidthSweepConfig, out: str | Path, *, backend: str = "ray", n_workers: int | None = 2,
        address: str | None = None, progress: bool = True) -> dict:
    """Train every cell not finished yet, then write cells.csv, pmin.csv, savings.csv and fit.json into ``out``.

    Raises :class:`~ensemble_nets.training.GridError` (the finished cells kept) when a cell fails.
    """
    out = Path(out)
    data = sweep_data(config.dataset, str(config.data_root), config.n_train, config.n_test)
    out.mkdir(parents=True, exist_ok=True)
    frame = run_grid(grid_cells(config), train_width_cell, out / "cells", backend=backend, n_workers=n_workers,
                     address=address, progress=progress)
    cells, pmin, fit = summarize(frame, config, data)
    savings = pmin[["width", "plain_parameters", "p_min", "mdl_parameters_at_p_min", "parameter_fraction",
                    "plain_acc", "mdl_acc_at_p_min"]]
    write_atomic(out / "cells.csv", cells.to_csv(index=False).encode())
    write_atomic(out / "pmin.csv", pmin.to_csv(index=False).encode())
    write_atomic(out / "savings.csv", savings.to_csv(index=False).encode())
    write_json(out / "config.json", asdict(config))
    write_json(out / "fit.json", fit)
    return fit
