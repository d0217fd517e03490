#!/usr/bin/env python
"""Credit-assignment analysis of trained ensembles: tables and InferenceData into each run folder.

Examples::

    python experiments/analyze_run.py runs/default-ensemble-s0
    python experiments/analyze_run.py runs/reference-ensemble-s0 --n-networks 100 --perturb-networks 20
    # three training seeds of one configuration: gaps and category fractions with 95% intervals over seeds
    python experiments/analyze_run.py runs/default-ensemble-s0 runs/default-ensemble-s1 runs/default-ensemble-s2

Writes RUN_DIR/analysis/ (categories with inactive connections, parameter histograms, entropy,
perturbation curves with every control, ensemble statistics with lppd / NLL / Brier, calibration,
summary.json, inference_data.nc: see ``ensemble_nets.protocols.ensemble``). With several run folders
(of one architecture), AGGREGATE_OUT (default: beside the first, named after it without its -sN
suffix, e.g. runs/default-ensemble-seeds) gets gaps.csv, gaps_per_run.csv, categories.csv and
summary.json. The runs are read with ``ensemble_nets.load_run``; the test data are the ones in their
config.json (``--data-root`` overrides the folder). Never trains.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ensemble_nets.analysis.perturb import DEFAULT_FRACTIONS
from ensemble_nets.protocols.ensemble import analyze_runs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                   help="run folders written by run_mnist.py (several: training seeds of one configuration)")
    p.add_argument("--aggregate-out", type=Path, help="folder for the summary over several runs "
                   "(default: the first run's name without -sN, plus -seeds)")
    p.add_argument("--data-root", help="folder with the MNIST test set (default: the run's config)")
    p.add_argument("--n-networks", type=int, default=50, help="networks sampled from q for the statistics (>= 2)")
    p.add_argument("--perturb-networks", type=int, default=10, help="networks per perturbation point (>= 1)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS), help="fractions perturbed")
    p.add_argument("--layers", nargs="+", help="layers to perturb, e.g. layer1 layer3 (default: all)")
    p.add_argument("--max-weights", type=int, default=500, help="weights per layer kept in the InferenceData")
    p.add_argument("--tol", type=float, help="category tolerance (default: 0, or for ELBO runs one read from the "
                   "run's pi and xi by choose_tolerance)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-incomplete", action="store_true", help="analyze a run that stopped before its last epoch")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        analyses, over_runs = analyze_runs(
            args.run_dirs, aggregate_out=args.aggregate_out, data_root=args.data_root, n_networks=args.n_networks,
            perturb_networks=args.perturb_networks, fractions=args.fractions, layers=args.layers,
            max_weights=args.max_weights, tol=args.tol, seed=args.seed, allow_incomplete=args.allow_incomplete,
            progress=args.progress)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"analyze_run.py: error: {err}")
    for analysis in analyses:
        _report(analysis.summary, analysis.perturbation)
    if over_runs is not None:
        _report_runs(over_runs)
    return analyses[0].summary


def _report(summary: dict, perturbation) -> None:
    tol = ", ".join(f"{k} {v:g}" for k, v in summary["categories_tol"].items())
    lines = [f"{summary['run_dir']}: objective {summary['objective']}, categories (tol {tol}):"]
    for layer, fractions in summary["categories"].items():
        lines.append(f"  {layer}: " + ", ".join(f"{k} {v:.3f}" for k, v in fractions.items()))
        lines.append(f"  {layer} among active: " + ", ".join(
            f"{k} {v:.3f}" for k, v in summary["categories_active"][layer].items()))
    lines.append(f"sampled networks: accuracy {summary['accuracy_mean']:.4f} +- {summary['accuracy_std']:.4f} "
                 f"(K = {summary['n_networks']}), {summary['hdi_prob']:.0%} HDI "
                 f"[{summary['accuracy_hdi_low']:.4f}, {summary['accuracy_hdi_high']:.4f}]; "
                 f"ensemble-average accuracy {summary['ensemble_accuracy']:.4f}, ECE {summary['ece']:.4f}, "
                 f"agreement {summary['agreement_mean']:.4f}")
    lines.append(f"predictive scores: lppd {summary['lppd']:.1f}, NLL {summary['nll']:.4f} "
                 f"(members {summary['nll_members_mean']:.4f}), Brier {summary['brier']:.4f} "
                 f"(members {summary['brier_members_mean']:.4f})")
    lines.append(f"mutual information: correct digits {summary['mutual_information_correct']:.4f} nats, "
                 f"wrong digits {summary['mutual_information_wrong']:.4f} nats")
    half = perturbation[(perturbation["fraction"] - 0.5).abs() < 1e-9]
    for row in half.itertuples():
        lines.append(f"  f=0.5 {row.layer} {row.perturbation}: error {row.error_mean:.4f} +- {row.error_std:.4f} "
                     f"({row.n_perturbed} connections)")
    print("\n".join(lines))


def _report_runs(over_runs) -> None:
    lines = ["perturbation gaps error(target) - error(control), 95% intervals:"]
    for row in over_runs.gaps.itertuples():
        lines.append(f"  {row.layer} f={row.fraction:g} {row.target} - {row.control}: {row.mean:+.4f} "
                     f"[{row.low:+.4f}, {row.high:+.4f}] ({row.n_runs} runs; interval over {row.interval_over}): "
                     f"{row.verdict}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
