"""Optimisation baselines: pure, batched functions returning result objects.

User association: strongest channel (SC) and dual coordinate descent (DCD, seed 000 Algorithm 1
with the power control of Shen & Yu 2014). Coordinated beamforming under the interference
temperature constraints (2b)-(2c): WMMSE (Algorithm 2), low-complexity WMMSE, direct FP.
SISO interference-channel power control: batched WMMSE with an active set (``wmmse_siso``).
Seed 001 subchannel allocation: random, round robin and the QoS-first greedy + best-response
reference (``ofdm_allocation``).
"""

from skyshare.solvers.association_dcd import (
    DualCoordinateDescentResult,
    associate_dcd,
    dual_coordinate_descent,
)
from skyshare.solvers.association_sc import associate_sc
from skyshare.solvers.cellfree_problem import CellFreeEvaluation, CellFreeProblem, CellFreeResult
from skyshare.solvers.flwf import (
    FlwfResult,
    FlwfStartsResult,
    equilibrium_gap,
    flwf,
    flwf_random_starts,
)
from skyshare.solvers.fp import fp
from skyshare.solvers.multiband_problem import MultibandProblem
from skyshare.solvers.ofdm_allocation import (
    OfdmAllocationEvaluation,
    OfdmAllocationProblem,
    OfdmAllocationResult,
    best_response,
    evaluate_allocation,
    greedy_best_response,
    qos_greedy,
    random_allocation,
    round_robin_allocation,
)
from skyshare.solvers.pf_agents import (
    BsAgent,
    InProcessAgents,
    SignalingProxy,
    centralized_signaling,
)
from skyshare.solvers.pf_local import local_step, local_step_cvxpy
from skyshare.solvers.pf_sca import sca_centralized
from skyshare.solvers.pf_wmmse import pf_wmmse
from skyshare.solvers.pfbwd import pfbwd
from skyshare.solvers.power_control import PowerControlResult, network_utility, newton_power_control
from skyshare.solvers.problem import (
    AssociationResult,
    BeamformingProblem,
    BeamformingResult,
    Evaluation,
    evaluate,
    initial_beamformers,
)
from skyshare.solvers.waterfilling import SswfResult, random_power, sswf, water_filling
from skyshare.solvers.wmmse import wmmse
from skyshare.solvers.wmmse_lite import wmmse_lite
from skyshare.solvers.wmmse_siso import SisoWmmseResult, siso_sum_rate, wmmse_siso
from skyshare.solvers.wstep import WStepResult, scale_to_interference_limit, solve_w_step

__all__ = [
    "AssociationResult",
    "BeamformingProblem",
    "BeamformingResult",
    "BsAgent",
    "CellFreeEvaluation",
    "CellFreeProblem",
    "CellFreeResult",
    "DualCoordinateDescentResult",
    "Evaluation",
    "FlwfResult",
    "FlwfStartsResult",
    "InProcessAgents",
    "MultibandProblem",
    "OfdmAllocationEvaluation",
    "OfdmAllocationProblem",
    "OfdmAllocationResult",
    "PowerControlResult",
    "SignalingProxy",
    "SisoWmmseResult",
    "SswfResult",
    "WStepResult",
    "associate_dcd",
    "associate_sc",
    "best_response",
    "centralized_signaling",
    "dual_coordinate_descent",
    "equilibrium_gap",
    "evaluate",
    "evaluate_allocation",
    "flwf",
    "flwf_random_starts",
    "fp",
    "greedy_best_response",
    "initial_beamformers",
    "local_step",
    "local_step_cvxpy",
    "network_utility",
    "newton_power_control",
    "pf_wmmse",
    "pfbwd",
    "qos_greedy",
    "random_allocation",
    "random_power",
    "round_robin_allocation",
    "sca_centralized",
    "scale_to_interference_limit",
    "siso_sum_rate",
    "solve_w_step",
    "sswf",
    "water_filling",
    "wmmse",
    "wmmse_lite",
    "wmmse_siso",
]
