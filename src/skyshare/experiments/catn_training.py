"""The online loop of seed 000 Algorithm 4 for every association x beamforming scheme.

Each slot t (B parallel environments, all agents of a kind as one batched group):

1. association: D3QN TU agents act epsilon-greedily on their observations (14) (random until
   their memories hold a batch), or SC / DCD decide from the channels;
2. the BSs observe (8); the BS experience of slot t-1 ``<o(t-1), a(t-1), r(t-1), c(t-1), o(t)>``
   is stored, and a full trajectory collector triggers one CUP / PPO update (Algorithm 3) and is
   cleared (lines 22-25);
3. beamforming: CUP / PPO agents act on (8), or WMMSE / low-complexity WMMSE / FP solve the slot
   with global CSI (two-stage benchmarks);
4. transmission: rewards (10), (15)-(16) and costs (11); the TU transitions are stored and every
   TU agent takes one gradient step (lines 9-13).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from skyshare import metrics
from skyshare.envs.catn import CatnEnv
from skyshare.errors import UnknownNameError
from skyshare.rl.cup import CupAgents
from skyshare.rl.d3qn import D3QNAgents
from skyshare.rl.policies import TrajectoryCollector
from skyshare.rl.ppo_penalty import PpoPenaltyAgents
from skyshare.solvers.problem import BeamformingProblem

__all__ = ["ASSOCIATION_SCHEMES", "BEAMFORMING_SCHEMES", "TrainingLog", "run_online"]

ASSOCIATION_SCHEMES = ("d3qn", "sc", "dcd")
BEAMFORMING_SCHEMES = ("cup", "ppo", "wmmse", "wmmse-lite", "fp")


@dataclass
class TrainingLog:
    """Per-slot series of an online run (S slots, mean over the B environments).

    Attributes:
        sum_rate: (S,) TU sum rate, bit/s/Hz. effective_sum_rate: (S,) with the handover
            discount (16). au_interference_ratio: (S, L) rho_l / I_max. handover_fraction: (S,)
            share of TUs that changed BS. tu_reward, bs_reward: (S,) mean rewards.
        slots: (S,) the slot indices logged (all, or every ``evaluate_every``-th for a solver).
        decision_time_s: (S,) association + beamforming decision time of the slot.
        updates: BS learner updates run; stats: the last update's statistics.
    """

    slots: list[int] = field(default_factory=list)
    sum_rate: list[float] = field(default_factory=list)
    effective_sum_rate: list[float] = field(default_factory=list)
    au_interference_ratio: list[list[float]] = field(default_factory=list)
    handover_fraction: list[float] = field(default_factory=list)
    tu_reward: list[float] = field(default_factory=list)
    bs_reward: list[float] = field(default_factory=list)
    decision_time_s: list[float] = field(default_factory=list)
    updates: int = 0
    stats: dict = field(default_factory=dict)


def _beamform_with_solver(env: CatnEnv, name: str) -> torch.Tensor:
    from skyshare.solvers.two_stage import BEAMFORMERS

    problem = BeamformingProblem(env.state.H, env.state.G, env.serving, env.p_max, env.i_max)
    return BEAMFORMERS[name](problem, None).w


def run_online(
    env: CatnEnv,
    association: str,
    beamforming: str,
    n_slots: int,
    *,
    tu_agents: D3QNAgents | None = None,
    bs_agents: CupAgents | PpoPenaltyAgents | None = None,
    collector_size: int | None = None,
    train: bool = True,
    seed: int | None = None,
    progress: bool = False,
    evaluate_every: int = 1,
) -> TrainingLog:
    """Run (and train) a scheme for ``n_slots`` slots of ``env``; return its per-slot log.

    Args:
        env: the batched CATN game (its ``bs_information`` / ``tu_information`` decide what
            the ledger counts).
        association: ``d3qn`` (needs ``tu_agents``), ``sc`` or ``dcd``.
        beamforming: ``cup`` / ``ppo`` (needs ``bs_agents``), or a solver name.
        collector_size: B_m^BS (default: the learner's config).
        train: update the learners (False: evaluation with greedy / mean actions).
        evaluate_every: with a solver beamformer, solve and log only every n-th slot (seed 000
            computes DCD-DFP on 100 equally spaced slots); the other slots advance the channels
            with silent BSs and are not logged.
    """
    if evaluate_every < 1 or (evaluate_every > 1 and beamforming in ("cup", "ppo")):
        raise ValueError("evaluate_every must be >= 1, and 1 for learned beamformers")
    if association not in ASSOCIATION_SCHEMES:
        raise UnknownNameError(
            f"unknown association {association!r}; available: {', '.join(ASSOCIATION_SCHEMES)}"
        )
    if beamforming not in BEAMFORMING_SCHEMES:
        raise UnknownNameError(
            f"unknown beamforming {beamforming!r}; available: {', '.join(BEAMFORMING_SCHEMES)}"
        )
    if association == "d3qn" and tu_agents is None:
        raise ValueError("association 'd3qn' needs tu_agents (D3QNAgents)")
    learned_bs = beamforming in ("cup", "ppo")
    if learned_bs and bs_agents is None:
        raise ValueError(f"beamforming {beamforming!r} needs bs_agents")
    collector = None
    if learned_bs and train:
        collector = TrajectoryCollector(collector_size or bs_agents.config.collector_size)

    log = TrainingLog()
    tu_obs = env.reset(seed=seed)
    previous = None  # (bs_obs, bs_actions, bs_reward, cost) of the last slot
    from tqdm.auto import tqdm

    for t in tqdm(range(n_slots), desc=f"{association}-{beamforming}", disable=not progress):
        logged = t % evaluate_every == 0
        start = time.perf_counter()
        if association == "d3qn":
            tu_actions = tu_agents.act(tu_obs, explore=train)
        elif association == "sc":
            tu_actions = metrics.strongest_transmitter(env.state.H)
        else:
            from skyshare.solvers.association_dcd import associate_dcd

            tu_actions = associate_dcd(env.state.H, p_max=env.p_max, n_antennas=env.M).serving
        bs_obs = env.associate(tu_actions)
        if collector is not None and previous is not None:
            collector.add(previous[0], previous[1], previous[2], previous[3], bs_obs)
            if collector.full:
                log.stats = bs_agents.update(collector.pop())
                log.updates += 1
        if learned_bs:
            bs_actions, _, _ = bs_agents.act(bs_obs, deterministic=not train)
            decision = time.perf_counter() - start
            outcome = env.beamform(bs_actions)
        else:
            w = (
                _beamform_with_solver(env, beamforming)
                if logged
                else torch.zeros(env.B, env.K, env.M, dtype=env.cdtype, device=env.device)
            )
            decision = time.perf_counter() - start
            bs_actions = None
            outcome = env.beamform_with(w)
        if association == "d3qn" and train:
            tu_agents.observe(tu_obs, tu_actions, outcome.tu_reward, outcome.tu_obs)
            tu_agents.update()
        previous = (bs_obs, bs_actions, outcome.bs_reward, outcome.cost)
        tu_obs = outcome.tu_obs
        if outcome.truncated:
            tu_obs = env.reset()
            previous = None
        if not logged:
            continue
        log.slots.append(t)
        log.sum_rate.append(float(outcome.rates.sum(-1).mean()))
        log.effective_sum_rate.append(float(outcome.effective_rates.sum(-1).mean()))
        log.au_interference_ratio.append((outcome.au_interference / env.i_max).mean(0).tolist())
        log.handover_fraction.append(float(outcome.handovers.float().mean()) / env.K)
        log.tu_reward.append(float(outcome.tu_reward.mean()))
        log.bs_reward.append(float(outcome.bs_reward.mean()))
        log.decision_time_s.append(decision)
    return log
