#!/usr/bin/env python
"""Time per training epoch: the LeNet-style CNN ensemble against the plain CNN, side by side.

One process, same data (the 5,000 embedded digits as 1x28x28 images), same
architecture (models/cnn.py: two 5x5 convolutions with 2x2 pooling, two
linear layers), batch 100, Adam with the projection after every step
(``train_epoch``, the loop ``en.train`` runs). The plain CNN is the same
network with deterministic weights (``ScaledConv2d`` / ``ScaledLinear``): the
ensemble's mean-field pass does two convolutions per layer forward (mean and
variance) and their backward, plus the elementwise moments of pi, m, xi.
When bayesian-torch is importable, its two CNNs (see ``--race``) are timed
too. Epochs of the models are interleaved and repeated; the table gives the
fastest and median epoch of each and the median of the per-repeat ratios to
the plain CNN (paired: timed under the same load, which matters on a shared
machine).

    python benchmarks/bench_conv.py                    # CPU, or CUDA when present
    python benchmarks/bench_conv.py --device cpu --threads 1 --repeats 5 --json out.json

The issue's target: ensemble epoch <= 2.5x the plain CNN's.

``--race``: time to 97% test accuracy of ONE sampled network, side by side
with bayesian-torch's mean-field Gaussian layers on the same CNN (same
geometry, no biases, same data, batch 100): ``Conv2dReparameterization`` +
``LinearReparameterization`` and ``Conv2dFlipout`` + ``LinearFlipout``
(loss: cross-entropy + KL / n_train, Adam lr 1e-3 (``--peer-lr``), their
defaults otherwise). One epoch of each method in turn (interleaved, so load from other
jobs falls on all alike); after each epoch ONE network is drawn from each
method's q (ensemble: ``en.sample_network``; bayesian-torch: W = mu +
softplus(rho) eps, the same draw for every test batch) and scored on the
official 10,000-image test set. A method stops once it reaches the target;
the time is training time only (evaluation excluded), summed over epochs.
The ensemble trains as the ``cnn`` preset does (Adam lr 0.03 with the
projection, decoupled decay 1e-4, the rate halved every 5 epochs).

    python benchmarks/bench_conv.py --race --max-epochs 10 --json benchmarks/results/conv_race_cpu.json

bayesian-torch is an optional peer, installed WITHOUT its dependencies (its
layers need only torch; with dependencies pip pulls torchvision and a CUDA
torch)::

    pip install --no-deps bayesian-torch

Without it, ``--race`` runs the ensemble alone and says so.
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


def _uptime() -> str:
    """The machine's load (``uptime``), recorded with the timings."""
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the race against bayesian-torch -----------------------------------------------------------
class _BayesCNN(torch.nn.Module):
    """The CNN of models/cnn.py built from bayesian-torch layers; ``forward`` returns ``(logits, kl)``."""

    def __init__(self, conv, linear, channels=(16, 32), hidden=128, n_classes=10, kernel_size=5) -> None:
        super().__init__()
        side = ((28 - kernel_size + 1) // 2 - kernel_size + 1) // 2
        self.layers = torch.nn.ModuleList([
            conv(1, channels[0], kernel_size, bias=False), conv(channels[0], channels[1], kernel_size, bias=False),
            linear(channels[1] * side * side, hidden, bias=False), linear(hidden, n_classes, bias=False)])

    def forward(self, x, layers=None):
        layers = layers or self.layers
        kl = 0.0
        for i, layer in enumerate(layers):
            out = layer(x)
            x, kl = (out[0], kl + out[1]) if isinstance(out, tuple) else (out, kl)
            if i < 2:
                x = torch.nn.functional.max_pool2d(torch.relu(x), 2)
            elif i == 2:
                x = torch.relu(x)
            if i == 1:
                x = x.flatten(1)
        return x, kl

    @torch.no_grad()
    def sample_network(self, generator: torch.Generator) -> torch.nn.Module:
        """ONE draw W = mu + softplus(rho) eps per layer, as plain modules."""
        plain = []
        for layer in self.layers:
            mu = layer.mu_kernel if hasattr(layer, "mu_kernel") else layer.mu_weight
            rho = layer.rho_kernel if hasattr(layer, "rho_kernel") else layer.rho_weight
            eps = torch.randn(mu.shape, generator=generator).to(mu)
            module = (torch.nn.Conv2d(mu.shape[1], mu.shape[0], mu.shape[2:], bias=False) if mu.dim() == 4
                      else torch.nn.Linear(mu.shape[1], mu.shape[0], bias=False)).to(mu)
            module.weight.copy_(mu + torch.nn.functional.softplus(rho) * eps)
            plain.append(module)
        model = self

        class _Drawn(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = torch.nn.ModuleList(plain)

            def forward(self, x):
                return model.forward(x, self.layers)[0]

        return _Drawn()


def _bayes_models(device) -> dict[str, _BayesCNN]:
    """The two bayesian-torch CNNs, seeded alike; empty (with a message) when bayesian-torch is missing."""
    try:
        from bayesian_torch.layers import (
            Conv2dFlipout, Conv2dReparameterization, LinearFlipout, LinearReparameterization,
        )
    except ImportError as err:
        print(f"bayesian-torch is not importable ({err}); skipping the peer. Install it with "
              f"`pip install --no-deps bayesian-torch` (its layers need only torch)")
        return {}
    models = {}
    for name, conv, linear in (("bayesian-torch reparameterization", Conv2dReparameterization,
                                LinearReparameterization),
                               ("bayesian-torch flipout", Conv2dFlipout, LinearFlipout)):
        torch.manual_seed(0)
        models[name] = _BayesCNN(conv, linear).to(device)
    return models


def _bayes_epoch(model, optimizer, x, y, batch_size, generator) -> None:
    model.train()
    order = torch.randperm(x.shape[0], generator=generator).to(x.device)
    x, y = x[order], y[order]
    for start in range(0, x.shape[0], batch_size):
        logits, kl = model(x[start:start + batch_size])
        loss = torch.nn.functional.cross_entropy(logits, y[start:start + batch_size]) + kl / x.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def _accuracy(net, x, y, batch_size=1000) -> float:
    net.eval()
    correct = sum(int((net(x[s:s + batch_size]).argmax(-1) == y[s:s + batch_size]).sum())
                  for s in range(0, x.shape[0], batch_size))
    return correct / x.shape[0]


#: ``--methods`` of the race, in the order they take turns.
RACE_METHODS = ("ensemble", "reparameterization", "flipout")


def race(args, device, data) -> dict:
    """Time to ``args.target`` test accuracy of one sampled network, per method (see the module docstring)."""
    x, y = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    methods = {}
    torch.manual_seed(0)
    ensemble = EnsembleCNN().to(device)
    optimizer = make_optimizer(ensemble, lr=args.ensemble_lr)
    methods["spike-and-slab ensemble"] = (
        lambda epoch, g, m=ensemble, o=optimizer: (
            [group.__setitem__("lr", args.ensemble_lr * 0.5 ** (epoch // 5)) for group in o.param_groups],
            train_epoch(m, o, x, y, args.batch_size, g)),
        lambda g, m=ensemble: en.sample_network(m, g))
    if "ensemble" not in args.methods:
        methods.clear()
    peers = [m for m in args.methods if m != "ensemble"]
    for name, model in (_bayes_models(device) if peers else {}).items():
        if name.rsplit(" ", 1)[-1] not in peers:
            continue
        opt = torch.optim.Adam(model.parameters(), lr=args.peer_lr)
        methods[name] = (lambda epoch, g, m=model, o=opt: _bayes_epoch(m, o, x, y, args.batch_size, g),
                         lambda g, m=model: m.sample_network(g))
    log = {name: {"epoch_seconds": [], "accuracy": [], "reached_at_epoch": None, "seconds_to_target": None}
           for name in methods}
    generators = {name: torch.Generator().manual_seed(0) for name in methods}
    for epoch in range(args.max_epochs):
        for name, (train, draw) in methods.items():
            entry = log[name]
            if entry["reached_at_epoch"] is not None:
                continue
            _sync(device)
            tick = time.perf_counter()
            train(epoch, generators[name])
            _sync(device)
            entry["epoch_seconds"].append(time.perf_counter() - tick)
            acc = _accuracy(draw(torch.Generator().manual_seed(1000 + epoch)), x_test, y_test)
            entry["accuracy"].append(acc)
            if acc >= args.target:
                entry["reached_at_epoch"] = epoch + 1
                entry["seconds_to_target"] = sum(entry["epoch_seconds"])
            print(f"epoch {epoch + 1:>2}  {name:<36} {entry['epoch_seconds'][-1]:7.2f} s  one sampled network "
                  f"{acc:.4f}", flush=True)
        if all(entry["reached_at_epoch"] is not None for entry in log.values()):
            break
    print(f"\ntime to {args.target:.0%} test accuracy of one sampled network ({x.shape[0]} images, "
          f"{torch.get_num_threads()} threads):")
    for name, entry in log.items():
        reached = (f"{entry['seconds_to_target']:7.1f} s (epoch {entry['reached_at_epoch']})"
                   if entry["reached_at_epoch"] else f"not within {len(entry['epoch_seconds'])} epochs")
        print(f"  {name:<36} median epoch {statistics.median(entry['epoch_seconds']):6.2f} s, {reached}")
    return {"mode": "race", "device": str(device), "threads": torch.get_num_threads(), "n_train": x.shape[0],
            "n_test": x_test.shape[0], "batch_size": args.batch_size, "target": args.target,
            "max_epochs": args.max_epochs, "ensemble_lr": args.ensemble_lr, "peer_lr": args.peer_lr, "torch": torch.__version__, "methods": log}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/mnist", help="MNIST IDX folder (only the test set is read)")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per model (after one warm-up)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--n-train", type=int, default=5000, help="training examples per epoch")
    p.add_argument("--n-test", type=int, help="--race: score on the first N test images (default: all)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads on CPU (0: torch's default)")
    p.add_argument("--json", help="also write every timing to this file")
    p.add_argument("--race", action="store_true", help="time to --target accuracy against bayesian-torch")
    p.add_argument("--target", type=float, default=0.97, help="--race: test accuracy of one sampled network")
    p.add_argument("--max-epochs", type=int, default=10, help="--race: epochs per method at most")
    p.add_argument("--ensemble-lr", type=float, default=0.03, help="--race: the ensemble's Adam rate (preset: 0.03)")
    p.add_argument("--peer-lr", type=float, default=1e-3, help="--race: Adam rate of the bayesian-torch CNNs")
    p.add_argument("--methods", nargs="+", choices=RACE_METHODS, default=list(RACE_METHODS),
                   help="--race: which methods run (default: all three)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = en.load_dataset("mnist5k", args.data_root, download=False, shape="image")
    data = data.subset(n_train=args.n_train, n_test=args.n_test)
    if args.race:
        result = race(args, device, data)
        if args.json:
            from ensemble_nets.training.runs import write_json

            write_json(args.json, {**result, "uptime": _uptime()})
        return result
    x, y = data.x_train.to(device), data.y_train.to(device)

    runners = {}
    for name, build in (("plain CNN", CNN), ("ensemble CNN", EnsembleCNN)):
        torch.manual_seed(0)
        model = build().to(device)
        optimizer = make_optimizer(model, lr=0.03)
        generator = torch.Generator().manual_seed(0)
        runners[name] = (lambda m=model, o=optimizer, g=generator: train_epoch(m, o, x, y, args.batch_size, g))
    for name, model in _bayes_models(device).items():
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        runners[name] = (lambda m=model, o=optimizer, g=generator: _bayes_epoch(m, o, x, y, args.batch_size, g))
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
    paired = {name: statistics.median(t / p for t, p in zip(values, times["plain CNN"]))
              for name, values in times.items()}
    result = {
        "device": str(device), "threads": torch.get_num_threads(), "n_train": x.shape[0],
        "batch_size": args.batch_size, "repeats": args.repeats, "torch": torch.__version__,
        "seconds": times, "ratio_median": statistics.median(ratios),
        "ratio_of_fastest": min(times["ensemble CNN"]) / min(times["plain CNN"]),
        "median_paired_ratio_to_plain": paired,
    }
    print(f"device {device}, {torch.get_num_threads()} threads, {x.shape[0]} images, batch {args.batch_size}, "
          f"{args.repeats} repeats")
    print(f"{'model':<36}{'fastest s':>11}{'median s':>10}{'/ plain':>9}")
    for name, values in times.items():
        print(f"{name:<36}{min(values):>11.3f}{statistics.median(values):>10.3f}{paired[name]:>9.2f}")
    print(f"ensemble / plain: median of paired ratios {result['ratio_median']:.2f}, "
          f"ratio of fastest epochs {result['ratio_of_fastest']:.2f} (target <= 2.5)")
    if args.json:
        from ensemble_nets.training.runs import write_json

        write_json(args.json, {**result, "uptime": _uptime()})
    return result


if __name__ == "__main__":
    main()
