#!/usr/bin/env python
"""Zero-shot routing on permuted MNIST domains against the init gain (docs/gated.md).

Wraps :func:`ensemble_nets.protocols.zero_shot.zero_shot_sweep`: M input and M output domains
(pixel permutations of MNIST), each input domain trained with K output domains, one gated deep
linear network; prints per gain the mean and std over seeds of the final train loss and the
accuracy on trained pairs (training and test images) and on held-out pairs (zero-shot, test
images). Run it with one thread on a shared CPU. Example (the table of docs/gated.md)::

    OMP_NUM_THREADS=1 python experiments/zero_shot.py --data-root ../shared/data/mnist \\
        --gains 0.05 0.1 0.3 0.5 1.0 1.5 2.0 2.5 --seeds 0 1 2 --steps 600
"""
from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
import torch

from ensemble_nets.data import load_dataset
from ensemble_nets.protocols.zero_shot import zero_shot_sweep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/mnist", help="folder of the official MNIST test set")
    p.add_argument("--gains", type=float, nargs="+", default=[0.05, 0.2, 0.5, 1.0, 2.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=300, help="full-batch gradient steps")
    p.add_argument("--domains", type=int, default=4, help="M")
    p.add_argument("--trained", type=int, default=2, help="K output domains trained per input domain")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--n-train", type=int, default=5000, help="training digits (of the 5,000 embedded)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k", args.data_root, download=False)
    started = time.time()
    frame = zero_shot_sweep(data, gains=tuple(args.gains), seeds=tuple(args.seeds), n_steps=args.steps,
                            n_domains=args.domains, n_trained=args.trained, hidden=args.hidden, n_train=args.n_train)
    pd.set_option("display.width", 250)
    print(f"M = {args.domains}, K = {args.trained}, hidden {args.hidden}, {args.n_train} training digits, "
          f"{data.n_test} test digits ({data.note}), {args.steps} steps; {time.time() - started:.0f} s")
    columns = ["train_loss", "acc_trained_train", "acc_trained", "acc_zero_shot"]
    print(frame.groupby("gain")[columns].agg(["mean", "std"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
