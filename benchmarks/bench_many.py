#!/usr/bin/env python
"""K runs trained at once (train_many's stacked epoch) against K runs one after another (train's epoch).

Two models, as in issue 11: a 784-50-50-10 spike-and-slab ensemble and a
784-25-25-10 mode decomposition network (P = 8 shared modes), batch 100, on
the embedded digits (4,000 of them for training unless --data-root holds the
official test set, then all 5,000); Adam with decoupled decay and the projection after
every step, as the trainers do. For each K in ``--ks`` one "sequential"
measurement runs one training epoch of each of K runs with
:func:`ensemble_nets.training.loop.train_epoch` (K optimizers, K models), and
one "stacked" measurement runs one epoch of all K at once with
:func:`ensemble_nets.training.many.train_epoch_many`. The two are interleaved
(order alternating between repeats) in one process, so a machine shared with
other work loads both alike; the table gives the fastest of ``--repeats`` and
the median of the per-repeat ratios (paired). Evaluation is left out: it is
the same per-run function in both trainers.

    throughput = K * n_train / epoch seconds        (examples per second)
    ratio      = sequential seconds / stacked seconds
    CPU ratio  = the same in CPU time of the process (robust when other jobs share the cores)

Memory per run: bytes kept for the backward pass in one step (saved tensors,
by ``torch.autograd.graph.saved_tensors_hooks``) plus parameters and Adam
state, divided by K for the stack; on CUDA also the peak allocated memory of
one epoch over K.

    python benchmarks/bench_many.py                       # CPU (or CUDA when present)
    python benchmarks/bench_many.py --device cuda --ks 1 8 32 128
    python benchmarks/bench_many.py --ks 1 8 --repeats 2 --json /tmp/many.json
    python benchmarks/bench_many.py --device cpu --threads 1   # a 2-core machine shared with other jobs
    python benchmarks/bench_many.py --device cpu --threads 1 --compile --json benchmarks/results/many_cpu_compiled.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import ensemble_nets as en
from ensemble_nets.models import EnsembleCNN
from ensemble_nets.training.loop import train_epoch
from ensemble_nets.training.many import train_epoch_many
from ensemble_nets.training.optim import make_optimizer, parameter_groups, resolve_device
from ensemble_nets.training.runs import write_json
from ensemble_nets.training.stacked import stack_models
from ensemble_nets.training.stacked_adam import StackedAdam

MODELS = {
    "ensemble 784-50-50-10": lambda: en.EnsembleMLP((784, 50, 50, 10)),
    "mdl 784-25-25-10 P=8": lambda: en.ModeMLP((784, 25, 25, 10), 8),
    "ensemble cnn": lambda: EnsembleCNN(),  # models/cnn.py, on 1x28x28 images; not in the default set
}
#: The models timed when --models is not given (the issue's two).
DEFAULT_MODELS = ("ensemble 784-50-50-10", "mdl 784-25-25-10 P=8")
BATCH, LR = 100, 0.01


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _saved_bytes(step) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total


def _models(make, k, device):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(make().to(device))
    return out


def sequential(make, k, data, device, compiled=False):
    """One epoch of each of K runs, one after another (train's epoch function); seconds and bytes per run."""
    models = _models(make, k, device)
    if compiled:  # the same fused kernels as the stack: gbp="compiled" in every spike-and-slab layer
        for model in models:
            for layer in model.modules():
                if hasattr(layer, "gbp"):
                    layer.gbp = "compiled"
    optimizers = [make_optimizer(m, lr=LR) for m in models]
    generators = [torch.Generator().manual_seed(s) for s in range(k)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    tick, cpu_tick = time.perf_counter(), time.process_time()
    for model, optimizer, generator in zip(models, optimizers, generators):
        train_epoch(model, optimizer, data.x_train, data.y_train, BATCH, generator)
    _sync(device)
    seconds, cpu_seconds = time.perf_counter() - tick, time.process_time() - cpu_tick
    state = sum(p.numel() * p.element_size() * 3 for p in models[0].parameters())  # params + 2 Adam moments
    xb, yb = data.x_train[:BATCH], data.y_train[:BATCH]
    saved = _saved_bytes(lambda: torch.nn.functional.cross_entropy(models[0](xb), yb).backward())
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return seconds, state + saved, peak, cpu_seconds


def stacked(make, k, data, device, compiled=False):
    """One epoch of K runs at once (train_many's epoch function)."""
    models = _models(make, k, device)
    stack = stack_models(models, compiled=compiled)
    decays = []
    for model in models:
        name_of = {id(p): n for n, p in model.named_parameters()}
        decays.append({name_of[id(p)]: g["weight_decay"] for g in parameter_groups(model, weight_decay=1e-4)
                       for p in g["params"]})
    adam = StackedAdam(stack, decays, [True] * k)
    shuffles = [torch.Generator().manual_seed(s) for s in range(k)]
    noises = [torch.Generator(device=device).manual_seed(s) for s in range(k)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    tick, cpu_tick = time.perf_counter(), time.process_time()
    train_epoch_many(stack, adam, data.x_train, data.y_train, BATCH, shuffles, noises, [LR] * k)
    _sync(device)
    seconds, cpu_seconds = time.perf_counter() - tick, time.process_time() - cpu_tick
    state = sum(p.numel() * p.element_size() * 3 for p in stack.params.values())
    index = torch.arange(BATCH, device=device).expand(k, BATCH)
    saved = _saved_bytes(lambda: torch.nn.functional.cross_entropy(
        stack(data.x_train[index], noises).flatten(0, 1), data.y_train[index].flatten()).backward())
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return seconds, (state + saved) / k, None if peak is None else peak / k, cpu_seconds


def curve_frame(paths) -> "pd.DataFrame":
    """``bench_many`` results as one table: model, K, ratio (fastest), paired ratio, and the file it came from."""
    import pandas as pd

    rows = []
    for path in paths:
        result = json.loads(Path(path).read_text())
        if "rows" not in result:
            raise SystemExit(f"{path} is not a bench_many result (no 'rows' key)")
        threads = result.get("meta", {}).get("threads")
        rows += [{"file": Path(path).name, "model": r["model"] + (" (compiled)" if r.get("compiled") else ""),
                  "threads": threads, "K": r["K"], "ratio": r["ratio_min"], "paired": r["ratio_median_paired"]}
                 for r in result["rows"]]
    return pd.DataFrame(rows)


def plot_curves(frame, *, ax=None, target: float = 2.0):
    """Stacked / one-after-another throughput against K, a line per model and file; the target drawn. Draws only."""
    from ensemble_nets.plotting.style import subplots

    if ax is None:
        _, ax = subplots(1, 1, width=1.0, aspect=1.0)
    for (path, model), rows in frame.groupby(["file", "model"], sort=False):
        threads = rows["threads"].iloc[0] if "threads" in rows else None
        where = f"{threads} thread{'s' if threads != 1 else ''}, " if threads else ""
        ax.plot(rows["K"], rows["ratio"], marker="o", label=f"{model} ({where}{path})")
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.axhline(target, color="r", lw=1, ls=":", label=f"target {target:g}x at K = 8")
    ks = sorted(frame["K"].unique())
    ax.set(xscale="log", xticks=ks, xlabel="K runs", ylabel="throughput, stacked / one after another",
           ylim=(0.5, frame["ratio"].max() * 1.6))
    ax.set_xticklabels([str(k) for k in ks])
    ax.legend(fontsize=5, loc="upper left", ncol=1, framealpha=0.9)
    return ax


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None, help="only used for its test set; training uses the 5,000 digits")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(DEFAULT_MODELS))
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; 1 is the robust "
                                                   "choice on a machine shared with other jobs)")
    p.add_argument("--compile", action="store_true", help="stacked runs with compile=True and sequential ones with "
                                                            "gbp='compiled' (torch.compile'd elementwise kernels; "
                                                            "compile time is not counted)")
    p.add_argument("--json", type=Path, help="default: benchmarks/results/many_<device>.json")
    p.add_argument("--plot", nargs="+", type=Path, metavar="JSON", help="draw these results to --out, then stop")
    p.add_argument("--out", type=Path, default=Path("figures/many_k_curve.png"),
                   help="--plot: the figure file (.png; a .pdf beside it)")
    args = p.parse_args(argv)
    if args.plot:
        from ensemble_nets.plotting import style

        style.use()
        paths = style.save(plot_curves(curve_frame(args.plot)), args.out.parent, args.out.stem)
        print(f"wrote {', '.join(map(str, paths))}")
        return {"out": str(paths[0])}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    flat = en.load_dataset("mnist5k", args.data_root, download=False).to(device)
    rows = []
    for name in args.models:
        make = MODELS[name]
        data = flat if "cnn" not in name else en.load_dataset("mnist5k", args.data_root, download=False,
                                                              shape="image").to(device)
        tick = time.perf_counter()
        stacked(make, 1, data, device, args.compile)  # warm-up (kernels, allocator; compilation)
        warmup_s = time.perf_counter() - tick
        sequential(make, 1, data, device, args.compile)
        stacked(make, 2, data, device, args.compile)  # a second shape: dynamic-shape recompilation happens here
        for k in args.ks:
            seq, stk, ratios = [], [], []
            for repeat in range(args.repeats):
                order = (sequential, stacked) if repeat % 2 == 0 else (stacked, sequential)
                out = {fn.__name__: fn(make, k, data, device, args.compile) for fn in order}
                seq.append(out["sequential"])
                stk.append(out["stacked"])
                ratios.append(out["sequential"][0] / out["stacked"][0])
            t_seq, t_stk = min(s[0] for s in seq), min(s[0] for s in stk)
            cpu_seq, cpu_stk = min(s[3] for s in seq), min(s[3] for s in stk)
            row = {"model": name, "K": k, "compiled": args.compile, "warmup_s": warmup_s, "seq_s": t_seq,
                   "stacked_s": t_stk,
                   "seq_examples_per_s": k * data.n_train / t_seq, "stacked_examples_per_s": k * data.n_train / t_stk,
                   "ratio_min": t_seq / t_stk, "ratio_median_paired": statistics.median(ratios),
                   "seq_cpu_s": cpu_seq, "stacked_cpu_s": cpu_stk, "ratio_cpu": cpu_seq / cpu_stk,
                   "bytes_per_run_seq": seq[0][1], "bytes_per_run_stacked": stk[0][1],
                   "peak_bytes_per_run_seq": seq[0][2], "peak_bytes_per_run_stacked": stk[0][2],
                   "all_seq_s": [s[0] for s in seq], "all_stacked_s": [s[0] for s in stk]}
            rows.append(row)
            print(f"{name:24s} K={k:3d}  seq {t_seq:7.3f} s  stacked {t_stk:7.3f} s  ratio {row['ratio_min']:5.2f} "
                  f"(paired median {row['ratio_median_paired']:5.2f}, CPU time {row['ratio_cpu']:5.2f})  MB/run seq {seq[0][1] / 2**20:6.2f} "
                  f"stacked {stk[0][1] / 2**20:6.2f}", flush=True)
    meta = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
            "batch": BATCH, "n_train": flat.n_train, "repeats": args.repeats,
            "note": "one training epoch per measurement, no evaluation; fastest of the repeats"}
    suffix = "_compiled" if args.compile else ""
    out = args.json or Path(__file__).parent / "results" / f"many_{device.type}{suffix}.json"
    write_json(out, {"meta": meta, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
