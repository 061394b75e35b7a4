"""The online loop of seed 000 Algorithm 4, for every CATN scheme.

One loop serves ``skyshare solve catn`` and every ``skyshare run catn-*`` job. Each slot t
(B parallel environments, all agents of a kind as one batched group):

1. association: the scheme's association component decides from the TU observations (14)
   (D3QN epsilon-greedy while training) or from the channels (SC, DCD);
2. the BSs observe (8); a learning beamformer receives the experience of slot t-1
   ``<o(t-1), a(t-1), r(t-1), c(t-1), o(t)>`` (a full collector triggers one update of
   Algorithm 3, lines 22-25);
3. beamforming: the beamforming component decides (CUP / PPO actions, or a solver's
   beamformers with global CSI);
4. transmission: rewards (10), (15)-(16) and costs (11); a learning association component
   stores the TU transitions and takes one gradient step (lines 9-13).

Checkpoints (``checkpoint_path``) hold only tensors, numbers, strings and lists/dicts of them
and are read with ``torch.load(..., weights_only=True)``: the scheme's ``state_dict`` (networks,
optimisers, generators, replay memory, trajectory collector, warm-start point), the env's
``state_dict`` (channel process, generator, last slot record, ledger), the current TU
observations, the last BS experience, the slot index and the log so far. They are written
atomically every ``checkpoint_every`` slots and after the last slot; a call that finds the file
resumes from it, with the same numbers as an uninterrupted run (only measured times differ).
A checkpoint that does not fit the run (a missing key, a tensor of another shape, a slot index
outside [0, n_slots], a log of another length, or an env at another channel slot or turn than
the slot index implies) is refused with a :class:`ConfigError` naming the file and the
problem, before anything is restored or written.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from skyshare.checks import read_checkpoint
from skyshare.envs.catn import CatnEnv, SlotOutcome
from skyshare.errors import ConfigError
from skyshare.schemes.catn import BeamformDecision, CatnScheme

__all__ = [
    "CHECKPOINT_FORMAT",
    "VIOLATION_TOL",
    "CompactAccuracy",
    "OnlineLog",
    "compact_accuracy",
    "run_online",
]

CHECKPOINT_FORMAT = 2  # version of the checkpoint layout (1: pickled env, before weights-only)
VIOLATION_TOL = 1e-3  # relative; the solvers' feasibility_tol (float32 rounding sits at 1e-7)


@dataclass
class OnlineLog:
    """Per-slot records of an online run (S logged slots, B environments, L AUs).

    Attributes:
        slots: (S,) slot indices logged (all, or every ``evaluate_every``-th).
        sum_rate, effective_sum_rate: S x (B,) TU sum rate and with the handover discount (16),
            bit/s/Hz.
        au_interference_ratio: S x (B, L) rho_l / I_max.
        handovers: S x (B,) TUs that changed BS.
        feasible: S x (B,) bool, every AU within (1 + VIOLATION_TOL) I_max and every BS within
            (1 + VIOLATION_TOL) P_max.
        tu_reward, bs_reward: S x (B,) mean rewards over the agents.
        iterations: (S,) solver iterations of the beamformer (0 for a policy).
        association_time_s, beamforming_time_s: (S,) decision times of the slot for the whole
            batch (a learner's update in the slot is training and is not counted).
        updates: learning steps of the beamformer that returned statistics; stats: the last.
    """

    slots: list[int] = field(default_factory=list)
    sum_rate: list[torch.Tensor] = field(default_factory=list)
    effective_sum_rate: list[torch.Tensor] = field(default_factory=list)
    au_interference_ratio: list[torch.Tensor] = field(default_factory=list)
    handovers: list[torch.Tensor] = field(default_factory=list)
    feasible: list[torch.Tensor] = field(default_factory=list)
    tu_reward: list[torch.Tensor] = field(default_factory=list)
    bs_reward: list[torch.Tensor] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    association_time_s: list[float] = field(default_factory=list)
    beamforming_time_s: list[float] = field(default_factory=list)
    updates: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def record(
        self,
        slot: int,
        env: CatnEnv,
        outcome: SlotOutcome,
        decision: BeamformDecision,
        w: torch.Tensor,
        times: tuple[float, float],
    ) -> None:
        """Append slot ``slot``'s outcome (moved to the CPU)."""
        ratio = outcome.au_interference / env.i_max
        self.slots.append(int(slot))
        self.sum_rate.append(outcome.rates.sum(-1).cpu())
        self.effective_sum_rate.append(outcome.effective_rates.sum(-1).cpu())
        self.au_interference_ratio.append(ratio.cpu())
        self.handovers.append(outcome.handovers.cpu())
        self.feasible.append(_feasible(env, ratio, w).cpu())
        self.tu_reward.append(outcome.tu_reward.mean(-1).cpu())
        self.bs_reward.append(outcome.bs_reward.mean(-1).cpu())
        self.iterations.append(int(decision.iterations))
        self.association_time_s.append(times[0])
        self.beamforming_time_s.append(times[1])

    def decision_time_s(self) -> list[float]:
        """(S,) association + beamforming decision time per slot."""
        return [
            a + b for a, b in zip(self.association_time_s, self.beamforming_time_s, strict=True)
        ]

    def mean(self, name: str) -> list[float]:
        """(S,) the per-slot mean over the B environments of a per-environment series."""
        return [float(x.mean()) for x in getattr(self, name)]

    def stacked(self, name: str) -> torch.Tensor:
        """(S, B, ...) one series as a tensor."""
        values = getattr(self, name)
        return torch.stack(values) if values else torch.zeros(0)

    def state_dict(self) -> dict[str, Any]:
        """The log with each per-slot list of tensors stacked into one (S, B, ...) tensor (one
        storage in a checkpoint instead of S small ones)."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _PER_SLOT_TENSORS:
            state[name] = self.stacked(name) if state[name] else None
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> OnlineLog:
        data = {f.name: state[f.name] for f in fields(cls)}
        for name in _PER_SLOT_TENSORS:
            data[name] = [] if data[name] is None else list(data[name].unbind(0))
        return cls(**data)


_PER_SLOT_TENSORS = (
    "sum_rate",
    "effective_sum_rate",
    "au_interference_ratio",
    "handovers",
    "feasible",
    "tu_reward",
    "bs_reward",
)


def _feasible(env: CatnEnv, ratio: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B,) bool: (2b) per-BS power and (2c) interference within the tolerance."""
    power = w.abs().square().sum(-1)  # (B, K)
    per_bs = torch.zeros(env.B, env.N, dtype=power.dtype, device=power.device)
    per_bs.scatter_add_(1, env.serving, power)
    power_ok = (per_bs <= env.p_max * (1 + VIOLATION_TOL)).all(-1)
    return power_ok & (ratio <= 1 + VIOLATION_TOL).all(-1)


def run_online(
    env: CatnEnv,
    scheme: CatnScheme,
    n_slots: int,
    *,
    train: bool = True,
    seed: int | None = None,
    progress: bool = False,
    evaluate_every: int = 1,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
) -> OnlineLog:
    """Run (and train) ``scheme`` for ``n_slots`` slots of ``env``; return its log.

    Args:
        env: the batched CATN game, built for the scheme
            (:func:`~skyshare.schemes.catn.build_catn_env`).
        scheme: :func:`~skyshare.schemes.catn.build_scheme`.
        n_slots: slots to play (the env resets itself when its horizon is reached).
        train: let the components learn (False: greedy D3QN, mean Beta actions, no updates).
        seed: seed of ``env.reset`` (ignored when resuming: the restored env continues).
        progress: a tqdm bar over the slots.
        evaluate_every: beamform and log only every n-th slot; the other slots advance the
            channels with silent BSs and are not logged (seed 000 computes DCD-DFP on 100
            equally spaced slots). The association is decided every slot (its handovers
            count). Only for schemes that do not learn.
        checkpoint_path: file holding the full state of the run (module docstring). If it
            exists, the run resumes from it; ``env`` and ``scheme`` must be built as for the
            interrupted run and are overwritten with the saved state.
        checkpoint_every: also write the checkpoint every this many slots (0: only at the end).
    """
    if evaluate_every < 1 or (evaluate_every > 1 and scheme.learns):
        raise ConfigError("evaluate_every must be >= 1, and 1 for schemes that learn")
    if checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every must be >= 0 slots, got {checkpoint_every}")
    identity = {"scheme": scheme.name, "train": train, "evaluate_every": evaluate_every}
    identity.update(scheme.options.model_dump())
    identity["hidden_sizes"] = list(identity["hidden_sizes"])
    if not identity["compact_inference"]:  # off: the identity of runs before the option
        del identity["compact_inference"], identity["compact_weights"]
    # CUP's step-2 shortcut, read from the learner itself; absent: the literal loop, as in the
    # checkpoints written before the option (they resume only with the literal loop)
    del identity["skip_unconstrained_projection"]
    agents_config = getattr(getattr(scheme.beamforming, "agents", None), "config", None)
    if getattr(agents_config, "skip_unconstrained_projection", False):
        identity["skip_unconstrained_projection"] = True
    path = None if checkpoint_path is None else Path(checkpoint_path)
    if path is not None and path.exists():
        first, tu_obs, previous, log = _load(path, identity, n_slots, env, scheme)
    else:
        first, tu_obs, previous, log = 0, env.reset(seed=seed), None, OnlineLog()
    from tqdm.auto import tqdm

    bar = tqdm(
        range(first, n_slots), desc=scheme.name, initial=first, total=n_slots, disable=not progress
    )
    for t in bar:
        tu_obs, previous = _slot(env, scheme, t, tu_obs, previous, log, train, evaluate_every)
        done = t + 1
        if path is not None and (
            done == n_slots or (checkpoint_every and done % checkpoint_every == 0)
        ):
            _save(path, identity, done, tu_obs, previous, log, env, scheme)
    return log


def _slot(
    env: CatnEnv,
    scheme: CatnScheme,
    t: int,
    tu_obs: torch.Tensor,
    previous: dict[str, torch.Tensor] | None,
    log: OnlineLog,
    train: bool,
    evaluate_every: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """One slot of Algorithm 4; returns the next TU observations and the BS experience."""
    logged = t % evaluate_every == 0
    start = time.perf_counter()
    tu_actions = scheme.association.decide(env, tu_obs, explore=train)
    bs_obs = env.associate(tu_actions)
    association_time = time.perf_counter() - start
    if train and previous is not None and scheme.beamforming.learns:
        stats = scheme.beamforming.learn(**previous, next_obs=bs_obs)
        if stats:
            log.stats, log.updates = stats, log.updates + 1
    start = time.perf_counter()
    if logged:
        decision = scheme.beamforming.decide(env, bs_obs, explore=train)
    else:  # a silent slot between evaluated ones
        decision = BeamformDecision(
            w=torch.zeros(env.B, env.K, env.M, dtype=env.cdtype, device=env.device)
        )
    beamforming_time = time.perf_counter() - start
    if decision.actions is not None:
        w = None
        outcome = env.beamform(decision.actions)
    else:
        w = decision.w
        outcome = env.beamform_with(w)
    if train and scheme.association.learns:
        scheme.association.learn(tu_obs, tu_actions, outcome.tu_reward, outcome.tu_obs)
    experience = {
        "obs": bs_obs,
        "actions": decision.actions,
        "reward": outcome.bs_reward,
        "cost": outcome.cost,
    }
    next_obs = outcome.tu_obs
    if logged:
        log.record(
            t,
            env,
            outcome,
            decision,
            env.last_beamformers if w is None else w,
            (association_time, beamforming_time),
        )
    if outcome.truncated:
        return env.reset(), None
    return next_obs, experience


# -------------------------------------------------------------------------------------------
# Accuracy of the compact inference mode
# -------------------------------------------------------------------------------------------


@dataclass
class CompactAccuracy:
    """The same slots played with a learned scheme's float32 and compact BS policies.

    Attributes:
        weights: the compact first layer's storage ("fp32" or "int8").
        n_slots, n_envs: slots played and parallel environments.
        sum_rate: (float32, compact) mean TU sum rate over slots and environments, bit/s/Hz.
        au_interference: (float32, compact) mean rho_l / I_max over slots, environments, AUs.
        rel_sum_rate, rel_au_interference: |compact - float32| / |float32| of those means.
        max_action_diff: largest |a_compact - a_float32| over the first slot's BS actions
            (same observation).
        beamforming_ms: (float32, compact) mean BS decision time per slot for the batch.
    """

    weights: str
    n_slots: int
    n_envs: int
    sum_rate: tuple[float, float]
    au_interference: tuple[float, float]
    rel_sum_rate: float
    rel_au_interference: float
    max_action_diff: float
    beamforming_ms: tuple[float, float]


def compact_accuracy(
    env: CatnEnv,
    scheme: CatnScheme,
    n_slots: int = 1000,
    *,
    seed: int = 0,
    weights: str = "fp32",
) -> CompactAccuracy:
    """Play ``n_slots`` evaluation slots (``train=False``: greedy D3QN, Beta means) of
    ``env`` reset with ``seed`` twice, with the scheme's float32 BS policy and with its
    :class:`~skyshare.rl.common.compact.CompactPolicy` (``weights``), and compare the mean sum
    rate and mean AU interference. The scheme's state is restored after each run; its
    ``compact`` setting is left as it was. Both runs see the same channels; the associations
    may differ where a changed action changes the next TU observations.
    """
    beamforming = scheme.beamforming
    if not hasattr(beamforming, "compact"):
        raise ConfigError(f"scheme {scheme.name!r} has no learned BS policy to compact")
    state = copy.deepcopy(scheme.state_dict())
    saved = beamforming.compact
    logs: list[OnlineLog] = []
    try:
        for compact in (None, weights):
            scheme.load_state_dict(copy.deepcopy(state))
            beamforming.compact = compact
            if compact is not None:  # built before the timed decisions
                beamforming.compact_policy(env)
            logs.append(run_online(env, scheme, n_slots, train=False, seed=seed))
        tu_obs = env.reset(seed=seed)
        obs = env.associate(scheme.association.decide(env, tu_obs, explore=False))
        reference = beamforming.agents.act(obs, deterministic=True, with_values=False)[0]
        compacted = beamforming.compact_policy(env).act(obs)
    finally:
        beamforming.compact = saved
        scheme.load_state_dict(state)
    rate = [float(log.stacked("sum_rate").double().mean()) for log in logs]
    au = [float(log.stacked("au_interference_ratio").double().mean()) for log in logs]
    ms = [1e3 * sum(log.beamforming_time_s) / max(len(log.slots), 1) for log in logs]
    return CompactAccuracy(
        weights=weights,
        n_slots=n_slots,
        n_envs=env.B,
        sum_rate=(rate[0], rate[1]),
        au_interference=(au[0], au[1]),
        rel_sum_rate=abs(rate[1] - rate[0]) / max(abs(rate[0]), 1e-30),
        rel_au_interference=abs(au[1] - au[0]) / max(abs(au[0]), 1e-30),
        max_action_diff=float((compacted - reference).abs().max()),
        beamforming_ms=(ms[0], ms[1]),
    )


# -------------------------------------------------------------------------------------------
# Checkpoints
# -------------------------------------------------------------------------------------------


def _save(
    path: Path,
    identity: dict[str, Any],
    next_slot: int,
    tu_obs: torch.Tensor,
    previous: dict[str, torch.Tensor] | None,
    log: OnlineLog,
    env: CatnEnv,
    scheme: CatnScheme,
) -> None:
    """``torch.save`` to a temporary file, then ``os.replace``: a crash never leaves a
    half-written checkpoint."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "identity": identity,
        "next_slot": next_slot,
        "tu_obs": tu_obs,
        "previous": previous,
        "log": log.state_dict(),
        "env": env.state_dict(),
        "scheme": scheme.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load(
    path: Path, identity: dict[str, Any], n_slots: int, env: CatnEnv, scheme: CatnScheme
) -> tuple[int, torch.Tensor, dict[str, torch.Tensor] | None, OnlineLog]:
    """Restore env and scheme in place; return (next slot, tu_obs, previous, log).

    The whole checkpoint is checked before anything is restored: its keys, the shapes and
    dtypes of the env's and the scheme's tensors (against the state of this env, reset, and of
    this scheme), the slot index and the lengths of the log. Any inconsistency raises a
    :class:`ConfigError` naming the file and what is wrong."""
    state = read_checkpoint(path, map_location=env.device)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ConfigError(
            f"checkpoint {path} has format {found}, this version writes {CHECKPOINT_FORMAT}; "
            "delete it to start that job afresh"
        )
    missing = [key for key in _CHECKPOINT_KEYS if key not in state]
    if missing:
        raise _inconsistent(path, f"missing key {missing[0]!r}")
    if state["identity"] != identity:
        saved = state["identity"] if isinstance(state["identity"], dict) else {}
        differs = ", ".join(
            f"{key} (checkpoint: {saved.get(key, 'absent')}, "
            f"this run: {identity.get(key, 'absent')})"
            for key in sorted(set(saved) | set(identity))
            if saved.get(key, _ABSENT) != identity.get(key, _ABSENT)
        )
        raise ConfigError(
            f"checkpoint {path} was written by another run ({differs or state['identity']}); "
            "delete it to start afresh"
        )
    try:
        _check_checkpoint(state, n_slots, identity["evaluate_every"], env, scheme)
        # what the checks cannot see (values, not layouts) fails here, before any slot runs
        env.load_state_dict(state["env"])
        scheme.load_state_dict(state["scheme"])
        log = OnlineLog.from_state_dict(state["log"])
    except _Inconsistent as exc:
        raise _inconsistent(path, str(exc)) from None
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise _inconsistent(path, f"{type(exc).__name__}: {_one_line(exc)}") from None
    return state["next_slot"], state["tu_obs"], state["previous"], log


_ABSENT = object()  # a key one of two identities lacks
_CHECKPOINT_KEYS = ("format", "identity", "next_slot", "tu_obs", "previous", "log", "env", "scheme")
_EXPERIENCE_KEYS = ("obs", "actions", "reward", "cost")
# values of the env state that must equal this env's (its configs, batch and shards)
_ENV_IDENTITY = frozenset({"config", "batch_size", "sizes"})


class _Inconsistent(Exception):
    """A checkpoint that does not fit the run (its message says what)."""


def _inconsistent(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"checkpoint {str(path)!r} is inconsistent ({problem}); delete it to restart the job"
    )


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (torch's load_state_dict lists its problems on the
    lines after the first)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_checkpoint(
    state: dict[str, Any], n_slots: int, evaluate_every: int, env: CatnEnv, scheme: CatnScheme
) -> None:
    """Raise :class:`_Inconsistent` unless ``state`` fits this run: a slot index in
    [0, n_slots], the env's configuration and batch, the layouts of this env (reset: its
    layout does not depend on the slot), of the TU observations, the BS experience and this
    scheme, a log of exactly the slots before the slot index, and the env between slots at the
    channel slot that index puts it at (:func:`_check_slot_alignment`)."""
    next_slot = state["next_slot"]
    if isinstance(next_slot, bool) or not isinstance(next_slot, int):
        raise _Inconsistent(f"next_slot must be an int, got {_kind(next_slot)}")
    if next_slot > n_slots:
        raise _Inconsistent(f"next_slot {next_slot} beyond n_slots = {n_slots}")
    if next_slot < 0:
        raise _Inconsistent(f"next_slot {next_slot} outside [0, n_slots = {n_slots}]")
    tu_obs = env.reset()  # overwritten by the restore; only the layout is used here
    _check_like(state["env"], env.state_dict(), "env", equal=_ENV_IDENTITY)
    _check_like(state["tu_obs"], tu_obs, "tu_obs")
    previous = state["previous"]
    if previous is not None:
        if not isinstance(previous, dict) or set(previous) != set(_EXPERIENCE_KEYS):
            found = sorted(previous) if isinstance(previous, dict) else type(previous).__name__
            raise _Inconsistent(f"previous must hold {list(_EXPERIENCE_KEYS)}, got {found}")
        B, N, dtype = env.B, env.N, env.dtype
        experience = {
            "obs": torch.empty(B, N, env.bs_obs_dim, dtype=dtype),
            "actions": None
            if previous["actions"] is None
            else torch.empty(B, N, env.action_dim, dtype=dtype),
            "reward": torch.empty(B, N, dtype=dtype),
            "cost": torch.empty(B, N, env.L, dtype=dtype),
        }
        _check_like(previous, experience, "previous")
    _check_like(state["scheme"], scheme.state_dict(), "scheme")
    for name in ("tu_obs", "previous", "env", "scheme", "log"):  # every tensor a run writes
        _check_finite(state[name], name)  # is finite: a crafted NaN would spread silently
    _check_log(state["log"], next_slot, evaluate_every, env)
    _check_slot_alignment(state["env"], next_slot, env)


def _check_slot_alignment(env_state: dict[str, Any], next_slot: int, env: CatnEnv) -> None:
    """The env of a checkpoint stands where ``next_slot`` puts it: between slots (phase
    ``associate``) at channel slot ``t = 1 + next_slot mod (n_slots - 1)``, in every shard.

    ``run_online`` resets the env at slot 0 (the reset plays channel slot 0 and steps to t =
    1), plays channel slots 1 .. n_slots - 1 of the scenario (n_slots - 1 run slots per
    episode) and resets again; a checkpoint is written after a whole slot. A crafted ``t``
    would shift the horizon (a reset at another run slot) or step past the scenario's end
    mid-run."""
    shards = env_state["shards"] if "shards" in env_state else [env_state]
    per_episode = shards[0]["scenario"]["config"]["n_slots"] - 1  # checked equal to env's
    expected = 1 + next_slot % per_episode
    for i, shard in enumerate(shards):
        where = "env" if "shards" not in env_state else f"env.shards[{i}]"
        if shard["phase"] != "associate":
            raise _Inconsistent(
                f"{where}.phase is {shard['phase']!r}; a checkpoint is written between slots "
                "('associate')"
            )
        t = shard["scenario"]["t"]
        if isinstance(t, bool) or not isinstance(t, int) or t != expected:
            raise _Inconsistent(
                f"{where}.scenario.t is {t!r}; next_slot {next_slot} with {per_episode} slots "
                f"per episode (scenario n_slots - 1) expects t = {expected}"
            )


def _check_finite(value: Any, where: str) -> None:
    """Every floating-point or complex tensor under ``value`` (dicts, lists) is finite: the
    observations, rewards, channels, network weights, optimiser moments, normaliser
    statistics and multipliers a run writes are (a config's ``inf``, e.g. ``i_max_mw``, is a
    number, not a tensor, and is not checked here)."""
    if torch.is_tensor(value):
        if (value.is_floating_point() or value.is_complex()) and not bool(value.isfinite().all()):
            raise _Inconsistent(f"{where} holds non-finite values")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


def _check_log(log: Any, next_slot: int, evaluate_every: int, env: CatnEnv) -> None:
    """The log of slots [0, next_slot): every ``evaluate_every``-th slot, each series as long
    as its slot list, each per-slot tensor (B, ...) of this env."""
    if not isinstance(log, dict):
        raise _Inconsistent(f"log must be a dict, got {type(log).__name__}")
    for f in fields(OnlineLog):
        if f.name not in log:
            raise _Inconsistent(f"missing key {f.name!r} in log")
    expected = list(range(0, next_slot, evaluate_every))
    slots = log["slots"]
    if not isinstance(slots, list):
        raise _Inconsistent(f"log slots must be a list, got {type(slots).__name__}")
    if not _equal(slots, expected):
        raise _Inconsistent(
            f"next_slot {next_slot} expects a log of {len(expected)} slots {_span(expected)}, "
            f"got {len(slots)} slots {_span(slots)}"
        )
    _check_series(log, len(expected), env)
    _check_like(log["updates"], 0, "log.updates")
    _check_like(log["stats"], {}, "log.stats")


def _check_series(log: dict[str, Any], S: int, env: CatnEnv) -> None:
    """Each per-slot series of the log: S entries, tensors (S, B, ...) of this env."""
    per_slot = dict.fromkeys(_PER_SLOT_TENSORS, (env.B,)) | {
        "au_interference_ratio": (env.B, env.L)
    }
    for name, shape in per_slot.items():
        value = log[name]
        if value is None and S == 0:
            continue
        if not torch.is_tensor(value) or tuple(value.shape) != (S, *shape):
            found = tuple(value.shape) if torch.is_tensor(value) else _kind(value)
            raise _Inconsistent(
                f"log {name} shape {(S, *shape)} expected for {S} slots, got {found}"
            )
    for name in ("iterations", "association_time_s", "beamforming_time_s"):
        value = log[name]
        if not isinstance(value, list) or len(value) != S:
            found = f"{len(value)} values" if isinstance(value, list) else _kind(value)
            raise _Inconsistent(f"log {name} must hold {S} values (one per slot), got {found}")


def _span(slots: list[Any]) -> str:
    """``[0, 1, 2]``, or ``[0, ..., 99]`` for more than three slots."""
    return f"[{slots[0]}, ..., {slots[-1]}]" if len(slots) > 3 else str(slots)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (RuntimeError, TypeError, ValueError):  # e.g. a tensor of several values
        return False


def _check_like(saved: Any, expected: Any, where: str, equal: frozenset[str] = frozenset()) -> None:
    """Raise :class:`_Inconsistent` where ``saved`` departs from the layout of ``expected``:
    a missing (string) key, a tensor of another shape or dtype, a list of another length, or
    another kind of value. Not compared: what ``expected`` holds as None (absent in a fresh
    state), entries of per-parameter optimiser states present in only one of them, the
    collector's trajectory (of any length), the learners' recorded ``config`` (a description
    that loading does not use; what must match is the run's identity, e.g. CUP's step-2 rule,
    so a field added since keeps older checkpoints loadable) and extra keys of ``saved``. The
    values of the keys in ``equal`` must be equal (e.g. the env's configuration)."""
    if expected is None:
        return
    if torch.is_tensor(expected):
        _check_tensor(saved, expected, where)
    elif isinstance(expected, dict):
        _check_dict(saved, expected, where, equal)
    elif isinstance(expected, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(expected):
            found = f"{len(saved)}" if isinstance(saved, (list, tuple)) else _kind(saved)
            raise _Inconsistent(f"{where} must hold {len(expected)} items, got {found}")
        for i, (a, b) in enumerate(zip(saved, expected, strict=True)):
            _check_like(a, b, f"{where}[{i}]", equal)
    elif isinstance(expected, (bool, int, float)) and not isinstance(saved, (bool, int, float)):
        raise _Inconsistent(f"{where} must be a number, got {_kind(saved)}")
    elif isinstance(expected, str) and not isinstance(saved, str):
        raise _Inconsistent(f"{where} must be a string, got {_kind(saved)}")


def _check_tensor(saved: Any, expected: torch.Tensor, where: str) -> None:
    if not torch.is_tensor(saved):
        raise _Inconsistent(f"{where} must be a tensor, got {_kind(saved)}")
    if saved.shape != expected.shape:
        raise _Inconsistent(
            f"{where} shape {tuple(expected.shape)} expected, got {tuple(saved.shape)}"
        )
    if saved.dtype != expected.dtype:
        raise _Inconsistent(f"{where} dtype {expected.dtype} expected, got {saved.dtype}")


def _check_dict(saved: Any, expected: dict, where: str, equal: frozenset[str]) -> None:
    if not isinstance(saved, dict):
        raise _Inconsistent(f"{where} must be a dict, got {_kind(saved)}")
    for key, value in expected.items():
        if key not in saved:
            if isinstance(key, str):
                raise _Inconsistent(f"missing key {key!r} in {where}")
            continue  # e.g. an optimiser's state of a parameter not stepped yet
        if key in equal and not _equal(saved[key], value):
            raise _Inconsistent(
                f"{where}.{key} differs from this run's: it was written with another "
                "configuration or batch size"
            )
        if key == "config" and where.endswith(".agents"):  # a learner's recorded config
            continue
        if key != "trajectory":  # the collector's slots so far: any number
            _check_like(saved[key], value, f"{where}.{key}", equal)


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"
