#!/usr/bin/env python
"""Time per training epoch: spike-and-slab ensemble against the plain MLP, side by side.

One process, same data (the 5,000 embedded digits), same sizes (784-100-100-10),
batch 500, Adam with the projection after every step. Epochs of the models are
interleaved and repeated; the table gives medians and the ratios to the plain
MLP. The NumPy row is a straightforward NumPy implementation of the same
mean-field forward, gBP backward and Adam step (float64, as NumPy code is
usually written), standing in for the authors' NumPy code, whose own timing
on this machine kind was 0.2 s per epoch (DESIGN.md section 2).

The "bare products" row runs only the matrix products an ensemble epoch
needs (twice a plain network's), with no noise, elementwise work or optimizer:
a floor for the ensemble's time on this machine. On a machine shared with
other work the fastest epoch (min) and the median of per-repeat ratios
(paired: both models timed under the same load) are the numbers to read;
``--json`` also stores every wall and CPU time.

Memory: bytes kept for the backward pass per step (saved activations, by
``torch.autograd.graph.saved_tensors_hooks``) and bytes of parameters plus
Adam state; on CUDA also the peak allocated memory of one epoch.

    python benchmarks/bench_epoch.py                 # CPU, or CUDA when present
    python benchmarks/bench_epoch.py --device cpu --repeats 20

Cost as width grows (issue 11, item 5): ``--widths`` times 784-N-N-10 at each
N, ensemble (manual gBP) against plain MLP, interleaved, and reports the ratio
of the fastest epochs and the median of per-repeat ratios::

    python benchmarks/bench_epoch.py --device cpu --threads 1 --widths 100 400 1600 --repeats 5
    python benchmarks/bench_epoch.py --device cpu --threads 1 --widths 100 400 1600 --gbp manual compiled
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import ensemble_nets as en
from ensemble_nets.layers import NOISE_SOURCES
from ensemble_nets.training.loop import train_epoch
from ensemble_nets.training.optim import make_optimizer, resolve_device
from ensemble_nets.training.runs import write_json as write_atomic_json

SIZES = (784, 100, 100, 10)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class NumpyEnsemble:
    """Mean-field forward, gBP backward and Adam in NumPy (the shape of the authors' code)."""

    def __init__(self, sizes, seed=0, lr=0.1, decay=1e-4):
        rng = np.random.default_rng(seed)
        self.rng, self.lr, self.decay = rng, lr, decay
        self.params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.params.append({"pi": np.zeros((n_out, n_in)), "m": rng.normal(0, np.sqrt(2 / 784), (n_out, n_in)),
                                "xi": 0.01 * rng.uniform(size=(n_out, n_in))})
        self.adam = [{k: [np.zeros_like(v), np.zeros_like(v)] for k, v in p.items()} for p in self.params]
        self.t = 0

    def step(self, x, y):
        acts, caches = [x], []
        for i, p in enumerate(self.params):
            a = acts[-1]
            keep = 1 - p["pi"]
            mu, var = keep * p["m"], keep * (p["xi"] + p["pi"] * p["m"] ** 2)
            delta = np.sqrt(a ** 2 @ var.T + 1e-8)
            eps = self.rng.standard_normal(delta.shape)
            h = (a @ mu.T + delta * eps) / np.sqrt(a.shape[1])
            caches.append((a, mu, var, delta, eps))
            acts.append(np.maximum(h, 0) if i < len(self.params) - 1 else h)
        logits = acts[-1]
        prob = np.exp(logits - logits.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        grad = prob.copy()
        grad[np.arange(len(y)), y] -= 1
        grad /= len(y)
        self.t += 1
        for i in reversed(range(len(self.params))):
            a, mu, var, delta, eps = caches[i]
            p = self.params[i]
            c = 1 / np.sqrt(a.shape[1])
            g_mean = grad * c
            g_s = g_mean * eps / (2 * delta)
            g_mu, g_var = g_mean.T @ a, g_s.T @ a ** 2
            if i > 0:
                grad = (g_mean @ mu + 2 * a * (g_s @ var)) * (acts[i] > 0)
            grads = {"pi": (p["m"] ** 2 * (1 - 2 * p["pi"]) - p["xi"]) * g_var - p["m"] * g_mu,
                     "m": (1 - p["pi"]) * (g_mu + 2 * p["pi"] * p["m"] * g_var), "xi": (1 - p["pi"]) * g_var}
            for k, g in grads.items():
                m1, m2 = self.adam[i][k]
                m1 *= 0.9; m1 += 0.1 * g
                m2 *= 0.999; m2 += 0.001 * g * g
                update = (m1 / (1 - 0.9 ** self.t)) / (np.sqrt(m2 / (1 - 0.999 ** self.t)) + 1e-8)
                p[k] -= self.lr * (update + (self.decay * p[k] if k != "pi" else 0))
            np.clip(p["pi"], 0, 1, out=p["pi"])
            np.maximum(p["xi"], 0, out=p["xi"])

    def epoch(self, x, y, batch_size):
        order = self.rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            self.step(x[idx], y[idx])


def bare_products(x, batch_size, sizes=SIZES):
    """The matrix products one ensemble epoch cannot avoid, and nothing else: a speed floor.

    Per layer and step: x mu^T and x^2 var^T forward; dL/dmu and dL/dvar backward; and, above
    the first layer, the two products of the error sent down (a plain layer needs half of these).
    Operands are allocated once, so the row times the products alone.
    """
    batch = x[:batch_size]
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        a = batch if n_in == x.shape[1] else torch.rand(batch_size, n_in, device=x.device)
        layers.append((a, a.square(), torch.randn(n_out, n_in, device=x.device),
                       torch.randn(batch_size, n_out, device=x.device)))

    def epoch():
        for _ in range(0, x.shape[0], batch_size):
            for i, (a, a2, w, g) in enumerate(layers):
                a @ w.t(); a2 @ w.t(); g.t() @ a; g.t() @ a2
                if i > 0:
                    g @ w; g @ w
    return epoch


def width_table(x, y, widths, batch_size, repeats, device, gbps=("manual",), fused_step=False, noises=("torch",)):
    """Ensemble against plain MLP at 784-N-N-10 for each N (and each gBP in ``gbps``, each noise source in
    ``noises``): fastest epochs, paired ratios.

    Models are interleaved within every repeat (order alternating), so each ratio compares epochs
    run under the same machine load; compilation (``gbp="compiled"``, the fused step, the counter
    noise's kernel) happens in the warm-up. Variants are named ``"<gbp>[ fused][ counter]"``.
    """
    rows = []
    for width in widths:
        sizes = (x.shape[1], width, width, 10)
        torch.manual_seed(0)
        runners = {}
        variants = {}
        for fused in (False, True) if fused_step else (False,):
            for noise in noises:
                for g in gbps:
                    variants[g + (" fused" if fused else "") + ("" if noise == "torch" else f" {noise}")] = (
                        g, fused, noise)
        models = [("plain", en.MLP(sizes), False)] + [
            (f"ensemble {name}", en.EnsembleMLP(sizes, gbp=g, noise=noise), fused)
            for name, (g, fused, noise) in variants.items()]
        for name, model, fused in models:
            model.to(device)
            optimizer = make_optimizer(model, lr=0.01, fused_step=fused)
            generator = torch.Generator().manual_seed(0)
            runners[name] = (lambda m=model, o=optimizer, g=generator: train_epoch(m, o, x, y, batch_size, g))
        runners["products"] = bare_products(x, batch_size, sizes)
        for run in runners.values():  # warm-up (and compilation)
            run()
            run()
        times = {name: [] for name in runners}
        cpu = {name: [] for name in runners}
        for repeat in range(repeats):
            for name in (list(runners) if repeat % 2 == 0 else list(runners)[::-1]):
                _sync(device)
                tick, cpu_tick = time.perf_counter(), time.process_time()
                runners[name]()
                _sync(device)
                times[name].append(time.perf_counter() - tick)
                cpu[name].append(time.process_time() - cpu_tick)
        plain = min(times["plain"])
        row = {"width": width, "plain_s": plain, "products_s": min(times["products"]),
               "products_ratio": min(times["products"]) / plain, "all_plain_s": times["plain"],
               "all_plain_cpu_s": cpu["plain"], "all_products_cpu_s": cpu["products"],
               "all_products_s": times["products"]}
        line = f"width {width:5d}  plain {plain:8.4f} s"
        for g in variants:
            ts = times[f"ensemble {g}"]
            paired = statistics.median(e / p for e, p in zip(ts, times["plain"]))
            cpu_ratio = min(cpu[f"ensemble {g}"]) / min(cpu["plain"])
            row[g] = {"ensemble_s": min(ts), "ratio_min": min(ts) / plain, "ratio_median_paired": paired,
                      "ratio_cpu": cpu_ratio, "all_ensemble_s": ts, "all_ensemble_cpu_s": cpu[f"ensemble {g}"]}
            line += f" | {g} {min(ts):7.4f} s ratio {min(ts) / plain:4.2f} (paired {paired:4.2f}, CPU {cpu_ratio:4.2f})"
        rows.append(row)
        print(line + f" | bare products {row['products_ratio']:5.2f} x plain", flush=True)
    return rows


def saved_bytes_per_step(model, x, y) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return total


def width_frame(path) -> "pd.DataFrame":
    """A ``--widths --json`` result as a table: one row per width and ensemble variant (ratio of the fastest
    epochs and the paired median), with the bare products' ratio."""
    import pandas as pd

    results = json.loads(Path(path).read_text())
    if "widths" not in results:
        raise SystemExit(f"{path} is not a --widths result (no 'widths' key)")
    rows = []
    for row in results["widths"]:
        for variant, value in row.items():
            if isinstance(value, dict) and "ratio_min" in value:
                rows.append({"width": row["width"], "variant": variant, "ratio": value["ratio_min"],
                             "paired": value["ratio_median_paired"], "products": row["products_ratio"]})
    return pd.DataFrame(rows)


def plot_widths(frame, *, ax=None, target: float = 2.2):
    """Ensemble-to-plain epoch ratio against width per variant (markers: fastest; bars: to the paired median),
    with the matrix-product floor 2.0 and the target. Draws only."""
    from ensemble_nets.plotting.style import subplots

    if ax is None:
        _, ax = subplots(1, 1, width=2.0, aspect=0.45)
    names = {"manual": "manual gBP, AdamW", "compiled": "compiled gBP, AdamW",
             "manual fused": "manual gBP, fused step", "compiled fused": "compiled gBP, fused step",
             "manual counter": "manual gBP, AdamW, counter noise",
             "manual fused counter": "manual gBP, fused step, counter noise",
             "compiled fused counter": "compiled gBP, fused step, counter noise"}
    for variant, rows in frame.groupby("variant", sort=False):
        line = ax.plot(rows["width"], rows["ratio"], marker="o", label=names.get(variant, variant))[0]
        ax.vlines(rows["width"], rows[["ratio", "paired"]].min(axis=1), rows[["ratio", "paired"]].max(axis=1),
                  color=line.get_color(), alpha=0.5)
    ax.axhline(2.0, color="k", lw=1, ls="--", label="products floor (2x)")
    ax.axhline(target, color="r", lw=1, ls=":", label=f"target {target}")
    ax.set(xscale="log", xlabel="width N (784-N-N-10)", ylabel="ensemble epoch / plain epoch",
           xticks=sorted(frame["width"].unique()))
    ax.set_xticklabels([str(w) for w in sorted(frame["width"].unique())])
    ax.set_ylim(min(1.9, float(frame[["ratio", "paired"]].min().min()) - 0.05),
                max(2.35, float(frame[["ratio", "paired"]].max().max())) + 0.05)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the axes
    return ax


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy implementation")
    parser.add_argument("--data-root", default="../shared/data/mnist",
                        help="where the official test set lives (only the 5,000 training digits are timed)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--widths", type=int, nargs="+",
                        help="only the width table: 784-N-N-10 ensemble against plain at each N")
    parser.add_argument("--fused-step", action="store_true",
                        help="--widths: also time each gBP with the fused AdamW + projection step (SpikeSlabAdamW)")
    parser.add_argument("--gbp", nargs="+", default=["manual"], choices=["manual", "compiled", "autograd"],
                        help="ensemble implementations in the width table (compiled: torch.compile'd kernels)")
    parser.add_argument("--noise", nargs="+", default=["torch"], choices=list(NOISE_SOURCES),
                        help="--widths: the mean-field noise sources to time (counter: the compiled CPU kernel)")
    parser.add_argument("--plot", metavar="WIDTHS_JSON", help="draw a --widths result to --out, then stop")
    parser.add_argument("--out", default="figures/width_ratio.png",
                        help="--plot: the figure file (.png; a .pdf beside it)")
    args = parser.parse_args(argv)
    if args.plot:
        from ensemble_nets.plotting import style

        style.use()
        paths = style.save(plot_widths(width_frame(args.plot)), Path(args.out).parent, Path(args.out).stem)
        print(f"wrote {', '.join(map(str, paths))}")
        return {"out": str(paths[0])}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = en.load_dataset("mnist5k", args.data_root).to(device)
    x, y = data.x_train, data.y_train
    if args.widths:
        print(f"device {device}, {torch.get_num_threads()} torch threads, {len(y)} digits, batch "
              f"{args.batch_size}, {args.repeats} interleaved repeats (order alternating), fastest kept")
        rows = width_table(x, y, args.widths, args.batch_size, args.repeats, device, args.gbp, args.fused_step,
                           args.noise)
        results = {"device": str(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                   "n_train": len(y), "batch_size": args.batch_size, "repeats": args.repeats, "widths": rows}
        if args.json:
            write_atomic_json(args.json, results)
        return results

    torch.manual_seed(0)
    models = {
        "MLP (plain)": en.MLP(SIZES),
        "EnsembleMLP (manual gBP)": en.EnsembleMLP(SIZES, gbp="manual"),
        "EnsembleMLP (autograd)": en.EnsembleMLP(SIZES, gbp="autograd"),
    }
    runners = {}
    for name, model in models.items():
        model.to(device)
        optimizer = make_optimizer(model, lr=0.1)
        generator = torch.Generator().manual_seed(0)
        runners[name] = (lambda m=model, o=optimizer, g=generator: train_epoch(m, o, x, y, args.batch_size, g))
    if not args.no_numpy:
        numpy_model = NumpyEnsemble(SIZES)
        xn, yn = data.x_train.cpu().double().numpy(), data.y_train.cpu().numpy()
        runners["NumPy ensemble (float64)"] = lambda: numpy_model.epoch(xn, yn, args.batch_size)
    runners["bare products (floor)"] = bare_products(x, args.batch_size)

    times = {name: [] for name in runners}
    cpu_times = {name: [] for name in runners}
    for name, run in runners.items():  # warm-up
        run(); run()
    for _ in range(args.repeats):
        for name, run in runners.items():
            _sync(device)
            tick, cpu_tick = time.perf_counter(), time.process_time()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - tick)
            cpu_times[name].append(time.process_time() - cpu_tick)

    base = times["MLP (plain)"]
    results = {"device": str(device), "torch_threads": torch.get_num_threads(), "n_train": len(y),
               "batch_size": args.batch_size, "models": {}}
    xb, yb = x[: args.batch_size], y[: args.batch_size]
    print(f"device {device}, {torch.get_num_threads()} torch threads, {len(y)} digits, batch {args.batch_size}, "
          f"{args.repeats} interleaved repeats")
    print(f"{'model':28s} {'median s':>9s} {'min s':>8s} {'x plain':>8s} {'paired x':>9s} "
          f"{'saved MiB/step':>15s} {'state MiB':>10s}")
    for name, ts in times.items():
        median, fastest = statistics.median(ts), min(ts)
        paired = statistics.median(t / b for t, b in zip(ts, base))  # same repeat, so the same machine load
        row = {"seconds_per_epoch": median, "min_seconds_per_epoch": fastest, "ratio_of_mins": fastest / min(base),
               "median_paired_ratio": paired, "all_seconds": ts, "cpu_seconds": cpu_times[name]}
        if name in models:
            model = models[name]
            row["saved_bytes_per_step"] = saved_bytes_per_step(model, xb, yb)
            row["state_bytes"] = 3 * sum(p.numel() * p.element_size() for p in model.parameters())  # param + Adam
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                runners[name]()
                row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        results["models"][name] = row
        saved = f"{row['saved_bytes_per_step'] / 2**20:15.2f}" if "saved_bytes_per_step" in row else f"{'-':>15s}"
        state = f"{row['state_bytes'] / 2**20:10.2f}" if "state_bytes" in row else f"{'-':>10s}"
        print(f"{name:28s} {median:9.4f} {fastest:8.4f} {fastest / min(base):8.2f} {paired:9.2f} {saved} {state}")
    ours = min(times["EnsembleMLP (manual gBP)"])
    if "NumPy ensemble (float64)" in times:
        speedup = min(times["NumPy ensemble (float64)"]) / ours
        results["speedup_vs_numpy"] = speedup
        print(f"fastest epochs: EnsembleMLP (manual gBP) is {speedup:.1f}x faster than the NumPy implementation")
    results["speedup_vs_authors_0.2s"] = 0.2 / ours
    print(f"fastest epochs: EnsembleMLP (manual gBP) is {0.2 / ours:.1f}x faster than the authors' 0.2 s/epoch "
          f"quoted in DESIGN.md")
    if args.json:
        write_atomic_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
