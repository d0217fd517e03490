# SPDX-License-Identifier: MIT
"""Experiment families, downstream of ``training`` and ``analysis``: one module per family.

Each module holds a config dataclass and ``run_cell`` / ``run``: the phase diagram's cells
(:mod:`~ensemble_nets.protocols.phase`), the mode width sweep
(:mod:`~ensemble_nets.protocols.width_sweep`) and the gated routing simulation
(:mod:`~ensemble_nets.protocols.gated`). ``experiments/*.py`` are argparse around them.
"""
