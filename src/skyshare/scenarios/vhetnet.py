"""Cell-free HAPS + macro-BS vertical heterogeneous network (vHetNet), seed 003 §II and §VI.

One high-altitude platform station (HAPS, transmitter 0) at 20 km above the centre of a square
urban area and ``n_mbs`` macro base stations (MBSs, transmitters 1..n_mbs) jointly serve K
single-antenna UEs on the same time-frequency resource (cell-free coherent joint transmission).
The equations of the seed text were lost in conversion; ``docs/scenarios/vhetnet.md`` restores
them and the equation numbers below are the seed's.

Channels (noise-normalised: divided by sigma, so the noise power is 1):

    MBS b -> UE k, element m (eqs. (1)-(2)):
        h_{b,k,m} = sqrt(1/FSPL(d_{b,k})) 10^(X_{b,k}/20) g_{b,k,m},   g ~ CN(0, 1) i.i.d.,
        X_{b,k} ~ N(0, sigma_sh^2) (one log-normal shadowing value per link),
        FSPL(d) = (4 pi d f_c / c)^2
    HAPS -> UE k (eqs. (3)-(5)):
        h_{0,k} = sqrt(1/FSPL(d_{0,k})) ( sqrt(K_R/(K_R+1)) e^{-j 2 pi d/lambda} a(theta_k, phi_k)
                                          + sqrt(1/(K_R+1)) g_{0,k} ),   g_{0,k} ~ CN(0, I_M)

``FSPL`` is :func:`skyshare.channels.pathloss.fspl_db` (TR 38.811 eq. (6.6-2), 32.45 + 20
log10 f_GHz + 20 log10 d), which equals 20 log10(4 pi d f_c / c) to within 0.003 dB (the
constant 20 log10(4 pi 1e9 / c) = 32.4478 dB is rounded to 32.45).

The HAPS array faces the ground. It is a horizontal UPA in the x-y plane with ``haps_n_h``
columns along x (east) and ``haps_n_v`` rows along y (north), element ``(m, n)`` at
``r = lambda (d_h n, d_v m, 0)``, so the phase of element ``(m, n)`` towards the unit direction
``u`` from the HAPS to the UE is ``2 pi (d_h n u_x + d_v m u_y)``. The library's
:func:`~skyshare.channels.arrays.upa_steering` describes an array in the x-z plane (broadside
+y, phase ``2 pi (d_h n u'_x + d_v m u'_z)``), so the direction is rotated into the array frame
``x' = x, y' = -z, z' = y`` (right-handed, broadside pointing at the nadir):
``u' = (u_x, -u_z, u_y)``, ``theta' = arccos(u_y)``, ``phi' = atan2(-u_z, u_x)``. The seed's eq.
(5) form ``d_h n sin(theta) cos(phi) + d_v m cos(theta)`` is then evaluated at (theta', phi').

Realizations are independent (block fading, no time correlation in seed 003): :meth:`reset`
draws UE positions, shadowing and fading; :meth:`step` draws a new independent realization
(a new UE drop with new shadowing when ``redrop_users``, new small-scale fading always).

:class:`VhetnetConfig` and :class:`VhetnetState` live in :mod:`skyshare.scenarios.vhetnet_config`
and are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare import metrics
from skyshare.beamforming import mrt_equal_power
from skyshare.channels.arrays import los_phase, upa_steering
from skyshare.channels.fading import apply_large_scale, rayleigh, rician
from skyshare.channels.pathloss import fspl_db, lognormal_shadowing_db
from skyshare.errors import ConfigError, ShapeError
from skyshare.geometry import (
    direction_vector,
    distances_3d,
    drop_in_square,
    with_height,
    zenith_azimuth,
)
from skyshare.scenarios.base import LinkBudget, Scenario
from skyshare.scenarios.vhetnet_config import VhetnetConfig, VhetnetState
from skyshare.units import (
    db_to_linear,
    dbm_to_watt,
    linear_to_db,
    noise_power_w,
    watt_to_dbm,
)

__all__ = [
    "CellFreeRates",
    "VhetnetConfig",
    "VhetnetScenario",
    "VhetnetState",
    "cell_free_rates",
    "haps_array_angles",
    "mbs_grid_xy",
    "mrt_joint_transmission",
    "pad_beamformers",
    "transmit_power_w",
]


# --------------------------------------------------------------------------------------------
# Helpers for solvers: beamformer layout, power, rates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellFreeRates:
    """Output of :func:`cell_free_rates`.

    Attributes:
        sinr: (B, K) SINR of eq. (7). se: (B, K) ``log2(1 + SINR)`` bit/s/Hz.
        pf_objective: (B,) ``sum_k ln(SE_k)`` (the PF objective of the PFBWD problem, §II-B).
        meets_gamma_min: (B, K) bool, ``SINR_k >= gamma_min``.
        kernel: the :class:`~skyshare.metrics.SinrResult` (signal, interference, noise = 1).
    """

    sinr: torch.Tensor
    se: torch.Tensor
    pf_objective: torch.Tensor
    meets_gamma_min: torch.Tensor
    kernel: metrics.SinrResult


def cell_free_rates(state: VhetnetState, W: torch.Tensor) -> CellFreeRates:
    """Per-UE SINR, SE and the PF objective under coherent joint transmission (eq. (7)).

    ``SINR_k = |sum_b h_{b,k}^H w_{b,k}|^2 / (sum_{j != k} |sum_b h_{b,k}^H w_{b,j}|^2 + 1)``
    with noise-normalised channels; ``PF = sum_k ln(SE_k)``
    (:func:`skyshare.metrics.proportional_fair_utility`, SE floored at 1e-9).

    Args:
        state: the realizations.
        W: (B, T, K, M_max) complex beamformers in sqrt(W), the layout of
            :meth:`VhetnetState.padded` (entries outside the antenna mask are ignored by the
            SINR since the padded channel is zero there, but count in :func:`transmit_power_w`).

    Returns:
        :class:`CellFreeRates`.
    """
    H, _ = state.padded()
    B, K, T, M = H.shape
    if W.ndim != 4 or tuple(W.shape) != (B, T, K, M):
        raise ShapeError(f"W must be (B, T, K, M_max) = {(B, T, K, M)}, got {tuple(W.shape)}")
    result = metrics.sinr(metrics.effective_gains(H, W.to(H.dtype)), noise=1.0)
    return CellFreeRates(
        sinr=result.sinr,
        se=result.rate,
        pf_objective=metrics.proportional_fair_utility(result.rate),
        meets_gamma_min=result.sinr >= state.gamma_min,
        kernel=result,
    )


def transmit_power_w(W: torch.Tensor) -> torch.Tensor:
    """Per-transmitter power ``sum_k ||w_{b,k}||^2``: W (B, T, K, M) -> (B, T) in W."""
    if W.ndim != 4:
        raise ShapeError(f"W must be (B, T, K, M), got {tuple(W.shape)}")
    return (W.real.square() + W.imag.square()).sum((-2, -1))


def pad_beamformers(
    state: VhetnetState, W_haps: torch.Tensor | None, W_mbs: torch.Tensor
) -> torch.Tensor:
    """Assemble per-tier beamformers into the kernel layout.

    Args:
        W_haps: (B, K, M_haps) complex HAPS beamformers ``w_{0,k}`` (None without a HAPS).
        W_mbs: (B, n_mbs, K, M_mbs) complex MBS beamformers ``w_{b,k}``.

    Returns:
        W: (B, T, K, M_max) complex, zero outside each transmitter's antennas.
    """
    B, K, n_mbs, m_mbs = state.H_mbs.shape
    if tuple(W_mbs.shape) != (B, n_mbs, K, m_mbs):
        raise ShapeError(
            f"W_mbs must be (B, n_mbs, K, M_mbs) = {(B, n_mbs, K, m_mbs)}, got {tuple(W_mbs.shape)}"
        )
    W = state.H_mbs.new_zeros(B, state.n_tx, K, max(state.antennas))
    first_mbs = 0
    if state.H_haps is not None:
        if W_haps is None or tuple(W_haps.shape) != tuple(state.H_haps.shape):
            shape = None if W_haps is None else tuple(W_haps.shape)
            raise ShapeError(
                f"W_haps must be (B, K, M_haps) = {tuple(state.H_haps.shape)}, got {shape}"
            )
        W[:, 0, :, : W_haps.shape[-1]] = W_haps
        first_mbs = 1
    if n_mbs:  # without MBSs, M_mbs may exceed M_max = M_haps: nothing to place
        W[:, first_mbs:, :, : W_mbs.shape[-1]] = W_mbs
    return W


def mrt_joint_transmission(state: VhetnetState, *, haps_on: bool = True) -> torch.Tensor:
    """Reference transmission: every BS b sends MRT beams to every UE, power split equally.

    ``w_{b,k} = sqrt(P_b / K) h_{b,k} / ||h_{b,k}||`` (so ``sum_k ||w_{b,k}||^2 = P_b``);
    the desired terms ``h_{b,k}^H w_{b,k} = sqrt(P_b/K) ||h_{b,k}||`` are real and positive and
    add coherently at UE k. Built with :func:`skyshare.beamforming.mrt_equal_power`, each BS
    treated as a one-BS network serving all K UEs.

    Args:
        state: the realizations.
        haps_on: False silences the HAPS (zero beams): the standalone terrestrial network on the
            same channels.

    Returns:
        W: (B, T, K, M_max) complex.
    """
    B, K = state.H_mbs.shape[:2]
    n_mbs = state.H_mbs.shape[2]
    every_ue_served_by_bs0 = torch.zeros(B, K, dtype=torch.long, device=state.H_mbs.device)
    W_haps = None
    if state.H_haps is not None:
        W_haps = mrt_equal_power(
            state.H_haps[:, :, None, :], every_ue_served_by_bs0, float(state.p_max_w[0])
        )
        if not haps_on:
            W_haps = torch.zeros_like(W_haps)
    if n_mbs > 0:
        # (B, K, n_mbs, M) -> (B n_mbs, K, 1, M): each MBS is its own one-BS network.
        per_bs = state.H_mbs.permute(0, 2, 1, 3).reshape(B * n_mbs, K, 1, -1)
        W_mbs = mrt_equal_power(
            per_bs, every_ue_served_by_bs0.repeat(n_mbs, 1), float(state.p_max_w[-1])
        ).reshape(B, n_mbs, K, -1)
    else:
        W_mbs = state.H_mbs.new_zeros(B, 0, K, state.H_mbs.shape[-1])
    return pad_beamformers(state, W_haps, W_mbs)


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def mbs_grid_xy(
    n_mbs: int,
    side_m: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """MBS ground positions on a grid of equal cells covering the square (choice).

    ``C = ceil(sqrt(n))`` columns and ``R = ceil(n / C)`` rows of cells of size
    ``(a/C) x (a/R)``; the MBSs sit at the cell centres, filled row by row from the top, the
    last (possibly partial) row centred. For n = 4 this is the 2x2 grid ``(+-a/4, +-a/4)``.

    Returns:
        xy_m: (n_mbs, 2) float, centred on the origin.
    """
    if n_mbs < 0:
        raise ConfigError(f"n_mbs must be >= 0, got {n_mbs}")
    if not side_m > 0:
        raise ConfigError(f"side_m must be > 0 m, got {side_m}")
    if n_mbs == 0:
        return torch.zeros(0, 2, device=device, dtype=dtype)
    cols = math.ceil(math.sqrt(n_mbs))
    rows = math.ceil(n_mbs / cols)
    index = torch.arange(n_mbs, device=device)
    row = torch.div(index, cols, rounding_mode="floor")
    col = index - row * cols
    in_row = torch.where(row == rows - 1, n_mbs - (rows - 1) * cols, cols).to(dtype)
    x = (col.to(dtype) - (in_row - 1) / 2) * side_m / cols
    y = ((rows - 1) / 2 - row.to(dtype)) * side_m / rows
    return torch.stack([x, y], dim=-1)


def haps_array_angles(
    zenith_rad: torch.Tensor, azimuth_rad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global direction (seen from the HAPS) -> angles in the frame of its downward UPA.

    The array lies in the global x-y plane, columns along x and rows along y, broadside at the
    nadir. :func:`~skyshare.channels.arrays.upa_steering` puts columns along x' and rows along z'
    of its own frame, so the array frame is ``x' = x, y' = -z, z' = y`` and
    ``u' = (u_x, -u_z, u_y)``: ``theta' = arccos(u_y)``, ``phi' = atan2(-u_z, u_x)``. Then
    ``sin theta' cos phi' = u_x`` and ``cos theta' = u_y``.

    Args:
        zenith_rad, azimuth_rad: (...) global angles (:func:`skyshare.geometry.zenith_azimuth`).

    Returns:
        (zenith', azimuth'): (...) angles for ``upa_steering``.
    """
    u = direction_vector(zenith_rad, azimuth_rad)
    zenith_array = torch.acos(u[..., 1].clamp(-1.0, 1.0))
    azimuth_array = torch.atan2(-u[..., 2], u[..., 0])
    return zenith_array, azimuth_array


# --------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------


class VhetnetScenario(Scenario[VhetnetConfig]):
    """Seed 003's HAPS-empowered cell-free vHetNet as a batched block-fading process.

    Args:
        config: :class:`VhetnetConfig` (``paper`` preset when omitted).
        batch_size: B independent realizations (UE drops, shadowing, fading).
        device, dtype: where and in which precision tensors live.
    """

    name = "vhetnet"
    title = "Cell-free HAPS + macro-BS vHetNet (seed 003)"
    source = "seed 003 (HAPS vHetNet, distributed PFBWD), §II and §VI; docs/scenarios/vhetnet.md"
    Config = VhetnetConfig

    def __init__(self, config: VhetnetConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        self.fc_hz = cfg.fc_ghz * 1e9
        self.noise_w = noise_power_w(
            cfg.bandwidth_mhz * 1e6,
            noise_dbm_per_hz=cfg.noise_dbm_per_hz,
            noise_figure_db=cfg.noise_figure_db,
        )
        self.gamma_min = db_to_linear(cfg.gamma_min_db)
        opts = {"device": self.device, "dtype": self.dtype}
        budgets = [dbm_to_watt(cfg.haps_power_dbm)] * int(cfg.with_haps)
        budgets += [dbm_to_watt(cfg.mbs_power_dbm)] * cfg.n_mbs
        self.p_max_w = torch.tensor(budgets, **opts)  # (T,)
        self.haps_position = torch.tensor([0.0, 0.0, cfg.haps_altitude_m], **opts)  # (3,)
        mbs_xy = mbs_grid_xy(cfg.n_mbs, cfg.area_side_m, **opts)
        self.mbs_positions = with_height(mbs_xy, cfg.mbs_height_m)  # (n_mbs, 3)
        self.state: VhetnetState | None = None

    # ----------------------------------------------------------------------------------------
    # Realizations
    # ----------------------------------------------------------------------------------------

    def memory_estimate(self) -> float:
        """The channels and beams of every UE from every transmitter's antennas (B x K x
        sum_b M_b complex), about six such tensors alive with temporaries."""
        cfg = self.config
        antennas = cfg.n_mbs * cfg.m_mbs + (cfg.m_haps if cfg.with_haps else 0)
        return 6 * self.batch_size * cfg.n_ue * antennas * self._complex_bytes

    def reset(self, seed: int | None = None) -> VhetnetState:
        """Draw UE drops, shadowing and fading of B realizations; return realization 0."""
        self._seed(seed)
        self.t = 0
        self._drop_users()
        self.state = self._state(self._draw_fading())
        return self.state

    def step(self) -> VhetnetState:
        """Draw the next independent realization (block fading).

        New UE drop and shadowing when ``redrop_users`` (the default), new small-scale fading
        always; with ``redrop_users = false`` positions and shadowing are kept.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        self.t += 1
        if self.config.redrop_users:
            self._drop_users()
        self.state = self._state(self._draw_fading())
        return self.state

    def _drop_users(self) -> None:
        """UE positions (B, K, 3), uniform in the square, and MBS-link shadowing (B, K, n_mbs)."""
        cfg, B, g = self.config, self.batch_size, self.generator
        xy = drop_in_square(B, cfg.n_ue, cfg.area_side_m, g, device=self.device, dtype=self.dtype)
        self.ue_positions = with_height(xy, cfg.ue_height_m)
        self.shadowing_mbs_db = lognormal_shadowing_db(
            (B, cfg.n_ue, cfg.n_mbs), cfg.shadowing_std_db, g, dtype=self.dtype, device=self.device
        )

    def _draw_fading(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rayleigh MBS fading (B, K, n_mbs, M_mbs) and HAPS NLoS (B, K, M_haps) or None."""
        cfg, B, g = self.config, self.batch_size, self.generator
        opts = {"device": self.device, "dtype": self.cdtype}
        mbs = rayleigh((B, cfg.n_ue, cfg.n_mbs, cfg.m_mbs), g, **opts)
        haps = rayleigh((B, cfg.n_ue, cfg.m_haps), g, **opts) if cfg.with_haps else None
        return mbs, haps

    def _state(self, fading: tuple[torch.Tensor, torch.Tensor | None]) -> VhetnetState:
        cfg, B = self.config, self.batch_size
        mbs_fading, haps_nlos = fading
        noise_db = linear_to_db(self.noise_w)  # dividing by sigma = adding sigma^2 (dB) to loss
        ue = self.ue_positions
        mbs = self.mbs_positions.expand(B, cfg.n_mbs, 3)

        # MBS tier, eqs. (1)-(2): Rayleigh x shadowing x FSPL.
        d_mbs = distances_3d(ue, mbs)  # (B, K, n_mbs)
        pl_mbs = fspl_db(d_mbs, self.fc_hz).to(self.dtype)
        H_mbs = apply_large_scale(mbs_fading, pl_mbs + noise_db, -self.shadowing_mbs_db)

        H_haps = haps_los = pl_haps = zenith = azimuth = None
        bs_positions = mbs
        if cfg.with_haps:
            # HAPS tier, eqs. (3)-(5): 3D Rician with the UPA steering vector.
            haps = self.haps_position.expand(B, 1, 3)
            d_haps = distances_3d(ue, haps)[..., 0]  # (B, K)
            zenith, azimuth = (angle[..., 0] for angle in zenith_azimuth(ue, haps))
            zenith_array, azimuth_array = haps_array_angles(zenith, azimuth)
            steering = upa_steering(
                zenith_array,
                azimuth_array,
                cfg.haps_n_h,
                cfg.haps_n_v,
                cfg.antenna_spacing_wavelengths,
                cfg.antenna_spacing_wavelengths,
                normalize=False,
                dtype=self.cdtype,
            )  # (B, K, M_haps), unit-modulus entries
            haps_los = los_phase(d_haps, self.fc_hz, dtype=self.cdtype)[..., None] * steering
            pl_haps = fspl_db(d_haps, self.fc_hz).to(self.dtype)
            small = rician(haps_los, haps_nlos, db_to_linear(cfg.rician_k_db))
            H_haps = apply_large_scale(small, pl_haps + noise_db)
            bs_positions = torch.cat([haps, mbs], dim=1)

        return VhetnetState(
            t=self.t,
            H_haps=H_haps,
            H_mbs=H_mbs,
            haps_los=haps_los,
            haps_nlos=haps_nlos,
            mbs_fading=mbs_fading,
            pathloss_haps_db=pl_haps,
            pathloss_mbs_db=pl_mbs,
            shadowing_mbs_db=self.shadowing_mbs_db,
            haps_zenith_rad=zenith,
            haps_azimuth_rad=azimuth,
            ue_positions=ue,
            bs_positions=bs_positions,
            p_max_w=self.p_max_w,
            noise_w=self.noise_w,
            gamma_min=self.gamma_min,
        )

    # ----------------------------------------------------------------------------------------
    # Summary
    # ----------------------------------------------------------------------------------------

    def link_budget(self) -> LinkBudget:
        """Link budget of the current realizations, averaged over the batch.

        Reference transmission: :func:`mrt_joint_transmission` (every BS sends an MRT beam to
        every UE with P_b / K each, coherent joint transmission). The same rows are given for
        the standalone terrestrial network (HAPS silent, same channels).
        """
        state = self.state if self.state is not None else self.reset()
        cfg = self.config
        budget = LinkBudget(f"{self.title}: realization {state.t}, B={self.batch_size}")
        budget.add(
            "noise power sigma^2",
            watt_to_dbm(self.noise_w),
            "dBm",
            f"{cfg.noise_dbm_per_hz:g} dBm/Hz + NF {cfg.noise_figure_db:g} dB over "
            f"{cfg.bandwidth_mhz:g} MHz",
        )
        tiers = []
        if state.has_haps:
            tiers.append(("HAPS", state.H_haps[:, :, None, :], state.pathloss_haps_db[..., None]))
        if cfg.n_mbs > 0:
            tiers.append(("MBS", state.H_mbs, state.pathloss_mbs_db))
        for tier, H, pathloss in tiers:
            power_dbm = cfg.haps_power_dbm if tier == "HAPS" else cfg.mbs_power_dbm
            n_antennas = H.shape[-1]
            budget.add(f"{tier} power budget P_b", power_dbm, "dBm", f"{n_antennas} antennas")
            budget.add(f"{tier} path loss (FSPL)", pathloss.mean(), "dB", "mean over links")
            strength = metrics.channel_strength(H)  # (B, K, n) noise-normalised ||h||^2
            if not bool(torch.isfinite(strength).all()):  # float32 ||h||^2 above ~3e38
                H, pathloss = H.to(torch.complex128), pathloss.double()
                strength = metrics.channel_strength(H)
            per_element_snr_db = linear_to_db(dbm_to_watt(power_dbm) * strength / n_antennas)
            budget.add(
                f"{tier} per-element SNR at full power",
                per_element_snr_db.mean(),
                "dB",
                "P_b ||h||^2 / M, mean of dB over links",
            )
            # ||h||^2 over the mean per-element gain 10^(-(PL - X)/10) / sigma^2: E = M.
            shadowing = state.shadowing_mbs_db if tier == "MBS" else 0.0
            large_scale = db_to_linear(-(pathloss - shadowing)) / self.noise_w
            budget.add(
                f"{tier} array gain of matched beams",
                linear_to_db((strength / large_scale).mean()),
                "dB",
                f"mean ||h||^2 / E|h_m|^2; 10 log10 M = {linear_to_db(n_antennas):.2f} dB",
            )

        networks = [("vHetNet", True)] if state.has_haps else []
        if cfg.n_mbs > 0:
            networks.append(("terrestrial", False))
        for label, haps_on in networks:
            rates = cell_free_rates(state, mrt_joint_transmission(state, haps_on=haps_on))
            note = "MRT joint transmission, P_b/K per UE"
            budget.add(f"{label} median SINR", linear_to_db(rates.sinr).median(), "dB", note)
            budget.add(
                f"{label} median INR",
                linear_to_db(rates.kernel.interference.clamp_min(1e-30)).median(),
                "dB",
                "interference over noise",
            )
            budget.add(f"{label} mean SE per UE", rates.se.mean(), "bit/s/Hz", note)
            budget.add(f"{label} PF objective sum_k ln SE_k", rates.pf_objective.mean(), "", note)
            budget.add(f"{label} Jain fairness of SE", metrics.jain_fairness(rates.se).mean(), "")
            budget.add(
                f"{label} UEs with SINR >= gamma_min",
                rates.meets_gamma_min.to(self.dtype).mean() * 100,
                "%",
                f"gamma_min = {cfg.gamma_min_db:g} dB",
            )
        return budget
