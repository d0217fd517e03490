#!/usr/bin/env python
"""The mean-field noise sources side by side: ``noise="torch"`` (``torch.randn``) against ``noise="counter"``.

Timing (default): for each shape in ``--shapes`` and each thread count in ``--threads``, in one process,
interleaved, fastest of ``--repeats`` blocks of ``--calls`` calls:

- ``draw``: fresh standard normals (``torch.randn`` against ``layers.noise.standard_normal``);
- ``pass``: the whole noisy output of a layer, ``noisy_output_`` (``randn`` and three torch passes against
  the counter source's one C pass), from fresh copies of G and S (the copy's time is measured alone and
  subtracted).

Control (``--control``): the default network trained for ``--epochs`` with the fused step, once per source
and seed, sampled-network test accuracy (the same numbers would refute a bias in the counter noise):

    python benchmarks/bench_noise.py --json benchmarks/results/noise_cpu.json
    python benchmarks/bench_noise.py --control --seeds 0 1 2 --epochs 10 --data-root ../shared/data/mnist \\
        --json benchmarks/results/noise_control.json
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import ensemble_nets as en
from ensemble_nets.layers import NOISE_SOURCES
from ensemble_nets.layers.noise import noisy_output_, standard_normal
from ensemble_nets.training.runs import write_json

#: (batch x width) of a 784-400-400-10 layer at batch 500, and the first conv output of the CNN at batch 100.
SHAPES = {"linear 500x400": (500, 400), "conv 100x16x24x24": (100, 16, 24, 24)}


def _fastest(fn, calls: int, repeats: int) -> float:
    """Seconds per call, fastest block of ``calls`` calls over ``repeats`` blocks."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - tick) / calls)
    return best


def time_sources(shapes, threads_list, calls: int, repeats: int) -> list[dict]:
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        for name in shapes:
            shape = SHAPES[name]
            mean, s = torch.randn(shape), torch.rand(shape)
            work_mean, work_s = mean.clone(), s.clone()

            def copy():
                work_mean.copy_(mean)
                work_s.copy_(s)

            copy_s = _fastest(copy, calls, repeats)
            row = {"shape": name, "threads": threads, "copy_ms": copy_s * 1e3}
            for source in NOISE_SOURCES:
                row[f"draw_{source}_ms"] = 1e3 * _fastest(lambda src=source: standard_normal(mean, src), calls,
                                                           repeats)

                def full(src=source):
                    copy()
                    noisy_output_(work_mean, work_s, floor=1e-8, noise=src)

                row[f"pass_{source}_ms"] = 1e3 * (_fastest(full, calls, repeats) - copy_s)
            rows.append(row)
            print(f"{threads} thread(s) {name:<20} draw: torch {row['draw_torch_ms']:.3f} ms, counter "
                  f"{row['draw_counter_ms']:.3f} ms | pass: torch {row['pass_torch_ms']:.3f} ms, counter "
                  f"{row['pass_counter_ms']:.3f} ms", flush=True)
    return rows


def control(seeds, epochs: int, data_root: str) -> list[dict]:
    from ensemble_nets.protocols.mnist import train_run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in NOISE_SOURCES:
            for seed in seeds:
                config = en.ExperimentConfig.from_preset("default", data_root=data_root, download=False,
                                                         noise=source, train={"epochs": epochs, "seed": seed,
                                                                              "fused_step": True})
                summary = train_run(config, Path(tmp) / f"{source}-{seed}", progress=False)
                sampled = summary["test_acc_sampled"]
                rows.append({"noise": source, "seed": seed, "sampled_mean": sampled["mean"],
                             "sampled_std": sampled["std"],
                             "mean_field_final": summary["test_acc_mean_field"]["final"]})
                print(f"noise {source:<8} seed {seed}: sampled networks {sampled['mean']:.4f} "
                      f"+- {sampled['std']:.4f}", flush=True)
    for source in NOISE_SOURCES:
        values = [r["sampled_mean"] for r in rows if r["noise"] == source]
        print(f"noise {source:<8} mean over seeds {statistics.mean(values):.4f}")
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--calls", type=int, default=50, help="calls per timed block")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks; the fastest is kept")
    p.add_argument("--control", action="store_true", help="train the default network with each source instead")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--data-root", default="../shared/data/mnist")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.control:
        result = {"mode": "control", "epochs": args.epochs, "rows": control(args.seeds, args.epochs, args.data_root)}
    else:
        result = {"mode": "timing", "torch": torch.__version__,
                  "rows": time_sources(args.shapes, args.threads, args.calls, args.repeats)}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
