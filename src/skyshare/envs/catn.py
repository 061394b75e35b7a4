"""The CATN networked constrained partially observable Markov game (seed 000 §V-B to §V-D).

A batched tensor core: B parallel environments, all K terrestrial-user (TU) agents as one tensor
group and all N base-station (BS) agents as another. Each slot has two turns, in this order
(Algorithm 4):

1. ``associate(tu_actions)``: every TU picks its BS (discrete, N choices) from its observation
   (14); the BSs then observe (8) with the new association.
2. ``beamform(bs_actions)``: every BS outputs its action (9) in [0, 1]^(2K+L+2), from which it
   builds the beamformers of its users (§V-C-3); the slot is transmitted and the TU rewards
   (15)-(16), BS rewards (10) and costs (11) follow; the channel process advances one slot and
   the TU observations of the next slot are returned.

Everything that is not local to an agent reaches it through the :class:`SignalingLedger`, which
measures the real scalars received per agent and slot (Table I). The observation blocks are
built in :mod:`skyshare.envs.catn_observations`.

Action mapping (a documented, configurable choice, :mod:`skyshare.envs.catn_actions`): BS n's
policy output ``x`` in [0, 1]^(2K+L+2) becomes the power split ``q_total``, ``q_{n,k}``, the
weights ``alpha_{n,k}``, ``mu_{n,l}`` and ``eta_n`` of ``D~_n``, and the beamformers
``w_k = sqrt(P_max q_total q_{n,k}) D~_n^{-1} h / ||D~_n^{-1} h||``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from skyshare import metrics
from skyshare.channels.arrays import dft_codebook
from skyshare.checks import check_memory
from skyshare.config import StrictModel
from skyshare.envs import catn_observations as observations
from skyshare.envs.catn_actions import action_field, action_parameters, beamformers
from skyshare.envs.catn_observations import normalized_tu_observation
from skyshare.envs.outputs import ObservationOutputs
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.catn import CatnConfig, CatnScenario, CatnState
from skyshare.signaling import SignalingLedger

__all__ = ["CatnEnv", "CatnEnvConfig", "SlotOutcome", "normalized_tu_observation"]


class CatnEnvConfig(StrictModel):
    """Parameters of the game; defaults are seed 000 §VI unless marked as a choice."""

    n_codewords: int = Field(128, ge=1, description="C, DFT codebook size")
    n_compress: int = Field(4, ge=1, description="N_c, kept codewords per channel")
    b_in: int = Field(4, ge=1, description="B_in, interferer BSs reported per TU")
    b_in_pri: int = Field(5, ge=1, description="B~_in, interferer BSs reported per AU")
    k_in: int = Field(3, ge=1, description="K_in, most-interfered own TUs per BS (Table I: 3610)")
    k_out: int = Field(3, ge=1, description="K_out; |U_n^out| = K_out B_in")
    handover_factor: float = Field(0.4, ge=0, le=1, description="zeta_R of (16)")
    reward_loss_weight: float = Field(
        1.0,
        ge=0,
        description="weight of the rate-loss term of the BS reward (10); 1 is the paper, "
        "0 an ablation (own users' rates only)",
    )
    q_total_min: float = Field(1e-3, gt=0, le=1, description="floor of q_total (choice)")
    alpha_max: float = Field(100.0, gt=0, description="upper end of alpha (choice)")
    mu_max: float = Field(1.0e4, gt=0, description="upper end of mu (choice)")
    eta_min: float = Field(1e-3, gt=0, description="lower end of eta (choice)")
    eta_max: float = Field(10.0, gt=0, description="upper end of eta (choice)")
    tu_information: Literal["d3qn", "dcd", "sc"] = Field(
        "d3qn", description="what TUs receive for association (Table I column 2)"
    )
    bs_information: Literal["exchange", "global_csi"] = Field(
        "exchange", description="observation exchange (CUP/PPO) or global CSI (WMMSE/FP)"
    )
    tu_observation: Literal["raw", "normalized"] = Field(
        "raw",
        description="TU observations (14) as measured, or through the fixed input "
        "normalisation of normalized_tu_observation (what the D3QN agents learn on; choice)",
    )

    @model_validator(mode="after")
    def _check_pairs(self) -> CatnEnvConfig:
        if self.n_compress > self.n_codewords:
            raise ValueError(
                f"n_compress (N_c = {self.n_compress}) must be <= n_codewords (C = "
                f"{self.n_codewords})"
            )
        if self.eta_min >= self.eta_max:
            raise ValueError(f"eta_min ({self.eta_min:g}) must be < eta_max ({self.eta_max:g})")
        return self


@dataclass
class SlotOutcome:
    """What ``beamform`` returns (slot t), B environments.

    Attributes:
        tu_obs: (B, K, 3N+4) observations (14) of slot t+1.
        tu_reward: (B, K) rewards (15) of slot t.
        bs_reward: (B, N) rewards (10).
        cost: (B, N, L) costs (11), identical across BSs.
        rates: (B, K) R_k in bit/s/Hz; effective_rates: (B, K) R~_k of (16).
        au_interference: (B, L) rho_l in noise units.
        handovers: (B,) TUs that changed BS in slot t.
        truncated: the horizon has been reached (call reset()).
    """

    tu_obs: torch.Tensor
    tu_reward: torch.Tensor
    bs_reward: torch.Tensor
    cost: torch.Tensor
    rates: torch.Tensor
    effective_rates: torch.Tensor
    au_interference: torch.Tensor
    handovers: torch.Tensor
    truncated: bool


@dataclass
class _SlotRecord:
    """What the agents remember of slot t-1 (all (B, ...) tensors)."""

    serving: torch.Tensor  # (B, K) long
    load: torch.Tensor  # (B, N) |K_n|
    power: torch.Tensor  # (B, K) p_k in W
    rate: torch.Tensor  # (B, K) R_k
    received: torch.Tensor  # (B, K) p^r_k (noise units)
    beta_split: torch.Tensor  # (B, N, K) beta_{j,k}
    beta: torch.Tensor  # (B, K) beta_k = sum_j beta_{j,k} + 1
    compressed: torch.Tensor  # (B, N, K, 3 N_c) h^c_{n,k}
    strength: torch.Tensor  # (B, N, K) ||h_{n,k}||^2
    rho: torch.Tensor  # (B, L) rho_l
    rho_split: torch.Tensor  # (B, N, L) inferred rho_{n,l} (statistical CSI, §V-C-2)
    rho_split_measured: torch.Tensor  # (B, N, L) actual share of BS n in rho_l
    g_stat: torch.Tensor  # (B, N, L, 4) [theta, phi, L_FSP^-1, d]


def _fitted(config: CatnEnvConfig, n_bs: int, n_tu: int) -> CatnEnvConfig:
    """The config with its report sizes fitted to a smaller network (a choice, so that every
    valid scenario plays): at most N interferer BSs are reported (``b_in_pri`` <= N, and
    ``b_in`` <= min(N, K) because the out-of-cell set of K_out B_in users must fit in the K
    users), ``k_out`` is lowered (>= 1) until K_out B_in <= K, and ``k_in`` <= K. The paper's
    network (N = 7, K = 21) keeps Table I's values. The env records the fitted config."""
    b_in = min(config.b_in, n_bs, n_tu)
    fitted = {
        "b_in": b_in,
        "b_in_pri": min(config.b_in_pri, n_bs),
        "k_out": min(config.k_out, n_tu // b_in),
        "k_in": min(config.k_in, n_tu),
    }
    if all(getattr(config, name) == value for name, value in fitted.items()):
        return config
    return config.model_copy(update=fitted)


class CatnEnv:
    """Batched core of the CATN game.

    Args:
        scenario_config: :class:`CatnConfig` (the ``paper`` preset when omitted).
        config: :class:`CatnEnvConfig`.
        batch_size: B parallel environments.
        device, dtype: where and in which precision tensors live.
        reuse_observations: write the observations into two buffers per kind, used in turn,
            instead of a new tensor per call (opt-in; the default ``False`` returns a new
            tensor every time, which a learner may keep for as long as it likes). With
            ``True``, the BS observations (8) returned by ``associate`` of slot t stay valid
            through slot t+1 and are overwritten by ``associate`` of slot t+2; the TU
            observations (14) returned by ``reset`` or ``beamform``/``beamform_with``
            (``SlotOutcome.tu_obs``) stay valid until the second next call that returns TU
            observations overwrites them. So a pair (observation, next observation) is valid
            together, which is what a one-step learner needs; copy an observation to keep it
            longer. Values are identical in both modes. At B = 1024 the BS observation is
            114 MB per slot, and a fresh one costs its first-touch page faults every slot.
    """

    def __init__(
        self,
        scenario_config: CatnConfig | None = None,
        config: CatnEnvConfig | None = None,
        *,
        batch_size: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        reuse_observations: bool = False,
    ) -> None:
        self.scenario = CatnScenario(
            scenario_config, batch_size=batch_size, device=device, dtype=dtype
        )
        sc = self.scenario.config
        if sc.n_slots < 2:
            raise ConfigError(
                f"n_slots must be >= 2 for the catn environment (an episode is at least one "
                f"step from slot 0 to slot 1), got {sc.n_slots}"
            )
        self.config = cfg = _fitted(config or CatnEnvConfig(), sc.n_bs, sc.n_tu)
        self.B, self.K, self.N = batch_size, sc.n_tu, sc.n_bs
        self.L, self.M = sc.n_au, sc.n_antennas
        self.device, self.dtype = self.scenario.device, dtype
        self.cdtype = self.scenario.cdtype
        self.codebook = dft_codebook(self.M, cfg.n_codewords, device=self.device, dtype=self.cdtype)
        # per-env constants of the slot: the conjugated codebook and compress_channel's
        # tie-breaking offsets (index * tiny), the (K, K) diagonal and its complement
        self._codebook_conj = self.codebook.conj().resolve_conj()
        index = torch.arange(cfg.n_codewords, device=self.device, dtype=dtype)
        self._tie_offset = index * torch.finfo(dtype).tiny
        self._eye = torch.eye(self.K, dtype=torch.bool, device=self.device)
        self._not_eye = ~self._eye
        # first row of each (b, k) in H viewed as (B K N, M)
        self._link_rows = torch.arange(
            0, batch_size * sc.n_tu * sc.n_bs, sc.n_bs, device=self.device
        )
        self.p_max = sc.p_max_w
        self.i_max = self.scenario.i_max_normalized
        # the BS observations (8) (B x N x D floats, several copies with the exchange's
        # temporaries) grow with K^2 through o_in: checked before the first reset allocates them
        check_memory(
            16 * batch_size * self.N * self.bs_obs_dim * torch.finfo(dtype).bits // 8,
            f"the catn env with batch {batch_size} (BS observations of {self.bs_obs_dim})",
        )
        self.ledger = SignalingLedger({"bs": self.N, "tu": self.K}, batch_size)
        self.generator = self.scenario.generator
        self._phase = "reset"
        self.reuse_observations = bool(reuse_observations)
        self._outputs = ObservationOutputs(self.reuse_observations, dtype, self.device)
        # set by a ShardedCatnEnv: where the next observation goes (a slice of its output),
        # and this env's first index in its batch (for the messages of refused actions)
        self.observation_target: torch.Tensor | None = None
        self.batch_offset = 0

    # ---------------------------------------------------------------------------------------
    # Dimensions (the paper's formulas)
    # ---------------------------------------------------------------------------------------

    @property
    def action_dim(self) -> int:
        """BS action (9): 2K + L + 2."""
        return 2 * self.K + self.L + 2

    @property
    def tu_obs_dim(self) -> int:
        """TU observation (14): 3N + 4."""
        return 3 * self.N + 4

    def bs_obs_blocks(self) -> dict[str, int]:
        """Sizes of the blocks of the BS observation (8)."""
        return observations.bs_obs_blocks(self.config, self.K, self.L)

    @property
    def bs_obs_dim(self) -> int:
        return sum(self.bs_obs_blocks().values())

    # ---------------------------------------------------------------------------------------
    # Episode control
    # ---------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start B new episodes; return the TU observations (B, K, 3N+4) of slot 1.

        Slot 0 is played with random TU and BS actions (Algorithm 4 lines 5-6), which gives
        every agent a previous slot to observe.
        """
        if seed is None and getattr(self, "_episodes", 0) > 0:
            # Gymnasium convention: an unseeded reset continues the random stream
            seed = int(
                torch.randint(0, 2**31 - 1, (1,), generator=self.generator, device=self.device)
            )
        self._episodes = getattr(self, "_episodes", 0) + 1
        self.state: CatnState = self.scenario.reset(seed=seed)
        self.ledger.reset()
        self.serving = torch.randint(
            0, self.N, (self.B, self.K), generator=self.generator, device=self.device
        )
        self.previous: _SlotRecord | None = None
        actions = torch.rand(
            self.B,
            self.N,
            self.action_dim,
            generator=self.generator,
            device=self.device,
            dtype=self.dtype,
        )
        self._transmit(
            self._beamformers(actions), handover=torch.zeros_like(self.serving, dtype=torch.bool)
        )
        self.ledger.reset()
        self.state = self.scenario.step()
        self._phase = "associate"
        return self._tu_observation()

    def state_dict(self) -> dict[str, Any]:
        """Everything the game needs to continue exactly: the scenario's channel process and
        generator (:meth:`CatnScenario.state_dict`), the turn, the association, the record of
        the previous slot and the ledger's counts. Tensors, numbers and strings only, so a
        checkpoint holding it loads with ``torch.load(..., weights_only=True)``."""
        if self._phase == "reset" and getattr(self, "_episodes", 0) == 0:
            raise ConfigError("state_dict() needs a reset() environment")
        previous = None if self.previous is None else asdict(self.previous)
        state = {
            "config": self.config.model_dump(),
            "scenario": self.scenario.state_dict(),
            "phase": self._phase,
            "episodes": self._episodes,
            "serving": self.serving,
            "previous": previous,
            "ledger": self.ledger.state_dict(),
        }
        if self._phase == "beamform":
            state["handover"] = self.handover
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the env must be built with the same configs and batch
        size (a :class:`ConfigError` otherwise)."""
        if state["config"] != self.config.model_dump():
            raise ConfigError(
                "the saved catn env state was written with another env configuration; "
                "build the env as for the saved run"
            )
        if state["phase"] not in ("reset", "associate", "beamform"):
            raise ValueError(f"phase {state['phase']!r} is not reset, associate or beamform")
        serving = state["serving"]
        if serving.numel() and not _within(serving, 0, self.N - 1):
            raise ValueError(f"serving BS indices must lie in [0, {self.N - 1}]")
        self.scenario.load_state_dict(state["scenario"])
        self.state = self.scenario.state
        self._phase, self._episodes = str(state["phase"]), int(state["episodes"])
        self.serving = serving.to(self.device)
        previous = state["previous"]
        self.previous = (
            None
            if previous is None
            else _SlotRecord(**{key: value.to(self.device) for key, value in previous.items()})
        )
        if "handover" in state:
            self.handover = state["handover"].to(self.device)
        self.ledger.load_state_dict(state["ledger"])
        for name in ("_compressed_for", "_cached_state", "_owners"):
            self.__dict__.pop(name, None)

    def associate(self, tu_actions: torch.Tensor) -> torch.Tensor:
        """Turn 1: TU k joins BS ``tu_actions[b, k]``; returns the BS observations (B, N, D)."""
        self._expect("associate")
        tu_actions = self.check_tu_actions(tu_actions)
        self.handover = tu_actions != self.previous.serving
        self.serving = tu_actions
        obs = self._bs_observation()
        self._phase = "beamform"
        return obs

    def beamform(self, bs_actions: torch.Tensor) -> SlotOutcome:
        """Turn 2: every BS acts (B, N, 2K+L+2) in [0, 1]; the slot is transmitted."""
        self._expect("beamform")
        bs_actions = self.check_bs_actions(bs_actions)
        return self._finish_slot(self._beamformers(bs_actions))

    def beamform_with(self, w: torch.Tensor) -> SlotOutcome:
        """Turn 2 with external beamformers ``w (B, K, M)`` (e.g. WMMSE for D3QN-WMMSE), in
        sqrt(W); the BSs use global CSI, which the ledger records."""
        self._expect("beamform")
        if w.shape != (self.B, self.K, self.M) or not w.is_complex():
            raise ShapeError(f"w must be (B, K, M) = {(self.B, self.K, self.M)} complex")
        return self._finish_slot(w)

    def _finish_slot(self, w: torch.Tensor) -> SlotOutcome:
        self.last_beamformers = w  # (B, K, M) of the slot just transmitted
        outcome = self._transmit(w, handover=self.handover)
        self.ledger.close_slot()
        truncated = self.scenario.t + 1 >= self.scenario.config.n_slots
        if not truncated:
            self.state = self.scenario.step()
        outcome.tu_obs = self._tu_observation()
        outcome.truncated = truncated
        self._phase = "reset" if truncated else "associate"
        return outcome

    def _expect(self, phase: str) -> None:
        if self._phase != phase:
            hint = {
                "reset": "reset()",
                "associate": "associate(tu_actions)",
                "beamform": "beamform(bs_actions)",
            }[self._phase]
            raise RuntimeError(f"{phase}() called out of turn: the next call must be {hint}")

    def check_tu_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validated copy of TU actions (B, K) long; errors name the agent and the range."""
        actions = torch.as_tensor(actions, device=self.device)
        if actions.shape != (self.B, self.K):
            raise ShapeError(
                f"tu_actions must be (B, K) = {(self.B, self.K)}, got {tuple(actions.shape)}"
            )
        if actions.is_floating_point():
            if not bool(torch.isfinite(actions).all()):
                bad = (~torch.isfinite(actions)).nonzero()[0].tolist()
                raise ValueError(
                    f"tu_actions of tu_{bad[1]} (env {bad[0] + self.batch_offset}) is not finite"
                )
            fractional = actions != actions.round()
            if bool(fractional.any()):
                b, k = fractional.nonzero()[0].tolist()
                raise ValueError(
                    f"tu_{k} (env {b + self.batch_offset}) chose BS {float(actions[b, k])}; "
                    "actions must be integer BS indices"
                )
        actions = actions.long().clone()  # the record of this slot must not alias the caller's
        if _within(actions, 0, self.N - 1):
            return actions
        bad = (actions < 0) | (actions >= self.N)
        if bool(bad.any()):
            b, k = bad.nonzero()[0].tolist()
            raise ValueError(
                f"tu_{k} (env {b + self.batch_offset}) chose BS {int(actions[b, k])}; "
                f"allowed range: [0, {self.N - 1}]"
            )
        return actions

    def check_bs_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validated copy of BS actions (B, N, 2K+L+2); errors name the agent and the field."""
        actions = torch.as_tensor(actions, device=self.device, dtype=self.dtype).clone()
        if actions.shape != (self.B, self.N, self.action_dim):
            raise ShapeError(
                f"bs_actions must be (B, N, 2K+L+2) = "
                f"{(self.B, self.N, self.action_dim)}, got {tuple(actions.shape)}"
            )
        if _within(actions, 0.0, 1.0):  # one reduction on the valid path (NaN fails it)
            return actions
        finite = torch.isfinite(actions)
        if not bool(finite.all()):
            b, n, i = (~finite).nonzero()[0].tolist()
            raise ValueError(
                f"bs_{n} (env {b + self.batch_offset}) action[{i}] "
                f"({action_field(i, self.K, self.L)}) is "
                f"{float(actions[b, n, i])}; actions must be finite in [0, 1]"
            )
        bad = (actions < 0) | (actions > 1)
        if bool(bad.any()):
            b, n, i = bad.nonzero()[0].tolist()
            raise ValueError(
                f"bs_{n} (env {b + self.batch_offset}) action[{i}] "
                f"({action_field(i, self.K, self.L)}) = "
                f"{float(actions[b, n, i]):.4g}; allowed range: [0, 1]"
            )
        return actions

    # ---------------------------------------------------------------------------------------
    # Beamformers from actions (§V-C-3)
    # ---------------------------------------------------------------------------------------

    def action_parameters(self, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map policy outputs (B, N, 2K+L+2) in [0, 1] to q_total, q, alpha, eta, mu."""
        return action_parameters(actions, self.serving, self.config, n_bs=self.N, n_au=self.L)

    def _beamformers(self, actions: torch.Tensor) -> torch.Tensor:
        """w_k = sqrt(p_k) D~^{-1} h / ||D~^{-1} h||: (B, K, M) complex."""
        parameters = self.action_parameters(actions)
        return beamformers(
            parameters,
            self.state.H,
            self.state.G,
            self.serving,
            self.p_max,
            cdtype=self.cdtype,
            strength=self._state_cache()["strength"],
        )

    # ---------------------------------------------------------------------------------------
    # Transmission, rewards (10), (15)-(16), costs (11)
    # ---------------------------------------------------------------------------------------

    def _transmit(self, w: torch.Tensor, handover: torch.Tensor) -> SlotOutcome:
        state, serving, N, K, L = self.state, self.serving, self.N, self.K, self.L
        cache = self._state_cache()
        owner = self._owner(serving)  # (B, N, K) chi_n
        # P[b, k, j] = |h_{rho_j,k}^H w_j|^2: (B, K, K)
        P = _powers(metrics.associated_gains(state.H, w, serving))
        P_off = P.masked_fill(self._eye, 0.0)  # the streams that interfere at each receiver
        received = P.diagonal(dim1=1, dim2=2)  # p^r_k
        beta = P_off.sum(-1) + 1.0  # beta_k: interference plus noise
        rate = torch.log2(1.0 + received / beta)
        beta_split = torch.bmm(owner, P_off.transpose(1, 2))  # (B, N, K) beta_{n,k}
        power = torch.view_as_real(w).square().sum((-2, -1))

        # BS reward (10): own users' rates minus the rate loss BS n causes to U_n^out(t).
        strength = cache["strength"].transpose(1, 2)  # (B, N, K)
        out_set = self._interfered_set(beta_split, strength)
        rate_without_n = torch.log2(
            1.0 + received[:, None, :] / (beta[:, None, :] - beta_split).clamp_min(1.0)
        )  # (B, N, K) R_{i\n}
        loss = ((rate_without_n - rate[:, None, :]) * out_set).sum(-1)
        bs_reward = torch.bmm(owner, rate[:, :, None]).squeeze(-1)
        bs_reward = bs_reward - self.config.reward_loss_weight * loss

        # TU reward (15)-(16): handover discount and the loss TU k's stream causes in
        # U^out of its BS (i != k).
        effective = torch.where(handover, self.config.handover_factor * rate, rate)
        rate_without_k = torch.log2(
            1.0 + received[:, None, :] / (beta[:, None, :] - P.transpose(1, 2)).clamp_min(1.0)
        )  # (B, K, K): [b, k, i] = R~_{i\k}, stream k removed at receiver i
        my_out = torch.gather(out_set, 1, serving[:, :, None].expand(-1, -1, K)) & self._not_eye
        tu_reward = effective - ((rate_without_k - rate[:, None, :]) * my_out).sum(-1)

        # AU interference: actual rho_l, each BS's measured share, and each BS's inferred share
        # from statistical CSI (the LoS part), from one gain product of [G; G_stat].
        P_au = _powers(metrics.associated_gains(cache["au"], w, serving))  # (B, 2L, K)
        rho = P_au[:, :L].sum(-1)  # (B, L)
        split = torch.bmm(owner, P_au.transpose(1, 2))  # (B, N, 2L)
        cost = (rho / self.i_max - 1.0)[:, None, :].expand(self.B, N, L)
        self.previous = _SlotRecord(
            serving=serving,
            load=owner.sum(-1),
            power=power,
            rate=rate,
            received=received,
            beta_split=beta_split,
            beta=beta,
            compressed=self._compressed_channels(),  # (B, N, K, 3 N_c)
            strength=strength,
            rho=rho,
            rho_split=split[..., L:],
            rho_split_measured=split[..., :L],
            g_stat=cache["g_stat"],
        )
        return SlotOutcome(
            tu_obs=torch.empty(0),
            tu_reward=tu_reward,
            bs_reward=bs_reward,
            cost=cost,
            rates=rate,
            effective_rates=effective,
            au_interference=rho,
            handovers=handover.sum(-1),
            truncated=False,
        )

    def _interfered_set(self, beta_split: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """U_n^out: the K_out B_in TUs that BS n interferes most (by ||h||^2 if it sends
        nothing). (B, N, K) bool."""
        size = self.config.k_out * self.config.b_in
        silent = beta_split.sum(-1, keepdim=True) <= 0
        score = torch.where(silent, strength, beta_split)
        top = score.topk(size, dim=-1).indices
        return torch.zeros_like(score, dtype=torch.bool).scatter_(-1, top, True)

    # ---------------------------------------------------------------------------------------
    # Per-slot caches (each value is computed once per channel state or association)
    # ---------------------------------------------------------------------------------------

    def _state_cache(self) -> dict[str, torch.Tensor]:
        """Values that depend on the channel state only, computed once per slot: ``strength``
        ||h_{n,k}||^2 (B, K, N), ``au`` the AU channels and their statistical (LoS) part
        stacked, [G; G_stat] (B, 2L, N, M), and ``g_stat`` (B, N, L, 4)."""
        state = self.state
        if getattr(self, "_cached_state", None) is not state:
            los_amplitude = 10.0 ** (-state.pathloss_au_db / 20.0) / math.sqrt(
                self.scenario.noise_w
            )
            g_stat = state.G_los * los_amplitude[..., None]  # (B, L, N, M)
            self._cache = {
                "strength": metrics.channel_strength(state.H),
                "au": torch.cat([state.G, g_stat], 1),
                "g_stat": torch.stack(
                    [
                        state.au_zenith_rad,
                        state.au_azimuth_rad,
                        10.0 ** (-state.pathloss_au_db / 10.0) / self.scenario.noise_w,
                        state.au_distance_m,
                    ],
                    dim=-1,
                ).transpose(1, 2),  # (B, N, L, 4) [theta, phi, L_FSP^-1, d]
            }
            self._cached_state = state  # a reference: identity cannot be reused while held
        return self._cache

    def _owner(self, serving: torch.Tensor) -> torch.Tensor:
        """chi: (B, N, K) one-hot association of ``serving`` in the env's dtype (the current
        and the previous association are kept)."""
        for known, owner in getattr(self, "_owners", ()):
            if known is serving:
                return owner
        owner = torch.nn.functional.one_hot(serving, self.N).transpose(1, 2).to(self.dtype)
        self._owners = [(serving, owner), *getattr(self, "_owners", [])[:1]]
        return owner

    # ---------------------------------------------------------------------------------------
    # Observations
    # ---------------------------------------------------------------------------------------

    def _observation_out(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        """The tensor the next observation of ``kind`` ("bs" or "tu") is written into: a new
        one, or with ``reuse_observations`` the two buffers of that kind in turn (allocated on
        first use), so the observation returned before the previous one is overwritten."""
        target, self.observation_target = self.observation_target, None
        if target is not None:  # the caller's (a sharded env's) slice, written in place
            if tuple(target.shape) != shape or target.dtype != self.dtype:
                raise ShapeError(f"observation target {tuple(target.shape)} for {kind} {shape}")
            return target
        return self._outputs.next(kind, shape)

    def _tu_observation(self) -> torch.Tensor:
        """TU observation (14): (B, K, 3N + 4), its four parts concatenated once into the
        returned tensor (:meth:`_observation_out`)."""
        prev = self.previous
        load = prev.load[:, None, :].expand(self.B, self.K, self.N)
        chi = self._owner(prev.serving).transpose(1, 2)
        strength = self._state_cache()["strength"]  # (B, K, N), measured locally
        scalars = torch.stack([prev.power, prev.rate, prev.received, prev.beta], dim=-1)
        if self.config.tu_information == "d3qn":
            self.ledger.receive("tu", "association", load)  # |K_n(t-1)| from the serving BS
        elif self.config.tu_information == "dcd":
            others = prev.strength.transpose(1, 2)[:, None].expand(self.B, self.K, self.K, self.N)
            self.ledger.receive("tu", "association", others[:, :, 1:])  # N(K-1) strengths
        parts = [load, chi, strength, scalars]
        out = self._observation_out("tu", (self.B, self.K, self.tu_obs_dim))
        if self.config.tu_observation == "normalized":
            return normalized_tu_observation(torch.cat(parts, dim=-1), self.N, out=out)
        return torch.cat(parts, dim=-1, out=out)

    def _bs_observation(self) -> torch.Tensor:
        """BS observation (8): (B, N, sum of the block sizes), blocks in the order of
        :meth:`bs_obs_blocks`, each written once into the returned tensor
        (:meth:`_observation_out`)."""
        cfg, prev, N = self.config, self.previous, self.N
        chi_now, chi_prev = self._owner(self.serving), self._owner(prev.serving)
        obs = self._observation_out("bs", (self.B, N, self.bs_obs_dim))
        blocks, start = {}, 0
        for name, size in self.bs_obs_blocks().items():
            blocks[name] = obs[..., start : start + size]
            start += size
        observations.write_local_block(
            blocks["o_loc"], prev, chi_now, chi_prev, self._compressed_channels()
        )
        o_loc_pri = blocks["o_loc_pri"].unflatten(-1, (self.L, 5))
        o_loc_pri[..., :4] = self._state_cache()["g_stat"]
        o_loc_pri[..., 4] = prev.rho_split
        observations.write_inner_block(blocks["o_in"], prev, chi_prev, cfg, self._send)
        observations.write_inner_primary_block(
            blocks["o_in_pri"], prev, chi_prev, cfg.b_in_pri, self._send
        )
        out_prev = self._interfered_set(prev.beta_split, prev.strength)  # (B, N, K) bool
        size = cfg.k_out * cfg.b_in
        o_out = observations.outer_block(prev, out_prev, size, self.dtype, self._send)
        blocks["o_out"].copy_(o_out)
        blocks["o_out_pri"].copy_(
            observations.outer_primary_block(prev, N, self.i_max, self.dtype, self._send)
        )
        if cfg.bs_information == "global_csi":
            self._receive_global_csi()
        return obs

    def _receive_global_csi(self) -> None:
        """Count the channels of the other BSs' links, which global-CSI BSs (WMMSE/FP) receive."""
        B, N, K, L = self.B, self.N, self.K, self.L
        others = self.state.H.transpose(1, 2)[:, None].expand(B, N, N, K, self.M)[:, :, 1:]
        self.ledger.receive("bs", "global_csi", others)
        if L:
            g_others = self.state.G.transpose(1, 2)[:, None].expand(B, N, N, L, self.M)
            self.ledger.receive("bs", "global_csi_au", g_others[:, :, 1:])

    @property
    def state_dim(self) -> int:
        """Length of :meth:`global_state`: 2KN + LN + 3K."""
        return 2 * self.K * self.N + self.L * self.N + 3 * self.K

    def global_state(self) -> torch.Tensor:
        """Global state for centralised critics (B, 2KN + LN + 3K): channel strengths
        ||h_{n,k}||^2 and ||g_{n,l}||^2 of the current slot (log10(1 + x), noise units), the
        current association (one-hot) and the previous slot's powers, rates and interference
        plus noise (log10(1 + x))."""
        state, prev = self.state, self.previous
        strength = torch.log10(1 + metrics.channel_strength(state.H)).flatten(1)
        au = torch.log10(1 + metrics.channel_strength(state.G)).flatten(1)
        chi = torch.nn.functional.one_hot(self.serving, self.N).to(self.dtype).flatten(1)
        recent = torch.cat([prev.power, prev.rate, torch.log10(1 + prev.beta)], -1)
        return torch.cat([strength, au, chi, recent.to(self.dtype)], -1)

    def _send(self, category: str, delivered: torch.Tensor) -> None:
        """Count an observation-exchange message, when the BSs use the exchange (CUP/PPO)."""
        if self.config.bs_information == "exchange":
            self.ledger.receive("bs", category, delivered)

    def _compressed_channels(self) -> torch.Tensor:
        """h^c_{n,k} of the current slot for the serving links, zero elsewhere:
        (B, N, K, 3 N_c). Only a BS's own users' compressed channels enter (8), so K links are
        compressed instead of N K; computed once per slot and association."""
        cached = getattr(self, "_compressed_for", None)
        if cached is None or cached[0] is not self.state or cached[1] is not self.serving:
            B, K, N, M = self.B, self.K, self.N, self.M
            rows = self._link_rows + self.serving.view(B * K)  # row (b, k, serving_k) of H
            h_serving = self.state.H.reshape(B * K * N, M).index_select(0, rows).view(B, K, M)
            features = observations.compressed_serving_channels(
                h_serving, self._codebook_conj, self._tie_offset, self.config.n_compress
            )  # (B, K, 3 N_c)
            owner = self._owner(self.serving)
            self._compressed = features[:, None] * owner[..., None]
            self._compressed_for = (self.state, self.serving)
        return self._compressed


def _powers(A: torch.Tensor) -> torch.Tensor:
    """|A|^2 of a complex tensor, as a real tensor of its shape (Re^2 + Im^2: the same value
    as summing the squares of ``view_as_real``, whose size-2 reduction is 3x slower)."""
    return A.real.square() + A.imag.square()


def _within(values: torch.Tensor, low: float, high: float) -> bool:
    """Whether every entry of ``values`` lies in [low, high] (False for NaN), from one
    ``aminmax`` (the checks' path for valid input; the caller then finds what is wrong)."""
    smallest, largest = torch.aminmax(values)
    return low <= smallest.item() and largest.item() <= high
