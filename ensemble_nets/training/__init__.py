# SPDX-License-Identifier: MIT
"""Training: the loop, the optimizer pieces, reference presets and run folders."""
from ensemble_nets.training.evaluate import accuracy, evaluate
from ensemble_nets.training.fused_adam import SpikeSlabAdamW
from ensemble_nets.training.grid import GridError, run_grid
from ensemble_nets.training.loop import TrainConfig, TrainResult, train
from ensemble_nets.training.many import train_many
from ensemble_nets.training.optim import (
    lr_at, make_optimizer, parameter_groups, project_, resolve_device, step_and_project,
)
from ensemble_nets.training.presets import PRESETS, ExperimentConfig
from ensemble_nets.training.runs import load_checkpoint, load_run, save_checkpoint

__all__ = [
    "ExperimentConfig",
    "GridError",
    "PRESETS",
    "SpikeSlabAdamW",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "evaluate",
    "load_checkpoint",
    "load_run",
    "lr_at",
    "make_optimizer",
    "parameter_groups",
    "project_",
    "resolve_device",
    "run_grid",
    "save_checkpoint",
    "step_and_project",
    "train",
    "train_many",
]
