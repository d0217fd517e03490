#!/usr/bin/env python
"""Accuracy against the strongest peer: bayesian-torch's Gaussian mean-field MLP beside this library's ensemble.

Same data (the 5,000 embedded digits, official 10,000-image test set), same
784-100-100-10 ReLU network, both scored the same way after the last epoch:
K networks (``--n-networks``, 10) are drawn from each q, each a plain network,
and the table gives

    sampled   accuracy of one drawn network: mean +- std over the K draws
    average   accuracy of the K networks' averaged predictive, mean_k softmax(f_k(x))

The peer (``--methods peer``) is bayesian-torch's ``LinearReparameterization``
(biases on, its default init: mu ~ N(0, 0.1), rho ~ N(-3, 0.1), prior N(0, 1)),
trained on cross-entropy + KL / n_train (the ELBO per example) with Adam
(``--peer-lr`` 1e-3, batch ``--peer-batch-size`` 100, ``--peer-epochs`` 60); a
drawn network is W = mu + softplus(rho) eps per layer. Its K-network numbers
are measured after every epoch too (the ``best_*`` entries pick an epoch on the
test set and are for reference only; the final epoch's numbers are the honest ones).

Ours (``--methods ours``) trains a preset of this library (``--protocol``,
default ``ensemble-strong``) through ``experiments/run_mnist.py``'s code path
(``protocols.mnist.train_run``: run folder, categories in its summary.json);
with ``--runs-root`` the run folders are kept for ``experiments/analyze_run.py``.
``--epochs`` and ``--batch-size`` override the preset. Results and their reading:
docs/ensemble.md, "Against bayesian-torch's mean-field MLP".

    python benchmarks/bench_peer_mlp.py --data-root ../shared/data/mnist --methods peer --seeds 0 1 2 \\
        --json benchmarks/results/peer_mlp_bayesian_torch.json
    python benchmarks/bench_peer_mlp.py --data-root ../shared/data/mnist --methods ours --protocol ensemble-strong \\
        --seeds 0 1 2 --runs-root runs --json runs/peer_mlp_ensemble_strong.json

bayesian-torch is an optional peer, installed WITHOUT its dependencies (its
layers need only torch)::

    pip install --no-deps bayesian-torch

Without it, ``--methods peer`` stops with that line; ``ours`` runs regardless.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import ensemble_nets as en
from ensemble_nets.training.optim import resolve_device
from ensemble_nets.training.presets import PRESETS, ExperimentConfig
from ensemble_nets.training.runs import write_atomic

METHODS = ("peer", "ours")
INSTALL = "pip install --no-deps bayesian-torch"


# -- the peer: bayesian-torch's mean-field Gaussian MLP ------------------------------------------------
class BayesMLP(nn.Module):
    """``sizes`` of bayesian-torch ``linear`` layers with ReLU between; ``forward`` returns ``(logits, kl)``."""

    def __init__(self, linear, sizes=(784, 100, 100, 10), bias: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(linear(n_in, n_out, bias=bias) for n_in, n_out in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        kl = 0.0
        for i, layer in enumerate(self.layers):
            x, layer_kl = layer(x)  # one fresh weight draw per call, shared by the batch
            kl = kl + layer_kl
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x, kl

    @torch.no_grad()
    def sample_network(self, generator: torch.Generator) -> nn.Sequential:
        """ONE draw W = mu + softplus(rho) eps (and b likewise) per layer, as a plain ``nn.Sequential``."""
        modules = []
        for i, layer in enumerate(self.layers):
            mu = layer.mu_weight
            plain = nn.Linear(mu.shape[1], mu.shape[0], bias=layer.mu_bias is not None).to(mu)
            plain.weight.copy_(mu + F.softplus(layer.rho_weight) * _randn(mu, generator))
            if layer.mu_bias is not None:
                plain.bias.copy_(layer.mu_bias + F.softplus(layer.rho_bias) * _randn(layer.mu_bias, generator))
            modules.append(plain)
            if i < len(self.layers) - 1:
                modules.append(nn.ReLU())
        return nn.Sequential(*modules)


def _randn(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=generator.device).to(like)


def peer_linear():
    """bayesian-torch's ``LinearReparameterization``; ImportError with the install line when it is missing."""
    try:
        from bayesian_torch.layers import LinearReparameterization
    except ImportError as err:
        raise ImportError(f"bayesian-torch is not importable ({err}); install it with `{INSTALL}` "
                          f"(its layers need only torch), or run --methods ours alone") from err
    return LinearReparameterization


# -- the common scoring --------------------------------------------------------------------------------
@torch.no_grad()
def score_members(draw, x: torch.Tensor, y: torch.Tensor, *, n_networks: int, seed: int,
                  batch_size: int = 10_000) -> dict:
    """Accuracy of ``n_networks`` drawn networks and of their averaged predictive.

    :param draw: ``draw(generator)`` returns one plain network drawn from q.
    :param x: ``(N, 784)`` test inputs; ``y``: ``(N,)`` labels.
    :returns: ``sampled_mean``, ``sampled_std`` (over the draws), ``sampled`` (each draw), ``average``.
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    probs_sum, accs = 0.0, []
    for _ in range(n_networks):
        net = draw(generator).eval()
        probs = torch.cat([net(x[i:i + batch_size]).softmax(-1) for i in range(0, x.shape[0], batch_size)])
        probs_sum = probs_sum + probs  # (N, classes)
        accs.append((probs.argmax(-1) == y).double().mean().item())
    mean = statistics.fmean(accs)
    return {"sampled_mean": mean, "sampled_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "sampled": accs, "average": (probs_sum.argmax(-1) == y).double().mean().item()}


# -- training ------------------------------------------------------------------------------------------
def train_peer(data, *, seed: int, epochs: int, lr: float, batch_size: int, n_networks: int,
               device: torch.device, progress: bool = True) -> dict:
    """Train bayesian-torch's MLP on ``data`` (cross-entropy + KL / n_train, Adam); scores after every epoch."""
    linear = peer_linear()
    torch.manual_seed(seed)
    model = BayesMLP(linear).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    shuffle = torch.Generator().manual_seed(seed)
    history, train_seconds = [], 0.0
    for epoch in range(epochs):
        tick = time.perf_counter()
        model.train()
        order = torch.randperm(x.shape[0], generator=shuffle).to(device)
        for start in range(0, x.shape[0], batch_size):
            batch = order[start:start + batch_size]
            logits, kl = model(x[batch])
            loss = F.cross_entropy(logits, y[batch]) + kl / x.shape[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        train_seconds += time.perf_counter() - tick
        scores = score_members(model.sample_network, x_test, y_test, n_networks=n_networks,
                               seed=seed * 100_003 + epoch)
        history.append({"epoch": epoch + 1, "sampled_mean": scores["sampled_mean"], "average": scores["average"]})
        if progress:
            print(f"  peer seed {seed} epoch {epoch + 1}: sampled {scores['sampled_mean']:.4f} "
                  f"average {scores['average']:.4f}", file=sys.stderr)
    final = score_members(model.sample_network, x_test, y_test, n_networks=n_networks, seed=seed)
    return {**final, "train_seconds": train_seconds, "history": history,
            "best_sampled_mean": _best(history, "sampled_mean"), "best_average": _best(history, "average")}


def train_ours(data_root: str, *, protocol: str, seed: int, n_networks: int, device: str, run_dir: Path,
               epochs: int | None = None, batch_size: int | None = None, progress: bool = True) -> dict:
    """Train the preset ``protocol`` into ``run_dir`` (run_mnist.py's code path) and score its final q."""
    from ensemble_nets.protocols.mnist import train_run

    train = {"seed": seed, "device": device, **({"epochs": epochs} if epochs is not None else {}),
             **({"batch_size": batch_size} if batch_size is not None else {})}
    config = ExperimentConfig.from_preset(protocol, dataset="mnist5k", data_root=data_root, download=False,
                                          train=train)
    tick = time.perf_counter()
    summary = train_run(config, run_dir, protocol=protocol, progress=progress)
    wall = time.perf_counter() - tick
    model, _, _ = en.load_run(run_dir, map_location=resolve_device(device))
    data = en.load_dataset("mnist5k", data_root, download=False)
    dev = next(model.parameters()).device
    final = score_members(lambda g: en.sample_network(model, g), data.x_test.to(dev), data.y_test.to(dev),
                          n_networks=n_networks, seed=seed)
    return {**final, "wall_seconds": wall, "run_dir": str(run_dir),
            "mean_field_final": summary["test_acc_mean_field"]["final"],
            "categories": summary.get("categories")}


def _best(history: list[dict], key: str) -> dict:
    row = max(history, key=lambda r: r[key])
    return {"value": row[key], "epoch": row["epoch"]}


def _interval(values: list[float]) -> tuple[float, float] | None:
    """95% Student t interval of the mean (None for fewer than 2 values)."""
    if len(values) < 2:
        return None
    from scipy import stats

    mean, sem = statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))
    half = stats.t.ppf(0.975, len(values) - 1) * sem
    return (mean - half, mean + half)


def summarize(per_seed: dict[int, dict]) -> dict:
    """Mean and 95% interval over seeds of the final ``sampled_mean`` and ``average`` accuracies."""
    out = {}
    for key in ("sampled_mean", "average"):
        values = [r[key] for r in per_seed.values()]
        out[key] = {"mean": statistics.fmean(values), "interval95": _interval(values), "per_seed": values}
    return out


def _suffix(args: argparse.Namespace) -> str:
    """Run-folder and table suffix naming the overrides of the preset: ``-e60``, ``-b200``."""
    return (f"-e{args.epochs}" if args.epochs is not None else "") + (
        f"-b{args.batch_size}" if args.batch_size is not None else "")


def _uptime() -> str:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data", help="folder with the MNIST test IDX files")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="which side(s) to run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (each >= 0)")
    p.add_argument("--n-networks", type=int, default=10, help="networks drawn from each q (>= 2)")
    p.add_argument("--protocol", default="ensemble-strong", choices=sorted(PRESETS), help="ours: the preset")
    p.add_argument("--epochs", type=int, default=None, help="ours: override the preset's epochs")
    p.add_argument("--batch-size", type=int, default=None, help="ours: override the preset's batch size")
    p.add_argument("--runs-root", default=None, help="ours: keep run folders here (<root>/<protocol>-s<seed>)")
    p.add_argument("--peer-epochs", type=int, default=60)
    p.add_argument("--peer-lr", type=float, default=1e-3, help="peer: Adam learning rate")
    p.add_argument("--peer-batch-size", type=int, default=100)
    p.add_argument("--n-train", type=int, default=None, help="use only the first N training digits (quick checks)")
    p.add_argument("--n-test", type=int, default=None, help="peer: use only the first N test digits (quick checks)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", default=None, help="write the results here (atomically)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must be distinct integers >= 0, got {args.seeds}")
    if args.n_networks < 2:
        p.error(f"--n-networks must be >= 2 to give a spread, got {args.n_networks}")
    for name in ("peer_epochs", "peer_batch_size", "epochs", "batch_size", "n_train", "n_test", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not (math.isfinite(args.peer_lr) and args.peer_lr > 0):
        p.error(f"--peer-lr must be a positive number, got {args.peer_lr}")
    if "ours" in args.methods and (args.n_train is not None or args.n_test is not None):
        p.error("--n-train / --n-test are for the peer only (quick checks); ours trains its preset on all digits, "
                "or pass --methods peer")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if "peer" in args.methods:
        peer_linear()  # fail before any training when the peer is missing
    data = en.load_dataset("mnist5k", args.data_root, download=False)
    if args.n_train is not None or args.n_test is not None:
        data = data.subset(**{k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test)) if v})
    result = {"data": data.note, "n_train": data.n_train, "n_test": data.n_test, "n_networks": args.n_networks,
              "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "uptime_before": _uptime(), "command": " ".join(sys.argv), "methods": {}}
    runs_root = Path(args.runs_root) if args.runs_root else None
    if "peer" in args.methods:
        per_seed = {s: train_peer(data, seed=s, epochs=args.peer_epochs, lr=args.peer_lr,
                                  batch_size=args.peer_batch_size, n_networks=args.n_networks, device=device,
                                  progress=args.progress) for s in args.seeds}
        result["methods"]["bayesian-torch LinearReparameterization"] = {
            "settings": {"epochs": args.peer_epochs, "lr": args.peer_lr, "batch_size": args.peer_batch_size,
                         "loss": "cross-entropy + KL / n_train", "optimizer": "Adam"},
            "per_seed": per_seed, "summary": summarize(per_seed)}
    if "ours" in args.methods:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            root = runs_root or Path(tmp)
            per_seed = {s: train_ours(args.data_root, protocol=args.protocol, seed=s, n_networks=args.n_networks,
                                      device=args.device, run_dir=root / f"{args.protocol}{_suffix(args)}-s{s}",
                                      epochs=args.epochs, batch_size=args.batch_size, progress=args.progress)
                        for s in args.seeds}
        result["methods"][f"ensemble_nets {args.protocol}{_suffix(args)}"] = {
            "settings": {"protocol": args.protocol, "preset": PRESETS[args.protocol], "epochs": args.epochs,
                         "batch_size": args.batch_size},
            "per_seed": per_seed, "summary": summarize(per_seed)}
    result["uptime_after"] = _uptime()
    for name, entry in result["methods"].items():
        s = entry["summary"]
        print(f"{name}: sampled {100 * s['sampled_mean']['mean']:.2f}% "
              f"(seeds {', '.join(f'{100 * v:.2f}' for v in s['sampled_mean']['per_seed'])}), "
              f"{args.n_networks}-network average {100 * s['average']['mean']:.2f}% "
              f"(seeds {', '.join(f'{100 * v:.2f}' for v in s['average']['per_seed'])})")
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2, default=str).encode())
    return result


if __name__ == "__main__":
    main()
