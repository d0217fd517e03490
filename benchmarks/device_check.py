#!/usr/bin/env python
"""The prepared GPU session: check the CUDA paths against the CPU, then time the benchmarks on the device.

A machine with a GPU is lent for minutes at a time, so this runs everything
a GPU session owes in one command, each part under its own time limit, and
writes one JSON per part under ``--out`` (default ``benchmarks/results/device``):

1. ``checks``: the CUDA paths against the CPU or the eager path, float64 where
   the algorithm is deterministic:

   - ``SpikeSlabLinear`` and ``SpikeSlabConv2d``: forward and gradients on the device against the
     CPU, the same noise given (the hand-written gBP, on both);
   - ``noise="counter"``: the generator on the device (torch operations) against the CPU's (the C kernel),
     and a layer's output and gradients;
   - ``SpikeSlabAdamW`` (``fused_step``, compiled by torch.compile, triton on CUDA) against AdamW
     followed by ``project_``, three steps;
   - ``train_many`` on a small CNN (the grouped-convolution path, the one meant for GPUs) against
     ``train`` alone, two runs, two epochs.

2. ``bench_epoch``, ``bench_many`` (MLP, MDL and CNN K-curves), ``bench_conv`` (epoch ratio) and one
   race of ``bench_conv --race`` (seed 1) on the device, with fewer repeats than on a CPU.

    python benchmarks/device_check.py                       # CUDA when present; else says so and checks on CPU
    python benchmarks/device_check.py --device cpu --quick  # the same checks, tiny, on a CPU (the tests run this)

Exit status 1 when a check fails; timings never fail the run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

import ensemble_nets as en
from ensemble_nets.training.runs import write_json

HERE = Path(__file__).resolve().parent
#: The benchmarks after the checks, in order.
BENCHES = ("epoch", "many", "conv", "race")


def _max_diff(a, b) -> float:
    return max(float((x.detach().cpu().double() - y.detach().cpu().double()).abs().max()) for x, y in zip(a, b))


def check_layers(device: torch.device) -> dict:
    """Forward and gradients of the linear and conv mean-field passes on ``device`` against the CPU, eps given."""
    from ensemble_nets.layers.conv import _ConvMeanFieldFunction
    from ensemble_nets.layers.spike_slab import _MeanFieldFunction

    torch.manual_seed(0)
    out = {}
    linear = en.SpikeSlabLinear(30, 7, dtype=torch.float64, pi_init=0.2, xi_max=0.05)
    x = torch.rand(16, 30, dtype=torch.float64)
    eps, g = torch.randn(16, 7, dtype=torch.float64), torch.randn(16, 7, dtype=torch.float64)
    results = []
    for dev in (torch.device("cpu"), device):
        params = [t.detach().to(dev).requires_grad_() for t in (x, linear.pi, linear.m, linear.xi)]
        h = _MeanFieldFunction.apply(*params, eps.to(dev), 1e-8, False)
        results.append([h, *torch.autograd.grad(h, params, g.to(dev))])
    out["linear_max_abs_diff"] = _max_diff(*results)
    conv = en.SpikeSlabConv2d(3, 5, 3, padding=1, dtype=torch.float64, pi_init=0.2, xi_max=0.05)
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    eps, g = torch.randn(4, 5, 8, 8, dtype=torch.float64), torch.randn(4, 5, 8, 8, dtype=torch.float64)
    results = []
    for dev in (torch.device("cpu"), device):
        xd = x.to(dev).requires_grad_()
        mu, var = (t.detach().to(dev).requires_grad_() for t in (conv.weight, conv.weight_variance))
        h = _ConvMeanFieldFunction.apply(xd, mu / 27 ** 0.5, var / 27, eps.to(dev), 1e-8 / 27,
                                         torch.nn.functional.conv2d, (1, 1), (1, 1), (1, 1), 1)
        results.append([h, *torch.autograd.grad(h, (xd, mu, var), g.to(dev))])
    out["conv_max_abs_diff"] = _max_diff(*results)
    out["ok"] = out["linear_max_abs_diff"] < 1e-9 and out["conv_max_abs_diff"] < 1e-9
    return out


def check_counter_noise(device: torch.device) -> dict:
    """``noise="counter"`` on ``device``: the generator (torch operations there) against the CPU's, same key,
    and a float32 layer's output and gradients on the device against the CPU's (the kernel there), same seed."""
    from ensemble_nets.layers import noise

    out = {"stream_max_abs_diff": _max_diff([noise.counter_normal(100_003, 12345, device=device)],
                                            [noise.counter_normal(100_003, 12345)])}
    layer = en.SpikeSlabLinear(30, 7, noise="counter", pi_init=0.2, xi_max=0.05)
    x = torch.rand(16, 30)
    results = []
    for dev in (torch.device("cpu"), device):
        moved = en.SpikeSlabLinear(30, 7, noise="counter").to(dev)
        moved.load_state_dict(layer.state_dict())
        xd = x.to(dev).requires_grad_()
        torch.manual_seed(3)  # the key comes from the CPU generator on every device
        h = moved(xd)
        results.append([h, *torch.autograd.grad(h.square().sum(), (xd, moved.pi, moved.m, moved.xi))])
    out["layer_max_abs_diff"] = _max_diff(*results)
    out["ok"] = out["stream_max_abs_diff"] < 1e-4 and out["layer_max_abs_diff"] < 1e-3
    return out


def check_fused_step(device: torch.device) -> dict:
    """SpikeSlabAdamW against AdamW + project_ on ``device``, float64, three steps; outside and inside
    ``deferred_gradients()`` (the chain rule in the step's kernel, as ``en.train`` runs it)."""
    import contextlib
    import copy

    from ensemble_nets.training.optim import make_optimizer, project_, step_and_project

    out = {"ok": True}
    for deferred in (False, True):
        torch.manual_seed(1)
        model = en.EnsembleMLP((20, 16, 4), bias=True, dtype=torch.float64).to(device)
        fused = copy.deepcopy(model)
        eager_opt = make_optimizer(model, lr=0.2, weight_decay=0.1)
        fused_opt = make_optimizer(fused, lr=0.2, weight_decay=0.1, fused_step=True)
        x = torch.randn(32, 20, dtype=torch.float64, device=device)
        y = torch.randint(0, 4, (32,), device=device)
        moved = []
        with fused_opt.deferred_gradients() if deferred else contextlib.nullcontext():
            for step in range(3):
                pair = []
                for net, opt, fuse in ((model, eager_opt, False), (fused, fused_opt, True)):
                    torch.manual_seed(step)
                    loss = torch.nn.functional.cross_entropy(net(x), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if fuse:
                        pair.append(int(step_and_project(net, opt)))
                    else:
                        opt.step()
                        pair.append(int(project_(net)))
                moved.append(pair)
        diff = _max_diff(list(model.parameters()), list(fused.parameters()))
        name = "deferred" if deferred else "plain"
        out[name] = {"max_abs_diff": diff, "moved_eager_fused": moved}
        out["ok"] = out["ok"] and diff < 1e-9 and all(a == b for a, b in moved)
    return out


def check_train_many_cnn(device: torch.device, quick: bool) -> dict:
    """train_many on a small CNN (grouped convolutions on CUDA) against train alone, float64."""
    from ensemble_nets.models import EnsembleCNN

    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
    data = en.load_dataset("mnist5k", None, download=False, shape="image").subset(n_train=200 if quick else 1000,
                                                                                   n_test=100)
    configs = [en.TrainConfig(seed=s, epochs=2, batch_size=50, lr=0.02 * (s + 1), n_eval_networks=2,
                              device=str(device)) for s in range(2)]

    def model(seed):
        torch.manual_seed(seed)
        return EnsembleCNN(channels=(4, 6), hidden=12).double()

    alone = [en.train(model(s), data, configs[s], progress=False) for s in range(2)]
    together = en.train_many([model(s) for s in range(2)], data, configs, progress=False)
    diff = max(_max_diff(list(a.model.parameters()), list(b.model.parameters())) for a, b in zip(alone, together))
    return {"max_abs_diff": diff, "ok": diff < 1e-8}


def _bench(cmd: list[str], limit: int) -> dict:
    tick = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=limit, cwd=HERE.parent)
        return {"cmd": " ".join(cmd), "rc": done.returncode, "seconds": time.perf_counter() - tick,
                "tail": done.stdout[-3000:] + done.stderr[-1500:]}
    except subprocess.TimeoutExpired:
        return {"cmd": " ".join(cmd), "rc": None, "seconds": limit, "tail": f"stopped after {limit} s"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto: CUDA when present")
    p.add_argument("--out", type=Path, default=HERE / "results" / "device")
    p.add_argument("--quick", action="store_true", help="checks only, on tiny data (no benchmarks)")
    p.add_argument("--bench", nargs="*", choices=BENCHES, default=list(BENCHES),
                   help="which benchmarks follow the checks (time limits 150, 150, 60, 120 s; none: checks only)")
    p.add_argument("--data-root", default="../shared/data/mnist", help="the official MNIST test set, if present")
    args = p.parse_args(argv)
    device = en.training.resolve_device(args.device)
    if device.type != "cuda":
        print(f"no CUDA device here ({device}): running the checks on {device} only", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": str(device), "torch": torch.__version__,
              "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    failed = False
    for name, check in (("layers", lambda: check_layers(device)), ("counter_noise", lambda: check_counter_noise(device)),
                        ("fused_step", lambda: check_fused_step(device)),
                        ("train_many_cnn", lambda: check_train_many_cnn(device, args.quick))):
        try:
            report[name] = check()
        except Exception:  # noqa: BLE001 -- a failing check is reported, the others still run
            report[name] = {"ok": False, "error": traceback.format_exc()[-2000:]}
        failed |= not report[name]["ok"]
        print(f"check {name:16s} {'ok' if report[name]['ok'] else 'FAILED'}: "
              f"{ {k: v for k, v in report[name].items() if k != 'ok'} }", flush=True)
    if not args.quick:
        dev = str(device)
        benches = {
            "epoch": (["benchmarks/bench_epoch.py", "--device", dev, "--widths", "100", "400", "1600", "--repeats",
                       "3", "--gbp", "manual", "compiled", "--fused-step", "--noise", "torch", "counter", "--no-numpy", "--data-root",
                       args.data_root, "--json", str(args.out / "epoch_width.json")], 150),
            "many": (["benchmarks/bench_many.py", "--device", dev, "--ks", "1", "8", "32", "--repeats", "2",
                      "--models", "ensemble 784-50-50-10", "mdl 784-25-25-10 P=8", "ensemble cnn",
                      "--json", str(args.out / "many.json")], 150),
            "conv": (["benchmarks/bench_conv.py", "--device", dev, "--repeats", "3", "--data-root", args.data_root,
                      "--json", str(args.out / "conv_epoch.json")], 60),
            # the race at the CPU-tuned settings (the ensemble alone when bayesian-torch is not installed)
            "race": (["benchmarks/bench_conv.py", "--race", "--device", dev, "--seed", "1", "--max-epochs", "12",
                      "--data-root", args.data_root, "--json", str(args.out / "conv_race_s1.json")], 120),
        }
        report["bench"] = [_bench(*benches[name]) for name in args.bench]
        for run in report["bench"]:
            print(f"\n$ python {run['cmd']}  (rc {run['rc']}, {run['seconds']:.0f} s)\n{run['tail']}", flush=True)
    write_json(args.out / "device_check.json", json.loads(json.dumps(report, default=str)))
    print(f"wrote {args.out / 'device_check.json'}; checks {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
