# SPDX-License-Identifier: MIT
"""Experiment families, downstream of ``training`` and ``analysis``: one module per family.

Each module holds a config dataclass and ``run`` / ``run_cell`` (a :func:`~ensemble_nets.training.run_grid`
cell), and, for the paper figures, ``REQUIRED_RUNS``, ``BUDGETS = {"quick": ..., "paper": ...}``,
``missing_runs``, ``jobs`` and ``figure_tables`` (:mod:`~ensemble_nets.protocols.figures`):

    mnist        one MNIST run of a preset into a run folder (``experiments/run_mnist.py``)
    ensemble     credit-assignment analysis of an ensemble run (``experiments/analyze_run.py``)
    modes        mode analysis of trained runs (``experiments/analyze_modes.py``)
    width_sweep  modes needed against width (``experiments/mode_width_sweep.py``)
    online       on-line teacher-student simulation against ODE theory
    spectral     spectral parametrization: coordinate check, lr transfer, width sweep
    phase        the noise-nonlinearity phase diagram's cells and grids
    gated        gated deep linear networks on the routing task against the neural-race reduction
    racing       a shared pathway racing private ones (gated networks), simulation against theory
    zero_shot    zero-shot generalization over permuted MNIST domains, against init gain
    width_law    the mode width law at convergence: P_min(N) with seeds, early stopping, fits

``experiments/*.py`` are argparse around these configs; ``experiments/make_figures.py`` wires
run folders -> ``figure_tables`` -> ``ensemble_nets.plotting.<family>.draw_figures``.
"""
