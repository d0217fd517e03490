#!/usr/bin/env python
"""Train a spike-and-slab ensemble (or the plain baseline) on MNIST and write a run folder.

Examples::

    # default: embedded 5,000 digits (full MNIST if found), tested on the official test set
    python experiments/run_mnist.py --data-root ../shared/data/mnist

    # the plain baseline with the same trainer and budget
    python experiments/run_mnist.py --data-root ../shared/data/mnist --model mlp

    # the 2020 reference protocol of Li & Huang (60 of its 200 epochs)
    python experiments/run_mnist.py --data-root ../shared/data/mnist --protocol reference --epochs 60

    # the Bayesian objective: ELBO with a spike-and-slab prior (KL and likelihood logged apart)
    python experiments/run_mnist.py --data-root ../shared/data/mnist --objective elbo --out runs/default-elbo-s0

    # mode decomposition learning with P = 30 shared modes (the reference MDL protocol: --protocol mdl-reference)
    python experiments/run_mnist.py --data-root ../shared/data/mnist --model mdl --n-modes 30 --lr 0.01

    # the LeNet-style CNN ensemble on images, and its plain baseline (same trainer and budget)
    python experiments/run_mnist.py --data-root ../shared/data/mnist --protocol cnn
    python experiments/run_mnist.py --data-root ../shared/data/mnist --protocol cnn-plain

    # continue an interrupted run (its stored configuration; only --epochs and --device may change)
    python experiments/run_mnist.py --out runs/default-ensemble-s0 --resume

The run folder holds config.json, metrics.csv (one row per epoch),
checkpoint.pt and summary.json (best and final accuracies, category fractions).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ensemble_nets as en
from ensemble_nets.cli import non_negative_float, non_negative_int, positive_float, positive_int
from ensemble_nets.data import DATASETS
from ensemble_nets.models import MODEL_KINDS
from ensemble_nets.protocols.mnist import TOP_LEVEL_KEYS, TRAIN_KEYS, resumed_config, summary_lines, train_run
from ensemble_nets.layers import NOISE_SOURCES
from ensemble_nets.training import PRESETS
from ensemble_nets.training.objective import OBJECTIVES
from ensemble_nets.training.runs import CONFIG


def _lr_scale(text: str) -> tuple[str, float]:
    """``"pi=0.1"`` -> ``("pi", 0.1)``; anything else is an argparse error naming the form."""
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=SCALE (e.g. pi=0.1)") from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", default="default", choices=sorted(PRESETS),
                   help="preset to start from; the flags below override it (default: %(default)s)")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, help="auto: full MNIST if available, else mnist5k")
    data.add_argument("--data-root", help="folder holding MNIST IDX files (directly or in MNIST/raw)")
    data.add_argument("--no-download", dest="download", action="store_false", default=None,
                      help="never try to download full MNIST")
    data.add_argument("--n-train", type=positive_int, help="use only the first N training examples")
    data.add_argument("--n-test", type=positive_int, help="use only the first N test examples (quick checks)")
    model = p.add_argument_group("model")
    model.add_argument("--model", choices=sorted(MODEL_KINDS),
                       help="ensemble (spike-and-slab), mlp (plain), mdl (modes); cnn / cnn-plain (LeNet-style, images)")
    model.add_argument("--sizes", type=positive_int, nargs="+", metavar="N", help="widths, e.g. 784 100 100 10")
    model.add_argument("--activation", help="hidden nonlinearity (relu, tanh, identity)")
    model.add_argument("--m-std", type=non_negative_float, help="init std of m (of W for mlp)")
    model.add_argument("--xi-max", type=non_negative_float, help="init xi ~ xi_max * U(0, 1)")
    model.add_argument("--pi-init", type=float, help="initial pi (probability a connection is absent)")
    model.add_argument("--noise", choices=NOISE_SOURCES,
                       help="ensemble / cnn: the mean-field noise: torch (torch.randn, default) or counter "
                            "(same law, a compiled CPU kernel; faster)")
    model.add_argument("--n-modes", type=positive_int, help="mdl: modes P per weight layer (default 30)")
    model.add_argument("--unshared-modes", dest="shared_modes", action="store_false", default=None,
                       help="mdl: every weight layer owns its input and output modes")
    model.add_argument("--scale-input", action="store_true", default=None,
                       help="mdl: apply W / sqrt(N_in) (the reference has no such factor)")
    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=non_negative_int)
    train.add_argument("--batch-size", type=positive_int)
    train.add_argument("--lr", type=positive_float, help="Adam learning rate")
    train.add_argument("--lr-halve-every", type=non_negative_int, help="halve the rate every K epochs (0: constant)")
    train.add_argument("--weight-decay", type=non_negative_float)
    train.add_argument("--decay", nargs="+", metavar="NAME", help="parameters to decay, e.g. m xi (default: the layers' choice)")
    train.add_argument("--coupled-decay", dest="decoupled_decay", action="store_false", default=None,
                       help="L2 inside Adam instead of decoupled (AdamW) decay")
    train.add_argument("--lr-scales", nargs="+", metavar="NAME=SCALE", type=_lr_scale,
                       help="Adam rate of a parameter as a multiple of --lr, e.g. pi=0.1 xi=0.1 (default: 1)")
    train.add_argument("--fused-step", action="store_true", default=None,
                       help="AdamW and the projection in one compiled pass (optional; needs a C++ compiler)")
    train.add_argument("--n-eval-networks", type=positive_int, help="networks sampled from q per evaluation (>= 2)")
    train.add_argument("--seed", type=non_negative_int)
    train.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:N")
    train.add_argument("--objective", choices=OBJECTIVES,
                       help="reference: cross-entropy (default); elbo: + KL(q || spike-and-slab prior) / n_train")
    train.add_argument("--prior-pi", type=float, help="elbo: prior probability that a connection is absent (0.5)")
    train.add_argument("--prior-variance", type=positive_float, help="elbo: variance of the prior slab (1.0)")
    train.add_argument("--kl-weight", type=positive_float,
                       help="elbo: factor on KL / n_train (1.0 is the ELBO; < 1 tempers the prior)")
    run = p.add_argument_group("run folder")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<protocol>-<model>-s<seed>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> en.ExperimentConfig:
    given = {k: v for k, v in vars(args).items() if v is not None}
    top = {k: given[k] for k in TOP_LEVEL_KEYS if k in given}
    train = {k: given[k] for k in TRAIN_KEYS if k in given}
    if "lr_scales" in train:
        train["lr_scales"] = dict(train["lr_scales"])
    return en.ExperimentConfig.from_preset(args.protocol, **top, train=train)


def main(argv=None) -> dict:
    args = parse_args(argv)
    protocol = args.protocol
    try:
        if args.resume and args.out is not None and (args.out / CONFIG).is_file():
            config, protocol = resumed_config(args.out, vars(args), default_protocol=args.protocol)
        else:
            config = build_config(args)
        out = args.out or Path("runs") / f"{protocol}-{config.model}-s{config.train.seed}"
        summary = train_run(config, out, protocol=protocol, resume=args.resume, progress=args.progress)
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as err:
        sys.exit(f"run_mnist.py: error: {err}")
    print("\n".join(summary_lines(summary, out)))
    return summary


if __name__ == "__main__":
    main()
