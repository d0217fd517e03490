#!/usr/bin/env python
"""Spectral parametrization across widths: coordinate check, learning-rate transfer, width sweep.

Examples::

    # default (a few CPU minutes): widths 64..2048 coord check, lr transfer at 64/256/1024, sweep 64..1024
    python experiments/spectral_scaling.py --data-root ../shared/data/mnist --out runs/spectral

    # larger (GPU): more steps, seeds, widths and epochs
    python experiments/spectral_scaling.py --data-root ../shared/data/mnist --out runs/spectral-large \\
        --coord-widths 64 128 256 512 1024 2048 4096 --coord-seeds 3 --transfer-epochs 3 \\
        --sweep-widths 64 128 256 512 1024 2048 4096 --sweep-epochs 20

Three stages, each a table in the run folder (``--stages`` picks some):

    coord_check.csv    mean |output| (l1) and mean |change| (dl1) of every weight layer over the first
                       steps, per width, model (mlp, ensemble, modes) and variant (standard, spectral,
                       spectral_paper = the paper's init c = min(1, sqrt(n_out/n_in)) in every layer)
    coord_slopes.csv   slope of log l1 (and log dl1) against log width at the last step
    lr_transfer.csv    train loss after a short budget against the learning rate, per width
    width_sweep.csv    test accuracy of the spike-and-slab ensemble trained with ONE hyperparameter set
                       at every width (spectral and standard); diagnostics.csv: per-layer spectral norms

Learning rates: the spectral rate is the base rate in spectral units; the standard rate is one
Adam rate for every parameter. ``--coord-lr`` is spectral; the standard coord check uses the
rate that matches it in the hidden layer of the narrowest width (lr / sqrt(min width)).
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

import ensemble_nets as en
from ensemble_nets.models import ModeMLP
from ensemble_nets.analysis.spectral import coord_check, coord_slopes, spectral_diagnostics
from ensemble_nets.training.loop import train_epoch
from ensemble_nets.training.optim import resolve_device
from ensemble_nets.training.runs import read_json, write_atomic, write_json
from ensemble_nets.training.spectral import make_parametrized_optimizer, spectral_init_
from ensemble_nets.cli import positive_float, positive_int

STAGES = ("coord", "transfer", "sweep")
#: variant -> (parametrization, shrink)
VARIANTS = {"standard": ("standard", "not_input"), "spectral": ("spectral", "not_input"),
            "spectral_paper": ("spectral", "all")}


DEVICE = torch.device("cpu")


def make_model(kind: str, width: int, depth: int = 2):
    """784 -> width (x depth) -> 10 with the standard init of raw std 1 (effective 1/sqrt(n_in))."""
    sizes = (784, *([width] * depth), 10)
    if kind == "mlp":
        return en.MLP(sizes, w_std=1.0).to(DEVICE)
    if kind == "modes":  # shared modes, the reference init (Li & Huang 2023), P = 30
        return ModeMLP(sizes, n_modes=30, shared=True).to(DEVICE)
    return en.EnsembleMLP(sizes, m_std=1.0, xi_max=2.0).to(DEVICE)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_atomic(path, frame.to_csv(index=False).encode())


def _parametrize(model, variant: str, lr: float, weight_decay: float = 0.0):
    parametrization, shrink = VARIANTS[variant]
    if parametrization == "spectral":
        spectral_init_(model, shrink=shrink)
    return make_parametrized_optimizer(model, parametrization, lr, "adam", weight_decay=weight_decay, shrink=shrink)


def stage_coord(args, data, out: Path) -> dict:
    x, y = data.x_train[:args.coord_examples], data.y_train[:args.coord_examples]
    frames = []
    for kind in args.models:
        for variant in args.variants:
            parametrization, shrink = VARIANTS[variant]
            lr = args.coord_lr if parametrization == "spectral" else args.coord_lr / math.sqrt(min(args.coord_widths))
            tick = time.perf_counter()
            df = coord_check(lambda w: make_model(kind, w), args.coord_widths, (x, y), n_steps=args.coord_steps,
                             lr=lr, parametrization=parametrization, shrink=shrink, n_seeds=args.coord_seeds,
                             batch_size=args.coord_batch, seed=args.seed)
            frames.append(df.assign(model=kind, variant=variant, lr=lr))
            print(f"[coord] {kind:8s} {variant:15s} lr {lr:.4g}: {time.perf_counter() - tick:.1f} s", flush=True)
    table = pd.concat(frames, ignore_index=True)
    if (out / "coord_check.csv").is_file():  # keep the other models' rows of an earlier call
        earlier = pd.read_csv(out / "coord_check.csv")
        table = pd.concat([earlier[~earlier["model"].isin(args.models)], table], ignore_index=True)
    _write_csv(out / "coord_check.csv", table)
    by_variant = table.drop(columns="parametrization").rename(columns={"variant": "parametrization"})
    slopes = pd.concat([coord_slopes(by_variant, value=value) for value in ("l1", "dl1")], ignore_index=True)
    slopes = slopes.rename(columns={"parametrization": "variant"})
    _write_csv(out / "coord_slopes.csv", slopes)
    print(slopes.pivot_table(index=["model", "variant"], columns=["value", "role"], values="slope").round(3)
          .to_string(), flush=True)
    return {"coord_slopes": slopes.to_dict(orient="records")}


def _train(model, opt, data, epochs: int, batch_size: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    stats = {}
    for _ in range(epochs):
        stats = train_epoch(model, opt, data.x_train, data.y_train, batch_size, generator)
        if not math.isfinite(stats["train_loss"]):
            break
    return stats


def stage_transfer(args, data, out: Path) -> dict:
    pick = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(args.seed))[:args.transfer_examples]
    sub = replace(data, x_train=data.x_train[pick], y_train=data.y_train[pick])
    rows = []
    for kind in args.models:
        for variant in ("standard", "spectral"):
            lrs = args.transfer_lrs if variant == "spectral" else [lr / math.sqrt(min(args.transfer_widths))
                                                                  for lr in args.transfer_lrs]
            for width in args.transfer_widths:
                for lr in lrs:
                    torch.manual_seed(args.seed)
                    model = make_model(kind, width)
                    opt = _parametrize(model, variant, lr)
                    stats = _train(model, opt, sub, args.transfer_epochs, args.batch_size, args.seed)
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


def stage_sweep(args, data, out: Path) -> dict:
    if args.sweep_examples is not None:
        data = replace(data, x_train=data.x_train[:args.sweep_examples], y_train=data.y_train[:args.sweep_examples])
    rows, diagnostics = [], []
    for variant in args.sweep_variants:
        lr = args.sweep_lr if variant == "spectral" else args.sweep_lr / math.sqrt(min(args.sweep_widths))
        for width in args.sweep_widths:
            torch.manual_seed(args.seed)
            model = make_model("ensemble", width)
            opt = _parametrize(model, variant, lr, args.weight_decay)
            before = copy.deepcopy(model)
            tick = time.perf_counter()
            stats = _train(model, opt, data, args.sweep_epochs, args.batch_size, args.seed)
            seconds = time.perf_counter() - tick
            test = (en.evaluate(model, data.x_test, data.y_test, n_networks=args.n_eval_networks, seed=args.seed)
                    if math.isfinite(stats["train_loss"]) else {})
            rows.append({"variant": variant, "width": width, "lr": lr, "epochs": args.sweep_epochs,
                         "train_loss": stats["train_loss"], "train_acc": stats["train_acc"],
                         **{f"test_{k}": v for k, v in test.items()}, "train_seconds": seconds})
            if math.isfinite(stats["train_loss"]):
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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/mnist", help="folder with the official MNIST test set")
    p.add_argument("--out", type=Path, default=Path("runs/spectral"), help="run folder to write")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="stages to run")
    p.add_argument("--models", nargs="+", choices=("mlp", "ensemble", "modes"), default=["mlp", "ensemble", "modes"],
                   help="coord check and lr transfer models (modes: ModeMLP, shared modes, P = 30)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS),
                   help="coord check variants")
    p.add_argument("--coord-widths", nargs="+", type=positive_int, default=[64, 128, 256, 512, 1024, 2048])
    p.add_argument("--coord-steps", type=positive_int, default=5)
    p.add_argument("--coord-seeds", type=positive_int, default=1)
    p.add_argument("--coord-batch", type=positive_int, default=64)
    p.add_argument("--coord-examples", type=positive_int, default=2000)
    p.add_argument("--coord-lr", type=positive_float, default=1.0, help="spectral base Adam rate")
    p.add_argument("--transfer-widths", nargs="+", type=positive_int, default=[64, 256, 1024])
    p.add_argument("--transfer-lrs", nargs="+", type=positive_float, default=[0.0625, 0.25, 1.0, 4.0, 16.0],
                   help="spectral base rates; standard uses these / sqrt(min width)")
    p.add_argument("--transfer-examples", type=positive_int, default=2000)
    p.add_argument("--transfer-epochs", type=positive_int, default=1)
    p.add_argument("--sweep-widths", nargs="+", type=positive_int, default=[64, 128, 256, 512, 1024])
    p.add_argument("--sweep-lr", type=positive_float, default=1.0, help="spectral base Adam rate of the sweep")
    p.add_argument("--sweep-epochs", type=positive_int, default=3)
    p.add_argument("--sweep-variants", nargs="+", choices=("spectral", "standard"), default=["spectral", "standard"])
    p.add_argument("--sweep-examples", type=positive_int, default=None, help="training digits (default: all)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="decoupled decay on m and xi in the sweep")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--n-eval-networks", type=positive_int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto'")
    args = p.parse_args(argv)
    if args.weight_decay < 0:
        p.error(f"--weight-decay must be >= 0, got {args.weight_decay}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = resolve_device(args.device)
    data = en.load_dataset("mnist5k", args.data_root, download=False).to(DEVICE)
    args.out.mkdir(parents=True, exist_ok=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(args.out / f"config-{'-'.join(args.stages)}.json",
               {**config, "dataset": data.name, "test_source": data.test_source})
    summary_path = args.out / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}  # stages may run as separate calls
    stages = {"coord": stage_coord, "transfer": stage_transfer, "sweep": stage_sweep}
    for name in STAGES:
        if name in args.stages:
            tick = time.perf_counter()
            summary.update(stages[name](args, data, args.out))
            summary[f"{name}_seconds"] = time.perf_counter() - tick
            summary = {**(read_json(summary_path) if summary_path.is_file() else {}), **summary}
            write_json(summary_path, summary)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
