"""Reference implementation of the CATN slot: the env's code before the per-slot optimisation
(issue "Performance": fewer, fused ops per slot), kept verbatim so that tests can check the
optimised :class:`skyshare.envs.CatnEnv` and :class:`skyshare.scenarios.CatnScenario` against
it on random instances. Straightforward, one library call per formula; not used by the package.
"""

from __future__ import annotations

import math

import torch

from skyshare import metrics
from skyshare.channels.arrays import (
    compress_channel,
    compressed_features,
    los_phase,
    ura_steering,
)
from skyshare.channels.pathloss import fspl_db, uma_pathloss_db
from skyshare.envs.catn import CatnEnv, SlotOutcome, _SlotRecord
from skyshare.envs.catn_observations import (
    Send,
    normalized_tu_observation,
    outer_block,
    outer_primary_block,
)
from skyshare.geometry import distances_2d, distances_3d, zenith_azimuth
from skyshare.scenarios.catn import CatnScenario, CatnState
from skyshare.units import db_to_linear


class ReferenceCatnEnv(CatnEnv):
    """:class:`CatnEnv` with the pre-optimisation beamformers, transmission, rewards, costs and
    observations (the scenario is patched to the pre-optimisation channel state too)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        scenario = self.scenario
        scenario._state = lambda: reference_state(scenario)

    def _beamformers(self, actions: torch.Tensor) -> torch.Tensor:
        """w_k = sqrt(p_k) D~^{-1} h / ||D~^{-1} h||: (B, K, M) complex."""
        parameters = self.action_parameters(actions)
        return _beamformers(
            parameters, self.state.H, self.state.G, self.serving, self.p_max, cdtype=self.cdtype
        )

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
        """BS observation (8): (B, N, sum of the block sizes), blocks in the order of
        :meth:`bs_obs_blocks`."""
        cfg, prev, N = self.config, self.previous, self.N
        chi_now = torch.nn.functional.one_hot(self.serving, N).transpose(1, 2).to(self.dtype)
        chi_prev = torch.nn.functional.one_hot(prev.serving, N).transpose(1, 2).to(self.dtype)
        o_loc = local_block(prev, chi_now, chi_prev, self._compressed_channels())
        o_loc_pri = torch.cat([self._g_stat_now(), prev.rho_split[..., None]], -1).flatten(2)
        o_in = inner_block(prev, chi_prev, cfg.k_in, cfg.b_in, self._send)
        o_in_pri = inner_primary_block(prev, chi_prev, cfg.b_in_pri, self._send)
        out_prev = self._interfered_set(prev.beta_split, prev.strength)  # (B, N, K) bool
        size = cfg.k_out * cfg.b_in
        o_out = outer_block(prev, out_prev, size, self.dtype, self._send)
        o_out_pri = outer_primary_block(prev, N, self.i_max, self.dtype, self._send)
        if cfg.bs_information == "global_csi":
            self._receive_global_csi()
        return torch.cat([o_loc, o_loc_pri, o_in, o_in_pri, o_out, o_out_pri], -1)

    def _compressed_channels(self) -> torch.Tensor:
        """h^c_{n,k} of the current slot for the serving links, zero elsewhere:
        (B, N, K, 3 N_c). Only a BS's own users' compressed channels enter (8), so K links are
        compressed instead of N K; computed once per slot and association."""
        key = (self.state, self.serving)
        cached = getattr(self, "_reference_key", None)
        if cached is None or cached[0] is not key[0] or cached[1] is not key[1]:
            B, K, M = self.B, self.K, self.M
            index = self.serving[:, :, None, None].expand(B, K, 1, M)
            h_serving = torch.gather(self.state.H, 2, index).squeeze(2)  # (B, K, M)
            indices, coefficients = compress_channel(
                h_serving, self.codebook, self.config.n_compress
            )
            features = compressed_features(indices, coefficients)  # (B, K, 3 N_c)
            owner = torch.nn.functional.one_hot(self.serving, self.N).transpose(1, 2)
            self._reference_compressed = features[:, None] * owner[..., None].to(features.dtype)
            self._reference_key = key
        return self._reference_compressed

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


def local_block(
    prev: _SlotRecord, chi_now: torch.Tensor, chi_prev: torch.Tensor, compressed: torch.Tensor
) -> torch.Tensor:
    """``o_loc``: the association chi_n(t), the compressed channels h^c of the own users and
    p_n, R_n, p^r_n and beta_n = [beta_{n,1} .. beta_{n,K}] of t-1, masked by chi_n(t-1).

    Args:
        prev: the record of slot t-1.
        chi_now, chi_prev: (B, N, K) one-hot association of slots t and t-1.
        compressed: (B, N, K, 3 N_c) compressed channels of slot t (serving links).

    Returns:
        (B, N, K + 3 N_c K + 4 K).
    """
    B, N, K = chi_now.shape
    hc_now = compressed * chi_now[..., None]  # (B, N, K, 3 N_c)
    local_prev = torch.stack([prev.power, prev.rate, prev.received], 1)[:, None]
    local_prev = torch.cat([local_prev.expand(B, N, 3, K), prev.beta_split[:, :, None]], 2)
    local_prev = local_prev * chi_prev[:, :, None]  # (B, N, 4, K)
    return torch.cat([chi_now, hc_now.flatten(2), local_prev.flatten(2)], dim=-1)


def inner_block(
    prev: _SlotRecord, chi_prev: torch.Tensor, k_in: int, b_in: int, send: Send
) -> torch.Tensor:
    """``o_in``: for the K_in most interfered own TUs of t-1, the B_in strongest interferers'
    index, compressed channels, powers and interference beta_{j,k} (one message each).

    Returns:
        (B, N, ((1 + 3 N_c K + K + 1) B_in + 1) K_in).
    """
    B, N, K = chi_prev.shape
    own_score = torch.where(chi_prev > 0, prev.beta[:, None, :], torch.full_like(chi_prev, -1.0))
    top_k = own_score.topk(k_in, dim=-1)  # (B, N, K_in)
    valid_k = top_k.values > 0
    k_idx = top_k.indices
    interferers = prev.beta_split.topk(b_in, dim=1).indices  # (B, B_in, K): per TU
    j_idx = torch.gather(
        interferers.transpose(1, 2)[:, None].expand(B, N, K, b_in),
        2,
        k_idx[..., None].expand(B, N, k_in, b_in),
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
        k_idx[..., None].expand(-1, -1, -1, b_in).flatten(1),
    ]
    message = torch.cat(
        [(flat_j + 1).to(chi_prev.dtype)[..., None], msg_h, msg_p, beta_jk[..., None]], -1
    ).view(B, N, k_in, b_in, -1)
    message = message * valid_k[..., None, None]
    send("o_in", message)
    k_column = ((k_idx + 1).to(chi_prev.dtype) * valid_k)[..., None]
    return torch.cat([k_column, message.flatten(3)], -1).flatten(2)


def inner_primary_block(
    prev: _SlotRecord, chi_prev: torch.Tensor, b_in_pri: int, send: Send
) -> torch.Tensor:
    """``o_in_pri``: per AU, the B~_in BSs whose inferred interference is largest, with their
    index, statistical AU channel, powers and inferred share rho_{j,l} (identical for every BS).

    Returns:
        (B, N, (1 + 4 + K + 1) B~_in L); (B, N, 0) without AUs.
    """
    B, N, K = chi_prev.shape
    L = prev.rho.shape[-1]
    if not L:
        return torch.zeros(B, N, 0, dtype=chi_prev.dtype, device=chi_prev.device)
    p_prev = prev.power[:, None, :] * chi_prev  # (B, N, K)
    j_pri = prev.rho_split.topk(b_in_pri, dim=1).indices.transpose(1, 2)  # B,L,Bp
    flat = j_pri.flatten(1)  # (B, L*Bp)
    l_idx = torch.arange(L, device=chi_prev.device).repeat_interleave(b_in_pri)
    g_sel = prev.g_stat[torch.arange(B)[:, None], flat, l_idx[None]]  # (B, L*Bp, 4)
    p_sel = torch.gather(p_prev, 1, flat[..., None].expand(-1, -1, K))
    r_sel = prev.rho_split[torch.arange(B)[:, None], flat, l_idx[None]]
    pri = torch.cat(
        [(flat + 1).to(chi_prev.dtype)[..., None], g_sel, p_sel, r_sel[..., None]], -1
    )  # (B, L*Bp, K+6), identical for every BS
    pri = pri[:, None].expand(B, N, *pri.shape[1:])
    send("o_in_pri", pri)
    return pri.flatten(2)


def _beamformers(
    parameters: dict[str, torch.Tensor],
    H: torch.Tensor,
    G: torch.Tensor,
    serving: torch.Tensor,
    p_max: float,
    *,
    cdtype: torch.dtype,
) -> torch.Tensor:
    """w_k = sqrt(p_k) D~^{-1} h / ||D~^{-1} h||: (B, K, M) complex.

    Args:
        parameters: :func:`action_parameters` of the BS actions.
        H: (B, K, N, M) complex TU channels; G: (B, L, N, M) complex AU channels.
        serving: (B, K) long, serving BS of every TU.
        p_max: P_max of a BS in W.
        cdtype: complex dtype of the beamformers.
    """
    par = parameters
    B, K = serving.shape
    M, L = H.shape[-1], G.shape[1]
    H = H.transpose(1, 2)  # (B, N, K, M)
    G = G.transpose(1, 2)  # (B, N, L, M)
    h_dir = H / torch.linalg.vector_norm(H, dim=-1, keepdim=True).clamp_min(1e-30)
    g_dir = G / torch.linalg.vector_norm(G, dim=-1, keepdim=True).clamp_min(1e-30)
    alpha = par["alpha"].to(cdtype)
    mu = par["mu"].to(cdtype)
    D = torch.einsum("bnk,bnki,bnkj->bnij", alpha, h_dir, h_dir.conj())
    if L:
        D = D + torch.einsum("bnl,bnli,bnlj->bnij", mu, g_dir, g_dir.conj())
    eye = torch.eye(M, dtype=cdtype, device=H.device)
    D = D + par["eta"].to(cdtype)[..., None, None] * eye
    X = _solve(D, H.transpose(-1, -2))  # (B, N, M, K): D~_n^{-1} h_{n,k}
    X = X.transpose(-1, -2)  # (B, N, K, M)
    index = serving[:, None, :, None].expand(B, 1, K, M)
    w_dir = torch.gather(X, 1, index).squeeze(1)  # (B, K, M) from the serving BS
    w_dir = w_dir / torch.linalg.vector_norm(w_dir, dim=-1, keepdim=True).clamp_min(1e-30)
    q_total = torch.gather(par["q_total"], 1, serving)  # (B, K)
    q = torch.gather(par["q"], 1, serving[:, None, :]).squeeze(1)  # (B, K)
    power = p_max * q_total * q
    return w_dir * power.sqrt().to(cdtype)[..., None]


def _solve(D: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``D^{-1} rhs`` for Hermitian positive definite ``D (..., M, M)``. With eta_min far
    below alpha_max or mu_max, D~ is singular to working precision in complex64; those
    matrices (only) are solved again in complex128, where eta I keeps them invertible."""
    X, info = torch.linalg.solve_ex(D, rhs)
    failed = info != 0
    if bool(failed.any()):
        wide = torch.linalg.solve(D[failed].to(torch.complex128), rhs[failed].to(torch.complex128))
        X = X.clone()
        X[failed] = wide.to(X.dtype)
    return X


def reference_state(self: CatnScenario) -> CatnState:
    """The pre-optimisation CatnScenario._state: every field through the library functions."""
    cfg = self.config
    sigma = math.sqrt(self.noise_w)
    tu = self._tu_positions(self.t)
    au = self._au_positions(self.t)
    bs = self.bs_positions

    d2d = distances_2d(tu, bs)
    d3d = distances_3d(tu, bs)
    pl_tu = uma_pathloss_db(d2d, d3d, cfg.bs_height_m, cfg.tu_height_m, self.fc_hz, self.los)
    pl_tu = pl_tu + self.shadowing_db
    H = self.tu_fading.h * (10.0 ** (-pl_tu / 20.0) / sigma)[..., None]

    # float64 geometry: at 10 km a float32 distance is off by ~1 mm, i.e. degrees of the
    # LoS phase 2 pi d / lambda; the cost is negligible (B x L x N links).
    d_au = distances_3d(au.double(), bs.double())  # (B, L, N)
    zenith, azimuth = zenith_azimuth(au.double(), bs.double())
    steering = ura_steering(
        zenith,
        azimuth,
        cfg.ura_rows,
        cfg.ura_cols,
        cfg.antenna_spacing_wavelengths,
        dtype=self.cdtype,
    )
    if not cfg.au_steering_normalized:
        steering = steering * math.sqrt(cfg.n_antennas)
    G_los = los_phase(d_au, self.fc_hz, dtype=self.cdtype)[..., None] * steering
    kappa = db_to_linear(cfg.rician_k_db)
    pl_au = fspl_db(d_au, self.fc_hz).to(self.dtype)
    small = math.sqrt(kappa / (kappa + 1)) * G_los + math.sqrt(1 / (kappa + 1)) * (self.au_fading.h)
    G = small * (10.0 ** (-pl_au / 20.0) / sigma)[..., None]
    return CatnState(
        t=self.t,
        H=H,
        G=G,
        G_los=G_los,
        pathloss_tu_db=pl_tu,
        pathloss_au_db=pl_au,
        los=self.los,
        tu_positions=tu,
        au_positions=au,
        bs_positions=bs,
        au_distance_m=d_au.to(self.dtype),
        au_zenith_rad=zenith.to(self.dtype),
        au_azimuth_rad=azimuth.to(self.dtype),
    )
