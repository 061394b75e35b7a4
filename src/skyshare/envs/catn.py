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
measures the real scalars received per agent and slot (Table I).

Action mapping (a documented, configurable choice; the seed only says the policy outputs are
sigmoid-normalised to [0, 1] "before scaling to the actual action values"), for BS n and policy
output ``x`` in [0, 1]:

* ``q_total = max(x_0, q_total_min)`` in (0, 1];
* ``q_{n,k} = x_{1+k}`` over the BS's own users, normalised to sum to 1 (uniform if all zero);
* ``alpha_{n,k} = (1 + alpha_max)^{x} - 1`` in [0, alpha_max], likewise ``mu_{n,l}`` in
  [0, mu_max] (exponential scaling, 0 at x = 0);
* ``eta_n = eta_min (eta_max / eta_min)^{x}`` (log-uniform);
* ``D~_n = sum_i alpha_{n,i} h^_{n,i} h^_{n,i}^H + sum_l mu_{n,l} g^_{n,l} g^_{n,l}^H + eta_n I``
  with unit-norm directions ``h^ = h / ||h||`` (the weights absorb the channel strengths, a
  reparametrisation of the seed's D~_n that makes the action scale-free), then
  ``w~_k = D~^{-1} h / ||D~^{-1} h||`` and ``p_k = P_max q_total q_{n,k}``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from pydantic import Field

from skyshare import metrics
from skyshare.channels.arrays import compress_channel, compressed_features, dft_codebook
from skyshare.config import StrictModel
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.catn import CatnConfig, CatnScenario, CatnState
from skyshare.signaling import SignalingLedger

__all__ = ["CatnEnv", "CatnEnvConfig", "SlotOutcome", "normalized_tu_observation"]


def normalized_tu_observation(obs: torch.Tensor, n_bs: int) -> torch.Tensor:
    """Fixed input normalisation of the CATN TU observation (14), length 3N + 4 (a choice:
    the seed does not say how the TU networks see their inputs; every field is brought to
    O(1) so that one learning rate fits all of them). ``CatnEnvConfig(tu_observation=
    "normalized")`` applies it to every TU observation the env returns.

    ==============  =============================  ==========================================
    indices          field                          transform
    ==============  =============================  ==========================================
    [0, N)           |K_n(t-1)| (BS loads)          ``N |K_n| / sum_n |K_n|`` (1 = average load)
    [N, 2N)          chi_k(t-1) (one-hot)           unchanged
    [2N, 3N)         ||h_{n,k}(t)||^2 / sigma^2     ``log10(1 + x)``
    3N               p_k(t-1) in W                  ``log10(1 + x / 1 mW)``
    3N + 1           R_k(t-1) in bit/s/Hz           unchanged
    3N + 2           p^r_k(t-1) / sigma^2           ``log10(1 + x)``
    3N + 3           beta_k(t-1) / sigma^2          ``log10(1 + x)``
    ==============  =============================  ==========================================

    Args:
        obs: (..., 3N + 4) raw observations (14).
        n_bs: N.

    Returns:
        (..., 3N + 4) normalised observations (a new tensor).
    """
    N = int(n_bs)
    if obs.shape[-1] != 3 * N + 4:
        raise ShapeError(
            f"CATN TU observations have 3N + 4 = {3 * N + 4} entries, got {obs.shape[-1]}"
        )
    load = obs[..., :N]
    relative_load = N * load / load.sum(dim=-1, keepdim=True).clamp_min(1.0)
    one_hot = obs[..., N : 2 * N]
    strength = torch.log10(1.0 + obs[..., 2 * N : 3 * N].clamp_min(0.0))
    power = torch.log10(1.0 + obs[..., 3 * N : 3 * N + 1].clamp_min(0.0) / 1e-3)
    rate = obs[..., 3 * N + 1 : 3 * N + 2]
    received_and_beta = torch.log10(1.0 + obs[..., 3 * N + 2 :].clamp_min(0.0))
    return torch.cat([relative_load, one_hot, strength, power, rate, received_and_beta], dim=-1)


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


class CatnEnv:
    """Batched core of the CATN game.

    Args:
        scenario_config: :class:`CatnConfig` (the ``paper`` preset when omitted).
        config: :class:`CatnEnvConfig`.
        batch_size: B parallel environments.
        device, dtype: where and in which precision tensors live.
    """

    def __init__(
        self,
        scenario_config: CatnConfig | None = None,
        config: CatnEnvConfig | None = None,
        *,
        batch_size: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config or CatnEnvConfig()
        self.scenario = CatnScenario(
            scenario_config, batch_size=batch_size, device=device, dtype=dtype
        )
        sc = self.scenario.config
        cfg = self.config
        if cfg.b_in > sc.n_bs or cfg.b_in_pri > sc.n_bs:
            raise ConfigError(f"b_in and b_in_pri must be <= n_bs = {sc.n_bs}")
        if cfg.k_out * cfg.b_in > sc.n_tu:
            raise ConfigError(f"k_out * b_in must be <= n_tu = {sc.n_tu}")
        if cfg.n_compress > cfg.n_codewords:
            raise ConfigError("n_compress (N_c) must be <= n_codewords (C)")
        if cfg.eta_min >= cfg.eta_max:
            raise ConfigError("eta_min must be < eta_max")
        self.B, self.K, self.N = batch_size, sc.n_tu, sc.n_bs
        self.L, self.M = sc.n_au, sc.n_antennas
        self.device, self.dtype = self.scenario.device, dtype
        self.cdtype = self.scenario.cdtype
        self.codebook = dft_codebook(self.M, cfg.n_codewords, device=self.device, dtype=self.cdtype)
        self.p_max = sc.p_max_w
        self.i_max = self.scenario.i_max_normalized
        self.ledger = SignalingLedger({"bs": self.N, "tu": self.K}, batch_size)
        self.generator = self.scenario.generator
        self._phase = "reset"

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
        cfg, K, L, Nc = self.config, self.K, self.L, self.config.n_compress
        return {
            "o_loc": K + 3 * Nc * K + 4 * K,
            "o_loc_pri": 5 * L,
            "o_in": ((1 + 3 * Nc * K + K + 1) * cfg.b_in + 1) * cfg.k_in,
            "o_in_pri": (1 + 4 + K + 1) * cfg.b_in_pri * L,
            "o_out": 4 * cfg.k_out * cfg.b_in,
            "o_out_pri": 4 * L,
        }

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
        self.scenario.load_state_dict(state["scenario"])
        self.state = self.scenario.state
        self._phase, self._episodes = str(state["phase"]), int(state["episodes"])
        self.serving = state["serving"].to(self.device)
        previous = state["previous"]
        self.previous = (
            None
            if previous is None
            else _SlotRecord(**{key: value.to(self.device) for key, value in previous.items()})
        )
        if "handover" in state:
            self.handover = state["handover"].to(self.device)
        self.ledger.load_state_dict(state["ledger"])
        self.__dict__.pop("_compressed_key", None)

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
                raise ValueError(f"tu_actions of tu_{bad[1]} (env {bad[0]}) is not finite")
            fractional = actions != actions.round()
            if bool(fractional.any()):
                b, k = fractional.nonzero()[0].tolist()
                raise ValueError(
                    f"tu_{k} (env {b}) chose BS {float(actions[b, k])}; "
                    "actions must be integer BS indices"
                )
        actions = actions.long().clone()  # the record of this slot must not alias the caller's
        bad = (actions < 0) | (actions >= self.N)
        if bool(bad.any()):
            b, k = bad.nonzero()[0].tolist()
            raise ValueError(
                f"tu_{k} (env {b}) chose BS {int(actions[b, k])}; allowed range: [0, {self.N - 1}]"
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
        finite = torch.isfinite(actions)
        if not bool(finite.all()):
            b, n, i = (~finite).nonzero()[0].tolist()
            raise ValueError(
                f"bs_{n} (env {b}) action[{i}] ({self._action_field(i)}) is "
                f"{float(actions[b, n, i])}; actions must be finite in [0, 1]"
            )
        bad = (actions < 0) | (actions > 1)
        if bool(bad.any()):
            b, n, i = bad.nonzero()[0].tolist()
            raise ValueError(
                f"bs_{n} (env {b}) action[{i}] ({self._action_field(i)}) = "
                f"{float(actions[b, n, i]):.4g}; allowed range: [0, 1]"
            )
        return actions

    def _action_field(self, i: int) -> str:
        K, L = self.K, self.L
        if i == 0:
            return "q_total"
        if i <= K:
            return f"q_{i - 1}"
        if i <= 2 * K:
            return f"alpha_{i - 1 - K}"
        if i == 2 * K + 1:
            return "eta"
        return f"mu_{i - 2 - 2 * K}" if i < 2 * K + 2 + L else "?"

    # ---------------------------------------------------------------------------------------
    # Beamformers from actions (§V-C-3)
    # ---------------------------------------------------------------------------------------

    def action_parameters(self, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map policy outputs (B, N, 2K+L+2) in [0, 1] to q_total, q, alpha, eta, mu."""
        cfg, K, L = self.config, self.K, self.L
        owner = torch.nn.functional.one_hot(self.serving, self.N).transpose(1, 2)  # (B, N, K)
        owner = owner.to(actions.dtype)
        q_total = actions[..., 0].clamp_min(cfg.q_total_min)
        share = actions[..., 1 : K + 1] * owner
        total = share.sum(-1, keepdim=True)
        uniform = owner / owner.sum(-1, keepdim=True).clamp_min(1.0)
        q = torch.where(total > 0, share / total.clamp_min(1e-30), uniform)
        alpha = torch.pow(1.0 + cfg.alpha_max, actions[..., K + 1 : 2 * K + 1]) - 1.0
        eta = cfg.eta_min * (cfg.eta_max / cfg.eta_min) ** actions[..., 2 * K + 1]
        mu = torch.pow(1.0 + cfg.mu_max, actions[..., 2 * K + 2 : 2 * K + 2 + L]) - 1.0
        return {"q_total": q_total, "q": q, "alpha": alpha, "eta": eta, "mu": mu}

    def _beamformers(self, actions: torch.Tensor) -> torch.Tensor:
        """w_k = sqrt(p_k) D~^{-1} h / ||D~^{-1} h||: (B, K, M) complex."""
        par = self.action_parameters(actions)
        H = self.state.H.transpose(1, 2)  # (B, N, K, M)
        G = self.state.G.transpose(1, 2)  # (B, N, L, M)
        h_dir = H / torch.linalg.vector_norm(H, dim=-1, keepdim=True).clamp_min(1e-30)
        g_dir = G / torch.linalg.vector_norm(G, dim=-1, keepdim=True).clamp_min(1e-30)
        alpha = par["alpha"].to(self.cdtype)
        mu = par["mu"].to(self.cdtype)
        D = torch.einsum("bnk,bnki,bnkj->bnij", alpha, h_dir, h_dir.conj())
        if self.L:
            D = D + torch.einsum("bnl,bnli,bnlj->bnij", mu, g_dir, g_dir.conj())
        eye = torch.eye(self.M, dtype=self.cdtype, device=self.device)
        D = D + par["eta"].to(self.cdtype)[..., None, None] * eye
        X = torch.linalg.solve(D, H.transpose(-1, -2))  # (B, N, M, K): D~_n^{-1} h_{n,k}
        X = X.transpose(-1, -2)  # (B, N, K, M)
        index = self.serving[:, None, :, None].expand(self.B, 1, self.K, self.M)
        w_dir = torch.gather(X, 1, index).squeeze(1)  # (B, K, M) from the serving BS
        w_dir = w_dir / torch.linalg.vector_norm(w_dir, dim=-1, keepdim=True).clamp_min(1e-30)
        q_total = torch.gather(par["q_total"], 1, self.serving)  # (B, K)
        q = torch.gather(par["q"], 1, self.serving[:, None, :]).squeeze(1)  # (B, K)
        power = self.p_max * q_total * q
        return w_dir * power.sqrt().to(self.cdtype)[..., None]

    # ---------------------------------------------------------------------------------------
    # Transmission, rewards (10), (15)-(16), costs (11)
    # ---------------------------------------------------------------------------------------

    def _transmit(self, w: torch.Tensor, handover: torch.Tensor) -> SlotOutcome:
        state, serving, N = self.state, self.serving, self.N
        A = metrics.associated_gains(state.H, w, serving)  # (B, K, K): h_{rho_j,k}^H w_j
        power_jk = A.real.square() + A.imag.square()
        result = metrics.sinr(A, 1.0)
        received = result.signal  # p^r_k
        beta_split = metrics.split_by_transmitter(power_jk, serving, N, exclude_own=True)
        beta = result.interference + 1.0  # beta_k: interference plus noise
        rate = result.rate
        power = w.real.square().sum(-1) + w.imag.square().sum(-1)

        # BS reward (10): own users' rates minus the rate loss BS n causes to U_n^out(t).
        out_set = self._interfered_set(
            beta_split, metrics.channel_strength(state.H).transpose(1, 2)
        )
        rate_without_n = torch.log2(
            1.0 + received[:, None, :] / (beta[:, None, :] - beta_split).clamp_min(1.0)
        )  # (B, N, K) R_{i\n}
        loss = (rate_without_n - rate[:, None, :]) * out_set
        owner = torch.nn.functional.one_hot(serving, N).transpose(1, 2).to(rate.dtype)
        bs_reward = (owner * rate[:, None, :]).sum(-1) - self.config.reward_loss_weight * loss.sum(
            -1
        )

        # TU reward (15)-(16): handover discount and the loss TU k's stream causes in
        # U^out of its BS (i != k).
        effective = torch.where(handover, self.config.handover_factor * rate, rate)
        rate_without_k = torch.log2(
            1.0
            + received[:, None, :] / (beta[:, None, :] - power_jk.transpose(1, 2)).clamp_min(1.0)
        )  # (B, K, K): [b, k, i] = R~_{i\k}, stream k removed at receiver i
        my_out = torch.gather(out_set, 1, serving[:, :, None].expand(-1, -1, self.K))  # (B, K, K)
        my_out = my_out & ~torch.eye(self.K, dtype=torch.bool, device=self.device)
        tu_reward = effective - ((rate_without_k - rate[:, None, :]) * my_out).sum(-1)

        # AU interference: actual rho_l, and each BS's inferred share from statistical CSI.
        rho = metrics.primary_interference(state.G, w, serving)  # (B, L)
        los_amplitude = 10.0 ** (-state.pathloss_au_db / 20.0) / math.sqrt(self.scenario.noise_w)
        G_stat = state.G_los * los_amplitude[..., None].to(self.cdtype)  # (B, L, N, M)
        A_stat = metrics.associated_gains(G_stat, w, serving)  # (B, L, K)
        rho_split = metrics.split_by_transmitter(
            A_stat.real.square() + A_stat.imag.square(), serving, N
        )  # (B, N, L)
        A_au = metrics.associated_gains(state.G, w, serving)  # (B, L, K)
        rho_measured = metrics.split_by_transmitter(
            A_au.real.square() + A_au.imag.square(), serving, N
        )  # (B, N, L)
        cost = (rho / self.i_max - 1.0)[:, None, :].expand(self.B, N, self.L)
        self.previous = _SlotRecord(
            serving=serving,
            load=owner.sum(-1),
            power=power,
            rate=rate,
            received=received,
            beta_split=beta_split,
            beta=beta,
            compressed=self._compressed_channels(),  # (B, N, K, 3 N_c)
            strength=metrics.channel_strength(state.H).transpose(1, 2),
            rho=rho,
            rho_split=rho_split,
            rho_split_measured=rho_measured,
            g_stat=self._g_stat_now(),
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
    # Observations
    # ---------------------------------------------------------------------------------------

    def _tu_observation(self) -> torch.Tensor:
        """TU observation (14): (B, K, 3N + 4)."""
        prev = self.previous
        load = prev.load.to(self.dtype)[:, None, :].expand(self.B, self.K, self.N)
        chi = torch.nn.functional.one_hot(prev.serving, self.N).to(self.dtype)
        strength = metrics.channel_strength(self.state.H)  # (B, K, N), measured locally
        scalars = torch.stack([prev.power, prev.rate, prev.received, prev.beta], dim=-1)
        if self.config.tu_information == "d3qn":
            self.ledger.receive("tu", "association", load)  # |K_n(t-1)| from the serving BS
        elif self.config.tu_information == "dcd":
            others = prev.strength.transpose(1, 2)[:, None].expand(self.B, self.K, self.K, self.N)
            self.ledger.receive("tu", "association", others[:, :, 1:])  # N(K-1) strengths
        obs = torch.cat([load, chi, strength, scalars.to(self.dtype)], dim=-1)
        if self.config.tu_observation == "normalized":
            return normalized_tu_observation(obs, self.N)
        return obs

    def _bs_observation(self) -> torch.Tensor:
        """BS observation (8): (B, N, sum of the block sizes)."""
        cfg, prev, B, N, K, L = self.config, self.previous, self.B, self.N, self.K, self.L
        chi_now = torch.nn.functional.one_hot(self.serving, N).transpose(1, 2).to(self.dtype)
        chi_prev = torch.nn.functional.one_hot(prev.serving, N).transpose(1, 2).to(self.dtype)
        hc_now = self._compressed_channels() * chi_now[..., None]  # (B, N, K, 3 N_c)
        # p_n, R_n, p^r_n of t-1 and beta_n = [beta_{n,1} .. beta_{n,K}], masked by chi_n(t-1)
        local_prev = torch.stack([prev.power, prev.rate, prev.received], 1)[:, None]
        local_prev = torch.cat([local_prev.expand(B, N, 3, K), prev.beta_split[:, :, None]], 2)
        local_prev = local_prev * chi_prev[:, :, None]  # (B, N, 4, K)
        o_loc = torch.cat([chi_now, hc_now.flatten(2), local_prev.flatten(2)], dim=-1)

        o_loc_pri = torch.cat([self._g_stat_now(), prev.rho_split[..., None]], -1).flatten(2)

        # o_in: for the K_in most interfered own TUs of t-1, the B_in strongest interferers.
        own_score = torch.where(
            chi_prev > 0, prev.beta[:, None, :], torch.full_like(chi_prev, -1.0)
        )
        top_k = own_score.topk(cfg.k_in, dim=-1)  # (B, N, K_in)
        valid_k = top_k.values > 0
        k_idx = top_k.indices
        interferers = prev.beta_split.topk(cfg.b_in, dim=1).indices  # (B, B_in, K): per TU
        j_idx = torch.gather(
            interferers.transpose(1, 2)[:, None].expand(B, N, K, cfg.b_in),
            2,
            k_idx[..., None].expand(B, N, cfg.k_in, cfg.b_in),
        )  # (B,N,Kin,Bin)
        hc_prev = prev.compressed * chi_prev[..., None]  # (B, N, K, 3Nc): own users only
        p_prev = prev.power[:, None, :] * chi_prev  # (B, N, K)
        flat_j = j_idx.flatten(1)  # (B, N*Kin*Bin)
        msg_h = torch.gather(
            hc_prev.flatten(2),
            1,
            flat_j[..., None].expand(-1, -1, hc_prev.shape[2] * hc_prev.shape[3]),
        )
        msg_p = torch.gather(p_prev, 1, flat_j[..., None].expand(-1, -1, K))
        beta_jk = prev.beta_split[
            torch.arange(B)[:, None],
            flat_j,
            k_idx[..., None].expand(-1, -1, -1, cfg.b_in).flatten(1),
        ]
        message = torch.cat(
            [(flat_j + 1).to(self.dtype)[..., None], msg_h, msg_p, beta_jk[..., None]], -1
        ).view(B, N, cfg.k_in, cfg.b_in, -1)
        message = message * valid_k[..., None, None]
        self._send("o_in", message)
        k_column = ((k_idx + 1).to(self.dtype) * valid_k)[..., None]
        o_in = torch.cat([k_column, message.flatten(3)], -1).flatten(2)

        # o_in_pri: per AU, the B~_in BSs whose inferred interference is largest.
        if L:
            j_pri = prev.rho_split.topk(cfg.b_in_pri, dim=1).indices.transpose(1, 2)  # B,L,Bp
            flat = j_pri.flatten(1)  # (B, L*Bp)
            l_idx = torch.arange(L, device=self.device).repeat_interleave(cfg.b_in_pri)
            g_sel = prev.g_stat[torch.arange(B)[:, None], flat, l_idx[None]]  # (B, L*Bp, 4)
            p_sel = torch.gather(p_prev, 1, flat[..., None].expand(-1, -1, K))
            r_sel = prev.rho_split[torch.arange(B)[:, None], flat, l_idx[None]]
            pri = torch.cat(
                [(flat + 1).to(self.dtype)[..., None], g_sel, p_sel, r_sel[..., None]], -1
            )  # (B, L*Bp, K+6), identical for every BS
            pri = pri[:, None].expand(B, N, *pri.shape[1:])
            self._send("o_in_pri", pri)
            o_in_pri = pri.flatten(2)
        else:
            o_in_pri = torch.zeros(B, N, 0, dtype=self.dtype, device=self.device)

        # o_out: the K_out B_in TUs BS n interfered most in t-1.
        out_prev = self._interfered_set(prev.beta_split, prev.strength)  # (B, N, K) bool
        size = cfg.k_out * cfg.b_in
        users = torch.arange(K, device=self.device)
        i_idx = torch.where(out_prev, users, K).sort(-1).values[..., :size]  # (B, N, size)
        gathered = lambda x: torch.gather(x[:, None].expand(B, N, K), 2, i_idx)  # noqa: E731
        beta_ni = torch.gather(prev.beta_split, 2, i_idx)
        received_out = torch.stack([gathered(prev.rate), beta_ni, gathered(prev.beta)], -1)
        self._send("o_out", received_out)
        o_out = torch.stack(
            [
                (i_idx + 1).to(self.dtype),
                gathered(prev.rate),
                beta_ni,
                beta_ni / gathered(prev.beta),
            ],
            -1,
        ).flatten(2)

        # o_out_pri: from the BSs serving the AUs (e.g. ATG BSs), rho_l(t-1) and the share
        # rho_{n,l}(t-1) they measured from BS n.
        if L:
            rho = prev.rho[:, None].expand(B, N, L)
            received_pri = torch.stack([rho, prev.rho_split_measured], -1)
            self._send("o_out_pri", received_pri)
            l_column = torch.arange(1, L + 1, device=self.device, dtype=self.dtype).expand(B, N, L)
            o_out_pri = torch.stack(
                [
                    l_column,
                    rho / self.i_max,
                    prev.rho_split_measured,
                    prev.rho_split_measured / rho.clamp_min(1e-30),
                ],
                -1,
            )
            o_out_pri = o_out_pri.flatten(2)
        else:
            o_out_pri = torch.zeros(B, N, 0, dtype=self.dtype, device=self.device)

        if cfg.bs_information == "global_csi":
            others = self.state.H.transpose(1, 2)[:, None].expand(B, N, N, K, self.M)[:, :, 1:]
            self.ledger.receive("bs", "global_csi", others)
            if L:
                g_others = self.state.G.transpose(1, 2)[:, None].expand(B, N, N, L, self.M)
                self.ledger.receive("bs", "global_csi_au", g_others[:, :, 1:])
        return torch.cat([o_loc, o_loc_pri, o_in, o_in_pri, o_out, o_out_pri], -1)

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
        key = (id(self.state), self.scenario.t, self.serving.data_ptr())
        if getattr(self, "_compressed_key", None) != key:
            B, K, M = self.B, self.K, self.M
            index = self.serving[:, :, None, None].expand(B, K, 1, M)
            h_serving = torch.gather(self.state.H, 2, index).squeeze(2)  # (B, K, M)
            indices, coefficients = compress_channel(
                h_serving, self.codebook, self.config.n_compress
            )
            features = compressed_features(indices, coefficients)  # (B, K, 3 N_c)
            owner = torch.nn.functional.one_hot(self.serving, self.N).transpose(1, 2)
            self._compressed = features[:, None] * owner[..., None].to(features.dtype)
            self._compressed_key = key
        return self._compressed

    def _g_stat_now(self) -> torch.Tensor:
        state = self.state
        return torch.stack(
            [
                state.au_zenith_rad,
                state.au_azimuth_rad,
                10.0 ** (-state.pathloss_au_db / 10.0) / self.scenario.noise_w,
                state.au_distance_m,
            ],
            dim=-1,
        ).transpose(1, 2)  # (B, N, L, 4)
