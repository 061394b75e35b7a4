"""Configuration and state of the cell-free HAPS + macro-BS vHetNet (seed 003 §II and §VI).

:class:`VhetnetConfig` holds the parameters (the values of ``docs/scenarios/vhetnet.md``; fields
whose value is a reconstruction say "choice"), :class:`VhetnetState` one batch of realizations.
The scenario itself, :class:`skyshare.scenarios.vhetnet.VhetnetScenario`, re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import Field, model_validator

from skyshare.config import StrictModel
from skyshare.solvers.cellfree_problem import CellFreeProblem

__all__ = ["VhetnetConfig", "VhetnetState"]


class VhetnetConfig(StrictModel):
    """vHetNet parameters. Seed 003's Table I was lost; the defaults are the values of
    ``docs/scenarios/vhetnet.md`` ("Parameters"), and fields whose value is a reconstruction say
    "choice"."""

    seed: int = Field(0, ge=0, description="random seed of UE drops, shadowing and fading")
    n_ue: int = Field(16, ge=1, le=4096, description="K, single-antenna UEs (choice: 16)")
    n_mbs: int = Field(4, ge=0, le=256, description="MBSs (seed 003 §VI: four MBSs + one HAPS)")
    with_haps: bool = Field(
        True, description="include the HAPS; false = standalone terrestrial network (Fig. 7)"
    )
    area_side_m: float = Field(
        1000.0,
        gt=0,
        le=100_000,
        description="side of the square urban area (choice: the value was lost from the text)",
    )
    haps_altitude_m: float = Field(
        20_000.0, gt=0, le=50_000, description="HAPS altitude above the area centre (20 km)"
    )
    mbs_height_m: float = Field(25.0, gt=0, le=300, description="MBS antenna height (choice)")
    ue_height_m: float = Field(1.5, ge=0, le=30, description="UE antenna height (choice)")
    fc_ghz: float = Field(2.0, gt=0, le=100, description="carrier f_c (sub-6 GHz; choice 2 GHz)")
    bandwidth_mhz: float = Field(20.0, gt=0, le=2000, description="bandwidth (choice)")
    noise_dbm_per_hz: float = Field(
        -174.0, ge=-220, le=-100, description="thermal noise density at 290 K"
    )
    noise_figure_db: float = Field(7.0, ge=0, le=30, description="UE noise figure (choice)")
    mbs_power_dbm: float = Field(
        40.0, ge=-30, le=70, description="P_b of each MBS (choice within 40-46 dBm)"
    )
    haps_power_dbm: float = Field(46.0, ge=-30, le=70, description="P_0 of the HAPS (choice)")
    mbs_n_h: int = Field(4, ge=1, le=64, description="MBS UPA columns N_h (choice: 4x4)")
    mbs_n_v: int = Field(4, ge=1, le=64, description="MBS UPA rows N_v (choice: 4x4)")
    haps_n_h: int = Field(8, ge=1, le=128, description="HAPS UPA columns along x (choice: 8x8)")
    haps_n_v: int = Field(8, ge=1, le=128, description="HAPS UPA rows along y (choice: 8x8)")
    antenna_spacing_wavelengths: float = Field(
        0.5, gt=0, le=10, description="HAPS element spacing d_h = d_v in wavelengths (half)"
    )
    shadowing_std_db: float = Field(
        8.0, ge=0, le=30, description="sigma_sh, MBS-UE log-normal shadowing (choice: 8 dB)"
    )
    rician_k_db: float = Field(
        10.0, ge=-50, le=60, description="K_R, HAPS-UE Rician factor (choice: 10 dB)"
    )
    gamma_min_db: float = Field(
        0.0, ge=-50, le=60, description="gamma_min, minimum SINR of every UE (choice: 0 dB)"
    )
    redrop_users: bool = Field(
        True, description="step() drops new UEs (and shadowing); false keeps them (choice)"
    )

    @model_validator(mode="after")
    def _check_network(self) -> VhetnetConfig:
        if self.n_mbs == 0 and not self.with_haps:
            raise ValueError("the network needs a transmitter: n_mbs >= 1 or with_haps = true")
        if self.haps_altitude_m <= self.ue_height_m:
            raise ValueError(
                f"haps_altitude_m ({self.haps_altitude_m}) must exceed ue_height_m "
                f"({self.ue_height_m})"
            )
        if self.mbs_height_m == self.ue_height_m:
            raise ValueError("mbs_height_m must differ from ue_height_m (d > 0 for the FSPL)")
        return self

    @property
    def m_mbs(self) -> int:
        """Antennas per MBS, ``N_h N_v``."""
        return self.mbs_n_h * self.mbs_n_v

    @property
    def m_haps(self) -> int:
        """HAPS antennas, ``N_h N_v``."""
        return self.haps_n_h * self.haps_n_v

    @property
    def n_tx(self) -> int:
        """Transmitters T: the HAPS (when present) plus the MBSs."""
        return int(self.with_haps) + self.n_mbs

    @property
    def m_max(self) -> int:
        """The largest array among the transmitters present, ``M_max`` (0 without any)."""
        return max(self.m_haps if self.with_haps else 0, self.m_mbs if self.n_mbs else 0)


@dataclass
class VhetnetState:
    """One batch of B independent realizations (noise-normalised channels).

    Transmitter order: the HAPS first (index 0) when ``has_haps``, then the MBSs.

    Attributes:
        t: realization index (0 after reset, +1 per step).
        H_haps: (B, K, M_haps) complex HAPS -> UE channels divided by sigma, or None without a
            HAPS.
        H_mbs: (B, K, n_mbs, M_mbs) complex MBS -> UE channels divided by sigma.
        haps_los: (B, K, M_haps) complex unit-modulus LoS part ``e^{-j2pi d/lambda} a`` (or None).
        haps_nlos: (B, K, M_haps) complex NLoS draw ``g ~ CN(0, I)`` (or None).
        mbs_fading: (B, K, n_mbs, M_mbs) complex Rayleigh draw ``g ~ CN(0, 1)``.
        pathloss_haps_db: (B, K) FSPL of the HAPS links (or None).
        pathloss_mbs_db: (B, K, n_mbs) FSPL of the MBS links.
        shadowing_mbs_db: (B, K, n_mbs) shadowing X in dB (channel gain ``10^(X/20)``).
        haps_zenith_rad, haps_azimuth_rad: (B, K) global angles of UE k seen from the HAPS
            (or None); the array-frame angles are :func:`haps_array_angles` of them.
        ue_positions: (B, K, 3), bs_positions: (B, T, 3) metres.
        p_max_w: (T,) per-transmitter power budget P_b in W.
        noise_w: noise power sigma^2 in W (the channels are already divided by sqrt of it).
        gamma_min: minimum SINR (linear).
    """

    t: int
    H_haps: torch.Tensor | None
    H_mbs: torch.Tensor
    haps_los: torch.Tensor | None
    haps_nlos: torch.Tensor | None
    mbs_fading: torch.Tensor
    pathloss_haps_db: torch.Tensor | None
    pathloss_mbs_db: torch.Tensor
    shadowing_mbs_db: torch.Tensor
    haps_zenith_rad: torch.Tensor | None
    haps_azimuth_rad: torch.Tensor | None
    ue_positions: torch.Tensor
    bs_positions: torch.Tensor
    p_max_w: torch.Tensor
    noise_w: float
    gamma_min: float

    @property
    def has_haps(self) -> bool:
        return self.H_haps is not None

    @property
    def n_tx(self) -> int:
        """T = (1 if HAPS) + n_mbs."""
        return int(self.has_haps) + self.H_mbs.shape[2]

    @property
    def antennas(self) -> list[int]:
        """Antenna count of every transmitter, in transmitter order (length T)."""
        haps = [self.H_haps.shape[-1]] if self.H_haps is not None else []
        return haps + [self.H_mbs.shape[-1]] * self.H_mbs.shape[2]

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Channels of all transmitters in one tensor for the cell-free SINR kernel.

        Returns:
            H: (B, K, T, M_max) complex, zero-padded on the antenna axis
                (``M_max = max(M_haps, M_mbs)``), transmitter 0 = HAPS when present.
            antenna_mask: (T, M_max) bool, True where transmitter t has antenna m.
        """
        B, K, _, m_mbs = self.H_mbs.shape
        antennas = self.antennas
        m_max = max(antennas)
        H = self.H_mbs.new_zeros(B, K, self.n_tx, m_max)
        first_mbs = 0
        if self.H_haps is not None:
            H[:, :, 0, : self.H_haps.shape[-1]] = self.H_haps
            first_mbs = 1
        if self.H_mbs.shape[2]:  # without MBSs, M_mbs may exceed M_max = M_haps: no slice
            H[:, :, first_mbs:, :m_mbs] = self.H_mbs
        column = torch.arange(m_max, device=H.device)
        antenna_mask = column[None, :] < torch.tensor(antennas, device=H.device)[:, None]
        return H, antenna_mask

    def problem(self) -> CellFreeProblem:
        """The PFBWD problem of these realizations (what the seed 003 solvers take)."""
        H, antenna_mask = self.padded()
        return CellFreeProblem(H, antenna_mask, self.p_max_w, float(self.gamma_min))
