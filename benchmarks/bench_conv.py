#!/usr/bin/env python
"""Time per training epoch: the LeNet-style CNN ensemble against the plain CNN, side by side.

One process, same data (the 5,000 embedded digits as 1x28x28 images), same
architecture (models/cnn.py: two 5x5 convolutions with 2x2 pooling, two
linear layers), batch 100, Adam with the projection after every step
(``train_epoch``, the loop ``en.train`` runs). The plain CNN is the same
network with deterministic weights (``ScaledConv2d`` / ``ScaledLinear``): the
ensemble's mean-field pass does two convolutions per layer forward (mean and
variance) and their backward, plus the elementwise moments of pi, m, xi.
Epochs of the two models are interleaved and repeated; the table gives the
fastest and median epoch of each and the median of the per-repeat ratios
(paired: both timed under the same load, which matters on a shared machine).

    python benchmarks/bench_conv.py                    # CPU, or CUDA when present
    python benchmarks/bench_conv.py --device cpu --threads 1 --repeats 5 --json out.json

The issue's target: ensemble epoch <= 2.5x the plain CNN's.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import ensemble_nets as en
from ensemble_nets.models import CNN, EnsembleCNN
from ensemble_nets.training.loop import train_epoch
from ensemble_nets.training.optim import make_optimizer, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/mnist", help="MNIST IDX folder (only the test set is read)")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per model (after one warm-up)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--n-train", type=int, default=5000, help="training examples per epoch")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads on CPU (0: torch's default)")
    p.add_argument("--json", help="also write every timing to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = en.load_dataset("mnist5k", args.data_root, download=False, shape="image").subset(n_train=args.n_train)
    x, y = data.x_train.to(device), data.y_train.to(device)

    runners = {}
    for name, build in (("plain CNN", CNN), ("ensemble CNN", EnsembleCNN)):
        torch.manual_seed(0)
        model = build().to(device)
        optimizer = make_optimizer(model, lr=0.03)
        generator = torch.Generator().manual_seed(0)
        runners[name] = (lambda m=model, o=optimizer, g=generator: train_epoch(m, o, x, y, args.batch_size, g))
    for run in runners.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            _sync(device)
            tick = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - tick)
    ratios = [e / p for e, p in zip(times["ensemble CNN"], times["plain CNN"])]
    result = {
        "device": str(device), "threads": torch.get_num_threads(), "n_train": x.shape[0],
        "batch_size": args.batch_size, "repeats": args.repeats, "torch": torch.__version__,
        "seconds": times, "ratio_median": statistics.median(ratios),
        "ratio_of_fastest": min(times["ensemble CNN"]) / min(times["plain CNN"]),
    }
    print(f"device {device}, {torch.get_num_threads()} threads, {x.shape[0]} images, batch {args.batch_size}, "
          f"{args.repeats} repeats")
    print(f"{'model':<14}{'fastest s':>11}{'median s':>10}")
    for name, values in times.items():
        print(f"{name:<14}{min(values):>11.3f}{statistics.median(values):>10.3f}")
    print(f"ensemble / plain: median of paired ratios {result['ratio_median']:.2f}, "
          f"ratio of fastest epochs {result['ratio_of_fastest']:.2f} (target <= 2.5)")
    if args.json:
        from ensemble_nets.training.runs import write_json

        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
