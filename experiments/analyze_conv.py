#!/usr/bin/env python
"""Categories, filters, entropy and perturbation of every layer of a trained CNN ensemble.

    python experiments/analyze_conv.py runs/cnn-s0 --data-root ../shared/data/mnist --out runs/cnn-s0-conv

Per layer (conv1, conv2, fc1, fc2): delete a fraction f of the important kernel entries (pi = 1)
against as many variable ones, at random and magnitude-matched (``perturbation_curves``), and score
networks sampled from the perturbed q on the test set: mean and std of the error over networks.
Reads the run with ``en.load_run`` and never writes into it; tables go to --out. Never trains.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

import ensemble_nets as en
from ensemble_nets.analysis import categorize, entropy_table, perturbation_curves, summarize_perturbations
from ensemble_nets.analysis.categories import filter_table
from ensemble_nets.layers import spike_slab_layers
from ensemble_nets.training.runs import write_atomic, write_json

KINDS = ("delete_important", "delete_variable", "delete_variable_matched")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run folder of a CNN ensemble (run_mnist.py --model cnn)")
    p.add_argument("--data-root", required=True, help="folder with the official MNIST test set")
    p.add_argument("--out", type=Path, required=True, help="output folder (never the run folder itself)")
    p.add_argument("--n-networks", type=int, default=10, help="networks sampled per perturbation point")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.5, 1.0])
    p.add_argument("--n-test", type=int, help="score on the first N test images only (default: all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.out.resolve() == args.run_dir.resolve():
        p.error("--out must differ from the run folder: the analysis never writes into a run")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, config, _ = en.load_run(args.run_dir)
    dataset = config.get("experiment", {}).get("dataset", "mnist5k")
    data = en.load_dataset(dataset, args.data_root, download=False, shape="image")
    if args.n_test:
        data = data.subset(n_test=args.n_test)
    model.eval()  # conv1, conv2, fc1, fc2: the analysis calls them layer1..layer4, input to output
    names, counters = {}, {"conv": 0, "fc": 0}
    for i, (_, layer) in enumerate(spike_slab_layers(model), start=1):
        kind = "conv" if layer.pi.dim() > 2 else "fc"
        counters[kind] += 1
        names[f"layer{i}"] = f"{kind}{counters[kind]}"

    categories = categorize(model)
    tables = {"categories": categories.table, "filters": filter_table(categories), "entropy": entropy_table(model)}
    curves = []
    for layer in names:  # f = 0 is the same networks for every layer and perturbation (common random numbers)
        baseline = perturbation_curves(model, data, layer, fractions=[0.0], n_networks=args.n_networks,
                                       perturbations=["delete_important"]) if layer == "layer1" else None
        perturbed = perturbation_curves(model, data, layer, fractions=args.fractions, n_networks=args.n_networks,
                                        perturbations=KINDS)
        curves += [c for c in (baseline, perturbed) if c is not None]
        print(summarize_perturbations(perturbed).to_string(index=False), flush=True)
    tables["perturbation_curves"] = pd.concat(curves, ignore_index=True)
    tables["perturbation"] = summarize_perturbations(tables["perturbation_curves"])
    for table in tables.values():
        table.insert(1, "name", table["layer"].map(names))
    for key, table in tables.items():
        write_atomic(args.out / f"{key}.csv", table.to_csv(index=False).encode())
    summary = {"run": str(args.run_dir), "dataset": dataset, "n_test": int(data.x_test.shape[0]),
               "layers": names, "n_networks": args.n_networks, "fractions": args.fractions,
               "perturbation": tables["perturbation"].to_dict(orient="records"),
               "filters": tables["filters"].to_dict(orient="records")}
    write_json(args.out / "summary.json", summary)
    print(tables["filters"].to_string(index=False))
    return summary


if __name__ == "__main__":
    main()
