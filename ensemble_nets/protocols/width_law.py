# SPDX-License-Identifier: MIT
"""The mode width law at convergence (issue 11): P_min(N) for 784-N-N-10 networks, trained to early stopping.

Grid: widths N (784-N-N-10), mode counts P (shared modes,
:class:`~ensemble_nets.models.ModeMLP`) and, per width, the plain network
(:class:`~ensemble_nets.models.MLP`, the ensemble's 1/sqrt(N_in) convention).
A cell is one (N, P) or (N, plain); its seeds are trained at once by
:func:`~ensemble_nets.training.train_many`. Every run::

    train on the training digits minus a validation split (n_validation, a fixed random part of them)
    Adam lr (halved every lr_halve_every epochs), batch batch_size, decoupled decay weight_decay
    after every epoch: accuracy of the validation split
    stop when it has not improved for `patience` epochs (at most max_epochs); keep the best epoch
    then: accuracy of the best epoch on the test set (never seen before)

Cells are dispatched by :func:`~ensemble_nets.training.run_grid` (local Ray
workers, a Ray cluster, or in-process): a finished cell has its
``summary.json`` and is never redone; a cell killed mid-way resumes from its
runs' checkpoints (``<out>/<cell>/s<seed>/checkpoint.pt``, atomic writes),
epoch by epoch. :func:`run` returns (and writes as ``runs.csv``) one row per
run, the table :func:`ensemble_nets.analysis.width_law.width_law` reads.

Learning rates: scans with train_many (one run per rate, the 5,000 digits
minus 1,000 for validation) gave, after 8 epochs at width 100, validation
accuracies of plain networks 0.877 / 0.901 / 0.910 / 0.935 at lr 0.003 /
0.01 / 0.03 / 0.1 and of MDL networks (P = 16) 0.836 / 0.895 / 0.872 / 0.522;
after 5 epochs at width 800, plain 0.916 / 0.931 / 0.904 at 0.01 / 0.03 / 0.1
(0.1 oscillates there). MDL runs train at 0.01; the plain network, the bar
P_min is measured against, trains every seed at each of ``plain_lrs`` (0.03
and 0.1, in the same stack) and keeps, per seed, the rate with the better
validation accuracy: the selection never sees the test set.

Budgets: ``quick`` (a few minutes on a 2-core CPU: small widths, coarse P,
few epochs, a smoke test of the whole path, not a result) and ``paper``
(issue 11's sweep: N = 25 ... 800, P = 2 ... 128, 3 seeds, early stopping
within 100 epochs).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import pandas as pd
import torch

from ensemble_nets.data import Dataset, load_dataset
from ensemble_nets.models import MLP, ModeMLP
from ensemble_nets.training.evaluate import accuracy
from ensemble_nets.training.grid import run_grid
from ensemble_nets.training.loop import TrainConfig
from ensemble_nets.training.many import train_many
from ensemble_nets.training.runs import write_atomic

__all__ = [
    "BUDGETS",
    "BUDGET_OVERRIDES",
    "MAIN_RUN",
    "REQUIRED_RUNS",
    "WidthLawConfig",
    "cells",
    "figure_tables",
    "jobs",
    "missing_runs",
    "run",
    "run_cell",
    "runs_table",
    "split_validation",
]


@dataclass
class WidthLawConfig:
    """Every knob of the sweep; defaults are the ``paper`` budget."""

    widths: tuple[int, ...] = (25, 50, 100, 200, 400, 800)  # hidden widths N of 784-N-N-10
    modes: tuple[int, ...] = (2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128)  # P grid (steps of about 1.4x)
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds per cell, trained at once
    depth: int = 2  # hidden layers
    shared: bool = True  # shared modes (the reference)
    max_epochs: int = 100  # cap on every run
    patience: int = 40  # early stopping: longer than the MDL schedule's halving period (30; docs/many.md)
    lr: float = 0.01  # Adam learning rate of the MDL networks (MDL reference 0.01)
    plain_lrs: tuple[float, ...] = (0.03, 0.1)  # plain networks: each seed at each rate, best by validation
    lr_halve_every: int = 30  # MDL reference schedule
    batch_size: int = 100  # MDL reference
    weight_decay: float = 1e-4  # decoupled, on each layer's decayed parameters
    plain_w_std: float = 1.0  # plain network: init std of W (applied as W / sqrt(N_in))
    n_validation: int = 1000  # validation digits taken out of the training digits
    dataset: str = "auto"  # auto: full MNIST when its files are under data_root, else the 5,000 digits
    data_root: str | None = None  # folder with the MNIST IDX files (the official test set at least)
    n_test: int | None = None  # evaluate on the first n_test test digits only (None: all)
    device: str = "auto"  # "auto": CUDA when present
    threads: int = 1  # torch threads per cell (one Ray worker per core)

    def __post_init__(self) -> None:
        self.widths, self.modes, self.seeds = tuple(self.widths), tuple(self.modes), tuple(self.seeds)
        self.plain_lrs = tuple(self.plain_lrs)
        if not self.plain_lrs or any(not lr > 0 for lr in self.plain_lrs):
            raise ValueError(f"plain_lrs must be positive learning rates, got {self.plain_lrs}")
        for name in ("widths", "modes"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct positive integers, got {values}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct integers >= 0, got {self.seeds}")
        if self.patience < 1 or self.max_epochs < 1 or self.n_validation < 10:
            raise ValueError(f"patience and max_epochs must be >= 1 and n_validation >= 10, got "
                             f"{self.patience}, {self.max_epochs}, {self.n_validation}")

    @classmethod
    def from_budget(cls, budget: str = "paper", **overrides) -> "WidthLawConfig":
        """The budget's settings with ``overrides`` applied; unknown names are errors."""
        if budget not in BUDGET_OVERRIDES:
            raise ValueError(f"unknown budget {budget!r}; known: {sorted(BUDGET_OVERRIDES)}")
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown width-law options {sorted(unknown)}; known: {sorted(known)}")
        return replace(cls(**BUDGET_OVERRIDES[budget]), **{k: v for k, v in overrides.items() if v is not None})


#: What each budget changes from the defaults (the paper sweep), and why.
BUDGET_OVERRIDES: dict[str, dict] = {
    "paper": {},  # issue 11: N = 25 ... 800, 13 values of P, 3 seeds, early stopping within 100 epochs
    # A few minutes on 2 cores: the whole path (grid, early stopping, analysis), not a measurement:
    # three widths, a coarse P grid, runs cut at 15 epochs (short of convergence), 2,000 test digits.
    "quick": {"widths": (25, 50, 100), "modes": (4, 8, 16, 32, 64), "max_epochs": 15, "patience": 3,
              "n_test": 2000},
}
#: The budgets as configs (what ``make_figures.py --budget`` and ``--budget`` here run).
BUDGETS: dict[str, WidthLawConfig] = {name: WidthLawConfig(**overrides)
                                      for name, overrides in BUDGET_OVERRIDES.items()}


def split_validation(data: Dataset, n_validation: int, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``(fit, final)``: ``fit`` trains on the training digits minus ``n_validation`` and evaluates on those;
    ``final`` is ``data`` itself (its test split, for the accuracy of the chosen epoch)."""
    if not 0 < n_validation < data.n_train:
        raise ValueError(f"n_validation={n_validation} must lie in (0, {data.n_train}), the training digits")
    order = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(seed))
    val, fit = order[:n_validation], order[n_validation:]
    fit_data = replace(data, x_train=data.x_train[fit], y_train=data.y_train[fit], x_test=data.x_train[val],
                       y_test=data.y_train[val], test_source=f"validation: {n_validation} of the training digits",
                       note=f"{data.note}; {n_validation} training digits held out for validation")
    return fit_data, data


@functools.lru_cache(maxsize=2)
def _data(dataset: str, data_root: str | None, n_test: int | None, n_validation: int) -> tuple[Dataset, Dataset]:
    data = load_dataset(dataset, data_root, download=False)
    if n_test is not None:
        data = data.subset(n_test=n_test)
    return split_validation(data, n_validation)


def cells(config: WidthLawConfig) -> list[dict]:
    """The grid: per width the plain network, then every P; each cell a JSON-able dict of the whole config."""
    base = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()
            if k not in ("widths", "modes")}
    out = []
    for width in config.widths:
        for n_modes in (None, *config.modes):
            name = f"w{width}-{'plain' if n_modes is None else f'p{n_modes}'}"
            out.append({"name": name, "width": width, "n_modes": n_modes, **base})
    return out


def _model(cell: dict, sizes: tuple[int, ...], seed: int):
    torch.manual_seed(seed)
    if cell["n_modes"] is None:
        return MLP(sizes, w_std=cell["plain_w_std"])
    return ModeMLP(sizes, cell["n_modes"], shared=cell["shared"])


def run_cell(cell: dict, cell_dir: str | Path) -> dict:
    """Train one cell's seeds at once (early stopping on validation) and test their best epochs.

    The ``fn`` of :func:`~ensemble_nets.training.run_grid`. Run folders ``cell_dir/s<seed>`` (plain:
    ``cell_dir/s<seed>-lr<rate>``, one per rate); a repeated call resumes them. Returns per-seed lists:
    ``test_acc``, ``val_acc`` (best), ``best_epoch``, ``epochs`` (trained), ``lr`` (the rate kept), and
    ``n_parameters``, ``train_seconds``.
    """
    torch.set_num_threads(int(cell["threads"]))
    fit, final = _data(cell["dataset"], cell["data_root"], cell["n_test"], cell["n_validation"])
    sizes = (fit.n_features, *([cell["width"]] * cell["depth"]), fit.n_classes)
    seeds = list(cell["seeds"])
    plain = cell["n_modes"] is None
    lrs = list(cell["plain_lrs"]) if plain else [cell["lr"]]
    grid = [(seed, lr) for seed in seeds for lr in lrs]  # every (seed, rate) is one run of the stack
    models = [_model(cell, sizes, seed) for seed, _ in grid]
    configs = [TrainConfig(epochs=cell["max_epochs"], lr=lr, lr_halve_every=cell["lr_halve_every"],
                           batch_size=cell["batch_size"], weight_decay=cell["weight_decay"], seed=seed,
                           device=cell["device"]) for seed, lr in grid]
    run_dirs = [Path(cell_dir) / (f"s{seed}-lr{lr:g}" if plain else f"s{seed}") for seed, lr in grid]
    results = train_many(models, fit, configs, run_dirs=run_dirs, resume=True, progress=False,
                         patience=cell["patience"], monitor="test_acc_mean",
                         extra_configs=[{"width_law": cell, "validation": fit.test_source}] * len(grid))
    chosen = []  # per seed, the run (rate) with the best validation accuracy
    for seed in seeds:
        candidates = [(r.summary["early_stopping"]["value"], i) for i, ((s, _), r) in enumerate(zip(grid, results))
                      if s == seed]
        chosen.append(max(candidates)[1])
    device = next(results[0].model.parameters()).device
    x_test, y_test = final.x_test.to(device), final.y_test.to(device)
    picked = [results[i] for i in chosen]
    return {
        "width": cell["width"], "n_modes": -1 if plain else cell["n_modes"], "seeds": seeds,
        "n_parameters": results[0].summary["n_parameters"],
        "lr": [grid[i][1] for i in chosen],
        "test_acc": [accuracy(r.model.eval(), x_test, y_test)[0] for r in picked],
        "val_acc": [r.summary["early_stopping"]["value"] for r in picked],
        "best_epoch": [r.summary["early_stopping"]["epoch"] for r in picked],
        "epochs": [r.summary["epochs"] for r in picked],
        "train_seconds": sum(row["train_seconds"] for r in results for row in r.history),
    }


def runs_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (width, n_modes, seed, acc = test accuracy of the best epoch, ...) from the grid's table."""
    rows = []
    for _, cell in frame[frame["status"] != "failed"].iterrows():
        for i, seed in enumerate(cell["seeds"]):
            rows.append({"width": int(cell["width"]), "n_modes": int(cell["n_modes"]), "seed": int(seed),
                         "acc": cell["test_acc"][i], "val_acc": cell["val_acc"][i], "lr": cell["lr"][i],
                         "best_epoch": cell["best_epoch"][i], "epochs": cell["epochs"][i],
                         "n_parameters": int(cell["n_parameters"])})
    return pd.DataFrame(rows)


def run(config: WidthLawConfig, out_dir: str | Path, *, backend: str = "ray", n_workers: int | None = None,
        address: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Run (or resume) the sweep in ``out_dir``; returns the per-run table, also written as ``runs.csv``.

    Cells that fail are reported by :class:`~ensemble_nets.training.GridError` after the others finish;
    a second call retries only them.
    """
    out_dir = Path(out_dir)
    frame = run_grid(cells(config), run_cell, out_dir / "cells", backend=backend, n_workers=n_workers,
                     address=address, progress=progress)
    table = runs_table(frame)
    write_atomic(out_dir / "runs.csv", table.to_csv(index=False).encode())
    return table


# --- the "width_law" figure family (experiments/make_figures.py) ---------------------------------

#: The sweep's folder under the runs folder, and the command that makes it.
MAIN_RUN = "width-law"
REQUIRED_RUNS = {MAIN_RUN: f"python experiments/width_law.py --budget paper --out runs/{MAIN_RUN}"}


def _cells_frame(cells_dir: Path) -> pd.DataFrame:
    """The grid's table (as :func:`run_grid` returns it) read back from the cells' ``summary.json``."""
    from ensemble_nets.training.runs import SUMMARY, read_json

    rows = []
    for path in sorted(cells_dir.glob(f"*/{SUMMARY}")):
        summary = read_json(path)
        rows.append({**summary["cell"], **summary.get("result", {}), "status": summary.get("status", "done")})
    return pd.DataFrame(rows)


def missing_runs(runs: str | Path) -> dict[str, str]:
    """The sweep's folder, with its command, when no cell of it is finished."""
    cells_dir = Path(runs) / MAIN_RUN / "cells"
    return {} if cells_dir.is_dir() and any(cells_dir.glob("*/summary.json")) else dict(REQUIRED_RUNS)


def jobs(runs: str | Path, config: WidthLawConfig) -> list:
    """The sweep's cells (finished ones are skipped by run_grid), run under ``runs/width-law/cells``."""
    from ensemble_nets.protocols.figures import Job

    return [Job(Path(runs) / MAIN_RUN / "cells", run_cell, cells(config))]


def figure_tables(runs: str | Path, *, n_boot: int = 2000) -> dict:
    """``runs`` (one row per run) and, per reference (``plain``, ``best_mdl``), the width-law tables."""
    from ensemble_nets.analysis.width_law import width_law

    folder = Path(runs) / MAIN_RUN
    frame = _cells_frame(folder / "cells")
    if frame.empty:
        raise FileNotFoundError(f"no finished cell under {folder / 'cells'}; make it with {REQUIRED_RUNS[MAIN_RUN]}")
    table = runs_table(frame)
    laws = {reference: width_law(table, n_boot=n_boot, reference=reference) for reference in ("plain", "best_mdl")}
    return {"runs": table, "laws": laws}
