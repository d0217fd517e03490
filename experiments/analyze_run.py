#!/usr/bin/env python
"""Credit-assignment analysis of a trained ensemble: tables and InferenceData into its run folder.

Examples::

    python experiments/analyze_run.py runs/default-ensemble-s0
    python experiments/analyze_run.py runs/reference-ensemble-s0 --n-networks 100 --perturb-networks 20

Writes RUN_DIR/analysis/:

    categories.csv             connections per layer and category (count, fraction)
    entropy.csv                entropy of q per layer, over all connections and per category
    perturbation.csv           test error per (layer, perturbation, fraction, sampled network)
    perturbation_summary.csv   its mean and std over the sampled networks
    ensemble_accuracy.csv      test accuracy of each of the K sampled networks
    ensemble_per_example.csv   per test digit: prediction, confidence, predictive entropy, mutual information, agreement
    calibration.csv            reliability table of the ensemble predictive (ECE bins)
    summary.json               accuracy mean/std/HDI, ECE, agreement, MI on right vs wrong, settings
    inference_data.nc          ArviZ InferenceData (posterior, posterior_predictive, log_likelihood, observed_data)

The run is read with ``ensemble_nets.load_run``; the test data are the ones in
its config.json (``--data-root`` overrides the folder). Never trains.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ensemble_nets as en
from ensemble_nets.analysis.perturb import DEFAULT_FRACTIONS
from ensemble_nets.training.runs import CHECKPOINT, load_checkpoint, write_atomic, write_json

ANALYSIS = "analysis"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder written by run_mnist.py")
    p.add_argument("--data-root", help="folder with the MNIST test set (default: the run's config)")
    p.add_argument("--n-networks", type=int, default=50, help="networks sampled from q for the statistics (>= 2)")
    p.add_argument("--perturb-networks", type=int, default=10, help="networks per perturbation point (>= 1)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS), help="fractions perturbed")
    p.add_argument("--layers", nargs="+", help="layers to perturb, e.g. layer1 layer3 (default: all)")
    p.add_argument("--max-weights", type=int, default=500, help="weights per layer kept in the InferenceData")
    p.add_argument("--tol", type=float, help="category tolerance (default: 0, or the ELBO margin for ELBO runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-incomplete", action="store_true", help="analyze a run that stopped before its last epoch")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p.parse_args(argv)


def load(run_dir: Path, args: argparse.Namespace):
    """Model, config and test data of a finished run, with clear errors for missing or incomplete ones."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist; make it with "
                                f"python experiments/run_mnist.py --out {run_dir}")
    payload = load_checkpoint(run_dir / CHECKPOINT)
    planned = payload.get("train_config", {}).get("epochs")
    if planned is not None and payload.get("epoch", 0) < planned and not args.allow_incomplete:
        raise ValueError(f"run folder {run_dir} is incomplete: {payload.get('epoch', 0)} of {planned} epochs; "
                         f"finish it with python experiments/run_mnist.py --out {run_dir} --resume "
                         f"(with the same flags), or pass --allow-incomplete")
    model, config, _ = en.load_run(run_dir)
    if not hasattr(model, "sample_network"):
        raise ValueError(f"{run_dir} holds a {getattr(model, 'kind', type(model).__name__)} model; "
                         f"the analysis needs an ensemble (run_mnist.py --model ensemble)")
    experiment = config.get("experiment")
    if not experiment:
        raise ValueError(f"{run_dir}/config.json has no 'experiment' section (data set and root); "
                         f"the run was not written by run_mnist.py")
    root = args.data_root or experiment["data_root"]
    data = en.load_dataset(experiment["dataset"], root, download=False)
    return model, config, data


def _check_options(model, args: argparse.Namespace) -> None:
    from ensemble_nets.analysis._common import resolve_layer

    if args.n_networks < 2:
        raise ValueError(f"--n-networks must be >= 2 (a spread and an HDI need several networks), "
                         f"got {args.n_networks}")
    if args.perturb_networks < 1:
        raise ValueError(f"--perturb-networks must be >= 1, got {args.perturb_networks}")
    if args.max_weights < 1:
        raise ValueError(f"--max-weights must be >= 1, got {args.max_weights}")
    if not all(0.0 <= f <= 1.0 for f in args.fractions):
        raise ValueError(f"--fractions must lie in [0, 1], got {args.fractions}")
    for layer in args.layers or []:
        resolve_layer(model, layer)


def write_csv(path: Path, frame) -> None:
    write_atomic(path, frame.to_csv(index=False).encode())


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        model, config, data = load(args.run_dir, args)
        return analyze(model, config, data, args)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"analyze_run.py: error: {err}")


def analyze(model, config: dict, data, args: argparse.Namespace) -> dict:
    """Write every table and the InferenceData into RUN_DIR/analysis; return the summary."""
    _check_options(model, args)  # before anything is written
    train = config.get("train", {})
    tol = args.tol if args.tol is not None else (train.get("elbo_margin", 0.0)
                                                 if train.get("objective") == "elbo" else 0.0)
    out = args.run_dir / ANALYSIS
    out.mkdir(exist_ok=True)
    print(f"analyzing {args.run_dir} on {data.n_test} test digits ({data.test_source}); writing {out}",
          file=sys.stderr)

    categories = en.analysis.categorize(model, tol=tol)
    write_csv(out / "categories.csv", categories.table)
    write_csv(out / "entropy.csv", en.analysis.entropy_table(model, tol=tol))

    layers = args.layers or list(categories.labels)
    curves = [en.analysis.perturbation_curves(model, data, layer, args.fractions, args.perturb_networks, args.seed,
                                              tol=tol, progress=args.progress) for layer in layers]
    import pandas as pd

    curves = pd.concat(curves, ignore_index=True)
    write_csv(out / "perturbation.csv", curves)
    perturbation = en.analysis.summarize_perturbations(curves)
    write_csv(out / "perturbation_summary.csv", perturbation)

    stats = en.analysis.ensemble_statistics(model, data, args.n_networks, args.seed, progress=args.progress)
    write_csv(out / "ensemble_accuracy.csv",
              pd.DataFrame({"network": range(len(stats.accuracies)), "accuracy": stats.accuracies}))
    write_csv(out / "ensemble_per_example.csv", stats.per_example)
    write_csv(out / "calibration.csv", stats.calibration)

    idata = en.analysis.to_inference_data(model, data, args.n_networks, seed=args.seed, max_weights=args.max_weights)
    en.analysis.save_inference_data(idata, out / "inference_data.nc")

    summary = {"run_dir": str(args.run_dir), "objective": train.get("objective", "reference"),
               "categories_tol": tol, "categories": categories.fractions(), **stats.summary,
               "perturb_networks": args.perturb_networks, "fractions": args.fractions}
    write_json(out / "summary.json", summary)
    _report(summary, perturbation)
    return summary


def _report(summary: dict, perturbation) -> None:
    lines = [f"objective {summary['objective']}, categories (tol {summary['categories_tol']:g}):"]
    for layer, fractions in summary["categories"].items():
        lines.append(f"  {layer}: " + ", ".join(f"{k} {v:.3f}" for k, v in fractions.items()))
    lines.append(f"sampled networks: accuracy {summary['accuracy_mean']:.4f} +- {summary['accuracy_std']:.4f} "
                 f"(K = {summary['n_networks']}), {summary['hdi_prob']:.0%} HDI "
                 f"[{summary['accuracy_hdi_low']:.4f}, {summary['accuracy_hdi_high']:.4f}]; "
                 f"ensemble-average accuracy {summary['ensemble_accuracy']:.4f}, ECE {summary['ece']:.4f}, "
                 f"agreement {summary['agreement_mean']:.4f}")
    lines.append(f"mutual information: correct digits {summary['mutual_information_correct']:.4f} nats, "
                 f"wrong digits {summary['mutual_information_wrong']:.4f} nats")
    half = perturbation[(perturbation["fraction"] - 0.5).abs() < 1e-9]
    for row in half.itertuples():
        lines.append(f"  f=0.5 {row.layer} {row.perturbation}: error {row.error_mean:.4f} +- {row.error_std:.4f} "
                     f"({row.n_perturbed} connections)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
