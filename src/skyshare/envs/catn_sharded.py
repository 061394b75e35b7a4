"""B CATN environments stepped as S shards on S threads (one core each).

:class:`ShardedCatnEnv` holds S :class:`~skyshare.envs.catn.CatnEnv` of about B / S environments
each and runs every turn (``reset``, ``associate``, ``beamform``, ``beamform_with``) of all
shards at once: shard 0 on the calling thread, the others on worker threads. torch releases the
GIL inside its operators, so with one intra-op thread per process (``torch.set_num_threads(1)``)
the shards run on separate cores for most of a slot. This parallelises the whole slot, not only
the large operators: the fading draws (torch's CPU ``normal_`` is serial per generator), the
top-k selections, the LU solves and the Python between them. Measured on the 2-core machine of
BENCHMARKS.md (section ``env``), two shards of 512 on one thread each run about 1.4x the
env-slots/s of one env of 1024 on two intra-op threads.

Semantics. Shard i is exactly a ``CatnEnv`` of its batch ``sizes[i]`` (``torch.tensor_split`` of
B) whose scenario seed and episode seeds are derived from the given ones with
``numpy.random.SeedSequence(seed).spawn(S)`` (independent streams; the standard way to split a
seed). So environment b of a sharded env is a function of (seed, B, S), as environment b of a
``CatnEnv`` is of (seed, B): the same seed with another S gives other realizations, each as
valid. The outputs are the shards' outputs joined along the batch axis: the observations are
written by the shards straight into slices of one (B, ...) tensor (no copy), the
:class:`~skyshare.envs.catn.SlotOutcome` fields are concatenated (small). Actions are checked
for all shards before any shard moves, so a refused action leaves every shard where it was,
and the error names the environment by its index in the whole batch.

Threads. Use one intra-op thread (``torch.set_num_threads(1)``) and at most one shard per core:
torch's thread count is process-wide, and with intra-op threads too each shard's operators would
compete for the same cores. The workers enter the caller's grad and inference modes (thread
local in torch).

``state``, ``serving``, ``last_beamformers`` and ``global_state()`` join the shards' tensors
(copies) for code that reads the whole batch (solver beamforming, centralised critics);
``state_dict`` holds one entry per shard.

A turn that fails or is interrupted (Ctrl-C) once the shards have started waits for every
shard to stop, then puts all shards out of play: the next call must be ``reset()``, which says
so, instead of going on with shards at different slots.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from skyshare.checks import MAX_SEED
from skyshare.envs.catn import CatnEnv, CatnEnvConfig, SlotOutcome
from skyshare.envs.outputs import ObservationOutputs
from skyshare.errors import ConfigError, ShapeError
from skyshare.runtime import submit_in_caller_modes
from skyshare.scenarios.catn import CatnConfig, CatnScenario, CatnState

__all__ = ["ShardedCatnEnv", "shard_seeds"]


def shard_seeds(seed: int, n_shards: int) -> list[int]:
    """S independent seeds in [0, 2^63 - 1] derived from ``seed`` (in the same range) by
    NumPy's ``SeedSequence`` (``spawn``), the seeds of the shards' scenarios and episodes."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, {MAX_SEED}], got {seed}")
    children = np.random.SeedSequence(int(seed)).spawn(n_shards)
    return [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for child in children]


def _wait_for(futures: Sequence[Future]) -> None:
    """Wait until every future is done, even across a KeyboardInterrupt during the wait
    (the interrupted turn re-raises it once the workers have stopped)."""
    while True:
        try:
            wait(futures)
            return
        except BaseException:  # interrupted while waiting: wait again
            continue


def _shutdown(executor: ThreadPoolExecutor) -> None:
    executor.shutdown(wait=False, cancel_futures=True)


class ShardedCatnEnv:
    """The CATN game for B environments as ``shards`` CatnEnvs stepped concurrently.

    Args:
        scenario_config: :class:`CatnConfig` (the ``paper`` preset when omitted); its ``seed``
            is split into the shards' seeds (:func:`shard_seeds`).
        config: :class:`CatnEnvConfig`.
        batch_size: B >= shards.
        shards: S >= 1, the number of CatnEnvs (and threads; one per core).
        device, dtype: as :class:`CatnEnv`.
        reuse_observations: as :class:`CatnEnv` (two output tensors per kind used in turn).

    The turn methods take and return whole-batch tensors, with the shapes of
    :class:`CatnEnv`'s: ``reset(seed) -> (B, K, 3N+4)``, ``associate((B, K)) -> (B, N, D)``,
    ``beamform((B, N, 2K+L+2)) -> SlotOutcome``, ``beamform_with((B, K, M) complex)``.
    """

    def __init__(
        self,
        scenario_config: CatnConfig | None = None,
        config: CatnEnvConfig | None = None,
        *,
        batch_size: int,
        shards: int = 2,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        reuse_observations: bool = False,
    ) -> None:
        if not isinstance(shards, int) or shards < 1:
            raise ConfigError(f"shards must be an integer >= 1, got {shards!r}")
        if not isinstance(batch_size, int) or batch_size < shards:
            raise ConfigError(
                f"batch_size must be an integer >= shards = {shards}, got {batch_size!r}"
            )
        scenario_config = scenario_config or CatnScenario.config_from("paper")
        self.sizes = [len(part) for part in torch.arange(batch_size).tensor_split(shards)]
        self.offsets = [sum(self.sizes[:i]) for i in range(shards)]
        seeds = shard_seeds(scenario_config.seed, shards)
        self.shards = [
            CatnEnv(
                scenario_config.model_copy(update={"seed": seed}),
                config,
                batch_size=size,
                device=device,
                dtype=dtype,
            )
            for seed, size in zip(seeds, self.sizes, strict=True)
        ]
        for shard, offset in zip(self.shards, self.offsets, strict=True):
            shard.batch_offset = offset  # errors name the environment's index in the batch
        first = self.shards[0]
        self.B = batch_size
        self.K, self.N, self.L, self.M = first.K, first.N, first.L, first.M
        self.config, self.scenario_config = first.config, scenario_config
        self.device, self.dtype, self.cdtype = first.device, first.dtype, first.cdtype
        self.p_max, self.i_max = first.p_max, first.i_max
        self.reuse_observations = bool(reuse_observations)
        self._outputs = ObservationOutputs(self.reuse_observations, self.dtype, self.device)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0
        if shards > 1:
            self._start_workers()
            if torch.get_num_threads() > 1:
                warnings.warn(
                    f"ShardedCatnEnv with {shards} shards while torch uses "
                    f"{torch.get_num_threads()} intra-op threads: the shards and the intra-op "
                    "threads compete for the same cores (measured 1.4x slower on 2 cores); call "
                    "torch.set_num_threads(1) and let the shards be the parallelism",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def _start_workers(self) -> None:
        """The worker threads of shards 1..S-1 (again in a forked child: the parent's threads
        do not exist there)."""
        self._executor = ThreadPoolExecutor(self.n_shards - 1, thread_name_prefix="catn-shard")
        self._executor_pid = os.getpid()
        weakref.finalize(self, _shutdown, self._executor)

    # ---------------------------------------------------------------------------------------
    # Dimensions
    # ---------------------------------------------------------------------------------------

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    @property
    def action_dim(self) -> int:
        return self.shards[0].action_dim

    @property
    def tu_obs_dim(self) -> int:
        return self.shards[0].tu_obs_dim

    @property
    def bs_obs_dim(self) -> int:
        return self.shards[0].bs_obs_dim

    def bs_obs_blocks(self) -> dict[str, int]:
        return self.shards[0].bs_obs_blocks()

    @property
    def state_dim(self) -> int:
        return self.shards[0].state_dim

    # ---------------------------------------------------------------------------------------
    # Turns
    # ---------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start B new episodes (each shard with its seed from :func:`shard_seeds`, or
        continuing its stream when ``seed`` is None); TU observations (B, K, 3N+4)."""
        seeds: Sequence[int | None] = (
            [None] * self.n_shards if seed is None else shard_seeds(seed, self.n_shards)
        )
        out = self._observation_out("tu", (self.B, self.K, self.tu_obs_dim))
        self._run(lambda i, shard: shard.reset(seeds[i]), out)
        return out

    def associate(self, tu_actions: torch.Tensor) -> torch.Tensor:
        """Turn 1 for all shards: (B, K) BS indices -> BS observations (B, N, D)."""
        tu_actions = torch.as_tensor(tu_actions, device=self.device)
        if tu_actions.shape != (self.B, self.K):
            raise ShapeError(
                f"tu_actions must be (B, K) = {(self.B, self.K)}, got {tuple(tu_actions.shape)}"
            )
        parts = self._split(tu_actions)
        for shard, part in zip(self.shards, parts, strict=True):
            shard._expect("associate")
            shard.check_tu_actions(part)  # all shards checked before any moves
        out = self._observation_out("bs", (self.B, self.N, self.bs_obs_dim))
        self._run(lambda i, shard: shard.associate(parts[i]), out)
        return out

    def beamform(self, bs_actions: torch.Tensor) -> SlotOutcome:
        """Turn 2 for all shards: (B, N, 2K+L+2) actions in [0, 1] -> the joined outcome."""
        bs_actions = torch.as_tensor(bs_actions, device=self.device, dtype=self.dtype)
        if bs_actions.shape != (self.B, self.N, self.action_dim):
            raise ShapeError(
                f"bs_actions must be (B, N, 2K+L+2) = {(self.B, self.N, self.action_dim)}, "
                f"got {tuple(bs_actions.shape)}"
            )
        parts = self._split(bs_actions)
        for shard, part in zip(self.shards, parts, strict=True):
            shard._expect("beamform")
            shard.check_bs_actions(part)
        return self._finish(lambda i, shard: shard.beamform(parts[i]))

    def beamform_with(self, w: torch.Tensor) -> SlotOutcome:
        """Turn 2 with external beamformers ``w (B, K, M)`` complex, as
        :meth:`CatnEnv.beamform_with`."""
        if w.shape != (self.B, self.K, self.M) or w.dtype != self.cdtype:
            raise ShapeError(
                f"w must be (B, K, M) = {(self.B, self.K, self.M)} {self.cdtype}, got "
                f"{tuple(w.shape)} {w.dtype}"
            )
        w = w.to(self.device).resolve_conj()
        parts = self._split(w)
        for shard in self.shards:
            shard._expect("beamform")
        return self._finish(lambda i, shard: shard.beamform_with(parts[i]))

    def _finish(self, turn: Callable[[int, CatnEnv], SlotOutcome]) -> SlotOutcome:
        """Run a beamforming turn; the shards' TU observations go into one output tensor and
        the other outcome fields are concatenated."""
        out = self._observation_out("tu", (self.B, self.K, self.tu_obs_dim))
        outcomes = self._run(turn, out)
        joined = {
            f.name: torch.cat([getattr(o, f.name) for o in outcomes])
            for f in fields(SlotOutcome)
            if f.name not in ("tu_obs", "truncated")
        }
        truncated = {o.truncated for o in outcomes}
        if len(truncated) != 1:  # the shards share n_slots and move together
            raise RuntimeError("the shards' horizons disagree")
        return SlotOutcome(tu_obs=out, truncated=truncated.pop(), **joined)

    def _run(self, turn: Callable[[int, CatnEnv], Any], out: torch.Tensor) -> list[Any]:
        """``turn(i, shard)`` for every shard, shard 0 here and the others on the workers,
        each writing its observation into its slice of ``out``; their results in shard
        order. Waits for every shard before returning or raising."""
        for shard, offset, size in zip(self.shards, self.offsets, self.sizes, strict=True):
            shard.observation_target = out.narrow(0, offset, size)

        def one(i: int) -> Any:
            return turn(i, self.shards[i])

        futures: list[Future] = []
        if self.n_shards > 1:
            if self._executor_pid != os.getpid():  # a forked child: no worker threads here
                self._start_workers()
            futures = [
                submit_in_caller_modes(self._executor, one, i) for i in range(1, self.n_shards)
            ]
        try:
            first = one(0)
            _wait_for(futures)
            errors = [future.exception() for future in futures]
            for error in errors:
                if error is not None:
                    raise error
        except BaseException:
            _wait_for(futures)  # never return while a worker still moves its shard
            for shard in self.shards:  # the shards may be at different slots now
                shard._phase = "reset"
            raise
        finally:
            for shard in self.shards:  # a target a failed turn did not use must not linger
                shard.observation_target = None
        return [first, *(future.result() for future in futures)]

    def _split(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        return [tensor.narrow(0, o, s) for o, s in zip(self.offsets, self.sizes, strict=True)]

    def _observation_out(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A new (B, ...) output, or with ``reuse_observations`` the two of ``kind`` in turn
        (:meth:`CatnEnv._observation_out`'s contract)."""
        return self._outputs.next(kind, shape)

    # ---------------------------------------------------------------------------------------
    # The whole batch, joined (copies)
    # ---------------------------------------------------------------------------------------

    @property
    def state(self) -> CatnState:
        """The slot's channels and geometry of all B environments (joined copies)."""
        states = [shard.state for shard in self.shards]
        joined = {
            f.name: torch.cat([getattr(s, f.name) for s in states])
            for f in fields(CatnState)
            if f.name != "t"
        }
        return CatnState(t=states[0].t, **joined)

    @property
    def serving(self) -> torch.Tensor:
        """(B, K) serving BS of every TU."""
        return torch.cat([shard.serving for shard in self.shards])

    @property
    def last_beamformers(self) -> torch.Tensor:
        """(B, K, M) beamformers of the slot just transmitted."""
        return torch.cat([shard.last_beamformers for shard in self.shards])

    def global_state(self) -> torch.Tensor:
        """(B, 2KN + LN + 3K), :meth:`CatnEnv.global_state` of every shard joined."""
        return torch.cat([shard.global_state() for shard in self.shards])

    # ---------------------------------------------------------------------------------------
    # Checkpoints
    # ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``{"sizes": [...], "shards": [CatnEnv.state_dict() of each shard]}`` (tensors,
        numbers and strings only)."""
        return {"sizes": list(self.sizes), "shards": [s.state_dict() for s in self.shards]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into an env built with the same configs, batch size and
        number of shards."""
        if "shards" not in state or "sizes" not in state:
            raise ConfigError(
                "not a sharded catn env state (it has no 'sizes' and 'shards'); a CatnEnv "
                "state loads into a CatnEnv"
            )
        if list(state["sizes"]) != self.sizes:
            raise ConfigError(
                f"the saved sharded catn env has shard sizes {state.get('sizes')}, this one "
                f"{self.sizes}; build it with the saved batch size and number of shards"
            )
        for shard, saved in zip(self.shards, state["shards"], strict=True):
            shard.load_state_dict(saved)
