# SPDX-License-Identifier: MIT
"""Spectral parametrization across widths (DESIGN.md 4.1): coordinate check, learning-rate transfer, width sweep.

Three stages (``SpectralConfig.stages`` picks some). The coordinate check and the width sweep write
tables into one run folder ``out`` (``runs/spectral``)::

    coord_check.csv    mean |output| (l1) and mean |change| (dl1) of every weight layer over the first
                       steps, per width, model (mlp, ensemble, modes) and variant (standard, spectral,
                       spectral_paper = the paper's init c = min(1, sqrt(n_out/n_in)) in every layer)
    coord_slopes.csv   slope of log l1 (and log dl1) against log width at the last step
    width_sweep.csv    test accuracy of the spike-and-slab ensemble trained with ONE hyperparameter set
                       at every width (spectral and standard); diagnostics.csv: per-layer spectral norms

The learning-rate transfer is a grid of independent runs (:func:`transfer_cells`, one per model,
variant, width, rate and seed: ``transfer_steps`` Adam steps of ``transfer_batch`` digits) run by
:func:`~ensemble_nets.training.run_grid` into the sibling folder ``<out>-transfer``
(``runs/spectral-transfer``), resumable cell by cell; each cell folder holds ``metrics.csv`` (the
loss curve) and ``summary.json`` (``final_loss``: the mean mini-batch loss of the last
``transfer_final_window`` steps). :func:`transfer_tables` reads the grid back.

Learning rates: the spectral rate is the base rate in spectral units; the standard rate is one
Adam rate for every parameter. The coordinate check and the sweep use the one that matches the
spectral rate in the hidden layer of the narrowest width (:func:`standard_lr`: ``lr / sqrt(min(widths))``);
the transfer grid has its own standard rates, ``transfer_standard_lrs`` (None: that mapping).
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
from ensemble_nets.training.evaluate import evaluate
from ensemble_nets.training.grid import run_grid
from ensemble_nets.training.loop import train_epoch
from ensemble_nets.training.optim import resolve_device
from ensemble_nets.training.runs import SUMMARY, read_json, write_atomic, write_json
from ensemble_nets.training.spectral import make_parametrized_optimizer, spectral_init_, train_steps

__all__ = ["BUDGETS", "MAIN_RUN", "REQUIRED_RUNS", "STAGES", "SpectralConfig", "TRANSFER_RUN", "VARIANTS",
           "figure_tables", "jobs", "make_model", "missing_runs", "run", "run_cell", "stage_lr", "standard_lr",
           "transfer_cell", "transfer_cells", "transfer_dir", "transfer_lrs", "transfer_tables"]

STAGES = ("coord", "transfer", "sweep")
#: variant -> (parametrization, shrink)
VARIANTS = {"standard": ("standard", "not_input"), "spectral": ("spectral", "not_input"),
            "spectral_paper": ("spectral", "all")}
MAIN_RUN = "spectral"
#: The learning-rate transfer grid, beside the main run (:func:`transfer_dir`).
TRANSFER_RUN = f"{MAIN_RUN}-transfer"
#: Run folders (relative to the runs folder) the figures need -> the command that makes them.
REQUIRED_RUNS = {MAIN_RUN: "python experiments/spectral_scaling.py --data-root ../shared/data/mnist "
                           f"--out runs/{MAIN_RUN} --stages coord sweep",
                 TRANSFER_RUN: "python experiments/spectral_scaling.py --data-root ../shared/data/mnist "
                               f"--out runs/{MAIN_RUN} --stages transfer   # writes runs/{TRANSFER_RUN}"}


#: Spectral base rates of the transfer grid (factor 2 apart) and the standard Adam rates.
TRANSFER_LRS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
TRANSFER_STANDARD_LRS = (2.0 ** -8, 2.0 ** -7, 2.0 ** -6, 2.0 ** -5, 2.0 ** -4, 2.0 ** -3, 2.0 ** -2)


@dataclass(frozen=True)
class SpectralConfig:
    """The three stages' knobs; the defaults are the reference (the paper budget): coord and sweep take
    minutes, the transfer grid about half an hour of one CPU core."""

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
    transfer_models: tuple = field(default=("ensemble",), metadata={
        "choices": ("mlp", "ensemble", "modes"), "help": "models of the lr transfer grid"})
    transfer_widths: tuple = field(default=(64, 128, 256, 512, 1024, 2048), metadata={"type": positive_int})
    transfer_lrs: tuple = field(default=TRANSFER_LRS, metadata={
        "type": positive_float, "help": "spectral base rates of the lr transfer"})
    transfer_standard_lrs: tuple | None = field(default=TRANSFER_STANDARD_LRS, metadata={
        "type": positive_float, "help": "standard Adam rates (None: transfer_lrs / sqrt(min width))"})
    transfer_steps: int = field(default=200, metadata={"type": positive_int, "help": "Adam steps per transfer run"})
    transfer_batch: int = field(default=64, metadata={"type": positive_int})
    transfer_seeds: int = field(default=3, metadata={"type": positive_int, "help": "seeds per transfer point"})
    transfer_examples: int = field(default=5000, metadata={"type": positive_int,
                                                           "help": "training digits the transfer draws from"})
    transfer_final_window: int = field(default=20, metadata={
        "type": positive_int, "help": "final_loss = mean mini-batch loss over this many last steps"})
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
        if self.transfer_final_window > self.transfer_steps:
            raise ValueError(f"transfer_final_window {self.transfer_final_window} exceeds transfer_steps "
                             f"{self.transfer_steps}; lower it")


#: The figure budgets: ``quick`` fits a few minutes of 2 CPU cores, ``paper`` is the reference.
BUDGETS = {
    "quick": SpectralConfig(coord_widths=(64, 128, 256, 512), coord_examples=1000, transfer_widths=(64, 128, 256),
                            transfer_lrs=(0.5, 1.0, 2.0), transfer_standard_lrs=(2.0 ** -5, 2.0 ** -4, 2.0 ** -3),
                            transfer_steps=60, transfer_seeds=1, transfer_examples=2000, transfer_final_window=10,
                            sweep_widths=(64, 128, 256), sweep_epochs=1, sweep_examples=2000, n_eval_networks=2),
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


def _parametrize(model, variant: str, lr: float, weight_decay: float = 0.0, fused: bool | None = None):
    parametrization, shrink = VARIANTS[variant]
    if parametrization == "spectral":
        spectral_init_(model, shrink=shrink)
    return make_parametrized_optimizer(model, parametrization, lr, "adam", weight_decay=weight_decay, shrink=shrink,
                                       fused=fused)


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
    slopes = pd.concat([coord_slopes(by_variant, value=value) for value in ("l1", "dl1", "noise", "dnoise")
                        if by_variant[value].notna().any()], ignore_index=True)
    slopes = slopes.rename(columns={"parametrization": "variant"})
    _write_csv(out / "coord_slopes.csv", slopes)
    print(slopes.pivot_table(index=["model", "variant"], columns=["value", "role"], values="slope").round(3)
          .to_string(), flush=True)
    return {"coord_slopes": slopes.to_dict(orient="records")}


def transfer_lrs(config: SpectralConfig, variant: str) -> tuple[float, ...]:
    """The transfer grid's rates of ``variant``: base rates (spectral) or Adam rates (standard)."""
    if VARIANTS[variant][0] == "spectral":
        return tuple(config.transfer_lrs)
    if config.transfer_standard_lrs is not None:
        return tuple(config.transfer_standard_lrs)
    return tuple(standard_lr(lr, config.transfer_widths) for lr in config.transfer_lrs)


def transfer_dir(out: str | Path) -> Path:
    """The transfer grid's folder beside the run folder ``out``: ``<out>-transfer``."""
    out = Path(out)
    return out.with_name(f"{out.name}-transfer")


def transfer_cells(config: SpectralConfig) -> list[dict]:
    """The transfer grid, seed by seed (all of seed 0 first, each seed from narrow to wide): one cell per run.

    A cell is a JSON-able dict: ``name`` (e.g. ``ensemble-spectral-w256-lr1-s0``), ``model``,
    ``variant``, ``width``, ``lr``, ``seed`` and the options :func:`transfer_cell` needs.
    """
    common = {"data_root": config.data_root, "steps": config.transfer_steps, "batch_size": config.transfer_batch,
              "examples": config.transfer_examples, "final_window": config.transfer_final_window,
              "data_seed": config.seed, "threads": config.threads, "device": config.device}
    cells = []
    for seed in range(config.seed, config.seed + config.transfer_seeds):
        for width in config.transfer_widths:
            for kind in config.transfer_models:
                for variant in ("standard", "spectral"):
                    for lr in transfer_lrs(config, variant):
                        cells.append({"name": f"{kind}-{variant}-w{width}-lr{lr:g}-s{seed}", "model": kind,
                                      "variant": variant, "width": width, "lr": lr, "seed": seed, **common})
    return cells


def transfer_cell(cell: dict, cell_dir: str | Path) -> dict:
    """One transfer run (the ``fn`` of :func:`~ensemble_nets.training.run_grid`).

    ``torch.manual_seed(seed)``, then the model (:func:`make_model`) with the variant's init and
    rates (fused AdamW, no decay), ``steps`` steps on ``batch_size`` of ``examples`` embedded digits
    (the same digits for every cell). Writes ``metrics.csv`` (``step, loss``: every step's
    mini-batch loss) in ``cell_dir``. Returns ``final_loss`` (mean of the last ``final_window``
    losses; None when the loss went non-finite, then ``diverged`` is True), ``steps_done``, ``seconds``.
    """
    if cell.get("threads"):
        torch.set_num_threads(int(cell["threads"]))
    device = resolve_device(cell["device"])
    data = load_dataset("mnist5k", cell["data_root"], download=False)
    pick = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(cell["data_seed"]))
    pick = pick[:cell["examples"]]
    x, y = data.x_train[pick].to(device), data.y_train[pick].to(device)
    torch.manual_seed(cell["seed"])
    model = make_model(cell["model"], cell["width"], device=device)
    opt = _parametrize(model, cell["variant"], cell["lr"], fused=True)
    tick = time.perf_counter()
    losses = train_steps(model, opt, x, y, n_steps=cell["steps"], batch_size=cell["batch_size"],
                         generator=torch.Generator().manual_seed(cell["seed"]))
    seconds = time.perf_counter() - tick
    _write_csv(Path(cell_dir) / "metrics.csv", pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses}))
    diverged = len(losses) < cell["steps"] or not math.isfinite(losses[-1])
    final = None if diverged else sum(losses[-cell["final_window"]:]) / cell["final_window"]
    return {"final_loss": final, "diverged": diverged, "steps_done": len(losses), "seconds": seconds}


def transfer_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The transfer grid under ``folder`` read back: ``lr_transfer`` (a row per finished run: model,
    variant, width, lr, seed, final_loss (inf when diverged), diverged, steps_done, seconds) and
    ``transfer_curves`` (model, variant, width, lr, seed, step, loss)."""
    folder = Path(folder)
    rows, curves = [], []
    keys = ("model", "variant", "width", "lr", "seed")
    for path in sorted(folder.glob(f"*/{SUMMARY}")):
        summary = read_json(path)
        cell, result = summary["cell"], summary.get("result", {})
        if summary.get("status", "done") != "done" or "final_loss" not in result:
            continue
        final = result["final_loss"]
        rows.append({**{k: cell[k] for k in keys}, "final_loss": math.inf if final is None else final,
                     "diverged": bool(result["diverged"]), "steps_done": result["steps_done"],
                     "seconds": result["seconds"], "steps": cell["steps"]})
        metrics = path.parent / "metrics.csv"
        if metrics.is_file():
            curves.append(pd.read_csv(metrics).assign(**{k: cell[k] for k in keys}))
    if not rows:
        raise FileNotFoundError(f"no finished transfer run under {folder}; run: {REQUIRED_RUNS[TRANSFER_RUN]}")
    table = pd.DataFrame(rows).sort_values(list(keys), ignore_index=True)
    curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[*keys, "step", "loss"])
    return {"lr_transfer": table, "transfer_curves": curves}


def stage_transfer(config: SpectralConfig, data, out: Path, device) -> dict:
    """The transfer grid (:func:`transfer_cells`) into :func:`transfer_dir` ``(out)``, in this process; resumable.

    Returns ``lr_transfer_best``: per model, variant and width, the rate of the lowest seed-mean final loss.
    """
    from ensemble_nets.analysis.spectral import transfer_optima

    run_grid(transfer_cells(config), transfer_cell, transfer_dir(out), backend="serial")
    table = transfer_tables(transfer_dir(out))["lr_transfer"]
    _write_csv(out / "lr_transfer.csv", table)
    best = transfer_optima(table)
    print(best.to_string(), flush=True)
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


MAIN_STAGES = ("coord", "sweep")


def _finished(run_dir: Path) -> bool:
    """Whether the main run has run the coordinate check and the sweep (one that has not is rerun whole)."""
    summary = Path(run_dir) / "summary.json"
    return summary.is_file() and all(f"{stage}_seconds" in read_json(summary) for stage in MAIN_STAGES)


def _transfer_started(folder: Path) -> bool:
    return Path(folder).is_dir() and any(Path(folder).glob(f"*/{SUMMARY}"))


def missing_runs(runs: str | Path) -> dict[str, str]:
    """The figures' run folders, with their commands, that are missing: the main run while it lacks a stage,
    the transfer grid while none of its cells is finished."""
    runs = Path(runs)
    missing = {}
    if not _finished(runs / MAIN_RUN):
        missing[MAIN_RUN] = REQUIRED_RUNS[MAIN_RUN]
    if not _transfer_started(runs / TRANSFER_RUN):
        missing[TRANSFER_RUN] = REQUIRED_RUNS[TRANSFER_RUN]
    return missing


def jobs(runs: str | Path, config: SpectralConfig) -> list:
    """What the missing folders need: the main run (coordinate check and sweep, one cell) and the
    transfer grid (one cell per run, :func:`transfer_cells`; run_grid skips finished cells)."""
    from ensemble_nets.protocols.figures import Job, single_run_job

    runs = Path(runs)
    missing, out = missing_runs(runs), []
    if MAIN_RUN in missing:
        main = replace(config, stages=MAIN_STAGES)
        out.append(single_run_job(runs, MAIN_RUN, run_cell, runs / MAIN_RUN, main,
                                  lambda cell: _finished(cell["run_dir"])))
    if TRANSFER_RUN in missing:
        out.append(Job(runs / TRANSFER_RUN, transfer_cell, transfer_cells(config)))
    return out


def figure_tables(runs: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of ``runs/spectral`` (``coord_check``, ``width_sweep``) and of the transfer grid
    ``runs/spectral-transfer`` (``lr_transfer``, ``transfer_curves``, :func:`transfer_tables`)."""
    run = Path(runs) / MAIN_RUN
    tables = {name: pd.read_csv(run / f"{name}.csv") for name in ("coord_check", "width_sweep")
              if (run / f"{name}.csv").is_file()}
    if _transfer_started(Path(runs) / TRANSFER_RUN):
        tables.update(transfer_tables(Path(runs) / TRANSFER_RUN))
    if not tables:
        raise FileNotFoundError(f"{run} holds none of coord_check.csv, width_sweep.csv and {Path(runs) / TRANSFER_RUN} "
                                f"no transfer run; run: {REQUIRED_RUNS[MAIN_RUN]} and {REQUIRED_RUNS[TRANSFER_RUN]}")
    return tables
