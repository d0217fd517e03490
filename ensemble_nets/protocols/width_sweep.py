# SPDX-License-Identifier: MIT
"""One cell of the mode width sweep (``experiments/mode_width_sweep.py``): a module, so Ray workers import it.

A cell trains a plain network (``n_modes`` None) or an MDL network
(:class:`~ensemble_nets.models.ModeMLP`) of one hidden width with the shared
trainer, and returns its row of the sweep's table.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from ensemble_nets.data import load_dataset
from ensemble_nets.models import MLP, ModeMLP
from ensemble_nets.training.loop import TrainConfig, train

__all__ = ["sweep_data", "train_width_cell"]


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
