# SPDX-License-Identifier: MIT
"""The training loop: Adam with decoupled decay, step schedule, projection after every step.

One epoch::

    for each mini-batch (a fresh permutation per epoch):
        loss = cross_entropy(model(x), y)      # noisy mean-field pass for ensembles
             (+ KL(q || prior) / n_train)      # objective="elbo" (see ensemble_nets.training.objective)
        loss.backward()                        # generalized backprop
        optimizer.step(); project_(model)      # pi -> [0, 1], xi -> >= 0

then the test set is evaluated (:func:`~ensemble_nets.training.evaluate.evaluate`),
one metrics row is appended, and with a run folder the checkpoint, metrics
and summary are rewritten atomically. A resumed run restores the model,
optimizer, shuffling and noise generators and continues bit for bit on CPU.
"""
from __future__ import annotations

import contextlib
import math
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ensemble_nets.data import Dataset
from ensemble_nets.training.evaluate import evaluate
from ensemble_nets.training.objective import OBJECTIVES, Elbo
from ensemble_nets.training.optim import check_lr_scales, lr_at, make_optimizer, resolve_device, step_and_project
from ensemble_nets.training.runs import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    SUMMARY,
    load_checkpoint,
    locks_run_dir,
    model_from_checkpoint,
    save_checkpoint,
    write_json,
    write_metrics,
)

__all__ = ["TrainConfig", "TrainResult", "train", "train_epoch"]


@dataclass
class TrainConfig:
    """Every knob of the loop. Defaults: the reference optimizer (DESIGN.md section 2)."""

    epochs: int = 60  # passes over the training set
    batch_size: int = 500  # examples per step
    lr: float = 0.1  # Adam learning rate at epoch 0
    lr_halve_every: int = 20  # halve the rate every this many epochs; 0 keeps it constant
    weight_decay: float = 1e-4  # decay strength on the decayed group
    decay: tuple[str, ...] | None = None  # parameter names to decay; None: each layer's choice (m, xi)
    decoupled_decay: bool = True  # AdamW-style decay (the reference); False: L2 inside Adam
    lr_scales: dict[str, float] | None = None  # {parameter name: scale}: its rate is lr * scale, e.g. {"pi": 0.1}
    n_eval_networks: int = 10  # networks sampled from q per evaluation
    eval_batch_size: int = 10_000  # test examples per evaluation batch (CNNs: ~1,000 is faster on CPU)
    seed: int = 0  # seeds shuffling, training noise and evaluation
    device: str = "auto"  # "auto" picks CUDA when present
    objective: str = "reference"  # "reference" (cross-entropy) | "elbo" (+ KL to a spike-and-slab prior / n_train)
    prior_pi: float = 0.5  # elbo: prior probability that a connection is absent
    prior_variance: float = 1.0  # elbo: variance of the prior slab N(0, prior_variance), on the scale of m
    elbo_margin: float = 1e-6  # elbo: pi kept in [margin, 1 - margin], xi >= margin (KL finite)
    kl_weight: float = 1.0  # elbo: factor on KL / n_train (1: the ELBO; < 1 tempers the prior)
    fused_step: bool = False  # AdamW + projection of the spike-and-slab layers in one compiled pass (optional)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.objective == "elbo":
            Elbo(1, self.prior_pi, self.prior_variance, self.elbo_margin, self.kl_weight)  # validates the prior
        if not (isinstance(self.epochs, int) and self.epochs >= 0):
            raise ValueError(f"epochs must be an integer >= 0, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.lr_halve_every, int) and self.lr_halve_every >= 0):
            raise ValueError(f"lr_halve_every must be an integer >= 0 (0 = constant rate), got {self.lr_halve_every!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.eval_batch_size, int) and self.eval_batch_size >= 1):
            raise ValueError(f"eval_batch_size must be an integer >= 1, got {self.eval_batch_size!r}")
        if not (isinstance(self.n_eval_networks, int) and self.n_eval_networks >= 2):
            raise ValueError(f"n_eval_networks must be an integer >= 2 to give a spread, got {self.n_eval_networks!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.decay is not None:
            self.decay = tuple(self.decay)
        if self.lr_scales is not None:  # the names are checked against the model by make_optimizer
            check_lr_scales(self.lr_scales)
        resolve_device(self.device)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict]  # one row per epoch, as in metrics.csv
    summary: dict  # as in summary.json


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor | DataLoader,
                y: torch.Tensor | None, batch_size: int, generator: torch.Generator,
                elbo: Elbo | None = None) -> dict[str, float]:
    """One pass over ``(x, y)`` in a fresh random order.

    ``x`` is ``(n, ...)`` (any shape per example) with labels ``y``, shuffled by ``generator``
    and cut into ``batch_size`` batches; or a ``DataLoader`` of ``(inputs, labels)`` batches
    (then ``y`` is None, the loader shuffles, and each batch moves to the model's device).

    With a :class:`~ensemble_nets.training.fused_adam.SpikeSlabAdamW` the epoch runs inside its
    ``deferred_gradients()`` (the chain rule of pi, m, xi in the step's fused pass).

    Returns ``train_loss``, ``train_acc`` and ``projected`` (entries moved by the
    projection); with ``elbo``, the loss is cross-entropy + KL / n_train and the
    two terms come back too, as ``train_nll`` and ``train_kl`` (example-weighted
    means over the epoch, like the loss).
    """
    model.train()
    if isinstance(x, DataLoader):
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        batches = ((xb.to(device, dtype, non_blocking=True), yb.to(device, non_blocking=True)) for xb, yb in x)
    else:
        device = x.device
        order = torch.randperm(x.shape[0], generator=generator).to(x.device)
        x, y = x[order], y[order]  # one gather per epoch; batches are then contiguous views
        batches = ((x[start:start + batch_size], y[start:start + batch_size])
                   for start in range(0, x.shape[0], batch_size))
    n = 0
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    moved = torch.zeros((), dtype=torch.long, device=device)
    kl_sum = torch.zeros((), device=device)
    deferred = getattr(optimizer, "deferred_gradients", contextlib.nullcontext)  # SpikeSlabAdamW's fused chain rule
    with deferred():
        for xb, yb in batches:
            n += yb.shape[0]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if elbo is not None:
                kl = elbo.scaled_kl(model)
                kl_sum += kl.detach() * len(yb)
                loss = loss + kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            moved += step_and_project(model, optimizer).to(device)
            if elbo is not None:
                moved += elbo.project_(model).to(device)
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(-1) == yb).sum()
    stats = {"train_loss": loss_sum.item() / n, "train_acc": correct.item() / n, "projected": int(moved.item())}
    if elbo is not None:
        stats["train_kl"] = kl_sum.item() / n
        stats["train_nll"] = stats["train_loss"] - stats["train_kl"]
    return stats


def _rng_state(shuffle: torch.Generator, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, shuffle: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _summarize(history: list[dict], data: Dataset, model: nn.Module, config: TrainConfig,
               device: torch.device, wall: float) -> dict:
    final = history[-1] if history else {}

    def best(key):
        if not history:
            return None
        row = max(history, key=lambda r: r[key])
        return {"value": row[key], "epoch": row["epoch"]}

    return {
        "dataset": data.name,
        "n_train": data.n_train,
        "n_test": data.n_test,
        "test_source": data.test_source,
        "data_note": data.note,
        "model": getattr(model, "kind", type(model).__name__),
        "sizes": list(getattr(model, "sizes", [])),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "epochs": len(history),
        "test_acc_mean_field": {"final": final.get("test_acc_mean_field"), "best": best("test_acc_mean_field")},
        "test_acc_mean": {"final": final.get("test_acc_mean"), "best": best("test_acc_mean")},
        "test_acc_sampled": {"mean": final.get("test_acc_sampled_mean"), "std": final.get("test_acc_sampled_std"),
                             "n_networks": config.n_eval_networks, "best_mean": best("test_acc_sampled_mean")},
        "train_loss": final.get("train_loss"),
        "train_acc": final.get("train_acc"),
        "wall_seconds": wall,
        "train_seconds_per_epoch": (sum(r["train_seconds"] for r in history) / len(history)) if history else None,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "seed": config.seed,
        "objective": config.objective,
    }


@locks_run_dir
def train(model: nn.Module, data: Dataset | DataLoader, config: TrainConfig | None = None, *,
          test_data: Dataset | DataLoader | None = None, run_dir=None, resume: bool = False, progress: bool = True,
          extra_config: dict | None = None) -> TrainResult:
    """Train ``model`` on ``data``; with ``run_dir``, write a run folder and checkpoint every epoch.

    :param model: any ``nn.Module`` that maps a batch of inputs to logits: an ensemble (any model
        holding spike-and-slab layers, e.g. from :func:`~ensemble_nets.models.to_ensemble`) or a plain
        one. Its layers' ``project_`` runs after every step, their ``decayed_parameters`` choose the decay.
    :param data: a :class:`~ensemble_nets.data.Dataset` of any input shape, moved to the device whole;
        or, for data too large for the device, a ``torch.utils.data.DataLoader`` of ``(inputs, labels)``
        training batches (it shuffles and sets the batch size; ``config.batch_size`` is then unused;
        each batch moves to the device as it comes). Resume is exact for a ``Dataset`` and for a
        loader whose shuffling draws from torch's global generator (the default ``shuffle=True``).
    :param test_data: with a ``DataLoader`` only: the test set, a ``DataLoader`` or a ``Dataset``.
    :param config: the loop's knobs (:class:`TrainConfig`).
    :param run_dir: folder for config.json, metrics.csv, checkpoint.pt and summary.json; locked for the
        run's life (:class:`~ensemble_nets.training.runs.RunLock`): a second process refuses at once.
    :param resume: continue the run in ``run_dir`` from its checkpoint (exact on CPU).
    :param progress: show a progress bar.
    :param extra_config: more entries for config.json (data set, protocol, ...).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    if isinstance(data, DataLoader):
        data = _LoaderData(data, test_data)
    elif test_data is not None:
        raise ValueError("test_data is for training from a DataLoader; a Dataset carries its own test split")
    elif not isinstance(data, Dataset):
        raise TypeError(f"data must be an ensemble_nets Dataset or a torch DataLoader, got {type(data).__name__}")
    sizes = getattr(model, "sizes", None)
    _check_inputs(model, data, sizes)
    if sizes is not None and sizes[-1] < data.n_classes:
        raise ValueError(f"model has {sizes[-1]} outputs but the data have {data.n_classes} classes")
    model.to(device)
    dtype = next(model.parameters()).dtype
    data = data.to(device, dtype)
    _check_forward(model, data, device)
    optimizer = make_optimizer(model, lr=config.lr, weight_decay=config.weight_decay,
                               decay=config.decay, decoupled=config.decoupled_decay,
                               lr_scales=config.lr_scales, fused_step=config.fused_step)
    shuffle = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    history: list[dict] = []
    wall_before = 0.0
    run = Path(run_dir) if run_dir is not None else None
    resolved = {"train": asdict(config), "model": getattr(model, "model_args", {}), **(extra_config or {})}
    elbo = (Elbo(data.n_train, config.prior_pi, config.prior_variance, config.elbo_margin, config.kl_weight)
            if config.objective == "elbo" else None)

    if run is not None:
        checkpoint = run / CHECKPOINT
        if checkpoint.exists() and not resume:
            raise FileExistsError(
                f"{run} already holds a run; pass --resume (resume=True) to continue it, "
                f"or choose another output folder"
            )
        if resume:
            payload = load_checkpoint(checkpoint)
            _check_resumable(payload, model, config, checkpoint)
            if payload.get("data", data.fingerprint()) != data.fingerprint():
                raise ValueError(
                    f"cannot resume {run}: it was trained on {payload['data']}, not on {data.fingerprint()}; "
                    f"resume with the same data set and data root"
                )
            _restore_model(model, payload, checkpoint)
            optimizer.load_state_dict(payload["optimizer"])
            _set_rng_state(payload["rng"], shuffle, device)
            history, wall_before = list(payload["history"]), float(payload["wall_seconds"])
        else:
            write_json(run / CONFIG, resolved)
    if elbo is not None:
        elbo.project_(model)  # the KL's gradient is infinite on the boundary, where pi_init = 0 puts pi

    start = time.perf_counter()
    bar = tqdm(range(len(history), config.epochs), initial=len(history), total=config.epochs,
               disable=not progress, desc=f"train {getattr(model, 'kind', 'model')}", unit="epoch", leave=True)
    for epoch in bar:
        lr = lr_at(epoch, config.lr, config.lr_halve_every)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # lr_scales: the schedule keeps each group's ratio
        tick = time.perf_counter()
        stats = train_epoch(model, optimizer, data.x_train, data.y_train, config.batch_size, shuffle, elbo)
        train_loss, train_acc, moved = stats["train_loss"], stats["train_acc"], stats["projected"]
        train_seconds = time.perf_counter() - tick
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"training diverged at epoch {epoch + 1} (train loss {train_loss}); "
                f"{'the last good checkpoint in ' + str(run) + ' is kept; ' if run else ''}"
                f"lower the learning rate (now {lr:g}) or check the inputs"
            )
        test = evaluate(model, data.x_test, data.y_test, n_networks=config.n_eval_networks,
                        seed=config.seed * 100_003 + epoch, batch_size=config.eval_batch_size)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
               **{k: stats[k] for k in ("train_nll", "train_kl") if k in stats},
               **{f"test_{k}": v for k, v in test.items()}, "projected": moved, "train_seconds": train_seconds}
        history.append(row)
        bar.set_postfix(loss=f"{train_loss:.3f}", mf=f"{test['acc_mean_field']:.4f}",
                        sampled=f"{test['acc_sampled_mean']:.4f}")
        if run is not None:
            wall = wall_before + time.perf_counter() - start
            save_checkpoint(run / CHECKPOINT, {
                "model_args": getattr(model, "model_args", {}), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "rng": _rng_state(shuffle, device), "epoch": epoch + 1,
                "history": history, "wall_seconds": wall, "train_config": asdict(config), "config": resolved,
                "data": data.fingerprint(),
            })
            write_metrics(run / METRICS, history)
            write_json(run / SUMMARY, _summarize(history, data, model, config, device, wall))
    bar.close()
    wall = wall_before + time.perf_counter() - start
    summary = _summarize(history, data, model, config, device, wall)
    if run is not None:
        write_json(run / SUMMARY, summary)
    return TrainResult(model=model, history=history, summary=summary)


def _check_resumable(payload: dict, model: nn.Module, config: TrainConfig, path: Path) -> None:
    same_math = {"gbp", "eval_mode"}  # implementation choices that do not change the trained function
    stored_args = {k: v for k, v in payload.get("model_args", {}).items() if k not in same_math}
    current_args = {k: v for k, v in getattr(model, "model_args", {}).items() if k not in same_math}
    if stored_args != current_args:
        raise ValueError(f"{path} was trained with model {payload.get('model_args')}, "
                         f"not {getattr(model, 'model_args', {})}; resume with the same architecture")
    current = asdict(config)
    # Options added after a checkpoint was written take their defaults (objective="reference", ...).
    stored = {**asdict(TrainConfig(device="cpu")), **dict(payload.get("train_config", {}))}
    ignore = {"epochs", "device", "eval_batch_size"}  # none of them changes the trained parameters
    stored = {k: (tuple(v) if isinstance(v, list) else v) for k, v in stored.items() if k not in ignore}
    current = {k: v for k, v in current.items() if k not in ignore}
    if stored != current:
        changed = sorted(k for k in current if stored.get(k) != current[k])
        raise ValueError(f"cannot resume {path}: training options changed ({', '.join(changed)}); "
                         f"only epochs and device may differ from the original run")


class _LoaderData:
    """A training ``DataLoader`` and its test set, with the attributes the loop reads of a ``Dataset``."""

    test_source = "test_data"

    def __init__(self, train_loader: DataLoader, test_data: Dataset | DataLoader | None) -> None:
        if test_data is None:
            raise ValueError("training from a DataLoader needs test_data=: a DataLoader of test batches or a Dataset")
        if not isinstance(test_data, (Dataset, DataLoader)):
            raise TypeError(f"test_data must be a DataLoader or a Dataset, got {type(test_data).__name__}")
        self.x_train, self.y_train = train_loader, None
        self.test = test_data
        self.x_test, self.y_test = (test_data, None) if isinstance(test_data, DataLoader) else (
            test_data.x_test, test_data.y_test)
        self.name = getattr(train_loader.dataset, "name", type(train_loader.dataset).__name__)
        self.n_classes = test_data.n_classes if isinstance(test_data, Dataset) else 0
        self.note = f"DataLoader over {self.name} (batch size {train_loader.batch_size})"

    @property
    def n_train(self) -> int:
        return len(self.x_train.dataset)

    @property
    def n_test(self) -> int:
        return len(self.x_test.dataset) if isinstance(self.x_test, DataLoader) else self.x_test.shape[0]

    @property
    def n_features(self) -> int:
        return self.example().numel()

    def example(self) -> torch.Tensor:
        """One training input (no shuffling, no random draw)."""
        return torch.as_tensor(self.x_train.dataset[0][0])

    def to(self, device, dtype=None) -> "_LoaderData":
        if isinstance(self.test, Dataset):  # a test set given as tensors lives on the device; batches move later
            self.x_test, self.y_test = self.x_test.to(device, dtype), self.y_test.to(device)
        return self

    def fingerprint(self) -> dict:
        return {"name": self.name, "n_train": self.n_train, "n_test": self.n_test, "test_source": self.test_source}


def _check_inputs(model: nn.Module, data, sizes) -> None:
    """An MLP (a model with ``sizes``) needs flat inputs of width sizes[0]: say how to get them."""
    if sizes is None:
        return
    shape = tuple(data.example().shape) if isinstance(data, _LoaderData) else data.input_shape
    if len(shape) != 1:
        raise ValueError(f"{type(model).__name__} takes flat inputs of width {sizes[0]}, but the data's examples "
                         f"have shape {shape}; load them flat (load_dataset(..., shape=\"flat\")) or flatten "
                         f"them (x.flatten(1)), or train a convolutional model (e.g. --model cnn)")
    if shape[0] != sizes[0]:
        raise ValueError(f"model input width {sizes[0]} does not match the data's {shape[0]} features")


def _check_forward(model: nn.Module, data, device: torch.device) -> None:
    """Run the model on one training example before anything is written; clear error if it does not fit."""
    example = (data.example().to(device) if isinstance(data, _LoaderData) else data.x_train[0])[None]
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            model.eval()
            model(example.to(next(model.parameters()).dtype))
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"{type(model).__name__} does not accept the data's inputs (one example: shape "
                         f"{tuple(example.shape[1:])}): {err}") from err
    finally:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model.train(was_training)


def _restore_model(model: nn.Module, payload: dict, checkpoint: Path) -> None:
    """Load a checkpoint's parameters into ``model`` (rebuilt from model_args when it has a registered kind)."""
    if payload.get("model_args", {}).get("kind") is not None:
        model_from_checkpoint(payload, str(checkpoint))  # checks architecture and constraints
        model.load_state_dict(payload["model"])  # into the model itself: keeps its dtype (float64 stays exact)
        return
    try:  # a model of the user's own class: its state dict must fit
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise ValueError(f"{checkpoint}: parameters do not fit this {type(model).__name__} ({err}); "
                         f"resume with the same architecture") from err
    for name, module in model.named_modules():
        if hasattr(module, "check_constraints"):
            module.check_constraints()
