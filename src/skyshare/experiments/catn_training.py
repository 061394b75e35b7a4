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

Checkpoints: with ``checkpoint_path``, everything the loop needs to continue exactly is saved
atomically (temporary file, then ``os.replace``) every ``checkpoint_every`` slots and after the
last slot: the agents' ``state_dict`` (networks, optimisers, epsilon, nu, the on-policy
generator; D3QN also its replay memory and its generator's state), the trajectory collector,
the whole environment (channel process, generators, last slot record, signaling ledger), the
current TU observations, the last BS experience, the slot index and the log so far. A call that
finds the file resumes from it, so an interrupted run continues with the same numbers as an
uninterrupted one (only the measured ``decision_time_s`` differs).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from skyshare import metrics
from skyshare.checks import read_checkpoint
from skyshare.envs.catn import CatnEnv
from skyshare.errors import ConfigError, UnknownNameError
from skyshare.rl.cup import CupAgents
from skyshare.rl.d3qn import D3QNAgents
from skyshare.rl.policies import TrajectoryCollector
from skyshare.rl.ppo_penalty import PpoPenaltyAgents
from skyshare.solvers.problem import BeamformingProblem

__all__ = [
    "ASSOCIATION_SCHEMES",
    "BEAMFORMING_SCHEMES",
    "CHECKPOINT_FORMAT",
    "TrainingLog",
    "run_online",
]

ASSOCIATION_SCHEMES = ("d3qn", "sc", "dcd")
BEAMFORMING_SCHEMES = ("cup", "ppo", "wmmse", "wmmse-lite", "fp")
CHECKPOINT_FORMAT = 1  # version of the run_online checkpoint layout


@dataclass
class TrainingLog:
    """Per-slot series of an online run (S slots, mean over the B environments).

    Attributes:
        sum_rate: (S,) TU sum rate, bit/s/Hz. effective_sum_rate: (S,) with the handover
            discount (16). au_interference_ratio: (S, L) rho_l / I_max. handover_fraction: (S,)
            share of TUs that changed BS. tu_reward, bs_reward: (S,) mean rewards.
        slots: (S,) the slot indices logged (all, or every ``evaluate_every``-th for a solver).
        decision_time_s: (S,) association + beamforming decision time of the slot (the BS
            learner update that may run in the slot is training and is not counted).
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
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
) -> TrainingLog:
    """Run (and train) a scheme for ``n_slots`` slots of ``env``; return its per-slot log.

    Args:
        env: the batched CATN game (its ``bs_information`` / ``tu_information`` decide what
            the ledger counts).
        association: ``d3qn`` (needs ``tu_agents``), ``sc`` or ``dcd``.
        beamforming: ``cup`` / ``ppo`` (needs ``bs_agents``), or a solver name.
        collector_size: B_m^BS (default: the learner's config).
        train: update the learners (False: evaluation with greedy / mean actions).
        seed: seed of ``env.reset`` (ignored when resuming: the restored env continues).
        evaluate_every: with a solver beamformer, solve and log only every n-th slot (seed 000
            computes DCD-DFP on 100 equally spaced slots); the other slots advance the channels
            with silent BSs and are not logged.
        checkpoint_path: file holding the full state of the run (see the module docstring).
            If it exists when the call starts, the run resumes from it; ``env`` and the agents
            must then be built as for the interrupted run (same configs), and are overwritten
            with the saved state. The file is (re)written after the last slot.
        checkpoint_every: also write the checkpoint every this many slots (0: only at the end).
    """
    if evaluate_every < 1 or (evaluate_every > 1 and beamforming in ("cup", "ppo")):
        raise ValueError("evaluate_every must be >= 1, and 1 for learned beamformers")
    if checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every must be >= 0 slots, got {checkpoint_every}")
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

    scheme = {"association": association, "beamforming": beamforming, "train": train}
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        first_slot, tu_obs, previous, log = _load_checkpoint(
            Path(checkpoint_path), scheme, n_slots, env, tu_agents, bs_agents, collector
        )
    else:
        first_slot, log = 0, TrainingLog()
        tu_obs = env.reset(seed=seed)
        previous = None  # (bs_obs, bs_actions, bs_reward, cost) of the last slot
    from tqdm.auto import tqdm

    slots = tqdm(
        range(first_slot, n_slots),
        desc=f"{association}-{beamforming}",
        initial=first_slot,
        total=n_slots,
        disable=not progress,
    )
    for t in slots:
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
        learning_time = 0.0  # the BS update is training, not part of the slot's decision
        if collector is not None and previous is not None:
            collector.add(previous[0], previous[1], previous[2], previous[3], bs_obs)
            if collector.full:
                update_start = time.perf_counter()
                log.stats = bs_agents.update(collector.pop())
                log.updates += 1
                learning_time = time.perf_counter() - update_start
        if learned_bs:
            bs_actions, _, _ = bs_agents.act(bs_obs, deterministic=not train, with_values=False)
            decision = time.perf_counter() - start - learning_time
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
        if logged:
            log.slots.append(t)
            log.sum_rate.append(float(outcome.rates.sum(-1).mean()))
            log.effective_sum_rate.append(float(outcome.effective_rates.sum(-1).mean()))
            log.au_interference_ratio.append((outcome.au_interference / env.i_max).mean(0).tolist())
            log.handover_fraction.append(float(outcome.handovers.float().mean()) / env.K)
            log.tu_reward.append(float(outcome.tu_reward.mean()))
            log.bs_reward.append(float(outcome.bs_reward.mean()))
            log.decision_time_s.append(decision)
        done = t + 1
        if checkpoint_path is not None and (
            done == n_slots or (checkpoint_every and done % checkpoint_every == 0)
        ):
            _save_checkpoint(
                Path(checkpoint_path),
                {
                    "format": CHECKPOINT_FORMAT,
                    "scheme": scheme,
                    "next_slot": done,
                    "tu_obs": tu_obs,
                    "previous": previous,
                    "log": asdict(log),
                    "env": _env_state(env),
                    "tu_agents": None if tu_agents is None else _d3qn_state(tu_agents),
                    "bs_agents": None if bs_agents is None else bs_agents.state_dict(),
                    "collector": None if collector is None else collector.state_dict(),
                },
            )
    return log


# -------------------------------------------------------------------------------------------
# Checkpoints
# -------------------------------------------------------------------------------------------


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then ``os.replace``: a crash never leaves a
    half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _d3qn_state(agents: D3QNAgents) -> dict[str, Any]:
    """D3QN's own state_dict (networks, optimiser, epsilon, memory) plus its generator state
    (exploration and minibatch sampling), which the caller owns."""
    return {
        "agents": agents.state_dict(include_memory=True),
        "generator": agents.generator.get_state(),
    }


def _env_state(env: CatnEnv) -> dict[str, Any]:
    """Every attribute of the env (scenario with its generator and channel process, last slot
    record, association, phase) and the ledger's counts, not the methods a caller may have
    wrapped on the instance. The ledger's ``defaultdict`` factory
    is a lambda, which does not pickle, so its totals are saved as a plain dict."""
    ledger = dict(vars(env.ledger))
    ledger["_totals"] = dict(ledger["_totals"])
    # callables in the instance dict are wrappers a caller installed (instrumentation, tests)
    attributes = {k: v for k, v in vars(env).items() if k != "ledger" and not callable(v)}
    return {"attributes": attributes, "ledger": ledger}


def _restore_env(env: CatnEnv, state: dict[str, Any]) -> None:
    attributes = state["attributes"]
    saved = (attributes["config"], attributes["scenario"].config, attributes["B"])
    if saved != (env.config, env.scenario.config, env.B):
        raise ConfigError(
            "the checkpoint was written by an environment with another configuration or batch "
            "size; build the env as for the interrupted run or delete the checkpoint"
        )
    factory = env.ledger._totals.default_factory
    vars(env).update(attributes)
    # the compressed-channel cache is keyed by object ids of the saving process: recompute it
    vars(env).pop("_compressed_key", None)
    vars(env.ledger).update(state["ledger"])
    env.ledger._totals = defaultdict(factory, state["ledger"]["_totals"])


def _load_checkpoint(
    path: Path,
    scheme: dict[str, Any],
    n_slots: int,
    env: CatnEnv,
    tu_agents: D3QNAgents | None,
    bs_agents: CupAgents | PpoPenaltyAgents | None,
    collector: TrajectoryCollector | None,
):
    """Restore env, agents and collector in place; return (next slot, tu_obs, previous, log)."""
    state = read_checkpoint(path, map_location=env.device)
    if state.get("format") != CHECKPOINT_FORMAT or state["scheme"] != scheme:
        raise ConfigError(
            f"checkpoint {path} holds {state.get('scheme')} (format {state.get('format')}), "
            f"this run is {scheme} (format {CHECKPOINT_FORMAT}); delete it to start afresh"
        )
    if state["next_slot"] > n_slots:
        raise ConfigError(
            f"checkpoint {path} is at slot {state['next_slot']}, beyond n_slots = {n_slots}"
        )
    _restore_env(env, state["env"])
    if tu_agents is not None and state["tu_agents"] is not None:
        tu_agents.load_state_dict(state["tu_agents"]["agents"])
        tu_agents.generator.set_state(state["tu_agents"]["generator"])
    if bs_agents is not None and state["bs_agents"] is not None:
        bs_agents.load_state_dict(state["bs_agents"])
    if collector is not None and state["collector"] is not None:
        collector.load_state_dict(state["collector"])
    log = TrainingLog(**{f.name: state["log"][f.name] for f in fields(TrainingLog)})
    return state["next_slot"], state["tu_obs"], state["previous"], log
