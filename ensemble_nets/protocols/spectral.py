# SPDX-License-Identifier: MIT
"""Spectral parametrization across widths (DESIGN.md 4.1): coordinate check, learning-rate transfer, width sweep.

Three stages, each a table in the run folder (``SpectralConfig.stages`` picks some)::

    coord_check.csv    mean |output| (l1) and mean |change| (dl1) of every weight layer over the first
                       steps, per width, model (mlp, ensemble, modes) and variant (standard, spectral,
                       spectral_paper = the paper's init c = min(1, sqrt(n_out/n_in)) in every layer)
    coord_slopes.csv   slope of log l1 (and log dl1) against log width at the last step
    lr_transfer.csv    train loss after a short budget against the learning rate, per width
    width_sweep.csv    test accuracy of the spike-and-slab ensemble trained with ONE hyperparameter set
                       at every width (spectral and standard); diagnostics.csv: per-layer spectral norms

Learning rates: the spectral rate is the base rate in spectral units; the standard rate is one
Adam rate for every parameter, the one that matches the spectral rate in the hidden layer of the
narrowest width (:func:`standard_lr`: ``lr / sqrt(min(widths))``).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from ensemble_nets.analysis.spectral import coord_check, coord_slopes, spectral_diagnostics
from ensemble_nets.cli import positive_float, positive_int
from ensemble_nets.data import load_dataset
from ensemble_nets.models import MLP, EnsembleMLP, ModeMLP
from ensemble_nets.protocols.figures import single_run_family
from ensemble_nets.training.evaluate import evaluate
from ensemble_nets.training.loop import train_epoch
from ensemble_nets.training.optim import resolve_device
from ensemble_nets.training.runs import read_json, write_atomic, write_json
from ensemble_nets.training.spectral import make_parametrized_optimizer, spectral_init_

__all__ = ["BUDGETS", "MAIN_RUN", "REQUIRED_RUNS", "STAGES", "SpectralConfig", "VARIANTS", "figure_tables", "jobs",
           "make_model", "missing_runs", "run", "run_cell", "stage_lr", "standard_lr"]

STAGES = ("coord", "transfer", "sweep")
#: variant -> (parametrization, shrink)
VARIANTS = {"standard": ("standard", "not_input"), "spectral": ("spectral", "not_input"),
            "spectral_paper": ("spectral", "all")}
MAIN_RUN = "spectral"
#: Run folders (relative to the runs folder) the figures need -> the command that makes them.
REQUIRED_RUNS = {MAIN_RUN: "python experiments/spectral_scaling.py --data-root ../shared/data/mnist "
                           f"--out runs/{MAIN_RUN}"}


@dataclass(frozen=True)
class SpectralConfig:
    """The three stages' knobs; the defaults are the reference (a few CPU minutes)."""

    data_root: str = field(default="../shared/data/mnist", metadata={"help": "folder with the official MNIST test set"})
    stages: tuple = field(default=STAGES, metadata={"choices": STAGES, "help": "stages to run"})
    models: tuple = field(default=("mlp", "ensemble", "modes"), metadata={
        "choices": ("mlp", "ensemble", "modes"), "help": "coord check and lr transfer models (modes: P = 30)"})
    variants: tuple = field(default=tuple(VARIANTS), metadata={"choices": tuple(VARIANTS),
                                                               "help": "coord check variants"})
    coord_widths: tuple = field(default=(64, 128, 256, 512, 1024, 2048), metadata={"type": positive_int})
    coord_steps: int = field(default=5, metadata={"type": positive_int})
    coord_seeds: int = field(default=1, metadata={"type": positive_int})
    coord_batch: int = field(default=64, metadata={"type": positive_int})
    coord_examples: int = field(default=2000, metadata={"type": positive_int})
    coord_lr: float = field(default=1.0, metadata={"type": positive_float, "help": "spectral base Adam rate"})
    transfer_widths: tuple = field(default=(64, 256, 1024), metadata={"type": positive_int})
    transfer_lrs: tuple = field(default=(0.0625, 0.25, 1.0, 4.0, 16.0), metadata={
        "type": positive_float, "help": "spectral base rates; standard uses these / sqrt(min width)"})
    transfer_examples: int = field(default=2000, metadata={"type": positive_int})
    transfer_epochs: int = field(default=1, metadata={"type": positive_int})
    sweep_widths: tuple = field(default=(64, 128, 256, 512, 1024), metadata={"type": positive_int})
    sweep_lr: float = field(default=1.0, metadata={"type": positive_float, "help": "spectral base rate of the sweep"})
    sweep_epochs: int = field(default=3, metadata={"type": positive_int})
    sweep_variants: tuple = field(default=("spectral", "standard"), metadata={"choices": ("spectral", "standard")})
    sweep_examples: int | None = field(default=None, metadata={"type": positive_int,
                                                                "help": "training digits (None: all)"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled decay on m and xi in the sweep"})
    batch_size: int = field(default=100, metadata={"type": positive_int})
    n_eval_networks: int = field(default=5, metadata={"type": positive_int})
    seed: int = 0
    threads: int | None = field(default=None, metadata={"type": positive_int, "help": "torch CPU threads"})
    device: str = field(default="cpu", metadata={"help": "'cpu', 'cuda' or 'auto'"})

    def __post_init__(self):
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for name, allowed in (("stages", STAGES), ("variants", tuple(VARIANTS)), ("sweep_variants", tuple(VARIANTS))):
            bad = set(getattr(self, name)) - set(allowed)
            if bad:
                raise ValueError(f"{name} {sorted(bad)} unknown; choose from {allowed}")


#: The figure budgets: ``quick`` fits a few minutes of 2 CPU cores, ``paper`` is the reference.
BUDGETS = {
    "quick": SpectralConfig(coord_widths=(64, 128, 256, 512), coord_examples=1000, transfer_widths=(64, 256),
                            transfer_lrs=(0.25, 1.0, 4.0), transfer_examples=1000, sweep_widths=(64, 128, 256),
                            sweep_epochs=1, sweep_examples=2000, n_eval_networks=2),
    "paper": SpectralConfig(),
}


def standard_lr(lr: float, widths) -> float:
    """The standard (one Adam rate) counterpart of the spectral base rate ``lr``: ``lr / sqrt(min(widths))``."""
    return lr / math.sqrt(min(widths))


def stage_lr(variant: str, lr: float, widths) -> float:
    """``lr`` for spectral variants, :func:`standard_lr` for the standard one."""
    return lr if VARIANTS[variant][0] == "spectral" else standard_lr(lr, widths)


def make_model(kind: str, width: int, *, depth: int = 2, device="cpu"):
    """784 -> width (x depth) -> 10 with the standard init of raw std 1 (effective 1/sqrt(n_in))."""
    sizes = (784, *([width] * depth), 10)
    if kind == "mlp":
        return MLP(sizes, w_std=1.0).to(device)
    if kind == "modes":  # shared modes, the reference init (Li & Huang 2023), P = 30
        return ModeMLP(sizes, n_modes=30, shared=True).to(device)
    if kind == "ensemble":
        return EnsembleMLP(sizes, m_std=1.0, xi_max=2.0).to(device)
    raise ValueError(f"model kind {kind!r} is not one of ('mlp', 'ensemble', 'modes')")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_atomic(path, frame.to_csv(index=False).encode())


def _parametrize(model, variant: str, lr: float, weight_decay: float = 0.0):
    parametrization, shrink = VARIANTS[variant]
    if parametrization == "spectral":
        spectral_init_(model, shrink=shrink)
    return make_parametrized_optimizer(model, parametrization, lr, "adam", weight_decay=weight_decay, shrink=shrink)


def _train(model, opt, data, epochs: int, batch_size: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    stats = {}
    for _ in range(epochs):
        stats = train_epoch(model, opt, data.x_train, data.y_train, batch_size, generator)
        if not math.isfinite(stats["train_loss"]):
            break
    return stats


def stage_coord(config: SpectralConfig, data, out: Path, device) -> dict:
    """Coordinate check of every model and variant; writes coord_check.csv and coord_slopes.csv."""
    x, y = data.x_train[:config.coord_examples], data.y_train[:config.coord_examples]
    frames = []
    for kind in config.models:
        for variant in config.variants:
            parametrization, shrink = VARIANTS[variant]
            lr = stage_lr(variant, config.coord_lr, config.coord_widths)
            tick = time.perf_counter()
            df = coord_check(lambda w: make_model(kind, w, device=device), list(config.coord_widths), (x, y),
                             n_steps=config.coord_steps, lr=lr, parametrization=parametrization, shrink=shrink,
                             n_seeds=config.coord_seeds, batch_size=config.coord_batch, seed=config.seed)
            frames.append(df.assign(model=kind, variant=variant, lr=lr))
            print(f"[coord] {kind:8s} {variant:15s} lr {lr:.4g}: {time.perf_counter() - tick:.1f} s", flush=True)
    table = pd.concat(frames, ignore_index=True)
    if (out / "coord_check.csv").is_file():  # keep the other models' rows of an earlier call
        earlier = pd.read_csv(out / "coord_check.csv")
        table = pd.concat([earlier[~earlier["model"].isin(config.models)], table], ignore_index=True)
    _write_csv(out / "coord_check.csv", table)
    by_variant = table.drop(columns="parametrization").rename(columns={"variant": "parametrization"})
    slopes = pd.concat([coord_slopes(by_variant, value=value) for value in ("l1", "dl1")], ignore_index=True)
    slopes = slopes.rename(columns={"parametrization": "variant"})
    _write_csv(out / "coord_slopes.csv", slopes)
    print(slopes.pivot_table(index=["model", "variant"], columns=["value", "role"], values="slope").round(3)
          .to_string(), flush=True)
    return {"coord_slopes": slopes.to_dict(orient="records")}


def stage_transfer(config: SpectralConfig, data, out: Path, device) -> dict:
    """Train loss after ``transfer_epochs`` against the rate, per model, variant and width; lr_transfer.csv."""
    pick = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(config.seed))
    pick = pick[:config.transfer_examples]
    sub = replace(data, x_train=data.x_train[pick], y_train=data.y_train[pick])
    rows = []
    for kind in config.models:
        for variant in ("standard", "spectral"):
            lrs = [stage_lr(variant, lr, config.transfer_widths) for lr in config.transfer_lrs]
            for width in config.transfer_widths:
                for lr in lrs:
                    torch.manual_seed(config.seed)
                    model = make_model(kind, width, device=device)
                    opt = _parametrize(model, variant, lr)
                    stats = _train(model, opt, sub, config.transfer_epochs, config.batch_size, config.seed)
                    rows.append({"model": kind, "variant": variant, "width": width, "lr": lr,
                                 "train_loss": stats["train_loss"], "train_acc": stats["train_acc"]})
                    print(f"[transfer] {kind:8s} {variant:9s} width {width:5d} lr {lr:.4g}: "
                          f"loss {stats['train_loss']:.4f}", flush=True)
    table = pd.DataFrame(rows)
    if (out / "lr_transfer.csv").is_file():  # an earlier call's points stay unless recomputed here
        keys = ["model", "variant", "width", "lr"]
        table = pd.concat([pd.read_csv(out / "lr_transfer.csv"), table], ignore_index=True)
        table = table.drop_duplicates(keys, keep="last").sort_values(keys, ignore_index=True)
    _write_csv(out / "lr_transfer.csv", table)
    finite = table[table["train_loss"].apply(math.isfinite)]
    best = finite.loc[finite.groupby(["model", "variant", "width"])["train_loss"].idxmin()]
    return {"lr_transfer_best": best.to_dict(orient="records")}


def stage_sweep(config: SpectralConfig, data, out: Path, device) -> dict:
    """The ensemble trained with one hyperparameter set at every width; width_sweep.csv, diagnostics.csv."""
    if config.sweep_examples is not None:
        data = replace(data, x_train=data.x_train[:config.sweep_examples],
                       y_train=data.y_train[:config.sweep_examples])
    rows, diagnostics = [], []
    for variant in config.sweep_variants:
        lr = stage_lr(variant, config.sweep_lr, config.sweep_widths)
        for width in config.sweep_widths:
            torch.manual_seed(config.seed)
            model = make_model("ensemble", width, device=device)
            opt = _parametrize(model, variant, lr, config.weight_decay)
            before = copy.deepcopy(model)
            tick = time.perf_counter()
            stats = _train(model, opt, data, config.sweep_epochs, config.batch_size, config.seed)
            seconds = time.perf_counter() - tick
            finite = math.isfinite(stats["train_loss"])
            test = (evaluate(model, data.x_test, data.y_test, n_networks=config.n_eval_networks, seed=config.seed)
                    if finite else {})
            rows.append({"variant": variant, "width": width, "lr": lr, "epochs": config.sweep_epochs,
                         "train_loss": stats["train_loss"], "train_acc": stats["train_acc"],
                         **{f"test_{k}": v for k, v in test.items()}, "train_seconds": seconds})
            if finite:
                model.eval_mode = before.eval_mode = "mean"
                diag = spectral_diagnostics(before, model, data.x_train[:256])
                diagnostics.append(diag.assign(variant=variant, width=width))
            print(f"[sweep] {variant:9s} width {width:5d} lr {lr:.4g}: loss {stats['train_loss']:.4f} "
                  f"test (mean field) {test.get('acc_mean_field', float('nan')):.4f} "
                  f"sampled {test.get('acc_sampled_mean', float('nan')):.4f}  ({seconds:.1f} s)", flush=True)
    table = pd.DataFrame(rows)
    _write_csv(out / "width_sweep.csv", table)
    if diagnostics:
        _write_csv(out / "diagnostics.csv", pd.concat(diagnostics, ignore_index=True))
    return {"width_sweep": table.to_dict(orient="records")}


_STAGE_FUNCTIONS = {"coord": stage_coord, "transfer": stage_transfer, "sweep": stage_sweep}


def run(config: SpectralConfig, out: str | Path) -> dict:
    """Run the configured stages into the run folder ``out``; returns summary.json's content.

    Stages may run as separate calls: each call adds its entries to summary.json.
    """
    out = Path(out)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    data = load_dataset("mnist5k", config.data_root, download=False).to(device)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"config-{'-'.join(config.stages)}.json",
               {**asdict(config), "out": str(out), "dataset": data.name, "test_source": data.test_source})
    summary_path = out / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    for name in STAGES:
        if name in config.stages:
            tick = time.perf_counter()
            summary.update(_STAGE_FUNCTIONS[name](config, data, out, device))
            summary[f"{name}_seconds"] = time.perf_counter() - tick
            summary = {**(read_json(summary_path) if summary_path.is_file() else {}), **summary}
            write_json(summary_path, summary)
    return summary


def run_cell(cell: dict, cell_dir: Path) -> dict:
    """A :func:`~ensemble_nets.training.run_grid` cell: ``cell["config"]`` (a dict) run into ``cell["run_dir"]``."""
    summary = run(SpectralConfig(**_tuples(cell["config"])), cell["run_dir"])
    return {"stages": [s for s in STAGES if f"{s}_seconds" in summary]}


def _tuples(values: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _finished(run_dir: Path) -> bool:
    """Whether the run has run every stage (one that has not is rerun, stages already done included)."""
    summary = Path(run_dir) / "summary.json"
    return summary.is_file() and all(f"{stage}_seconds" in read_json(summary) for stage in STAGES)


#: ``missing_runs(runs)`` and ``jobs(runs, config)`` of the figure family: the one run ``runs/MAIN_RUN``.
missing_runs, jobs = single_run_family(MAIN_RUN, REQUIRED_RUNS, run_cell, _finished)


def figure_tables(runs: str | Path) -> dict[str, pd.DataFrame]:
    """The stage tables found in ``runs/spectral``: ``coord_check``, ``lr_transfer``, ``width_sweep``."""
    run = Path(runs) / MAIN_RUN
    tables = {name: pd.read_csv(run / f"{name}.csv") for name in ("coord_check", "lr_transfer", "width_sweep")
              if (run / f"{name}.csv").is_file()}
    if not tables:
        raise FileNotFoundError(f"{run} holds none of coord_check.csv, lr_transfer.csv, width_sweep.csv; "
                                f"run: {REQUIRED_RUNS[MAIN_RUN]}")
    return tables
