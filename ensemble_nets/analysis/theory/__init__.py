# SPDX-License-Identifier: MIT
"""Theory probes: order-parameter dynamics and their simulations (numpy/scipy; never plots)."""
from ensemble_nets.analysis.theory.online import (generalization_error, integrate_order_parameters,
                                                  order_parameters, simulate_online)

__all__ = ["generalization_error", "integrate_order_parameters", "order_parameters", "simulate_online"]
