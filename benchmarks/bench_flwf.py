"""FLWF, SSWF and random power allocation per block on seed 004's paper network.

Network: the `multiband` paper preset, 3 cells, (M, U) = (32, 16), N_f = 6, SIR 0 dB, SNR 20 dB,
block 0 of T = 10 (per-user budget 6, unit power per channel on average). FLWF runs 100 random
initialisations (Dirichlet(1) splits of each user's budget) of one channel realization in one
batch, as seed 004 §V averages FLWF over 100 random initializations; SSWF and random are one
allocation of the same realization.

TD3-MIX+FLWF online decision (seed 004 §IV-C, the ``TD3-MIX+FLWF`` scheme of
``skyshare.schemes.multiband``: ``flwf`` from the agents' ``act``): every BS's actor maps its
observation (17) to an allocation, then FLWF runs from it until convergence. Timed per block for
one realization (B = 1) and batched over ``DECISION_BATCH`` realizations (one call), with the
paper's networks (2 x 128, full observation (17)). The actor is untrained (seeded random
weights): the time of the actor does not depend on its weights, but FLWF's iterations depend on
the start it is given (an untrained softmax actor gives near-uniform splits, close to equal
power); a trained actor's starts may converge in a different number of iterations.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import Section, fmt, time_call
from skyshare.envs.multiband import MultibandEnv
from skyshare.rl.td3_mix import TD3MixAgents, TD3MixConfig
from skyshare.scenarios.multiband import MultibandConfig, MultibandScenario
from skyshare.solvers.flwf import flwf, flwf_random_starts
from skyshare.solvers.waterfilling import random_power, sswf

N_STARTS = 100
SETTINGS = [  # (label, max_iter, tol)
    ("defaults", 200, 1e-6),
    ("tol 1e-4", 3000, 1e-4),
    ("to equilibrium", 3000, 1e-6),
]
DECISION_BATCH = 100  # realizations decided in one batched call
DECISION_SETTINGS = [  # (label, max_iter, tol) of the online FLWF
    ("online defaults", 200, 1e-6),
    ("tol 1e-4", 3000, 1e-4),
]


def _iterations_to_within(trace: torch.Tensor, fraction: float) -> torch.Tensor:
    """(N, T) capacity traces -> (N,) first iteration from which the capacity stays within
    ``fraction`` of its final value."""
    final = trace[:, -1:]
    outside = (trace - final).abs() > fraction * final.abs()
    T = trace.shape[1]
    last_outside = torch.where(outside, torch.arange(T), -1).amax(-1)
    return last_outside + 1


def run() -> Section:
    torch.set_grad_enabled(False)
    section = Section(
        key="flwf",
        title="FLWF, SSWF and random power allocation per block (multiband paper network, "
        "seed 004)",
        description=(
            "One block of the paper network (3 cells, (M, U) = (32, 16), N_f = 6, SIR 0 dB, "
            f"SNR 20 dB). FLWF: {N_STARTS} random initialisations of one realization batched "
            "(`flwf_random_starts`), stopping when every start's equilibrium gap is <= tol or "
            "after max_iter iterations; time is for the whole batch (one block). Capacity: "
            "average per cell in bit/s/Hz, mean over the starts. float32 on the CPU."
        ),
        columns=[
            "scheme",
            "max_iter / tol",
            "time per block (s)",
            "ms per iteration",
            "iterations (mean / max over starts)",
            "converged (%)",
            "median gap",
            "iterations to within 1 % / 0.1 % of final capacity (median)",
            "capacity per cell (std over starts)",
        ],
    )
    scenario = MultibandScenario.from_preset("paper", batch_size=1)
    state = scenario.reset(seed=0)
    problem = scenario.problem(state)
    flwf_random_starts(problem, N_STARTS, torch.Generator().manual_seed(0), max_iter=5)

    for label, max_iter, tol in SETTINGS:
        generator = torch.Generator().manual_seed(1)
        start = time.perf_counter()
        starts = flwf_random_starts(problem, N_STARTS, generator, max_iter=max_iter, tol=tol)
        seconds = time.perf_counter() - start
        result = starts.result
        within = [
            float(_iterations_to_within(result.capacity_trace, q).double().median())
            for q in (0.01, 0.001)
        ]
        section.rows.append(
            [
                f"FLWF ({label})",
                f"{max_iter} / {tol:g}",
                fmt(seconds),
                fmt(seconds / max(result.iterations, 1) * 1e3),
                f"{result.instance_iterations.double().mean():.0f} / "
                f"{int(result.instance_iterations.max())}",
                fmt(100 * float(result.converged.double().mean())),
                fmt(float(result.equilibrium_gap.double().median())),
                f"{within[0]:.0f} / {within[1]:.0f}",
                f"{fmt(float(starts.capacity_mean[0]))} ({fmt(float(starts.capacity_std[0]))})",
            ]
        )

    selfish_s = time_call(lambda: sswf(problem), repeats=5, min_time_s=0.5)
    selfish = sswf(problem)
    section.rows.append(
        [
            "SSWF",
            "-",
            fmt(selfish_s),
            "-",
            "-",
            "-",
            "-",
            "-",
            fmt(float(selfish.cell_capacity.mean())),
        ]
    )
    generator = torch.Generator().manual_seed(2)
    draws = torch.stack(
        [
            problem.cell_sum(problem.rates(random_power(problem, generator))).mean()
            for _ in range(N_STARTS)
        ]
    )
    random_s = time_call(lambda: random_power(problem, generator), repeats=5, min_time_s=0.2)
    section.rows.append(
        [
            "random (Dirichlet(1))",
            "-",
            fmt(random_s),
            "-",
            "-",
            "-",
            "-",
            "-",
            f"{fmt(float(draws.mean()))} ({fmt(float(draws.std()))})",
        ]
    )
    section.notes.append(
        "The equilibrium gap is the largest relative change of a user's rate under a unilateral "
        "best response (15) (docs/solvers/flwf.md). At high SINR the update (15) contracts "
        "slowly (Jacobian about 1 - sqrt(c/p)/2), so the powers need far more iterations than "
        "the capacity: compare the last two iteration columns."
    )
    section.notes.append(
        "SSWF time includes the rate evaluation with the SINR kernel (most of it); random "
        "time is the draw alone. Their capacities are for the same realization."
    )
    decision_rows(section, MultibandScenario.config_from("paper"))
    section.notes.append(
        "TD3-MIX+FLWF online rows: the TD3-MIX+FLWF scheme's decision on block 0 (actor on "
        "the observation (17), "
        "then FLWF from the actor's allocation until the gap is <= tol or max_iter), one "
        f"realization (B = 1) and {DECISION_BATCH} realizations in one call (time for the "
        "whole batch; capacity and iterations are means over the realizations, the std column "
        "is over realizations). Untrained actor (seeded): the FLWF iterations depend on the "
        "start, so a trained actor may need a different number. 'TD3-MIX actor only' is the "
        "actor's forward pass and power mapping (the plain TD3-MIX decision)."
    )
    return section


def decision_rows(
    section: Section,
    scenario_config: MultibandConfig,
    *,
    batch_sizes: tuple[int, ...] = (1, DECISION_BATCH),
    settings: list[tuple[str, int, float]] = DECISION_SETTINGS,
    repeats: int = 3,
) -> None:
    """Append the TD3-MIX+FLWF online decision time per block (actor, then FLWF to
    convergence) and the actor alone, for each batch size, to ``section``."""
    for batch in batch_sizes:
        env = MultibandEnv(scenario_config, batch_size=batch)
        env.reset(seed=0)
        # buffer_size=1: the replay buffer plays no part in a decision (and would take ~1 GB).
        learner = TD3MixAgents.for_env(env, TD3MixConfig(buffer_size=1, seed=0))
        actor_s = time_call(
            lambda learner=learner, env=env: env.action_to_power(learner.act(env.observe())),
            repeats=repeats,
            min_time_s=0.2,
        )
        section.rows.append([f"TD3-MIX actor only, B = {batch}", "-", fmt(actor_s)] + ["-"] * 6)
        for label, max_iter, tol in settings:

            @torch.no_grad()
            def decide(learner=learner, env=env, max_iter=max_iter, tol=tol):
                # the TD3-MIX+FLWF scheme's decision: FLWF from the actor's allocation
                initial = env.action_to_power(learner.act(env.observe()))
                return flwf(env.problem(), initial, max_iter=max_iter, tol=tol)

            seconds = time_call(decide, repeats=repeats, min_time_s=0.0)
            result = decide()
            capacity = result.capacity_trace[:, -1].double()
            within = [
                float(_iterations_to_within(result.capacity_trace, q).double().median())
                for q in (0.01, 0.001)
            ]
            std = fmt(float(capacity.std())) if batch > 1 else "-"
            section.rows.append(
                [
                    f"TD3-MIX+FLWF online ({label}), B = {batch}",
                    f"{max_iter} / {tol:g}",
                    fmt(seconds),
                    fmt(seconds / max(result.iterations, 1) * 1e3),
                    f"{result.instance_iterations.double().mean():.0f} / "
                    f"{int(result.instance_iterations.max())}",
                    fmt(100 * float(result.converged.double().mean())),
                    fmt(float(result.equilibrium_gap.double().median())),
                    f"{within[0]:.0f} / {within[1]:.0f}",
                    f"{fmt(float(capacity.mean()))} ({std})",
                ]
            )
