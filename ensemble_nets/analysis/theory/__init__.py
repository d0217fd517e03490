# SPDX-License-Identifier: MIT
"""Theory: reduced models the experiments are compared against (one model per module; numpy/torch, never plots)."""
from ensemble_nets.analysis.theory.online import (
    generalization_error,
    integrate_order_parameters,
    order_parameters,
    simulate_online,
)
from ensemble_nets.analysis.theory.spring_block import (
    SpringBlockResult,
    langevin_elongations,
    langevin_max_dt,
    simulate_spring_block,
    simulate_spring_langevin,
    spring_forces,
)

__all__ = [
    "SpringBlockResult",
    "generalization_error",
    "integrate_order_parameters",
    "langevin_elongations",
    "langevin_max_dt",
    "order_parameters",
    "simulate_online",
    "simulate_spring_block",
    "simulate_spring_langevin",
    "spring_forces",
]
