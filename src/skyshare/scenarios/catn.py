"""Cognitive aerial-terrestrial network (CATN), seed 000 §III and §VI.

N terrestrial BSs with M = M_h x M_v uniform rectangular arrays serve K single-antenna
terrestrial users (TUs, the secondary network) on the spectrum of L aerial users (AUs,
airplanes: the primary network), whose received interference must stay below I_max.

Channels (seed 000 §III-B), per slot t of length 0.02 s:

    h_{n,k}(t) = sqrt(1/L_UMa,n,k(t)) h^NLoS_{n,k}(t)                        BS n -> TU k
    g_{n,l}(t) = sqrt(1/L_FSP,n,l(t)) ( sqrt(kappa/(kappa+1)) e^{-j 2 pi d/lambda} a(theta, phi)
                                      + sqrt(1/(kappa+1)) g^NLoS_{n,l}(t) )   BS n -> AU l
    x^NLoS(t+1) = alpha x^NLoS(t) + sqrt(1 - alpha^2) e(t),  e ~ CN(0, I_M)   (Gauss-Markov)

L_UMa is 3GPP TR 38.901 UMa with a LoS/NLoS state drawn per link from the LoS probability
and frozen for the whole simulation (§VI); L_FSP is free-space path loss (TR 38.876); a is the
URA steering vector of §III-B. Path losses and angles follow the positions every slot.

Layout choices (the seed shows its layout only as Fig. 3, without coordinates; each is a config
field): BSs on a hexagonal grid with the UMa inter-site distance 500 m (TR 38.901 Table 7.8-1);
TUs dropped uniformly in the hexagonal cells at >= 35 m from the site (same table), an equal
number per cell, moving on smooth random trajectories at 3 km/h (the 38.901 pedestrian speed);
the airplanes fly straight tracks at 10 km and 250 m/s that cross the network mid-simulation,
laterally offset by 2 km from one another.

All channels are returned noise-normalised (divided by sigma, so noise power is 1 and
``|h^H w|^2`` with w in sqrt(W) is an SNR); ``scenario.noise_w`` converts back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, field_validator, model_validator

from skyshare import metrics
from skyshare.beamforming import mrt_equal_power
from skyshare.channels.fading import GaussMarkovFading, real_scaled
from skyshare.channels.pathloss import (
    draw_los,
    lognormal_shadowing_db,
    uma_breakpoint_distance_m,
    uma_los_probability,
    uma_shadow_fading_std_db,
)
from skyshare.channels.pathloss.fspl import FSPL_CONSTANT_DB
from skyshare.channels.pathloss.uma import UMA_MIN_D2D_M
from skyshare.config import StrictModel
from skyshare.errors import ConfigError
from skyshare.geometry import (
    distances_2d,
    drop_in_hexagon,
    hex_grid,
    hex_ring_count,
    hex_rings_within,
    smooth_random_trajectories,
    with_height,
)
from skyshare.scenarios.base import LinkBudget, Scenario
from skyshare.units import (
    db_to_linear,
    linear_to_db,
    mw_to_dbm,
    noise_power_w,
    watt_to_dbm,
    wavelength_m,
)

MIN_I_MAX_OVER_NOISE = 1e-20  # smallest I_max, in noise powers, that computations represent


def hexagonal_rings_message(name: str, value: int) -> str:
    """The rule a cell count on a hexagonal grid breaks, with its allowed values and the
    nearest ones around ``value``: ``1 + 3 r (r + 1)`` cells for ``r`` whole rings."""
    counts = [1 + 3 * r * (r + 1) for r in range(5)]
    text = (
        f"{name} must fill whole hexagonal rings: {', '.join(map(str, counts))}, ... "
        f"(3r(r+1)+1 for r rings around the centre cell), got {value}"
    )
    rings = hex_rings_within(value) if value >= 1 else 0
    below, above = 1 + 3 * rings * (rings + 1), 1 + 3 * (rings + 1) * (rings + 2)
    return text + (f"; nearest: {below} or {above}" if value > 1 else "")


class CatnConfig(StrictModel):
    """CATN parameters; defaults are seed 000 §VI unless the description says "choice"."""

    seed: int = Field(0, ge=0, description="random seed of layout, trajectories and fading")
    n_au: int = Field(2, ge=0, le=64, description="L, aerial (primary) users")
    n_bs: int = Field(7, ge=1, description="N, terrestrial BSs on a hexagonal grid (1, 7, 19..)")
    n_tu: int = Field(21, ge=1, le=4096, description="K, terrestrial users")
    ura_rows: int = Field(4, ge=1, le=64, description="M_v, vertical URA elements")
    ura_cols: int = Field(4, ge=1, le=64, description="M_h, horizontal URA elements")
    antenna_spacing_wavelengths: float = Field(
        0.5, gt=0, le=10, description="Delta d / lambda (choice: half wavelength)"
    )
    fc_ghz: float = Field(2.0, ge=0.5, le=100, description="carrier (38.901 range 0.5-100 GHz)")
    bandwidth_mhz: float = Field(10.0, gt=0, le=2000)
    noise_dbm_per_mhz: float = Field(-114.0, ge=-200, le=0)
    noise_figure_db: float = Field(0.0, ge=0, le=30, description="added to the noise density")
    p_max_w: float = Field(20.0, gt=0, le=1000, description="P_max per BS")
    i_max_mw: float = Field(
        1.6e-10,
        gt=0,
        allow_inf_nan=True,
        description="I_max, AU interference temperature limit; inf: no constraint (2c)",
    )
    ar1_alpha: float = Field(0.64, ge=0, le=1, description="Gauss-Markov correlation alpha")
    rician_k_db: float = Field(15.0, ge=-50, le=60, description="kappa of the BS-AU channels")
    au_steering_normalized: bool = Field(
        True, description="1/sqrt(M) in a(theta, phi) as written in §III-B"
    )
    isd_m: float = Field(500.0, gt=0, le=20000, description="inter-site distance (choice)")
    min_distance_m: float = Field(35.0, ge=0, description="min BS-TU 2D distance (choice)")
    bs_height_m: float = Field(30.0, gt=1, le=150)
    tu_height_m: float = Field(
        1.5, ge=1.5, le=22.5, description="UMa UT height, 1.5-22.5 m (38.901 Table 7.4.1-1)"
    )
    tu_speed_kmh: float = Field(3.0, ge=0, le=200, description="TU speed (choice: 38.901 3 km/h)")
    tu_turn_rate_std_deg_s: float = Field(
        20.0, ge=0, le=360, description="std of the TU heading turn rate (choice)"
    )
    trajectory_step_s: float = Field(
        1.0, gt=0, le=60, description="TU trajectory knot spacing; positions interpolated"
    )
    au_altitude_m: float = Field(10_000.0, gt=0, le=30_000)
    au_speed_m_s: float = Field(250.0, ge=0, le=1000)
    au_track_spacing_m: float = Field(
        2000.0, ge=0, description="lateral offset between AU ground tracks (choice)"
    )
    slot_s: float = Field(0.02, gt=0, le=10)
    n_slots: int = Field(6000, ge=1, le=10_000_000)
    los_frozen: bool = Field(True, description="keep each TU link's LoS state for the run (§VI)")
    shadow_fading: bool = Field(False, description="add 38.901 UMa log-normal shadowing 4/6 dB")

    @field_validator("n_bs")
    @classmethod
    def _whole_hexagonal_rings(cls, n_bs: int) -> int:
        try:
            hex_ring_count(n_bs)
        except ConfigError:
            raise ValueError(hexagonal_rings_message("n_bs", n_bs)) from None
        return n_bs

    @model_validator(mode="after")
    def _check_layout(self) -> CatnConfig:
        if self.min_distance_m >= self.isd_m / math.sqrt(3):
            raise ValueError(
                f"min_distance_m must be < isd_m/sqrt(3) = {self.isd_m / math.sqrt(3):.1f} m "
                "(the cell's circumradius)"
            )
        self._check_interference_limit()
        return self

    def _check_interference_limit(self) -> None:
        """I_max is a number of noise powers in every solver and observation: it must be
        representable (at least 1e-20 of the noise, i.e. 200 dB below it)."""
        if math.isnan(self.i_max_mw):
            raise ValueError("i_max_mw = nan: give a limit in mW, or inf for no constraint")
        noise_mw = 1e3 * noise_power_w(
            self.bandwidth_mhz * 1e6,
            noise_dbm_per_mhz=self.noise_dbm_per_mhz,
            noise_figure_db=self.noise_figure_db,
        )
        if self.i_max_mw < MIN_I_MAX_OVER_NOISE * noise_mw:
            raise ValueError(
                f"i_max_mw = {self.i_max_mw:g} is {self.i_max_mw / noise_mw:.3g} of the noise "
                f"power ({noise_mw:.3g} mW); allowed: i_max_mw >= "
                f"{MIN_I_MAX_OVER_NOISE * noise_mw:.3g} (1e-20 of the noise), or inf"
            )

    @property
    def n_antennas(self) -> int:
        return self.ura_rows * self.ura_cols

    @property
    def duration_s(self) -> float:
        return self.n_slots * self.slot_s


@dataclass
class CatnState:
    """Channels and geometry of one slot for all B realizations (noise-normalised channels).

    Attributes:
        t: slot index (0 after reset).
        H: (B, K, N, M) complex, BS n -> TU k, divided by sigma.
        G: (B, L, N, M) complex, BS n -> AU l, divided by sigma.
        G_los: (B, L, N, M) complex, the unit LoS part ``e^{-j2pi d/lambda} a(theta, phi)``.
        pathloss_tu_db: (B, K, N) UMa path loss (+ shadowing when enabled).
        pathloss_au_db: (B, L, N) free-space path loss.
        los: (B, K, N) bool LoS state of each TU link.
        tu_positions: (B, K, 3), au_positions: (B, L, 3), bs_positions: (B, N, 3) metres.
        au_distance_m, au_zenith_rad, au_azimuth_rad: (B, L, N), AU l seen from BS n.
    """

    t: int
    H: torch.Tensor
    G: torch.Tensor
    G_los: torch.Tensor
    pathloss_tu_db: torch.Tensor
    pathloss_au_db: torch.Tensor
    los: torch.Tensor
    tu_positions: torch.Tensor
    au_positions: torch.Tensor
    bs_positions: torch.Tensor
    au_distance_m: torch.Tensor
    au_zenith_rad: torch.Tensor
    au_azimuth_rad: torch.Tensor


class CatnScenario(Scenario[CatnConfig]):
    """Seed 000's CATN as a batched, time-stepping channel process.

    Args:
        config: :class:`CatnConfig` (``paper`` preset when omitted).
        batch_size: B realizations (independent layouts, trajectories and fading).
        device, dtype: where and in which precision tensors live.
    """

    name = "catn"
    title = "Cognitive aerial-terrestrial network (seed 000)"
    source = "Zhou, Ge, Liang, arXiv:2502.13663, §III and §VI"
    Config = CatnConfig

    def __init__(self, config: CatnConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        self.fc_hz = cfg.fc_ghz * 1e9
        self.noise_w = noise_power_w(
            cfg.bandwidth_mhz * 1e6,
            noise_dbm_per_mhz=cfg.noise_dbm_per_mhz,
            noise_figure_db=cfg.noise_figure_db,
        )
        self.i_max_w = cfg.i_max_mw * 1e-3
        self.i_max_normalized = self.i_max_w / self.noise_w
        self.state: CatnState | None = None

    def memory_estimate(self) -> float:
        """H, G, the fading states and the LoS part (B x (K + L) x N x M complex, about six
        such tensors alive with temporaries), the trajectory knots (B x S x K x 3) and the
        per-link path losses."""
        cfg, B = self.config, self.batch_size
        links = (cfg.n_tu + cfg.n_au) * cfg.n_bs
        knots = (math.ceil(cfg.duration_s / cfg.trajectory_step_s) + 2) * cfg.n_tu * 3
        real = self._complex_bytes // 2
        return B * (6 * links * cfg.n_antennas * self._complex_bytes + (knots + 8 * links) * real)

    # ----------------------------------------------------------------------------------------
    # Realizations
    # ----------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> CatnState:
        """Draw layouts, trajectories, LoS states and initial fading; return slot 0."""
        self._seed(seed)
        cfg, B, g = self.config, self.batch_size, self.generator
        opts = {"device": self.device, "dtype": self.dtype}
        K, N, L, M = cfg.n_tu, cfg.n_bs, cfg.n_au, cfg.n_antennas

        bs_xy = hex_grid(N, cfg.isd_m, **opts)  # (N, 2)
        self.bs_positions = with_height(bs_xy.expand(B, N, 2), cfg.bs_height_m)

        # TUs: ceil(K/N) per cell, users interleaved over cells, first K kept.
        per_cell = -(-K // N)
        drops = drop_in_hexagon(
            B, per_cell, bs_xy, g, isd_m=cfg.isd_m, min_distance_m=cfg.min_distance_m
        )  # (B, N, per_cell, 2)
        tu_xy = drops.transpose(1, 2).reshape(B, N * per_cell, 2)[:, :K]
        tu_start = with_height(tu_xy, cfg.tu_height_m)
        n_knots = math.ceil(cfg.duration_s / cfg.trajectory_step_s) + 2
        half = self._network_half_width()
        self.tu_knots = smooth_random_trajectories(
            tu_start,
            n_knots,
            cfg.trajectory_step_s,
            cfg.tu_speed_kmh / 3.6,
            g,
            turn_rate_std_deg_s=cfg.tu_turn_rate_std_deg_s,
            bounds=(-half, half, -half, half),
        )  # (B, S_knots, K, 3)

        # AUs: straight east-west tracks, each at mid-simulation abreast of the network centre.
        # Even AUs fly east, odd AUs west (choice; the seed gives no coordinates); track l lies
        # at y = (l - (L-1)/2) au_track_spacing_m, so neighbouring tracks are the spacing apart
        # whatever the headings (the offset is along the common north axis, not along each
        # AU's own left normal, which would put opposite headings on one line).
        east = 1.0 - 2.0 * (torch.arange(L, **opts) % 2)  # +1 east, -1 west, exactly
        self.au_direction = torch.stack([east, torch.zeros_like(east)], -1)  # (L, 2)
        lateral = (torch.arange(L, **opts) - (L - 1) / 2) * cfg.au_track_spacing_m
        north = torch.tensor([0.0, 1.0], **opts)
        half_track = cfg.au_speed_m_s * cfg.duration_s / 2
        self.au_start_xy = -half_track * self.au_direction + lateral[:, None] * north  # (L, 2)

        # Per-link large-scale state drawn at t = 0.
        tu0 = self._tu_positions(0)
        d2d = distances_2d(tu0, self.bs_positions)
        self.los = draw_los(uma_los_probability(d2d, cfg.tu_height_m), g)  # (B, K, N)
        self.shadowing_db = (
            lognormal_shadowing_db((B, K, N), uma_shadow_fading_std_db(self.los), g, **opts)
            if cfg.shadow_fading
            else torch.zeros(B, K, N, **opts)
        )

        # Rayleigh NLoS components, h(0) ~ CN(0, I_M), drawn by the constructors.
        fading = {"device": self.device, "dtype": self.cdtype}
        self.tu_fading = GaussMarkovFading((B, K, N, M), cfg.ar1_alpha, g, **fading)
        self.au_fading = GaussMarkovFading((B, L, N, M), cfg.ar1_alpha, g, **fading)
        self.t = 0
        self._prepare_slot_constants()
        self.state = self._state()
        return self.state

    def step(self) -> CatnState:
        """Advance one slot: AR(1) fading, new positions, path losses and angles."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self.t + 1 >= self.config.n_slots:
            raise ConfigError(
                f"slot {self.t + 1} is past the simulated horizon n_slots={self.config.n_slots}; "
                "raise n_slots or reset()"
            )
        self.t += 1
        self.tu_fading.step()
        self.au_fading.step()
        if not self.config.los_frozen:
            d2d = distances_2d(self._tu_positions(self.t), self.bs_positions)
            self.los = draw_los(uma_los_probability(d2d, self.config.tu_height_m), self.generator)
        self.state = self._state()
        return self.state

    # ----------------------------------------------------------------------------------------
    # State (checkpoints)
    # ----------------------------------------------------------------------------------------

    _STATE_TENSORS = (
        "bs_positions",
        "tu_knots",
        "au_direction",
        "au_start_xy",
        "los",
        "shadowing_db",
    )

    def state_dict(self) -> dict[str, Any]:
        """Everything the channel process needs to continue exactly: the slot index, the
        generator state, the drawn layout and trajectories, LoS and shadowing states and the
        fading processes (tensors and numbers only; ``torch.load(weights_only=True)`` reads it).
        """
        if self.state is None:
            raise ConfigError("state_dict() needs a reset() scenario")
        return {
            "config": self.config.model_dump(),
            "batch_size": self.batch_size,
            "t": self.t,
            "generator": self.generator.get_state(),
            **{name: getattr(self, name) for name in self._STATE_TENSORS},
            "tu_fading": self.tu_fading.h,
            "au_fading": self.au_fading.h,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (same config and batch size) and recompute the slot's
        channels, which are a deterministic function of it."""
        if state["config"] != self.config.model_dump() or state["batch_size"] != self.batch_size:
            raise ConfigError(
                "the saved catn state was written with another configuration or batch size; "
                "build the scenario as for the saved run"
            )
        cfg, B, opts = self.config, self.batch_size, {"device": self.device}
        for name in self._STATE_TENSORS:
            setattr(self, name, state[name].to(**opts))
        fading = {"device": self.device, "dtype": self.cdtype}
        K, N, L, M = cfg.n_tu, cfg.n_bs, cfg.n_au, cfg.n_antennas
        self.tu_fading = GaussMarkovFading((B, K, N, M), cfg.ar1_alpha, self.generator, **fading)
        self.au_fading = GaussMarkovFading((B, L, N, M), cfg.ar1_alpha, self.generator, **fading)
        self.tu_fading.h = state["tu_fading"].to(**opts)
        self.au_fading.h = state["au_fading"].to(**opts)
        self.generator.set_state(state["generator"].cpu())  # after the constructors' draws
        self.t = int(state["t"])
        self._prepare_slot_constants()
        self.state = self._state()

    # ----------------------------------------------------------------------------------------
    # Geometry and channels of slot t
    # ----------------------------------------------------------------------------------------

    def _network_half_width(self) -> float:
        """Half side of the square that holds every hexagonal cell (bounds for TU motion):
        (rings + 1/2) ISD reaches the outer cells' edges; a single cell (no ring) needs its
        circumradius ISD / sqrt(3) (its vertices lie on the x axis)."""
        isd = self.config.isd_m
        return max((hex_ring_count(self.config.n_bs) + 0.5) * isd, isd / math.sqrt(3))

    def _tu_positions(self, t: int) -> torch.Tensor:
        """(B, K, 3): trajectory knots linearly interpolated at time t * slot_s."""
        u = t * self.config.slot_s / self.config.trajectory_step_s
        i = min(int(u), self.tu_knots.shape[1] - 2)
        frac = u - i
        return (1 - frac) * self.tu_knots[:, i] + frac * self.tu_knots[:, i + 1]

    def _au_positions(self, t: int) -> torch.Tensor:
        """(B, L, 3): straight flight at constant speed and altitude."""
        cfg = self.config
        xy = self.au_start_xy + cfg.au_speed_m_s * t * cfg.slot_s * self.au_direction
        return with_height(xy.expand(self.batch_size, *xy.shape), cfg.au_altitude_m)

    def au_track(self) -> torch.Tensor:
        """(B, 2, L, 3) metres: every AU's position at the first (slot 0) and the last slot
        (``n_slots - 1``) of the horizon, the two ends of its straight flight track. Needs a
        reset scenario."""
        if self.state is None:
            raise RuntimeError("call reset() before au_track()")
        last = self.config.n_slots - 1
        return torch.stack([self._au_positions(0), self._au_positions(last)], dim=1)

    def _prepare_slot_constants(self) -> None:
        """Per-episode constants of :meth:`_state` (heights, carrier, array, noise), computed
        once per reset with the very tensor operations of the library functions that
        :meth:`_state` replaces, so every slot's channels equal theirs exactly: the 38.901 UMa
        formulas (:func:`uma_pathloss_db`) with their breakpoint distance and the
        link-independent terms, FSPL's frequency term, the URA steering vector's element
        indices and the float64 BS positions of the AU geometry."""
        cfg = self.config
        f32 = {"dtype": self.dtype, "device": self.device}
        h_bs, h_ut = torch.tensor(cfg.bs_height_m, **f32), torch.tensor(cfg.tu_height_m, **f32)
        fc = torch.tensor(self.fc_hz, **f32)
        d_bp = uma_breakpoint_distance_m(h_bs, h_ut, fc, torch.tensor(1.0, **f32))
        frequency_term = 20.0 * torch.log10(fc / 1e9)
        self._uma = {
            "d_bp": d_bp,
            "frequency_term": frequency_term,
            "d3d_floor": torch.sqrt(UMA_MIN_D2D_M**2 + (h_bs - h_ut) ** 2),
            "breakpoint_term": 9.0 * torch.log10(d_bp**2 + (h_bs - h_ut) ** 2),
            "height_term": 0.6 * (h_ut - 1.5),
        }
        fc64 = torch.tensor(self.fc_hz, dtype=torch.float64, device=self.device)
        self._fspl_constant = FSPL_CONSTANT_DB + 20.0 * torch.log10(fc64 / 1e9)
        self._bs64 = self.bs_positions.double()
        real = {"dtype": self.dtype, "device": self.device}
        self._ura_rows = torch.arange(cfg.ura_rows, **real)[:, None]
        self._ura_cols = torch.arange(cfg.ura_cols, **real)[None, :]
        self._sigma = math.sqrt(self.noise_w)

    def _uma_pathloss_db(self, d2d: torch.Tensor, d3d: torch.Tensor) -> torch.Tensor:
        """:func:`uma_pathloss_db` of the TU links with this scenario's heights and carrier:
        the same operations in the same order (equal results), without the argument checks and
        without evaluating the LoS formula and log10(d_3D) three times."""
        c = self._uma
        d2d = torch.clamp(d2d, min=UMA_MIN_D2D_M)
        log_d3d = torch.log10(torch.maximum(d3d, c["d3d_floor"]))
        pl_1 = 28.0 + 22.0 * log_d3d + c["frequency_term"]
        pl_2 = 28.0 + 40.0 * log_d3d + c["frequency_term"] - c["breakpoint_term"]
        pl_los = torch.where(d2d <= c["d_bp"], pl_1, pl_2)
        pl_nlos = 13.54 + 39.08 * log_d3d + c["frequency_term"] - c["height_term"]
        return torch.where(self.los, pl_los, torch.maximum(pl_los, pl_nlos))

    def _state(self) -> CatnState:
        """Channels and geometry of slot t: the formulas of the module docstring through
        :func:`uma_pathloss_db`, :func:`zenith_azimuth`, :func:`ura_steering`, :func:`los_phase`
        and :func:`fspl_db`, inlined with the per-episode constants of
        :meth:`_prepare_slot_constants` (a test checks that every field equals those library
        functions' results)."""
        cfg = self.config
        if getattr(self, "_uma", None) is None:
            self._prepare_slot_constants()
        sigma = self._sigma
        tu = self._tu_positions(self.t)
        au = self._au_positions(self.t)
        bs = self.bs_positions

        delta = tu.unsqueeze(-2) - bs.unsqueeze(-3)  # (B, K, N, 3)
        d2d = torch.hypot(delta[..., 0], delta[..., 1])
        d3d = torch.linalg.vector_norm(delta, dim=-1)
        pl_tu = self._uma_pathloss_db(d2d, d3d)
        if cfg.shadow_fading:
            pl_tu = pl_tu + self.shadowing_db
        H = real_scaled(self.tu_fading.h, (10.0 ** (-pl_tu / 20.0) / sigma)[..., None])

        # float64 geometry: at 10 km a float32 distance is off by ~1 mm, i.e. degrees of the
        # LoS phase 2 pi d / lambda; the cost is negligible (B x L x N links).
        delta = au.double().unsqueeze(-2) - self._bs64.unsqueeze(-3)  # (B, L, N, 3)
        d_au = torch.linalg.vector_norm(delta, dim=-1)
        if not bool((d_au > 0).all()):  # fspl_db's check, kept: log10(0) would poison G
            raise ConfigError(
                f"an aerial user's track passes through a BS antenna at slot {self.t} (AU-BS "
                f"distance {float(d_au.min()):.3g} m; AU-BS 3D distances must be > 0 m): set "
                f"au_altitude_m (now {cfg.au_altitude_m:g}) away from bs_height_m (now "
                f"{cfg.bs_height_m:g}) or move the AU tracks (au_track_spacing_m)"
            )
        zenith = torch.atan2(torch.hypot(delta[..., 0], delta[..., 1]), delta[..., 2])
        azimuth = torch.atan2(delta[..., 1], delta[..., 0])
        azimuth = torch.where(azimuth <= -math.pi, azimuth + 2.0 * math.pi, azimuth)
        # ura_steering (vertical-major elements, 1/sqrt(M)), in the real dtype of the channels
        theta, phi = zenith.to(self.dtype), azimuth.to(self.dtype)
        spacing = 2.0 * math.pi * cfg.antenna_spacing_wavelengths
        per_column = spacing * torch.sin(theta) * torch.sin(phi)
        per_row = spacing * torch.cos(theta)
        phase = (
            self._ura_rows * per_row[..., None, None] + self._ura_cols * per_column[..., None, None]
        )
        steering = torch.polar(torch.ones_like(phase), phase).flatten(-2)
        steering = steering / math.sqrt(cfg.n_antennas)
        if not cfg.au_steering_normalized:
            steering = steering * math.sqrt(cfg.n_antennas)
        # los_phase: d / lambda reduced modulo 1 in float64
        cycles = torch.remainder(d_au / wavelength_m(self.fc_hz), 1.0)
        rotation = -2.0 * math.pi * cycles
        rotation = torch.polar(torch.ones_like(rotation), rotation).to(self.cdtype)
        G_los = rotation[..., None] * steering
        kappa = db_to_linear(cfg.rician_k_db)
        pl_au = (self._fspl_constant + 20.0 * torch.log10(d_au)).to(self.dtype)
        small = math.sqrt(kappa / (kappa + 1)) * G_los + math.sqrt(1 / (kappa + 1)) * (
            self.au_fading.h
        )
        G = real_scaled(small, (10.0 ** (-pl_au / 20.0) / sigma)[..., None])
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
            au_zenith_rad=theta,
            au_azimuth_rad=phi,
        )

    # ----------------------------------------------------------------------------------------
    # Summary
    # ----------------------------------------------------------------------------------------

    def link_budget(self) -> LinkBudget:
        """Link budget of the current slot, averaged over the batch.

        The reference transmission is strongest-channel association with each BS sending at
        P_max, split equally over its users with maximum-ratio beams (no interference control).
        """
        state = self.state if self.state is not None else self.reset()
        cfg = self.config
        p_max = cfg.p_max_w
        budget = LinkBudget(f"{self.title}: slot {state.t}, B={self.batch_size}")
        budget.add(
            "noise power sigma^2",
            watt_to_dbm(self.noise_w),
            "dBm",
            f"{cfg.noise_dbm_per_mhz} dBm/MHz over {cfg.bandwidth_mhz:g} MHz",
        )
        budget.add(
            "I_max",
            mw_to_dbm(cfg.i_max_mw),
            "dBm",
            f"{linear_to_db(self.i_max_normalized):.2f} dB above noise",
        )
        budget.add("P_max per BS", watt_to_dbm(p_max), "dBm", f"{p_max:g} W")

        serving = metrics.strongest_transmitter(state.H)  # (B, K)
        pl_serving = torch.gather(state.pathloss_tu_db, 2, serving[..., None]).squeeze(-1)
        budget.add("TU LoS links", state.los.to(self.dtype).mean() * 100, "%", "all BS-TU links")
        budget.add("TU path loss to serving BS", pl_serving.mean(), "dB", "mean, 38.901 UMa")
        strength = metrics.channel_strength(state.H)
        snr_single = p_max * strength.gather(2, serving[..., None]).squeeze(-1)
        budget.add(
            "TU SNR, full power MRT, alone",
            linear_to_db(snr_single).median(),
            "dB",
            "median over TUs",
        )
        load = torch.nn.functional.one_hot(serving, cfg.n_bs).sum(1).to(self.dtype)
        budget.add("TUs per loaded BS (SC)", load[load > 0].mean(), "", "strongest channel")

        w = mrt_equal_power(state.H, serving, p_max)
        result = metrics.sinr(metrics.associated_gains(state.H, w, serving))
        budget.add(
            "TU SINR, SC + MRT equal power",
            linear_to_db(result.sinr).median(),
            "dB",
            "median over TUs",
        )
        budget.add(
            "TU sum rate, SC + MRT equal power",
            metrics.sum_rate(result.rate).mean(),
            "bit/s/Hz",
            "mean over batch",
        )

        if cfg.n_au > 0:
            budget.add(
                "AU path loss (FSPL)",
                state.pathloss_au_db.mean(),
                "dB",
                f"mean over BS-AU links, {cfg.au_altitude_m / 1000:g} km altitude",
            )
            rho = metrics.primary_interference(state.G, w, serving)  # (B, L), noise units
            budget.add(
                "AU interference-to-noise",
                linear_to_db(rho).mean(),
                "dB",
                "SC + MRT at P_max, mean over AUs",
            )
            budget.add(
                "AU interference / I_max",
                linear_to_db(rho / self.i_max_normalized).mean(),
                "dB",
                "> 0 dB: constraint (2c) violated without coordination",
            )
        return budget
