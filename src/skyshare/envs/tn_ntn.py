"""The constrained Markov game of seed 001 (coexisting TN-NTN OFDM resource allocation, §III).

A batched tensor core over :class:`~skyshare.scenarios.tn_ntn.TnNtnScenario`: B independent
environments, N BSs, F subchannels per BS, K_max user slots per BS. Two formulations:

* ``"decomposed"`` (RL2, §III-A): the F subchannels of each BS form M = F / S SRBs of S =
  ``srb_size`` contiguous subchannels ``[m S, (m + 1) S)``; agent A_{n,m} assigns SRB m of BS n.
  A frame has M turns: in turn m the N agents A_{1..N,m} (group G_m) act simultaneously, after
  the agents of the earlier SRBs of their own BS (sequential decisions within a BS, Fig. 2).
  Group G_m receives reward (10), the rate on SRB m of every BS divided by K.
* ``"per_bs"`` (RL1, §II-B): one turn per frame, BS n's agent assigns all F subchannels
  (S = F); reward (9), the system sum rate divided by K.

Actions (§III-C-2): per subchannel of the agent's block, 0 = off or k in 1..K_max = user slot
k-1 of the agent's BS. Power (§III-C-2): p_max split equally over the M SRBs of a BS, then
equally over the SRB's "on" subchannels (:meth:`TnNtnScenario.equal_power`; the per-BS
formulation uses the same rule with the scenario's ``srb_size``). Rates are eq. (3): subchannel
f of BS n is interfered only by subchannel f of the other BSs
(:func:`skyshare.metrics.ofdm_link_sinr`), so SRB m of all BSs forms a closed interference group
(Claim 1) and the group rewards add up to (9) exactly (Assumption 2).

Agent A_{n,m} observes (§III-C-3) the gains of its SRB to its BS's users, the path loss of every
BS to every user slot, the accumulated rates Psi_{n,m,k} of BS n's users over the SRBs decided
before it in this frame (the rates of those groups are final because groups do not interfere),
psi, and one-hots of its SRB and its BS (see :mod:`skyshare.envs.tn_ntn_observations`). Costs are
(11) per user slot. The path losses and psi of other BSs' users are the only non-local inputs;
the :class:`~skyshare.signaling.SignalingLedger` counts them per BS and frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from skyshare import metrics
from skyshare.envs import tn_ntn_observations as observations
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.tn_ntn import TnNtnScenario, TnNtnState
from skyshare.signaling import SignalingLedger

__all__ = ["FORMULATIONS", "INACTIVE_ACTIONS", "TnNtnEnv", "TnNtnStepResult", "TnNtnTurn"]

FORMULATIONS = ("decomposed", "per_bs")
INACTIVE_ACTIONS = ("error", "off")

# Scenario attributes that define the channel process between frames (besides its two
# generators): TnNtnScenario has no state_dict of its own, so the env saves these (see
# TnNtnEnv.state_dict).
_SCENARIO_TENSORS = (
    "bs_positions",
    "small_scale",
    "drops_xy",
    "los_draws",
    "shadowing_draws",
    "active",  # training mode
    "active_trace",  # dynamic mode
    "arrives",
    "occupant_start",
    "free_walk_xy",
    "arrived",
)


@dataclass
class TnNtnTurn:
    """What the agents of turn m see, for B environments.

    Attributes:
        obs: (B, N, obs_dim) float32, observation of agent A_{n,m} (§III-C-3).
        state: (B, state_dim) float32, global state of turn m (§III-C-4), for centralised
            critics.
        action_mask: (B, N, S, n_choices) bool, choice 0 (off) always allowed, choice k allowed
            iff user slot k-1 of BS n is active.
        turn: m.
    """

    obs: torch.Tensor
    state: torch.Tensor
    action_mask: torch.Tensor
    turn: int


@dataclass
class TnNtnStepResult:
    """The outcome of one frame (returned by the last turn's :meth:`TnNtnEnv.act`).

    Attributes:
        reward: (B, M) group rewards (10) for ``"decomposed"``, (B, 1) reward (9) for
            ``"per_bs"``; Mbit/s divided by K, the active users of the frame (>= 1).
        cost: (B, N, K_max) cost (11) ``max(eta - rate, 0)`` in Mbit/s, 0 on inactive slots.
        user_rate: (B, N, K_max) bit/s, sum of eq. (3) over the user's subchannels.
        throughput: (B,) bit/s, system sum rate.
        qos_miss: (B,) long, active users below eta.
        active: (B, N, K_max) bool, psi of the scored frame.
        done: (B,) bool, the episode (``horizon_slots`` frames) has ended: call ``reset``.
        assignment: (B, N, F) long, the frame's assignment (-1 off, else user slot of BS n).
    """

    reward: torch.Tensor
    cost: torch.Tensor
    user_rate: torch.Tensor
    throughput: torch.Tensor
    qos_miss: torch.Tensor
    active: torch.Tensor
    done: torch.Tensor
    assignment: torch.Tensor


class TnNtnEnv:
    """Batched core of the seed-001 game (B = ``scenario.batch_size`` environments).

    Args:
        scenario: the channel process; its config sets F, K_max, ``srb_size`` (S), eta and the
            episode length ``horizon_slots``; training or dynamic mode is the scenario's.
        formulation: ``"decomposed"`` (RL2: M turns, agents A_{n,m} on SRBs) or ``"per_bs"``
            (RL1: one turn, one agent per BS on all F subchannels).
        inactive_action: what choosing an inactive user slot does: ``"error"`` raises a
            :class:`ConfigError`, ``"off"`` turns the subchannel off.
        ledger: signaling ledger with a ``"bs"`` kind of N agents and batch size B (a new one
            when omitted).
        reuse_observations: write each turn's ``obs`` and ``state`` into two buffers per kind,
            used in turn: the tensors of one :meth:`observe` are overwritten by the one after
            next. For callers that copy what they keep (the MAPPO learners do); it saves the
            page faults of two new multi-MB tensors per turn. Default: new tensors.

    Usage::

        env = TnNtnEnv(TnNtnScenario.from_preset("paper", batch_size=8))
        env.reset(seed=0)
        while True:
            turn = env.observe()                      # obs (8, 3, obs_dim), action_mask ...
            result = env.act(policy(turn))            # (8, 3, 40) long in 0..K_max
            if result is not None and bool(result.done.all()):
                break
    """

    def __init__(
        self,
        scenario: TnNtnScenario,
        *,
        formulation: str = "decomposed",
        inactive_action: str = "error",
        ledger: SignalingLedger | None = None,
        reuse_observations: bool = False,
    ) -> None:
        if not isinstance(scenario, TnNtnScenario):
            raise ConfigError(f"scenario must be a TnNtnScenario, got {type(scenario).__name__}")
        if formulation not in FORMULATIONS:
            raise ConfigError(
                f"formulation must be one of {', '.join(FORMULATIONS)}, got {formulation!r}"
            )
        if inactive_action not in INACTIVE_ACTIONS:
            raise ConfigError(
                f"inactive_action must be one of {', '.join(INACTIVE_ACTIONS)}, "
                f"got {inactive_action!r}"
            )
        cfg = scenario.config
        self.scenario = scenario
        if not isinstance(reuse_observations, bool):
            raise ConfigError(
                f"reuse_observations must be True or False, got {reuse_observations!r}"
            )
        self.reuse_observations = reuse_observations
        self._turn_buffers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None, None]
        self._turn_parity = 0
        self.formulation = formulation
        self.inactive_action = inactive_action
        self.batch_size = scenario.batch_size
        self.n_bs = cfg.n_bs
        self.k_max = cfg.k_max
        self.n_subchannels = cfg.n_subchannels
        self.n_srb = cfg.n_srb  # M of the power rule, for both formulations
        self.n_turns = cfg.n_srb if formulation == "decomposed" else 1
        self.block_size = cfg.srb_size if formulation == "decomposed" else cfg.n_subchannels
        self.n_choices = self.k_max + 1
        self.n_users = self.n_bs * self.k_max
        self.device, self.dtype = scenario.device, scenario.dtype
        self.min_rate_bps = scenario.min_rate_bps
        # Psi enters the observations divided by eta (by 1 Mbit/s when eta = 0).
        self.psi_scale_bps = self.min_rate_bps if self.min_rate_bps > 0 else 1e6
        # Reference power of the observation normalisation: p_max / F (see tn_ntn_observations).
        self.p_ref_w = scenario.p_max_w / cfg.n_subchannels
        self.ref_db = 10.0 * math.log10(self.p_ref_w / scenario.noise_w)
        self.obs_dim = sum(self.obs_blocks().values())
        self.state_dim = sum(self.state_blocks().values())

        if ledger is None:
            ledger = SignalingLedger({"bs": self.n_bs}, self.batch_size)
        elif ledger.agents.get("bs") != self.n_bs or ledger.batch_size != self.batch_size:
            raise ConfigError(
                f"ledger must count a 'bs' kind of N = {self.n_bs} agents with batch size "
                f"B = {self.batch_size}, got agents {ledger.agents} and B = {ledger.batch_size}"
            )
        self.ledger = ledger
        # others[n] = the N - 1 BSs other than n (who sends what BS n's agents observe)
        N = self.n_bs
        self._others = (
            torch.tensor([[j for j in range(N) if j != n] for n in range(N)], dtype=torch.long)
            .reshape(N, N - 1)
            .to(self.device)
        )
        # user slot n K_max + k of BS n's choice k, and the row b P of environment b
        self._bs_offset = (torch.arange(N, device=self.device) * self.k_max)[:, None]  # (N, 1)
        self._env_offset = (torch.arange(self.batch_size, device=self.device) * self.n_users)[
            :, None, None
        ]  # (B, 1, 1)
        self.turn = 0
        self._episodes = 0
        self._done = True
        self.state: TnNtnState | None = None
        self._features: torch.Tensor | None = None
        self._features_buffer: torch.Tensor | None = None
        self._features_rows: torch.Tensor | None = None  # the rows the buffer has non-zero
        self._features_scratch: torch.Tensor | None = None  # (B P N F,), gain_features

    # ---------------------------------------------------------------------------------------
    # Dimensions and names
    # ---------------------------------------------------------------------------------------

    def obs_blocks(self) -> dict[str, int]:
        """Sizes of the observation blocks, in order (:mod:`skyshare.envs.tn_ntn_observations`)."""
        return observations.obs_blocks(self.n_bs, self.k_max, self.block_size, self.n_turns)

    def state_blocks(self) -> dict[str, int]:
        """Sizes of the global-state blocks, in order."""
        return observations.state_blocks(self.n_bs, self.k_max, self.block_size, self.n_turns)

    def agent_name(self, n: int, m: int = 0) -> str:
        """``bs{n}_srb{m}`` (decomposed) or ``bs{n}`` (per_bs), as in the PettingZoo adapter."""
        return f"bs{n}_srb{m}" if self.formulation == "decomposed" else f"bs{n}"

    def block(self, m: int) -> slice:
        """Subchannels ``[m S, (m + 1) S)`` of turn m."""
        return slice(m * self.block_size, (m + 1) * self.block_size)

    @property
    def frame(self) -> int:
        """Index t of the current frame within the episode."""
        return self.scenario.t

    @property
    def done(self) -> bool:
        """The episode has ended (or not started): the next call must be :meth:`reset`."""
        return self._done

    # ---------------------------------------------------------------------------------------
    # Episode control
    # ---------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Start B new episodes at frame 0 (turn 0).

        ``seed`` reseeds the scenario. Without a seed, the first reset uses the scenario
        config's ``seed`` and later ones draw a fresh episode seed from the scenario's
        generator (the scenario itself would reseed with its config seed and replay the same
        users; Gymnasium's convention is that ``seed=None`` continues the random stream). In
        training mode every reset draws new users (Poisson(0.5 K_max) per BS at fresh
        positions), which then stay fixed for the episode while the fading evolves.
        """
        self.scenario.cancel_prefetch()  # the generator as if no draw ran ahead
        if seed is None and self._episodes > 0:
            seed = int(
                torch.randint(
                    0, 2**31 - 1, (1,), generator=self.scenario.generator, device=self.device
                )
            )
        self._episodes += 1
        self.state = self.scenario.reset(seed=seed)
        self.ledger.reset()
        self._done = False
        self._start_frame()

    def _start_frame(self) -> None:
        """Per-frame buffers, features and the frame's signaling."""
        B, N, K, F = self.batch_size, self.n_bs, self.k_max, self.n_subchannels
        state = self.state
        self.turn = 0
        self._assignment = torch.full((B, N, F), -1, dtype=torch.long, device=self.device)
        self._accumulated = torch.zeros(B, N, K, dtype=self.dtype, device=self.device)
        self._group_rate = torch.zeros(B, self.n_turns, dtype=self.dtype, device=self.device)
        self._rows = state.active_rows  # (A,) the active slots as rows b P + p
        self._active_gain = state.active_gain  # (A, N, F) their |H|^2
        # compact row of every slot b P + p (0 for inactive slots: masked where used)
        self._row_of = torch.zeros(B * self.n_users, dtype=torch.long, device=self.device)
        self._row_of[self._rows] = torch.arange(len(self._rows), device=self.device)
        self._features = None  # gain features of the frame, at its first observe()
        self._active_flat = state.user_active  # (B, P)
        self._pathloss = observations.pathloss_features(
            state.pathloss_db, self.ref_db, self._active_flat
        )
        self._count_signaling()

    def _count_signaling(self) -> None:
        """BS n's agents observe the path losses of the other BSs' users (from every BS) and
        the other BSs' psi: these come from the other BSs (backhaul), once per BS and frame.
        The path losses from every BS to BS n's own users are measured by those users and
        reported to BS n; its own psi and the accumulated rates Psi are its own."""
        B, N, K = self.batch_size, self.n_bs, self.k_max
        if N == 1:
            return
        pathloss = self._pathloss.reshape(B, N, K * N)  # per serving BS
        psi = self._active_flat.reshape(B, N, K)
        self.ledger.receive("bs", "pathloss", pathloss[:, self._others])  # (B, N, N-1, K N)
        self.ledger.receive("bs", "psi", psi[:, self._others])  # (B, N, N-1, K)

    def _expect_running(self) -> None:
        if self.state is None or self._done:
            raise RuntimeError(
                "the episode has ended (or not started): call reset() before observe()/act()"
                if self.state is not None
                else "call reset() first"
            )

    # ---------------------------------------------------------------------------------------
    # Observations
    # ---------------------------------------------------------------------------------------

    def observe(self) -> TnNtnTurn:
        """Observations, global state and action masks of the current turn.

        After the last frame of an episode (``done``), the turn-0 view of that final frame.
        """
        if self.state is None:
            raise RuntimeError("call reset() before observe()")
        B, N, K, S, m = self.batch_size, self.n_bs, self.k_max, self.block_size, self.turn
        block_gain = self._gain_features()[..., self.block(m)]  # (B, P, N, S)
        own = block_gain.reshape(B, N, K, N, S).diagonal(dim1=1, dim2=3)  # (B, K, S, N)
        own = own.permute(0, 3, 2, 1)  # (B, N, S, K)
        accumulated = self._accumulated / self.psi_scale_bps
        obs_out, state_out = self._turn_outputs()
        obs = observations.agent_observations(
            own, self._pathloss, accumulated, self._active_flat, m, self.n_turns, out=obs_out
        )
        state = observations.global_state(
            block_gain, self._pathloss, accumulated, self._active_flat, m, self.n_turns, state_out
        )
        return TnNtnTurn(obs=obs, state=state, action_mask=self.action_mask(), turn=m)

    def _turn_outputs(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The (obs, state) buffers of this :meth:`observe` with ``reuse_observations`` (the
        pair not used by the last call), else (None, None): new tensors."""
        if not self.reuse_observations:
            return None, None
        self._turn_parity ^= 1
        pair = self._turn_buffers[self._turn_parity]
        if pair is None:
            opts = {"device": self.device, "dtype": torch.float32}
            pair = (
                torch.empty(self.batch_size, self.n_bs, self.obs_dim, **opts),
                torch.empty(self.batch_size, self.state_dim, **opts),
            )
            self._turn_buffers[self._turn_parity] = pair
        return pair

    def _gain_features(self) -> torch.Tensor:
        """(B, P, N, F) float32 gain features of every block of the frame: computed at the
        frame's first :meth:`observe` from the active slots' gains (in one pass over F, into
        a buffer reused every frame; observations and states are copies of it)."""
        if self._features is None:
            B, N, F = self.batch_size, self.n_bs, self.n_subchannels
            shape = (B, self.n_users, N, F)
            buffer = self._features_buffer
            if buffer is None or buffer.shape != shape:
                buffer, self._features_rows = torch.empty(shape, device=self.device), None
            stale = self._features_rows  # the inactive rows must read 0: clear them if the
            clear = stale is None or not torch.equal(stale, self._rows)  # active rows changed
            scratch = self._features_scratch
            if scratch is None or scratch.numel() != buffer.numel():
                scratch = torch.empty(buffer.numel(), dtype=self.dtype, device=self.device)
            self._features = observations.gain_features(
                self._active_gain, self._rows, self.p_ref_w, buffer, clear, scratch
            )
            self._features_scratch = scratch
            self._features_buffer, self._features_rows = buffer, self._rows
        return self._features

    def action_mask(self) -> torch.Tensor:
        """(B, N, S, n_choices) bool: off always, user slot k-1 iff it is active."""
        B, N, S = self.batch_size, self.n_bs, self.block_size
        allowed = self._allowed()  # (B, N, K + 1)
        return allowed[:, :, None, :].expand(B, N, S, self.n_choices)

    def _allowed(self) -> torch.Tensor:
        """(B, N, K_max + 1) bool: choice 0 (off) and the active slots."""
        active = self.state.active
        off = torch.ones_like(active[..., :1])
        return torch.cat([off, active], dim=-1)

    # ---------------------------------------------------------------------------------------
    # Actions
    # ---------------------------------------------------------------------------------------

    def check_actions(self, actions: Any) -> torch.Tensor:
        """Validated copy of the current turn's actions (B, N, S) long in [0, K_max].

        Raises :class:`ShapeError` for a non-integer dtype (floats are refused, NaN or not) or a
        wrong shape, :class:`ConfigError` for a value outside [0, K_max] or (with
        ``inactive_action="error"``) an inactive user slot; messages name the agent, the
        subchannel and the environment. With ``inactive_action="off"`` inactive choices become 0.
        """
        shape = (self.batch_size, self.n_bs, self.block_size)
        if not isinstance(actions, torch.Tensor):
            try:
                actions = torch.as_tensor(actions)
            except (TypeError, ValueError, RuntimeError) as error:
                raise ShapeError(
                    f"actions must be a (B, N, S) = {shape} long tensor of choices in "
                    f"[0, K_max={self.k_max}]: {error}"
                ) from None
        if actions.dtype == torch.bool or actions.is_floating_point() or actions.is_complex():
            nan = (actions.is_floating_point() or actions.is_complex()) and bool(
                torch.isnan(actions).any()
            )
            raise ShapeError(
                f"actions must be an integer (torch.long) tensor of choices in "
                f"[0, K_max={self.k_max}] (0 = off, k = user slot k-1), got dtype "
                f"{actions.dtype}"
                + (" holding NaN" if nan else "")
                + "; round or sample the policy's choices to integers first"
            )
        if tuple(actions.shape) != shape:
            raise ShapeError(
                f"actions must have shape (B, N, S) = {shape} (S = {self.block_size} "
                f"subchannels per agent), got {tuple(actions.shape)}"
            )
        actions = actions.to(device=self.device, dtype=torch.long).clone()
        bad = (actions < 0) | (actions > self.k_max)
        if bool(bad.any()):
            b, n, s = bad.nonzero()[0].tolist()
            raise ConfigError(
                f"actions[{b}, {n}, {s}] = {int(actions[b, n, s])} ({self._where(b, n, s)}): "
                f"allowed range [0, K_max={self.k_max}] (0 = off, k = user slot k-1)"
            )
        allowed = torch.gather(self._allowed(), 2, actions)  # (B, N, S)
        if not bool(allowed.all()):
            if self.inactive_action == "off":
                return torch.where(allowed, actions, 0)
            b, n, s = (~allowed).nonzero()[0].tolist()
            k = int(actions[b, n, s]) - 1
            raise ConfigError(
                f"actions[{b}, {n}, {s}] = {k + 1} ({self._where(b, n, s)}) chooses user slot "
                f"{k} of BS {n}, which is inactive (psi = 0): allowed are 0 (off) and the active "
                f"slots of action_mask; or build the env with inactive_action='off'"
            )
        return actions

    def _where(self, b: int, n: int, s: int) -> str:
        f = self.turn * self.block_size + s
        return f"agent {self.agent_name(n, self.turn)}, subchannel {f}, env {b}"

    def random_actions(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform choices among the allowed ones: (B, N, S) long (for tests and baselines).

        Choice ``floor(u c)`` in the list of the c allowed choices of the agent's BS (off, then
        its active slots in order), with ``u`` uniform on [0, 1) in float64 (one draw per
        subchannel; the bias of the rounding is below 2^-48)."""
        allowed = self._allowed()  # (B, N, K + 1)
        count = allowed.sum(-1, keepdim=True)  # (B, N, 1) >= 1 (off is always allowed)
        # choices[b, n, i]: the i-th allowed choice (a stable sort puts them first, in order)
        choices = torch.sort((~allowed).to(torch.uint8), dim=-1, stable=True).indices
        u = torch.rand(
            self.batch_size, self.n_bs, self.block_size, generator=generator,
            dtype=torch.float64, device=self.device,
        )  # fmt: skip
        index = (u * count).long().clamp_max_(count - 1)  # (B, N, S) in [0, c)
        return torch.gather(choices, 2, index)

    def act(self, actions: torch.Tensor) -> TnNtnStepResult | None:
        """The N agents of the current turn m act: ``actions (B, N, S)`` long in [0, K_max].

        The SRB (block) m is transmitted: its rates (3) are final (no other block interferes
        with it) and added to Psi. Returns None until the last turn of the frame; then the
        frame is scored, the scenario advances one frame (unless the episode is done) and the
        frame's :class:`TnNtnStepResult` is returned.
        """
        self._expect_running()
        actions = self.check_actions(actions)
        m = self.turn
        self._assignment[..., self.block(m)] = actions - 1
        rate, user_rate = self._block_rates(m)
        self._accumulated = self._accumulated + user_rate
        self._group_rate[:, m] = rate.sum((1, 2))
        if m + 1 < self.n_turns:
            self.turn = m + 1
            return None
        return self._finish_frame()

    def _block_rates(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rates of block m: per (BS, subchannel) (B, N, S) and per user slot (B, N, K_max),
        bit/s. Power of §III-C-2 on the block (SRBs have separate power budgets and do not
        interfere, so the undecided SRBs change nothing on it); the served users' gains are
        gathered from the active slots' gains (``metrics.ofdm_link_sinr`` on these rows)."""
        B, N, P, block = self.batch_size, self.n_bs, self.n_users, self.block(m)
        assignment = self._assignment[..., block]  # (B, N, S)
        S = assignment.shape[-1]
        on = assignment >= 0
        power = self.scenario.srb_power(on)
        slot = self._bs_offset + assignment.clamp_min(0)  # (B, N, S) receiver, any when off
        flat = slot + self._env_offset  # rows b P + p
        served_active = self._active_flat.flatten()[flat]  # (B, N, S)
        if len(self._rows) == 0:  # no active user anywhere: nothing is received
            gains = self._active_gain.new_zeros(B, N, N, S)
        else:
            row = self._row_of[flat].view(B * N, 1, S).expand(B * N, N, S)
            gains = torch.gather(self._active_gain[..., block], 0, row).view(B, N, N, S)
            gains = gains * served_active[:, :, None]  # [b, n, l, s]; 0: inactive receiver
        links = metrics.ofdm_served_link_sinr(gains, slot, on, power)
        rate = self.scenario.subchannel_bandwidth_hz * torch.log2(1.0 + links.sinr)
        rate = rate * (on & served_active)
        user = rate.new_zeros(B, P).scatter_add_(1, slot.flatten(1), rate.flatten(1))
        return rate, user.view(B, N, self.k_max)

    def _finish_frame(self) -> TnNtnStepResult:
        active = self.state.active
        user_rate = self._accumulated  # sum over all SRBs: eq. (3) summed over the frame
        eta = self.min_rate_bps
        n_active = active.sum((1, 2)).clamp_min(1).to(self.dtype)  # K of (9)/(10)
        reward = self._group_rate / 1e6 / n_active[:, None]
        cost = (eta - user_rate).clamp_min(0.0) / 1e6 * active
        done = self.scenario.t + 1 >= self.scenario.config.horizon_slots
        result = TnNtnStepResult(
            reward=reward,
            cost=cost,
            user_rate=user_rate,
            throughput=user_rate.sum((1, 2)),
            qos_miss=((user_rate < eta) & active).sum((1, 2)),
            active=active,
            done=torch.full((self.batch_size,), done, dtype=torch.bool, device=self.device),
            assignment=self._assignment,
        )
        self.ledger.close_slot()
        if done:
            self._done = True
            self.turn = 0
            self._accumulated = torch.zeros_like(self._accumulated)
        else:
            self.state = self.scenario.step()
            self._start_frame()
        return result

    # ---------------------------------------------------------------------------------------
    # Checkpoints
    # ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, mid-frame included: the scenario's channel
        process (the states of both generators: ``generator`` and ``imag_generator``, which
        draws the imaginary parts of the fading; frame index, drawn users, traces, LoS,
        shadowing, fading;
        :class:`TnNtnScenario` has no ``state_dict`` of its own, so the env saves these
        attributes), the turn, the frame's decisions so far and the ledger. Tensors, numbers,
        strings and None only (``torch.load(..., weights_only=True)`` reads it)."""
        if self.state is None:
            raise ConfigError("state_dict() needs a reset() environment")
        sc = self.scenario
        sc.cancel_prefetch()  # the generators as if no draw ran ahead
        scenario = {
            name: getattr(sc, name).clone()
            for name in _SCENARIO_TENSORS
            if isinstance(getattr(sc, name, None), torch.Tensor)
        }
        scenario.update(
            t=sc.t,
            trace_index=sc.trace_index,
            generator=sc.generator.get_state(),
            imag_generator=sc.imag_generator.get_state(),
        )
        sc._launch_prefetch()  # the same draw again (with draw_ahead), now that it is saved
        return {
            "scenario_config": sc.config.model_dump(),
            "batch_size": self.batch_size,
            "formulation": self.formulation,
            "inactive_action": self.inactive_action,
            "scenario": scenario,
            "episodes": self._episodes,
            "done": self._done,
            "turn": self.turn,
            "assignment": self._assignment.clone(),
            "accumulated": self._accumulated.clone(),
            "group_rate": self._group_rate.clone(),
            "ledger": self.ledger.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the env must be built with the same scenario config,
        batch size and formulation (a :class:`ConfigError` otherwise).

        A state written before the scenario had its second generator (no ``imag_generator``)
        continues with that generator seeded as at a reset with the scenario's seed (the
        continuation then differs from the uninterrupted run's, whose fading was drawn from
        one generator)."""
        same = (
            state["scenario_config"] == self.scenario.config.model_dump()
            and int(state["batch_size"]) == self.batch_size
            and state["formulation"] == self.formulation
        )
        if not same:
            raise ConfigError(
                "the saved tn_ntn env state was written with another scenario configuration, "
                "batch size or formulation; build the env as for the saved run"
            )
        sc, saved = self.scenario, state["scenario"]
        sc.cancel_prefetch()
        for name in _SCENARIO_TENSORS:
            if name in saved:
                setattr(sc, name, saved[name].to(self.device))
            elif name == "arrived":
                sc.arrived = None
        sc.t, sc.trace_index = int(saved["t"]), int(saved["trace_index"])
        sc.generator.set_state(saved["generator"].cpu())
        if "imag_generator" in saved:
            sc.imag_generator.set_state(saved["imag_generator"].cpu())
        else:
            sc._seed(sc.generator.initial_seed())  # seeds imag_generator; see the docstring
            sc.generator.set_state(saved["generator"].cpu())
        self.state = sc._rebuild_state()
        self._episodes = int(state["episodes"])
        self._start_frame()  # features of the frame (its signaling is in the saved ledger)
        self.ledger.load_state_dict(state["ledger"])
        self._done = bool(state["done"])
        self.turn = int(state["turn"])
        self._assignment = state["assignment"].to(self.device)
        self._accumulated = state["accumulated"].to(self.device)
        self._group_rate = state["group_rate"].to(self.device)
