# SPDX-License-Identifier: MIT
"""Many runs in one process: K models of one structure trained as one vectorized model.

:func:`train_many` is :func:`~ensemble_nets.training.train` for K runs at once.
The K models are stacked (:mod:`ensemble_nets.training.stacked`: parameters
``(K, *shape)``, batched matrix products), and every step is::

    x_k, y_k = batch of run k                  # run k's own permutation (its shuffle generator)
    loss = sum_k cross_entropy(model_k(x_k), y_k)   # run k's noise from run k's own generator
    loss.backward()                            # slice k of a gradient = run k's gradient alone
    Adam step, run k at its own lr and decay; project pi -> [0, 1], xi -> >= 0

Everything else is per run, as in :func:`~ensemble_nets.training.train`: the
schedule, the evaluation after every epoch (same seeds), the metrics rows,
the run folder and its checkpoint (the same format: a run started by
:func:`train_many` can be resumed by :func:`~ensemble_nets.training.train`
and the other way round, on CPU). Run k consumes the same random numbers in
the same order as ``train(models[k], data, configs[k])``, so on CPU its
result equals that run's to float tolerance (batched products round
differently from single ones; nothing else differs).

Runs may differ in anything that keeps shapes: seed, lr, schedule, weight
decay and its groups, coupled or decoupled decay, epochs (a finished run
leaves the stack), evaluation networks, initial values of the models. The
batch size, the device, the model structure and the objective must agree.

Early stopping (``patience``): a run stops when the ``monitor`` column of its
metrics (by default the mean network's accuracy on ``data``'s test split: pass
a validation split there, never the test set) has not improved for
``patience`` epochs; its model is then reset to its best epoch (the best
state is kept in the checkpoint, so this survives a restart). With
``patience=None`` (default) runs train for ``config.epochs``, as
:func:`~ensemble_nets.training.train` does.

Timings: an epoch of the stack is shared, so each run's ``train_seconds`` is
the stack's epoch time divided by the runs in it, and ``wall_seconds`` is the
time of the whole call.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ensemble_nets.data import Dataset
from ensemble_nets.layers import ModeLinear, SpikeSlabLinear
from ensemble_nets.layers.conv import SpikeSlabConvNd
from ensemble_nets.training.evaluate import evaluate
from ensemble_nets.training.loop import TrainConfig, TrainResult, _check_resumable, _summarize
from ensemble_nets.training.optim import lr_at, make_optimizer, parameter_groups, resolve_device
from ensemble_nets.training.runs import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    SUMMARY,
    load_checkpoint,
    locks_run_dirs,
    model_from_checkpoint,
    save_checkpoint,
    write_json,
    write_metrics,
)
from ensemble_nets.training.stacked import StackedModel, check_stackable, stack_models
from ensemble_nets.training.stacked_adam import StackedAdam

__all__ = ["MONITORS", "train_epoch_many", "train_many"]

#: Metrics columns early stopping can watch (higher is better).
MONITORS = ("test_acc_mean", "test_acc_mean_field", "test_acc_sampled_mean", "train_acc", "lr")


class _Run:
    """The per-run state that is not stacked: generators, history, early stopping, run folder."""

    def __init__(self, k: int, model: nn.Module, config: TrainConfig, device: torch.device, run_dir, extra: dict):
        self.k, self.model, self.config = k, model, config
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.noise = torch.Generator(device=device).manual_seed(config.seed)
        self.history: list[dict] = []
        self.wall_before = 0.0
        self.run = Path(run_dir) if run_dir is not None else None
        self.resolved = {"train": asdict(config), "model": getattr(model, "model_args", {}), **extra}
        self.best = {"value": -math.inf, "epoch": 0, "stopped": False}
        self.best_state: dict | None = None
        groups = parameter_groups(model, weight_decay=config.weight_decay, decay=config.decay)
        name_of = {id(p): n for n, p in model.named_parameters()}
        self.decay = {name_of[id(p)]: g["weight_decay"] for g in groups for p in g["params"]}
        self.order = [name_of[id(p)] for g in groups for p in g["params"]]  # optimizer state index -> name
        self.param_groups = make_optimizer(model, lr=config.lr, weight_decay=config.weight_decay,
                                           decay=config.decay, decoupled=config.decoupled_decay
                                           ).state_dict()["param_groups"]

    @property
    def epoch(self) -> int:
        return len(self.history)

    def done(self, patience: int | None) -> bool:
        return self.epoch >= self.config.epochs or (patience is not None and self.best["stopped"])

    def optimizer_state(self, adam: StackedAdam, slot: int, lr: float) -> dict:
        """Run ``slot`` of the stack as a ``torch.optim.AdamW`` state dict of this run's model."""
        state = adam.run_state(slot)
        step = adam.steps[slot]
        device = next(iter(state.values()))["exp_avg"].device
        return {"state": {i: {"step": torch.tensor(float(step), dtype=torch.float32, device=device), **state[name]}
                          for i, name in enumerate(self.order)} if step else {},
                "param_groups": [{**g, "lr": lr} for g in self.param_groups]}

    def load_optimizer_state(self, adam: StackedAdam, slot: int, payload: dict) -> None:
        entries = payload["state"]
        state = {self.order[int(i)]: entry for i, entry in entries.items()}
        steps = {int(entry["step"]) for entry in entries.values()}
        if len(steps) > 1:
            raise ValueError(f"{self.run}: optimizer state holds different step counts {sorted(steps)}")
        adam.load_run_state_(slot, state, steps.pop() if steps else 0)


def _check_inputs(models, configs, run_dirs, data):
    if len(configs) != len(models):
        raise ValueError(f"got {len(models)} models but {len(configs)} configs; give one TrainConfig per model")
    if run_dirs is not None and len(run_dirs) != len(models):
        raise ValueError(f"got {len(models)} models but {len(run_dirs)} run_dirs; give one folder per model")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("the same model object appears twice in models; pass K distinct models (copy.deepcopy)")
    if run_dirs is not None:
        resolved = [Path(d).resolve() for d in run_dirs]
        if len(set(resolved)) != len(resolved):
            raise ValueError("two runs share a run folder; give every run its own folder")
    first = configs[0]
    for k, config in enumerate(configs):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"configs[{k}] is a {type(config).__name__}, not a TrainConfig")
        if config.batch_size != first.batch_size:
            raise ValueError(f"configs[{k}].batch_size={config.batch_size} differs from configs[0].batch_size="
                             f"{first.batch_size}: the batch size sets the shape of the stacked batch; train runs "
                             f"of different batch sizes in separate train_many calls")
        if resolve_device(config.device) != resolve_device(first.device):
            raise ValueError(f"configs[{k}].device={config.device!r} differs from configs[0].device="
                             f"{first.device!r}; all runs of a stack live on one device")
        if config.lr_scales is not None:
            raise NotImplementedError(f"configs[{k}].lr_scales={config.lr_scales!r}: train_many runs one Adam rate "
                                      f"per run; train runs with lr_scales with en.train")
        if config.fused_step:
            raise NotImplementedError(f"configs[{k}].fused_step=True: train_many has its own stacked step; use "
                                      f"train_many(..., compile=True) for fused kernels, or en.train")
        if config.objective != "reference":
            raise NotImplementedError(f"configs[{k}].objective={config.objective!r}: train_many trains the "
                                      f"reference cross-entropy only; train ELBO runs with en.train")
    first_layer = next(iter(models[0].children()), None)
    if isinstance(first_layer, (nn.Linear, SpikeSlabLinear, ModeLinear)) and data.x_train.dim() != 2:
        raise ValueError(f"the models start with a linear layer: they take flat inputs, but the data's examples "
                         f"have shape {tuple(data.x_train.shape[1:])}; load them flat "
                         f"(load_dataset(..., shape=\"flat\")) or flatten them (x.flatten(1))")
    if isinstance(first_layer, (nn.Conv1d, nn.Conv2d, SpikeSlabConvNd)) and data.x_train.dim() == 2:
        raise ValueError(f"the models start with a convolution: they take images (N, C, ...), but the data are "
                         f"flat {tuple(data.x_train.shape)}; load them with load_dataset(..., shape=\"image\")")
    for k, model in enumerate(models):
        sizes = getattr(model, "sizes", None)
        if sizes is not None and sizes[0] != data.n_features:
            raise ValueError(f"models[{k}] input width {sizes[0]} does not match the data's {data.n_features} features")
        if sizes is not None and sizes[-1] < data.n_classes:
            raise ValueError(f"models[{k}] has {sizes[-1]} outputs but the data have {data.n_classes} classes")


def train_epoch_many(stack: StackedModel, adam: StackedAdam, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                     shuffles: list[torch.Generator], noises: list[torch.Generator], lrs: list[float]) -> list[dict]:
    """One pass of every run of ``stack`` over ``(x, y)``, run k in its own fresh random order.

    The stacked twin of :func:`~ensemble_nets.training.loop.train_epoch`: run k draws its permutation
    from ``shuffles[k]``, its noise from ``noises[k]`` and steps at ``lrs[k]``. Returns one dict per
    run: ``train_loss``, ``train_acc``, ``projected`` (entries moved by the projection), ``lr``.
    """
    n, n_runs = x.shape[0], stack.n_runs
    orders = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(x.device)  # (K, n)
    loss_sum = torch.zeros(n_runs, device=x.device)
    correct = torch.zeros(n_runs, dtype=torch.long, device=x.device)
    moved = torch.zeros(n_runs, dtype=torch.long, device=x.device)
    for start in range(0, n, batch_size):
        index = orders[:, start:start + batch_size]  # (K, B)
        flat = index.flatten()  # index_select: a faster gather than x[index] on CPU
        xb = x.index_select(0, flat).view(*index.shape, *x.shape[1:])  # (K, B, *example shape)
        yb = y.index_select(0, flat).view(index.shape)  # (K, B)
        logits = stack(xb, noises)  # (K, B, n_out)
        losses = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape).mean(1)
        adam.zero_grad()
        losses.sum().backward()
        adam.step(lrs)
        moved += stack.project_()
        loss_sum += losses.detach() * yb.shape[1]
        correct += (logits.detach().argmax(-1) == yb).sum(1)
    loss, acc, moved = (loss_sum / n).tolist(), (correct.double() / n).tolist(), moved.tolist()
    return [{"train_loss": loss[i], "train_acc": acc[i], "projected": int(moved[i]), "lr": lrs[i]}
            for i in range(n_runs)]


@locks_run_dirs
def train_many(models: list[nn.Module], data: Dataset, configs: list[TrainConfig], *, run_dirs=None,
               resume: bool = False, progress: bool = True, extra_configs: list[dict] | None = None,
               patience: int | None = None, monitor: str = "test_acc_mean",
               compile: bool = False) -> list[TrainResult]:
    """Train K models of one structure at once; result k is that of ``train(models[k], data, configs[k])``.

    :param models: (list of nn.Module) K ``nn.Sequential`` stacks of identical structure (``EnsembleMLP``,
        ``ModeMLP``, ``MLP``); their parameters may differ. Trained in place, like
        :func:`~ensemble_nets.training.train`.
    :param data: (Dataset) Shared by every run; its test split is what is evaluated (and monitored) every
        epoch.
    :param configs: (list of TrainConfig) One per model. Equal ``batch_size``, ``device`` and
        ``objective="reference"``; anything else may differ.
    :param run_dirs: (list of path, optional) One run folder per model (the files of
        :func:`~ensemble_nets.training.train`).
    :param resume: (bool) Continue the runs whose folder holds a checkpoint (the others start afresh);
        without it an existing checkpoint is an error, as in :func:`~ensemble_nets.training.train`.
    :param progress: (bool) A progress bar over epochs.
    :param extra_configs: (list of dict, optional) More entries for each run's config.json.
    :param patience: (int, optional) Early stopping: stop a run when ``monitor`` has not improved for this
        many epochs and restore its best epoch's parameters.
    :param monitor: (str) The metrics column watched by early stopping (higher is better).
    :param compile: (bool) Run the elementwise work on spike-and-slab parameters (moments, gradients,
        projection) as fused ``torch.compile`` kernels (those of ``SpikeSlabLinear(gbp="compiled")``;
        spike-and-slab convolutions keep their eager pass, only their projection is fused):
        fewer passes over memory, the same numbers to rounding. The first call in a process compiles
        (seconds per kernel on a CPU, cached on disk afterwards); needs a C++ compiler on CPU.
        Measured on one CPU thread (784-50-50-10, K = 8): no faster than eager (0.90 against
        0.81 s per stacked epoch), the products and Adam dominating; meant for GPUs, where fusing
        saves kernel launches (not measured here).
    :returns: (list of TrainResult) In the order of ``models``.
    """
    models, configs = list(models), list(configs)
    if not models:
        raise ValueError("train_many needs at least one model")
    _check_inputs(models, configs, run_dirs, data)
    if patience is not None and not (isinstance(patience, int) and patience >= 1):
        raise ValueError(f"patience must be a positive integer (or None: no early stopping), got {patience!r}")
    if patience is not None and monitor not in MONITORS:
        raise ValueError(f"monitor={monitor!r} is not a metrics column early stopping can watch; choose one of "
                         f"{MONITORS} (higher is better)")
    if extra_configs is not None and len(extra_configs) != len(models):
        raise ValueError(f"got {len(models)} models but {len(extra_configs)} extra_configs")
    device = resolve_device(configs[0].device)
    for model in models:
        model.to(device)
    check_stackable(models)  # before anything is written
    dtype = next(models[0].parameters()).dtype
    data = data.to(device, dtype)
    extra_configs = extra_configs or [{}] * len(models)
    runs = [_Run(k, model, config, device, None if run_dirs is None else run_dirs[k], extra_configs[k])
            for k, (model, config) in enumerate(zip(models, configs))]

    payloads = {}
    for r in runs:
        if r.run is None:
            continue
        checkpoint = r.run / CHECKPOINT
        if checkpoint.exists() and not resume:
            raise FileExistsError(f"{r.run} already holds a run; pass resume=True to continue it, "
                                  f"or choose another output folder")
        if resume and checkpoint.exists():
            payload = load_checkpoint(checkpoint)
            _check_resumable(payload, r.model, r.config, checkpoint)
            if payload.get("data", data.fingerprint()) != data.fingerprint():
                raise ValueError(f"cannot resume {r.run}: it was trained on {payload['data']}, not on "
                                 f"{data.fingerprint()}; resume with the same data set and data root")
            model_from_checkpoint(payload, str(checkpoint))  # checks architecture and constraints
            r.model.load_state_dict(payload["model"])  # into the model itself: keeps its dtype (float64 stays exact)
            r.shuffle.set_state(payload["rng"]["shuffle"])
            rng = payload["rng"]  # train()'s checkpoints keep the noise stream as the global generator's state
            r.noise.set_state(rng.get("noise", rng["torch"] if device.type == "cpu" else rng.get("cuda")))
            r.history, r.wall_before = list(payload["history"]), float(payload["wall_seconds"])
            if "early_stopping" in payload:
                r.best = dict(payload["early_stopping"])
                r.best_state = payload.get("best_model")
            payloads[r.k] = payload
        else:
            write_json(r.run / CONFIG, r.resolved)

    active = [r for r in runs if not r.done(patience)]
    stack = stack_models([r.model for r in active], compiled=compile) if active else None
    adam = StackedAdam(stack, [r.decay for r in active], [r.config.decoupled_decay for r in active]) if active else None
    for slot, r in enumerate(active):
        if r.k in payloads:
            r.load_optimizer_state(adam, slot, payloads[r.k]["optimizer"])

    start = time.perf_counter()
    bar = tqdm(total=max([r.config.epochs - r.epoch for r in active], default=0), disable=not progress,
               desc=f"train_many x{len(runs)}", unit="epoch")
    while active:
        tick = time.perf_counter()
        stats = train_epoch_many(stack, adam, data.x_train, data.y_train, configs[0].batch_size,
                                 [r.shuffle for r in active], [r.noise for r in active],
                                 [lr_at(r.epoch, r.config.lr, r.config.lr_halve_every) for r in active])
        train_seconds = (time.perf_counter() - tick) / len(active)
        for slot, (r, row_stats) in enumerate(zip(active, stats)):
            epoch = r.epoch
            if not math.isfinite(row_stats["train_loss"]):
                raise FloatingPointError(
                    f"run {r.k} diverged at epoch {epoch + 1} (train loss {row_stats['train_loss']}); "
                    f"{'the last good checkpoint in ' + str(r.run) + ' is kept; ' if r.run else ''}"
                    f"lower its learning rate (now {row_stats['lr']:g}) or check the inputs")
            stack.copy_to_(slot, r.model)
            test = evaluate(r.model, data.x_test, data.y_test, n_networks=r.config.n_eval_networks,
                            seed=r.config.seed * 100_003 + epoch, batch_size=r.config.eval_batch_size)
            row = {"epoch": epoch + 1, "lr": row_stats["lr"], "train_loss": row_stats["train_loss"],
                   "train_acc": row_stats["train_acc"], **{f"test_{k}": v for k, v in test.items()},
                   "projected": row_stats["projected"], "train_seconds": train_seconds}
            r.history.append(row)
            if patience is not None:
                _early_stopping_update(r, stack, slot, row, patience, monitor)
            if r.run is not None:
                _save(r, stack, adam, slot, data, device, row["lr"], wall=r.wall_before + time.perf_counter() - start,
                      patience=patience)
        bar.update(1)
        bar.set_postfix(loss=f"{sum(s['train_loss'] for s in stats) / len(stats):.3f}", runs=len(active))
        keep = [slot for slot, r in enumerate(active) if not r.done(patience)]
        if len(keep) < len(active):
            active = [active[slot] for slot in keep]
            if active:
                stack.keep_(keep)
                adam.keep_(keep)
    bar.close()

    results = []
    for r in runs:
        if patience is not None and r.best_state is not None:
            r.model.load_state_dict(r.best_state)
        wall = r.wall_before + time.perf_counter() - start
        summary = _summarize(r.history, data, r.model, r.config, device, wall)
        if patience is not None:
            summary["early_stopping"] = {**r.best, "patience": patience, "monitor": monitor}
        if r.run is not None:
            write_json(r.run / SUMMARY, summary)
        results.append(TrainResult(model=r.model, history=r.history, summary=summary))
    return results


def _early_stopping_update(r: _Run, stack: StackedModel, slot: int, row: dict, patience: int, monitor: str) -> None:
    if row[monitor] > r.best["value"]:
        r.best.update(value=row[monitor], epoch=row["epoch"])
        r.best_state = {name: t.clone() for name, t in r.model.state_dict().items()}
    elif row["epoch"] - r.best["epoch"] >= patience:
        r.best["stopped"] = True


def _save(r: _Run, stack, adam, slot, data, device, lr, *, wall: float, patience) -> None:
    rng = {"shuffle": r.shuffle.get_state(), "noise": r.noise.get_state()}
    if device.type == "cpu":
        rng["torch"] = rng["noise"]  # what train() restores as the global generator: the same stream
    else:  # train() draws its CUDA noise from the default CUDA generator and restores it from "cuda"
        rng["torch"], rng["cuda"] = torch.get_rng_state(), rng["noise"]
    payload = {
        "model_args": getattr(r.model, "model_args", {}), "model": r.model.state_dict(),
        "optimizer": r.optimizer_state(adam, slot, lr), "rng": rng, "epoch": r.epoch, "history": r.history,
        "wall_seconds": wall, "train_config": asdict(r.config), "config": r.resolved, "data": data.fingerprint(),
    }
    if patience is not None:
        payload["early_stopping"] = dict(r.best)
        payload["best_model"] = r.best_state
    save_checkpoint(r.run / CHECKPOINT, payload)
    write_metrics(r.run / METRICS, r.history)
    write_json(r.run / SUMMARY, _summarize(r.history, data, r.model, r.config, device, wall))
