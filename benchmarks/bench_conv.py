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
geometry, no biases, same data): ``Conv2dReparameterization`` +
``LinearReparameterization`` and ``Conv2dFlipout`` + ``LinearFlipout``
(loss: cross-entropy + KL / n_train, Adam, their defaults otherwise). Each
method trains with its own settings (Adam rate, batch size, schedule, and
the knob that sets its noise, :data:`NOISE_KEY`: the ensemble's Adam rate of
pi and xi as a fraction of the rate of m, ``TrainConfig.lr_scales``;
bayesian-torch's ``posterior_rho_init``): ``--settings tuned`` (default)
takes :data:`TUNED_SETTINGS`, each method's fastest point of the same
3 x 3 x 2 grid (``--tune``); ``--settings default`` the untuned ones
(ensemble: the ``cnn`` preset, Adam 0.03 for pi, m, xi with the projection
and decoupled decay 1e-4, halved every 5 epochs, batch 100; bayesian-torch:
Adam 1e-3, batch 100, rho init -3); ``--lr``/``--batch``/``--noise``
override one method. The methods take turns by part-epochs (``--evals-per-epoch``, 2 by
default: interleaved, so load from other jobs falls on all alike); after
each part ONE network is drawn from each method's q (ensemble:
``en.sample_network``; bayesian-torch: W = mu + softplus(rho) eps, the same
draw for every test batch) and scored on the official 10,000-image test
set. A method stops once it reaches the target; the time is training time
only (evaluation excluded), summed over parts.

    python benchmarks/bench_conv.py --race --threads 1 --max-epochs 12 --seed 1 --noise-source counter \
        --json benchmarks/results/conv_race_cpu_counter_fastdecay_s1.json

``--tune``: every grid point of every method (:data:`TUNE_GRID`: 3 rates x
3 batch sizes x 2 noise levels each) races at once, interleaved; an entry
stops once its training time exceeds the best time to target of its own
method so far. Run it on the first half of the test set (``--n-test 5000``)
with another seed than the races it tunes::

    python benchmarks/bench_conv.py --tune --n-test 5000 --seed 0 --threads 1 --max-epochs 10 \
        --tune-thresholds 0.95 0.96 0.965 --json benchmarks/results/conv_tune4_cpu_s0.json

``--tune-grid fast-decay`` tunes on :data:`FAST_DECAY_GRID` instead (rates halved every 1 or 2 epochs);
``--halve-every METHOD=EPOCHS`` sets one method's schedule in a race.

``--cost-floor``: where each method's training time goes (profiled: convolutions, max pooling, the
rest, per 1,000 examples) and the *floor* of the ensemble / reparameterization epoch ratio, the ensemble
with every cost but its second set of convolutions at the peer's; with ``--floor-of RACE_JSON ...``, each
race's ensemble / peer time at that floor::

    python benchmarks/bench_conv.py --cost-floor --threads 1 --noise-source counter \
        --floor-of benchmarks/results/conv_race_cpu_counter_fastdecay_s*.json

bayesian-torch is an optional peer, installed WITHOUT its dependencies (its
layers need only torch; with dependencies pip pulls torchvision and a CUDA
torch)::

    pip install --no-deps bayesian-torch

Without it, ``--race`` runs the ensemble alone and says so.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from pathlib import Path

import torch

import ensemble_nets as en
from ensemble_nets.layers import NOISE_SOURCES
from ensemble_nets.models import CNN, EnsembleCNN
from ensemble_nets.training.loop import train_epoch
from ensemble_nets.training.optim import lr_at, make_optimizer, resolve_device


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

    def __init__(self, conv, linear, channels=(16, 32), hidden=128, n_classes=10, kernel_size=5,
                 rho_init: float = -3.0) -> None:
        super().__init__()
        side = ((28 - kernel_size + 1) // 2 - kernel_size + 1) // 2
        kw = {"bias": False, "posterior_rho_init": rho_init}  # rho_init: bayesian-torch's default, -3
        self.layers = torch.nn.ModuleList([
            conv(1, channels[0], kernel_size, **kw), conv(channels[0], channels[1], kernel_size, **kw),
            linear(channels[1] * side * side, hidden, **kw), linear(hidden, n_classes, **kw)])

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


def _have_bayesian_torch() -> bool:
    """True when bayesian-torch's layers import; else False, printing how to install it."""
    try:
        import bayesian_torch.layers  # noqa: F401
    except ImportError as err:
        print(f"bayesian-torch is not importable ({err}); skipping the peer. Install it with "
              f"`pip install --no-deps bayesian-torch` (its layers need only torch)")
        return False
    return True


def _bayes_models(device) -> dict[str, _BayesCNN]:
    """The two bayesian-torch CNNs, seeded alike; empty (with a message) when bayesian-torch is missing."""
    if not _have_bayesian_torch():
        return {}
    from bayesian_torch.layers import Conv2dFlipout, Conv2dReparameterization, LinearFlipout, LinearReparameterization

    models = {}
    for name, conv, linear in (("bayesian-torch reparameterization", Conv2dReparameterization,
                                LinearReparameterization),
                               ("bayesian-torch flipout", Conv2dFlipout, LinearFlipout)):
        torch.manual_seed(0)
        models[name] = _BayesCNN(conv, linear).to(device)
    return models


def _bayes_epoch(model, optimizer, x, y, batch_size, generator, n_train=None) -> None:
    """One pass over ``(x, y)`` in a fresh random order: cross-entropy + KL / n_train, Adam.

    ``n_train`` (default ``len(x)``) is the size of the whole training set, for a pass over part of it.
    """
    model.train()
    n_train = x.shape[0] if n_train is None else n_train
    order = torch.randperm(x.shape[0], generator=generator).to(x.device)
    x, y = x[order], y[order]
    for start in range(0, x.shape[0], batch_size):
        logits, kl = model(x[start:start + batch_size])
        loss = torch.nn.functional.cross_entropy(logits, y[start:start + batch_size]) + kl / n_train
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
#: Display names of the race methods.
RACE_NAMES = {"ensemble": "spike-and-slab ensemble", "reparameterization": "bayesian-torch reparameterization",
              "flipout": "bayesian-torch flipout"}
#: Each method's training settings before tuning: Adam rate, batch size, rate halved every so many
#: epochs (0: constant), and the knob that sets its noise (:data:`NOISE_KEY`). The ensemble: the ``cnn``
#: preset, pi and xi at the rate of m; bayesian-torch: its usual Adam 1e-3, constant, posterior rho init -3.
DEFAULT_SETTINGS = {
    "ensemble": {"lr": 0.03, "batch_size": 100, "halve_every": 5, "noise_lr_scale": 1.0},
    "reparameterization": {"lr": 1e-3, "batch_size": 100, "halve_every": 0, "rho_init": -3.0},
    "flipout": {"lr": 1e-3, "batch_size": 100, "halve_every": 0, "rho_init": -3.0},
}
#: The setting of each method that sets how far its sampled networks stray from the mean network:
#: the ensemble's Adam rate of pi and xi as a fraction of the rate of m (``lr_scales={"pi": s, "xi": s}``;
#: Adam moves pi ~lr per step whatever its gradient, so pi grows fast at the full rate), and
#: bayesian-torch's initial rho (posterior std softplus(rho): -3 -> 0.049, -5 -> 0.0067).
NOISE_KEY = {"ensemble": "noise_lr_scale", "reparameterization": "rho_init", "flipout": "rho_init"}
#: ``--tune``: the same budget for every method, 3 rates x 3 batch sizes around its default x 2 noise
#: levels (its default and one of less noise); every grid point halves its rate every
#: :data:`TUNE_HALVE_EVERY` epochs, as the races do.
TUNE_GRID = {
    "ensemble": {"lr": (0.01, 0.03, 0.1), "batch_size": (50, 100, 200), "noise_lr_scale": (1.0, 0.1)},
    "reparameterization": {"lr": (1e-3, 3e-3, 1e-2), "batch_size": (50, 100, 200), "rho_init": (-3.0, -5.0)},
    "flipout": {"lr": (1e-3, 3e-3, 1e-2), "batch_size": (50, 100, 200), "rho_init": (-3.0, -5.0)},
}
TUNE_HALVE_EVERY = 5
#: ``--tune-grid fast-decay``: the rate halved every 1 or 2 epochs (not 5), each method at the two higher
#: rates and two smaller batch sizes of its grid and its less noisy level: does a faster decay reach the
#: accuracy ceiling sooner, and change the order?
FAST_DECAY_GRID = {
    "ensemble": {"lr": (0.03, 0.1), "batch_size": (50, 100), "noise_lr_scale": (0.1,), "halve_every": (1, 2)},
    "reparameterization": {"lr": (3e-3, 1e-2), "batch_size": (50, 100), "rho_init": (-5.0,), "halve_every": (1, 2)},
    "flipout": {"lr": (3e-3, 1e-2), "batch_size": (100, 200), "rho_init": (-5.0,), "halve_every": (1, 2)},
}
#: Grid labels: ``"ensemble lr=0.03 batch=100 noise_lr_scale=0.1"``.
_LABEL = {"lr": "lr", "batch_size": "batch", "noise_lr_scale": "noise_lr_scale", "rho_init": "rho_init",
          "halve_every": "halve_every"}
#: ``--settings tuned``: each method's fastest point to 97% over both grids of ``--tune`` (see
#: docs/architectures.md), one seed (0), the first 5,000 test images, one thread. The standard grid
#: (``--max-epochs 10``, benchmarks/results/conv_tune4_cpu_s0.json): every method reached 97%, each at its
#: less noisy level (ensemble: pi and xi at 0.1 x the rate of m; bayesian-torch: rho init -5), the rate halved
#: every 5 epochs. ``--tune-grid fast-decay`` (``--max-epochs 8 --noise-source counter``,
#: conv_tune_fast_decay_s0.json): the ensemble at lr 0.1 halved every 2 epochs got there sooner (epoch 4.5
#: against 6.5); neither peer reached 97% on that grid, so theirs stay the standard grid's.
TUNED_SETTINGS = {
    "ensemble": {"lr": 0.1, "batch_size": 50, "halve_every": 2, "noise_lr_scale": 0.1},
    "reparameterization": {"lr": 1e-2, "batch_size": 100, "halve_every": 5, "rho_init": -5.0},
    "flipout": {"lr": 1e-2, "batch_size": 200, "halve_every": 5, "rho_init": -5.0},
}


def _parse_overrides(pairs, cast, option: str) -> dict:
    """``["ensemble=0.1", ...]`` -> ``{"ensemble": 0.1}``, with a clear error for anything else."""
    out = {}
    for pair in pairs or ():
        method, _, value = pair.partition("=")
        if method not in RACE_METHODS or not value:
            raise SystemExit(f"{option} takes METHOD=VALUE with METHOD one of {RACE_METHODS}, got {pair!r}")
        try:
            out[method] = cast(value)
        except ValueError:
            raise SystemExit(f"{option} {pair!r}: {value!r} is not a {cast.__name__}") from None
    return out


def _race_entry(kind: str, settings: dict, device, x, y, seed: int):
    """``(train(x_part, y_part, epoch, generator), draw(generator), model)`` for one method, seeded by ``seed``."""
    torch.manual_seed(seed)
    lr, batch_size, halve_every = settings["lr"], settings["batch_size"], settings["halve_every"]
    if kind == "ensemble":
        model = EnsembleCNN(noise=settings.get("noise_source", "torch")).to(device)
        scale = settings.get("noise_lr_scale", 1.0)
        optimizer = make_optimizer(model, lr=lr, lr_scales=None if scale == 1.0 else {"pi": scale, "xi": scale})

        def draw(g, m=model):
            return en.sample_network(m, g)
    else:
        from bayesian_torch.layers import (
            Conv2dFlipout, Conv2dReparameterization, LinearFlipout, LinearReparameterization,
        )

        layers = {"reparameterization": (Conv2dReparameterization, LinearReparameterization),
                  "flipout": (Conv2dFlipout, LinearFlipout)}[kind]
        model = _BayesCNN(*layers, rho_init=settings.get("rho_init", -3.0)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        draw = model.sample_network

    def train(x_part, y_part, epoch, g, m=model, o=optimizer):
        for group in o.param_groups:  # a group of lr_scales keeps its ratio to lr
            group["lr"] = lr_at(epoch, lr, halve_every) * group.get("lr_scale", 1.0)
        if kind == "ensemble":
            train_epoch(m, o, x_part, y_part, batch_size, g)
        else:
            _bayes_epoch(m, o, x_part, y_part, batch_size, g, n_train=x.shape[0])

    return train, draw, model


def race(args, device, data, entries: dict[str, tuple[str, dict]] | None = None, prune: bool = False) -> dict:
    """Time to ``args.target`` test accuracy of one sampled network, per entry (see the module docstring).

    :param entries: ``{label: (method, settings)}``; default: ``args.methods`` with their settings.
    :param prune: stop an entry once its training time exceeds the best time to target of its method
        so far (it cannot be that method's fastest); for ``--tune``.
    """
    x, y = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    if entries is None:
        entries = {RACE_NAMES[kind]: (kind, args.settings_of[kind]) for kind in RACE_METHODS if kind in args.methods}
    if any(kind != "ensemble" for kind, _ in entries.values()) and not _have_bayesian_torch():
        entries = {label: e for label, e in entries.items() if e[0] == "ensemble"}
    runners = {label: _race_entry(kind, settings, device, x, y, args.seed)[:2]
               for label, (kind, settings) in entries.items()}
    k = args.evals_per_epoch
    log = {label: {"method": kind, **settings, "seconds": [], "epochs": [], "accuracy": [], "reached_at_epoch": None,
                   "seconds_to_target": None, "stopped": None}
           for label, (kind, settings) in entries.items()}
    generators = {label: torch.Generator().manual_seed(args.seed) for label in entries}
    best = {}  # method -> fastest seconds to target so far
    for epoch in range(args.max_epochs):
        orders = {label: torch.randperm(x.shape[0], generator=generators[label]).to(x.device) for label in entries}
        for part in range(k):
            for label, (train, draw) in runners.items():
                entry = log[label]
                if entry["reached_at_epoch"] is not None or entry["stopped"]:
                    continue
                index = orders[label].tensor_split(k)[part]  # this part of the epoch's fresh order
                _sync(device)
                tick = time.perf_counter()
                train(x[index], y[index], epoch, generators[label])
                _sync(device)
                entry["seconds"].append(time.perf_counter() - tick)
                at = epoch + (part + 1) / k
                acc = _accuracy(draw(torch.Generator().manual_seed(1000 * args.seed + len(entry["accuracy"]))),
                                x_test, y_test)
                entry["epochs"].append(round(at, 4))
                entry["accuracy"].append(acc)
                spent = sum(entry["seconds"])
                if acc >= args.target:
                    entry["reached_at_epoch"], entry["seconds_to_target"] = round(at, 4), spent
                    best[entry["method"]] = min(spent, best.get(entry["method"], math.inf))
                elif prune and spent > best.get(entry["method"], math.inf):
                    entry["stopped"] = f"slower than the best {entry['method']} entry at epoch {at:g}"
                if args.verbose or not prune:
                    print(f"epoch {at:5.2f}  {label:<44} {entry['seconds'][-1]:7.2f} s  one sampled network "
                          f"{acc:.4f}", flush=True)
        if all(e["reached_at_epoch"] is not None or e["stopped"] for e in log.values()):
            break
    for entry in log.values():  # k x the median part: an epoch's cost even for a method that stopped mid-epoch
        entry["median_epoch_seconds"] = k * statistics.median(entry["seconds"]) if entry["seconds"] else None
    print(f"\ntime to {args.target:.0%} test accuracy of one sampled network ({x.shape[0]} training images, "
          f"{x_test.shape[0]} test images, {k} evaluations per epoch, {torch.get_num_threads()} threads, "
          f"seed {args.seed}):")
    for label, entry in log.items():
        reached = (f"{entry['seconds_to_target']:7.1f} s (epoch {entry['reached_at_epoch']:g})"
                   if entry["reached_at_epoch"] else
                   f"stopped ({entry['stopped']})" if entry["stopped"] else
                   f"not within {len(entry['seconds']) / k:g} epochs (best {max(entry['accuracy']):.4f})")
        epoch_s = entry["median_epoch_seconds"]
        print(f"  {label:<44} median epoch {epoch_s if epoch_s is not None else math.nan:6.2f} s, {reached}")
    return {"mode": "race", "device": str(device), "threads": torch.get_num_threads(), "n_train": x.shape[0],
            "n_test": x_test.shape[0], "target": args.target, "max_epochs": args.max_epochs,
            "evals_per_epoch": k, "seed": args.seed, "torch": torch.__version__, "methods": log}


def fastest_per_method(methods: dict, threshold: float) -> dict[str, dict]:
    """From race logs: each method's entry that first reached ``threshold`` in the least training time.

    Returns ``{method: {"entry", "epochs", "seconds"}}``; a method none of whose entries got there is left out.
    """
    best = {}
    for label, entry in methods.items():
        for i, acc in enumerate(entry["accuracy"]):
            if acc >= threshold:
                seconds = sum(entry["seconds"][:i + 1])
                if entry["method"] not in best or seconds < best[entry["method"]]["seconds"]:
                    best[entry["method"]] = {"entry": label, "epochs": entry["epochs"][i], "seconds": seconds}
                break
    return best


def tune(args, device, data) -> dict:
    """Every method on its own :data:`TUNE_GRID` (rate x batch size x noise), interleaved, pruned; the fastest of each.

    The fastest entry of each method is reported at ``--target`` and at every ``--tune-thresholds``
    (read off the same runs; useful when the target is near the accuracy the grid reaches).
    """
    entries = {}
    grid = FAST_DECAY_GRID if args.tune_grid == "fast-decay" else TUNE_GRID
    for kind in RACE_METHODS:
        if kind in args.methods:
            axes = grid[kind]
            for point in itertools.product(*axes.values()):
                values = dict(zip(axes, point))
                label = " ".join([kind, *(f"{_LABEL[key]}={value:g}" for key, value in values.items())])
                entries[label] = (kind, {**DEFAULT_SETTINGS[kind], "halve_every": TUNE_HALVE_EVERY, **values,
                                         **({"noise_source": args.noise_source} if kind == "ensemble" else {})})
    result = race(args, device, data, entries, prune=True)
    fastest = {}
    for threshold in sorted({args.target, *args.tune_thresholds}):
        fastest[f"{threshold:g}"] = best = fastest_per_method(result["methods"], threshold)
        print(f"\nfastest setting of each method to {threshold:.1%}:")
        for kind in RACE_METHODS:
            if kind in args.methods:
                found = best.get(kind)
                print(f"  {kind:<20} " + (f"{found['entry']:<40} {found['seconds']:6.1f} s (epoch {found['epochs']:g})"
                                           if found else "no grid point got there"))
    return {**result, "mode": "tune", "grid": {k: grid[k] for k in args.methods}, "fastest": fastest}


def sampled_gap(args, device, data) -> dict:
    """The ensemble alone, at its race settings: after each epoch, the mean network, the mean-field
    pass and ``--draws`` sampled networks scored on the test set, and the mean pi.

    Says how far ONE sampled network (what the race scores) trails the ensemble's mean network.
    """
    x, y = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    settings = args.settings_of["ensemble"]
    train, _, model_of = _race_entry("ensemble", settings, device, x, y, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    for epoch in range(args.max_epochs):
        train(x, y, epoch, generator)
        sampled = [_accuracy(en.sample_network(model_of, torch.Generator().manual_seed(1000 * args.seed + i)),
                             x_test, y_test) for i in range(args.draws)]
        model_of.eval_mode = "mean_field"
        # the pass's noise must not move (or reseed) training's random stream
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(args.seed)
            mean_field = _accuracy(model_of, x_test, y_test)
        row = {"epoch": epoch + 1, "mean_network": _accuracy(en.mean_network(model_of), x_test, y_test),
               "mean_field": mean_field, "sampled": sampled,
               "sampled_mean": statistics.mean(sampled),
               "sampled_sd": statistics.stdev(sampled) if len(sampled) > 1 else 0.0,
               "pi_mean": float(torch.cat([layer.pi.detach().flatten() for layer in model_of.weight_layers]).mean())}
        rows.append(row)
        print(f"epoch {row['epoch']:>2}  mean network {row['mean_network']:.4f}  mean-field {row['mean_field']:.4f}  "
              f"sampled {row['sampled_mean']:.4f} +- {row['sampled_sd']:.4f} ({args.draws} draws)  "
              f"mean pi {row['pi_mean']:.3f}", flush=True)
    return {"mode": "sampled_gap", "device": str(device), "threads": torch.get_num_threads(), "seed": args.seed,
            "settings": settings, "n_train": x.shape[0], "n_test": x_test.shape[0], "epochs": rows}


#: Profiler op names, by the part of the step they belong to (anything else is "other").
COST_PARTS = {"convolutions": ("convolution",), "max pooling": ("max_pool",)}


def _cost_split(train, x, y, n_profile: int, generator) -> dict[str, float]:
    """Self CPU milliseconds per 1,000 training examples of one method, by :data:`COST_PARTS` (and "other")."""
    from torch.profiler import ProfilerActivity, profile

    train(x[:n_profile], y[:n_profile], 0, generator)  # warm-up (allocator, kernel build, first-call costs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(x[:n_profile], y[:n_profile], 0, generator)
    split = {part: 0.0 for part in (*COST_PARTS, "other")}
    for event in prof.key_averages():
        part = next((p for p, keys in COST_PARTS.items() if any(k in event.key for k in keys)), "other")
        split[part] += event.self_cpu_time_total / 1e3 * 1000 / n_profile
    split["total"] = sum(split.values())
    return split


def _race_methods(path) -> dict[str, dict]:
    """``{method: entry}`` of a ``--race`` result holding the ensemble and the reparameterization CNN."""
    import json

    try:
        race_log = json.loads(Path(path).read_text())
        methods = {entry["method"]: entry for entry in race_log["methods"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SystemExit(f"--floor-of {path}: not a readable --race result ({error!r})") from None
    if race_log.get("mode") != "race" or not {"ensemble", "reparameterization"} <= set(methods):
        raise SystemExit(f"--floor-of {path}: needs a --race result with the ensemble and the reparameterization "
                         f"CNN, got mode {race_log.get('mode')!r} with {sorted(methods)}")
    return methods


def cost_floor(args, device, data) -> dict:
    """Where each method's training time goes, and the least the ensemble's epoch can cost against the peer's.

    The mean-field pass needs the peer's convolutions twice (forward: conv(x, mu) and conv(x^2, var);
    backward: both weight gradients and both input gradients), so even with every other cost equal to the
    peer's, ``floor = (peer total + ensemble convolutions - peer convolutions) / peer total``. With race results
    (``--floor-of``), the ensemble's time to target at that floor, against the peer's:
    ``ensemble epochs x floor / peer epochs`` (below 1: the ensemble could win that race).
    """
    x, y = data.x_train.to(device), data.y_train.to(device)
    n_profile = min(args.n_profile, x.shape[0])
    if "ensemble" not in args.methods:
        raise SystemExit(f"--cost-floor profiles the ensemble (and the reparameterization CNN): --methods must "
                         f"include ensemble, got {args.methods}")
    for path in args.floor_of or ():
        _race_methods(path)  # a bad file fails before the profiling, not after
    kinds = [kind for kind in ("ensemble", "reparameterization") if kind in args.methods]
    if "reparameterization" in kinds and not _have_bayesian_torch():
        kinds.remove("reparameterization")
    splits = {}
    for kind in kinds:
        train, _, _ = _race_entry(kind, args.settings_of[kind], device, x, y, args.seed)
        splits[kind] = _cost_split(train, x, y, n_profile, torch.Generator().manual_seed(args.seed))
    print(f"self CPU ms per 1,000 training examples ({torch.get_num_threads()} threads, profiled on {n_profile}):")
    print(f"  {'method':<20}" + "".join(f"{part:>14}" for part in splits[kinds[0]]))
    for kind, split in splits.items():
        print(f"  {kind:<20}" + "".join(f"{value:>14.1f}" for value in split.values()))
    result = {"mode": "cost_floor", "device": str(device), "threads": torch.get_num_threads(), "seed": args.seed,
              "n_profile": n_profile, "settings": {k: args.settings_of[k] for k in kinds}, "ms_per_1000": splits}
    if len(splits) == 2:
        ens, peer = splits["ensemble"], splits["reparameterization"]
        result["ratio"] = ens["total"] / peer["total"]
        result["floor"] = (peer["total"] + ens["convolutions"] - peer["convolutions"]) / peer["total"]
        print(f"ensemble / reparameterization per example: measured {result['ratio']:.2f}; floor (every cost "
              f"but the convolutions the peer's) {result['floor']:.2f}")
        bounds = []
        for path in args.floor_of or ():
            methods = _race_methods(path)
            ens_at, peer_at = methods["ensemble"]["reached_at_epoch"], methods["reparameterization"]["reached_at_epoch"]
            if ens_at is None or peer_at is None:
                print(f"  {path}: a method did not reach the target; left out")
                continue
            bounds.append({"race": str(path), "ensemble_epochs": ens_at, "peer_epochs": peer_at,
                           "time_ratio_at_floor": ens_at * result["floor"] / peer_at})
            print(f"  {path}: epochs {ens_at:g} against {peer_at:g}; ensemble / peer time at the floor "
                  f"{bounds[-1]['time_ratio_at_floor']:.2f}")
        result["races"] = bounds
    return result


def race_table(paths) -> "pd.DataFrame":
    """One row per (race file, method, evaluation): seed, method, epoch, training seconds so far, accuracy."""
    import json

    import pandas as pd

    rows = []
    for path in paths:
        race_log = json.loads(Path(path).read_text())
        if race_log.get("mode") != "race":
            raise SystemExit(f"{path} is not a --race result (mode {race_log.get('mode')!r})")
        for label, entry in race_log["methods"].items():
            spent = 0.0
            for epoch, seconds, accuracy in zip(entry["epochs"], entry["seconds"], entry["accuracy"]):
                spent += seconds
                rows.append({"seed": race_log["seed"], "method": RACE_NAMES.get(entry["method"], label),
                             "epoch": epoch, "seconds": spent, "accuracy": accuracy, "target": race_log["target"]})
    return pd.DataFrame(rows)


def plot_race(table, *, axes=None):
    """One sampled network's test accuracy against epochs (left) and against training seconds (middle),
    every seed a thin line per method; seconds to the target per seed (right; no bar: not reached).
    Draws only."""
    import matplotlib.pyplot as plt

    from ensemble_nets.plotting.style import subplots

    if axes is None:
        _, axes = subplots(1, 3, width=2.0, aspect=0.8)
    methods = list(dict.fromkeys(table["method"]))
    colors = dict(zip(methods, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    target = float(table["target"].iloc[0])
    for (method, _), run in table.groupby(["method", "seed"], sort=False):
        first = method not in axes[0].get_legend_handles_labels()[1]
        for ax, x in ((axes[0], "epoch"), (axes[1], "seconds")):
            ax.plot(run[x], run["accuracy"], color=colors[method], alpha=0.6, lw=1, label=method if first else None)
    for ax, xlabel in ((axes[0], "epochs"), (axes[1], "training seconds")):
        ax.axhline(target, color="k", ls=":", lw=1)
        ax.set(xlabel=xlabel, ylabel="one sampled network, test accuracy", ylim=(0.94, 0.98))
    axes[0].legend(fontsize=6, loc="lower right")
    seeds = sorted(table["seed"].unique())
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        times = []
        for seed in seeds:
            run = table[(table["method"] == method) & (table["seed"] == seed)]
            hit = run[run["accuracy"] >= target]
            times.append(hit["seconds"].iloc[0] if len(hit) else float("nan"))
        axes[2].bar([s + (i - (len(methods) - 1) / 2) * width for s in range(len(seeds))], times, width,
                    color=colors[method], label=method)
    axes[2].set(xticks=range(len(seeds)), xticklabels=[str(s) for s in seeds], xlabel="race seed",
                ylabel=f"seconds to {target:.0%}")
    return axes


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
    p.add_argument("--tune", action="store_true",
                   help="--race on every method's grid of rates x batch sizes (TUNE_GRID); report the fastest")
    p.add_argument("--target", type=float, default=0.97, help="--race: test accuracy of one sampled network")
    p.add_argument("--max-epochs", type=int, default=10, help="--race: epochs per method at most")
    p.add_argument("--evals-per-epoch", type=int, default=2,
                   help="--race: draw and score one network this many times per epoch (every method alike)")
    p.add_argument("--settings", choices=("default", "tuned"), default="tuned",
                   help="--race: each method's rate and batch size (DEFAULT_SETTINGS or TUNED_SETTINGS)")
    p.add_argument("--lr", nargs="+", metavar="METHOD=LR", help="--race: override a method's Adam rate")
    p.add_argument("--batch", nargs="+", metavar="METHOD=SIZE", help="--race: override a method's batch size")
    p.add_argument("--halve-every", nargs="+", metavar="METHOD=EPOCHS",
                   help="--race: override a method's schedule (its Adam rate halved every EPOCHS epochs; 0: constant)")
    p.add_argument("--noise", nargs="+", metavar="METHOD=VALUE",
                   help="--race: override a method's noise knob (NOISE_KEY): the ensemble's pi/xi rate scale, "
                        "bayesian-torch's posterior rho init")
    p.add_argument("--noise-source", choices=NOISE_SOURCES, default="torch",
                   help="the ensemble's mean-field noise (layers.noise): torch.randn, or the counter kernel")
    p.add_argument("--seed", type=int, default=0, help="--race: seed of inits, data orders and draws")
    p.add_argument("--methods", nargs="+", choices=RACE_METHODS, default=list(RACE_METHODS),
                   help="--race: which methods run (default: all three)")
    p.add_argument("--tune-grid", choices=("standard", "fast-decay"), default="standard",
                   help="--tune: TUNE_GRID (rate halved every 5 epochs), or FAST_DECAY_GRID (every 1 or 2)")
    p.add_argument("--tune-thresholds", nargs="*", type=float, default=[0.95, 0.96],
                   help="--tune: also report each method's fastest setting to these accuracies")
    p.add_argument("--verbose", action="store_true", help="--tune: print every evaluation")
    p.add_argument("--sampled-gap", action="store_true",
                   help="the ensemble alone: mean network, mean-field pass and --draws sampled networks per epoch")
    p.add_argument("--draws", type=int, default=5, help="--sampled-gap: sampled networks scored per epoch")
    p.add_argument("--cost-floor", action="store_true",
                   help="profile the ensemble and the reparameterization CNN at their race settings: time per "
                        "example in convolutions, pooling and the rest, and the least ensemble / peer ratio")
    p.add_argument("--n-profile", type=int, default=1000, help="--cost-floor: training examples profiled")
    p.add_argument("--floor-of", nargs="+", metavar="RACE_JSON",
                   help="--cost-floor: each race's ensemble / peer time had the ensemble's epoch cost the floor")
    p.add_argument("--plot", nargs="+", metavar="RACE_JSON",
                   help="draw the races of these --race results (accuracy against seconds; seconds to target) to --out")
    p.add_argument("--out", default="figures/conv_race.png", help="--plot: the figure file (.png; a .pdf beside it)")
    args = p.parse_args(argv)
    if args.plot:
        from ensemble_nets.plotting import style

        style.use()
        paths = style.save(plot_race(race_table(args.plot)), Path(args.out).parent, Path(args.out).stem)
        print(f"wrote {', '.join(map(str, paths))}")
        return {"mode": "plot", "out": str(paths[0])}
    if args.evals_per_epoch < 1:
        raise SystemExit(f"--evals-per-epoch must be >= 1, got {args.evals_per_epoch}")
    if args.n_profile < 1:
        raise SystemExit(f"--n-profile must be >= 1, got {args.n_profile}")
    base = TUNED_SETTINGS if args.settings == "tuned" else DEFAULT_SETTINGS
    lrs, batches = _parse_overrides(args.lr, float, "--lr"), _parse_overrides(args.batch, int, "--batch")
    noises = _parse_overrides(args.noise, float, "--noise")
    halvings = _parse_overrides(args.halve_every, int, "--halve-every")
    if any(v < 0 for v in halvings.values()):
        raise SystemExit(f"--halve-every must be >= 0 epochs (0: a constant rate), got {halvings}")
    if noises.get("ensemble", 0.0) < 0 or not all(math.isfinite(v) for v in noises.values()):
        raise SystemExit(f"--noise: the ensemble's pi/xi rate scale must be >= 0 and every value finite, got {noises}")
    base = {**base, "ensemble": {**base["ensemble"], "noise_source": args.noise_source}}
    overrides = {"lr": lrs, "batch_size": batches, "halve_every": halvings}
    args.settings_of = {kind: {**base[kind], **{key: given[kind] for key, given in overrides.items() if kind in given},
                               **({NOISE_KEY[kind]: noises[kind]} if kind in noises else {})}
                        for kind in RACE_METHODS}
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = en.load_dataset("mnist5k", args.data_root, download=False, shape="image")
    data = data.subset(n_train=args.n_train, n_test=args.n_test)
    if args.race or args.tune or args.sampled_gap or args.cost_floor:
        result = (tune(args, device, data) if args.tune else sampled_gap(args, device, data) if args.sampled_gap
                  else cost_floor(args, device, data) if args.cost_floor else race(args, device, data))
        if args.json:
            from ensemble_nets.training.runs import write_json

            write_json(args.json, {**result, "uptime": _uptime()})
        return result
    x, y = data.x_train.to(device), data.y_train.to(device)

    runners = {}
    builds = [("plain CNN", CNN), ("ensemble CNN", EnsembleCNN),
              ("ensemble CNN, autograd gBP", lambda: EnsembleCNN(gbp="autograd"))]
    if args.noise_source != "torch":
        builds.append((f"ensemble CNN, {args.noise_source} noise", lambda: EnsembleCNN(noise=args.noise_source)))
    for name, build in builds:
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
