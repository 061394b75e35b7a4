"""Configuration and state of the coexisting TN-NTN OFDM downlink (seed 001 §II and §IV).

:class:`TnNtnConfig` holds the parameters (defaults are seed 001 §IV unless a description says
"choice"), :class:`TnNtnState` the channels and geometry of one frame. The scenario itself,
:class:`skyshare.scenarios.tn_ntn.TnNtnScenario`, re-exports both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import Field, model_validator

from skyshare.channels.fading import doppler_hz, jakes_correlation
from skyshare.config import StrictModel

__all__ = ["XY", "TnNtnConfig", "TnNtnState"]

XY = tuple[float, float]


class TnNtnConfig(StrictModel):
    """TN-NTN parameters; defaults are seed 001 §IV unless the description says "choice"."""

    seed: int = Field(0, ge=0, description="random seed of users, traces and fading")
    n_subchannels: int = Field(
        160, ge=1, le=4096, description="F per BS (paper: 80, 160, 320; 160 is the Fig. 4 setting)"
    )
    k_max: int = Field(
        20, ge=1, le=1024, description="K_max user slots per BS (paper: 10, 20, 30 for F = 80..320)"
    )
    srb_size: int = Field(
        40, ge=1, description="subchannels per SRB (§IV: 40); F must be a multiple"
    )
    bandwidth_mhz: float = Field(20.0, gt=0, le=400, description="shared band B (§IV: 20 MHz)")
    fc_ghz: float = Field(
        2.0, ge=2.0, le=6.0, description="carrier (choice: 2 GHz, paper gives none; C2 range 2-6)"
    )
    p_max_dbm: float = Field(46.0, ge=-30, le=80, description="p_max per BS (§IV: 46 dBm)")
    noise_dbm_per_hz: float = Field(
        -174.0, ge=-220, le=-100, description="N_0 (choice: thermal noise at 290 K)"
    )
    noise_figure_db: float = Field(0.0, ge=0, le=30, description="added to N_0 (choice: 0 dB)")
    min_rate_mbps: float = Field(2.0, ge=0, le=1000, description="eta_k, QoS rate (§IV: 2 Mbps)")
    area_side_m: float = Field(1000.0, gt=0, le=100_000, description="square area (§IV: 1 km)")
    tbs_xy_m: tuple[XY, ...] = Field(
        ((-250.0, 0.0), (250.0, 0.0)),
        max_length=64,
        description="TBS ground positions, origin at the area centre (choice: on the x axis)",
    )
    uav_xy_m: tuple[XY, ...] = Field(
        ((0.0, 0.0),), max_length=64, description="NTBS ground positions (choice: centre)"
    )
    tbs_height_m: float = Field(
        25.0, gt=1, le=200, description="TBS antenna height (choice: WINNER II C2 default 25 m)"
    )
    uav_height_m: float = Field(200.0, ge=10, le=10_000, description="NTBS altitude (§IV: 200 m)")
    ue_height_m: float = Field(
        1.5, gt=1, le=10, description="user antenna height (choice: WINNER II C2 default 1.5 m)"
    )
    tbs_user_radius_m: float = Field(
        250.0, gt=0, description="TBS users uniform in this disc around their BS (choice)"
    )
    active_mean_fraction: float = Field(
        0.5, ge=0, le=1, description="training: active users per BS ~ Poisson(this * K_max)"
    )
    dynamic_users: bool = Field(
        False, description="Fig. 4 test mode: Poisson arrivals, exponential stays, random walk"
    )
    arrival_rate_per_min: float = Field(
        3.0, ge=0, le=6000, description="dynamic: arrivals per BS per minute (Fig. 4: 1, 3, 5)"
    )
    mean_holding_s: float = Field(
        180.0, gt=0, description="dynamic: mean exponential stay (Fig. 4: 3 minutes)"
    )
    user_speed_m_s: float = Field(
        1.0, ge=0, le=50, description="random-walk speed (Fig. 4: 1 m/s), also sets the Doppler"
    )
    trace_step_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="dynamic: walk direction changes and arrivals resolved every step (choice)",
    )
    frame_s: float = Field(0.01, gt=0, le=1, description="one step = one frame (§IV: 10 ms)")
    horizon_slots: int = Field(
        100,
        ge=1,
        le=10_000_000,
        description="frames per run (§IV: episode of 100; 30 min of 10 ms frames = 180000; the "
        "tn-ntn-fig4 test plays 1800 frames of 1 s)",
    )
    fading_correlation: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="AR(1) fading correlation per frame; None: Jakes J0(2 pi f_D frame_s). The "
        "Fig. 4 test sets 0 with 1 s frames (Jakes at 1 s is about -0.1: nearly independent)",
    )
    shadowing: bool = Field(True, description="WINNER II C2 log-normal shadowing on TBS links")
    a2g_environment: Literal["suburban", "urban", "dense_urban", "highrise_urban"] = Field(
        "urban", description="Al-Hourani et al. 2014 environment of the NTBS links (choice)"
    )
    rician_k_db: float = Field(
        10.0, ge=-50, le=60, description="Rician K of LoS NTBS links; NLoS ones Rayleigh (choice)"
    )
    n_taps: int | None = Field(
        None, ge=1, description="None: i.i.d. subchannels; L: L-tap frequency-correlated fading"
    )
    delay_decay_taps: float = Field(
        2.0, gt=0, le=1000, description="e-folding delay of the tap power profile, in taps"
    )

    def _check_positions(self) -> None:
        """Every BS, and every TBS's user disc, inside the simulated square."""
        half = self.area_side_m / 2
        for name, positions in (("tbs_xy_m", self.tbs_xy_m), ("uav_xy_m", self.uav_xy_m)):
            for x, y in positions:
                if max(abs(x), abs(y)) > half:
                    raise ValueError(
                        f"{name} position ({x}, {y}) lies outside the area [-{half}, {half}]^2 m"
                    )
        for x, y in self.tbs_xy_m:
            if max(abs(x), abs(y)) + self.tbs_user_radius_m > half:
                raise ValueError(
                    f"tbs_user_radius_m = {self.tbs_user_radius_m} m: the user disc around TBS "
                    f"({x}, {y}) must lie inside the area [-{half}, {half}]^2 m"
                )

    @model_validator(mode="after")
    def _check_system(self) -> TnNtnConfig:
        if self.n_bs < 1:
            raise ValueError("tbs_xy_m and uav_xy_m must hold at least one BS between them")
        if self.n_subchannels % self.srb_size != 0:
            raise ValueError(
                f"n_subchannels = {self.n_subchannels} must be a multiple of srb_size = "
                f"{self.srb_size} (equal-size SRBs, §III-A)"
            )
        if self.n_taps is not None and self.n_taps > self.n_subchannels:
            raise ValueError(f"n_taps must be <= n_subchannels = {self.n_subchannels}")
        self._check_positions()
        if self.trace_step_s < self.frame_s:
            raise ValueError(f"trace_step_s must be >= frame_s = {self.frame_s} s")
        if self.fading_correlation is None and self.ar1_alpha < 0:
            raise ValueError(
                f"the Jakes correlation J0(2 pi f_D T) = {self.ar1_alpha:.3f} is negative: lower "
                "user_speed_m_s, fc_ghz or frame_s (2 pi v f_c T / c must stay below 2.405), "
                "or set fading_correlation"
            )
        return self

    @property
    def n_tbs(self) -> int:
        return len(self.tbs_xy_m)

    @property
    def n_uav(self) -> int:
        return len(self.uav_xy_m)

    @property
    def n_bs(self) -> int:
        """N: TBSs first (indices 0..n_tbs-1), then NTBSs."""
        return self.n_tbs + self.n_uav

    @property
    def n_srb(self) -> int:
        """M, SRBs per BS."""
        return self.n_subchannels // self.srb_size

    @property
    def ar1_alpha(self) -> float:
        """Gauss-Markov correlation of the small-scale fading over one frame: Jakes
        ``J0(2 pi f_D frame_s)``, or ``fading_correlation`` when it is set."""
        if self.fading_correlation is not None:
            return float(self.fading_correlation)
        return jakes_correlation(doppler_hz(self.user_speed_m_s, self.fc_ghz * 1e9), self.frame_s)

    @property
    def horizon_s(self) -> float:
        return self.horizon_slots * self.frame_s


@dataclass
class TnNtnState:
    """Channels and geometry of one frame for all B realizations (P = N * K_max user slots).

    User slot ``p = n * K_max + k`` is user k of BS n; BSs are ordered TBSs first, then NTBSs.

    Attributes:
        t: frame index (0 after reset).
        active_rows: (A,) long, the active user slots as rows ``b P + p`` of the flattened
            (B P) slot axis, ascending (``user_active.flatten().nonzero()``).
        active_gain: (A, N, F) real, ``|H|^2`` of the active slots: row i is ``gain`` at
            ``active_rows[i]`` (what the env computes with; :attr:`gain` is built from it).
        pathloss_db: (B, P, N) large-scale loss in dB: path loss plus shadowing.
        shadowing_db: (B, P, N) the shadowing part of ``pathloss_db`` (0 on NTBS links).
        los: (B, P, N) bool LoS state of each link.
        active: (B, N, K_max) bool, psi of §III-E: slot k of BS n holds an active user.
        user_positions: (B, P, 3) metres (inactive slots keep a position too).
        bs_positions: (B, N, 3) metres.
        serving: (P,) long, the BS of each user slot (``p // K_max``).
        arrived: (B, P) bool, the slot's occupant is new in this frame (every active user after
            ``reset``; in dynamic mode the arrivals of this frame, refills of a slot included).
        channel: :attr:`H` (B, P, N, F) complex, or a function without arguments returning it
            (called once, on the first access to :attr:`H`).
        full_gain: :attr:`gain` when the scenario has it already, else None (built on first
            access).

    An inactive slot holds no user: its ``H`` and ``gain`` are 0. In training mode the states
    of one episode share their geometry tensors (users do not move): treat them as read-only.
    """

    t: int
    active_rows: torch.Tensor
    active_gain: torch.Tensor
    pathloss_db: torch.Tensor
    shadowing_db: torch.Tensor
    los: torch.Tensor
    active: torch.Tensor
    user_positions: torch.Tensor
    bs_positions: torch.Tensor
    serving: torch.Tensor
    arrived: torch.Tensor
    channel: torch.Tensor | Callable[[], torch.Tensor] = field(repr=False, compare=False)
    full_gain: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def gain(self) -> torch.Tensor:
        """(B, P, N, F) real, the power gain ``|H|^2`` (0 on inactive slots): ``active_gain``
        written into the rows ``active_rows`` of zeros on first access, and kept."""
        if self.full_gain is None:
            B, N, K = self.active.shape
            _, _, F = self.active_gain.shape
            gain = self.active_gain.new_zeros(B * N * K, N * F)
            gain.index_copy_(0, self.active_rows, self.active_gain.flatten(1))
            self.full_gain = gain.view(B, N * K, N, F)
        return self.full_gain

    @property
    def H(self) -> torch.Tensor:
        """(B, P, N, F) complex, BS n -> user slot p on subchannel f, divided by the noise
        standard deviation sqrt(W N_0) of one subchannel (``|H|^2 = gain``).

        Built on first access from ``channel`` (the complex channel, or a function that builds
        it: the env and the rates need only ``gain``, so the scenario does not form the complex
        tensor unless asked) and kept."""
        if callable(self.channel):
            self.channel = self.channel()
        return self.channel

    @property
    def H_kernel(self) -> torch.Tensor:
        """(B, P, N, F, 1) complex: ``H`` in the SINR kernel's layout (scalar antennas)."""
        return self.H.unsqueeze(-1)

    @property
    def user_active(self) -> torch.Tensor:
        """(B, P) bool: ``active`` flattened to the receiver axis."""
        return self.active.flatten(1)
