"""Seed 003 solvers per realization: centralized SCA (CVXPY) vs distributed PFBWD, side by side.

Network: the `vhetnet` paper scenario (1 HAPS 8x8 + 4 MBSs 4x4, K = 16 UEs, 1 km square),
then larger networks (8 and 16 MBSs; a 16x16 HAPS). Each solver runs on the same realizations
(seed 0, all of a network in one batched call), one thread, in-process; times are wall time
per realization (the batch's time divided by its size) and the ratio is centralized /
distributed measured in the same run. PFBWD runs with its defaults (rho/beta = 0.5, inner_tol
1e-4). The local-solver rows time the block-2
subproblem (one BS's projection) with the fast batched PyTorch solver and with the CVXPY
reference (Clarabel) on the same random subproblems.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import Section, fmt
from skyshare.scenarios.vhetnet import VhetnetConfig, VhetnetScenario
from skyshare.solvers.cellfree_problem import CellFreeProblem
from skyshare.solvers.pf_local import local_step, local_step_cvxpy
from skyshare.solvers.pf_sca import sca_centralized
from skyshare.solvers.pf_wmmse import pf_wmmse
from skyshare.solvers.pfbwd import pfbwd

# (label, config overrides, realizations): PFBWD's round count is heavy-tailed (73-915 inner
# iterations on ten paper-size drops of seed 0), so a handful of realizations can flatter it
NETWORKS = (
    ("paper: HAPS 8x8 + 4 MBS, K=16", {}, 10),
    ("HAPS 8x8 + 8 MBS, K=16", {"n_mbs": 8}, 4),
    ("HAPS 8x8 + 16 MBS, K=16", {"n_mbs": 16}, 2),
    ("HAPS 16x16 + 4 MBS, K=16", {"haps_n_h": 16, "haps_n_v": 16}, 4),
)
SOLVERS = {
    "centralized SCA": lambda p: sca_centralized(p),
    "distributed PFBWD": lambda p: pfbwd(p),
    "PF-WMMSE": lambda p: pf_wmmse(p),
}


def _problem(overrides: dict, realizations: int) -> CellFreeProblem:
    scenario = VhetnetScenario(VhetnetConfig(**overrides), batch_size=realizations)
    return scenario.reset(0).problem()


def _per_realization(solve, problem: CellFreeProblem) -> tuple[float, float]:
    start = time.perf_counter()
    result = solve(problem)
    seconds = (time.perf_counter() - start) / problem.shape[0]
    return seconds, float(result.pf_objective.mean())


def _network_rows(section: Section) -> None:
    for label, overrides, realizations in NETWORKS:
        problem = _problem(overrides, realizations)
        times = {}
        for name, solve in SOLVERS.items():
            if name == "PF-WMMSE" and overrides:
                continue  # the reference once, at the paper size
            seconds, pf = _per_realization(solve, problem)
            times[name] = seconds
            ratio = times.get("centralized SCA", float("nan")) / seconds
            section.rows.append(
                [label, name, str(realizations), fmt(seconds) + " s", f"{pf:.2f}", f"{ratio:.2f}"]
            )


def _local_rows(section: Section, n: int = 40, K: int = 16, M: int = 64) -> None:
    g = torch.Generator().manual_seed(0)
    G = torch.randn(n, K, M, dtype=torch.complex128, generator=g) / M**0.5
    target_u = torch.randn(n, K, dtype=torch.complex128, generator=g)
    target_iota = torch.rand(n, K, dtype=torch.float64, generator=g)
    local_step(G[:2], target_u[:2], target_iota[:2])  # warm-up
    start = time.perf_counter()
    local_step(G, target_u, target_iota)
    fast = (time.perf_counter() - start) / n
    start = time.perf_counter()
    local_step_cvxpy(G, target_u, target_iota)
    reference = (time.perf_counter() - start) / n
    label = f"block-2 subproblem, K={K}, M={M}, {n} at once"
    for name, seconds in (("local_step (torch)", fast), ("local_step_cvxpy", reference)):
        ratio = reference / seconds
        section.rows.append([label, name, str(n), fmt(seconds) + " s", "-", f"{ratio:.1f}"])


def run() -> Section:
    torch.set_num_threads(1)
    section = Section(
        "vhetnet",
        "Seed 003 PF beamforming per realization: centralized vs distributed (vhetnet)",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        ["network", "solver", "realizations", "time / realization", "PF objective", "ratio"],
    )
    _network_rows(section)
    _local_rows(section)
    section.notes.append(
        "ratio: centralized time / this solver's time (network rows), CVXPY time / this "
        "solver's time (local rows); PF objective = mean sum_k ln SE_k"
    )
    return section
