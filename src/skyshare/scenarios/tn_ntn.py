"""Coexisting TN-NTN OFDM downlink, seed 001 §II and §IV.

Terrestrial BSs (TBSs) and a UAV BS (NTBS) share one band split into F subchannels per BS;
subchannel f of every BS occupies the same frequencies, so it interferes with subchannel f of
every other BS and with no other subchannel. Each BS serves its own users on orthogonal
subchannels (at most one user per subchannel, eq. (1)), and the rate of user k of BS n on
subchannel f is eq. (3):

    R_{k,n,f} = W log2(1 + |h_{k,n,f}|^2 p_{k,n,f} / (g_{k,n,f} + W N_0)),
    g_{k,n,f} = sum_{l != n} |h_{k,l,f}|^2 p_{l,f}   (the power BS l puts on subchannel f)

Channels, per 10 ms frame (§II, §IV, with the choices of ``docs/scenarios/tn_ntn.md``):

    TBS -> user:   h = 10^(-(PL_C2 + X)/20) h_small,           h_small ~ CN(0, 1) per subchannel
    NTBS -> user:  h = 10^(-PL_A2G/20) (sqrt(K/(K+1)) e^{-j 2 pi d/lambda}
                                        + sqrt(1/(K+1)) h_small)
    h_small(t+1) = alpha h_small(t) + sqrt(1 - alpha^2) e(t),   alpha = J0(2 pi f_D T_frame)

The fading evolves on the user slots active in the new frame; an inactive slot keeps its last
values until a new occupant gets a fresh draw (see ``TnNtnScenario._advance_fading``).

PL_C2 is WINNER II C2 (D1.1.2 Table 4-4) with the C2 LoS probability (Table 4-7) and its
shadowing X; PL_A2G is the air-to-ground model of Al-Hourani et al. (2014): free space plus the
urban excess loss of the LoS state drawn from the elevation-dependent LoS probability. The
Rician factor K is 10 dB on LoS UAV links and 0 (Rayleigh) on NLoS ones.

Users: the state holds K_max user slots per BS with an active mask psi (§III-E). In training
mode each reset draws min(Poisson(0.5 K_max), K_max) active users per BS at fresh positions. In
the dynamic ("flexibility", Fig. 4) mode users arrive as a Poisson process, stay an exponential
time and random-walk at 1 m/s; step() follows these traces.

All channels are noise-normalised by the per-subchannel noise W N_0 (``scenario.noise_w``), so
``|h|^2 p`` with p in watts is an SNR.

:class:`TnNtnConfig` and :class:`TnNtnState` live in :mod:`skyshare.scenarios.tn_ntn_config`
and are re-exported here.
"""

from __future__ import annotations

import math
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from skyshare import metrics
from skyshare.channels.arrays import los_phase
from skyshare.channels.fading import complex_normal_planes, rician, rician_weights
from skyshare.channels.ofdm import subchannel_bandwidth_hz, subchannel_rayleigh
from skyshare.channels.pathloss import (
    a2g_los_probability,
    a2g_pathloss_db,
    draw_los,
    lognormal_shadowing_db,
    winner2_c2_los_probability,
    winner2_c2_pathloss_db,
    winner2_c2_shadow_fading_std_db,
)
from skyshare.errors import ConfigError, ShapeError
from skyshare.geometry import (
    active_mask,
    distances_2d,
    distances_3d,
    drop_in_disc,
    drop_in_square,
    elevation,
    poisson_arrivals,
    poisson_population,
    random_walk,
    with_height,
)
from skyshare.scenarios.ahead import AheadTask, AheadWorker
from skyshare.scenarios.base import LinkBudget, Scenario
from skyshare.scenarios.tn_ntn_config import XY, TnNtnConfig, TnNtnState
from skyshare.units import db_to_linear, dbm_to_watt, linear_to_db, noise_power_w, watt_to_dbm

__all__ = ["XY", "TnNtnConfig", "TnNtnScenario", "TnNtnState"]

_SQRT_HALF = math.sqrt(0.5)  # std of each part of CN(0, 1)
# Planes smaller than this are drawn one after the other even with two threads: handing one to
# the worker thread costs some 25 us, the draw of 2^15 normals about 110 us.
_CONCURRENT_MIN_NUMEL = 1 << 15
_MASK_64 = (1 << 64) - 1


def _stream_seed(seed: int, stream: int = 1) -> int:
    """Seed of the ``stream``-th extra generator of a scenario seeded with ``seed``: the
    SplitMix64 output for ``seed + stream`` golden-ratio increments (a 64-bit integer, well
    mixed, so that it shares no stream with the main generator of any nearby seed)."""
    z = (int(seed) + stream * 0x9E3779B97F4A7C15) & _MASK_64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK_64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK_64
    return z ^ (z >> 31)


class TnNtnScenario(Scenario[TnNtnConfig]):
    """Seed 001's coexisting TN-NTN OFDM downlink as a batched, frame-stepping channel process.

    Args:
        config: :class:`TnNtnConfig` (``paper`` preset when omitted).
        batch_size: B realizations (independent users, traces and fading).
        device, dtype: where and in which precision tensors live.
        draw_ahead: on the CPU, draw the next frame's fading in a worker thread while the
            current frame is played (:meth:`_launch_prefetch`): with one torch thread the
            draw, the env's largest cost, then runs on a second core. The values are the same
            with or without it. Meant for ``torch.set_num_threads(1)`` on a machine with a
            core to spare; with more torch threads its worker competes with theirs.

    Attributes:
        noise_w: noise power W N_0 NF of one subchannel, in watts.
        subchannel_bandwidth_hz: W = B / F.
        p_max_w: p_max per BS in watts.
        min_rate_bps: eta_k in bit/s.
        is_uav: (N,) bool, which BSs are NTBSs.
        generator: the scenario's random stream (users, traces, LoS, shadowing) and the real
            parts of the small-scale fading draws.
        imag_generator: the imaginary parts of the small-scale fading draws (a second stream,
            so that the two halves of a frame's draw can run on two cores; see
            :meth:`_draw_fading`). Reseeded with the scenario at every :meth:`reset`, from
            its seed (``_stream_seed``). Frequency-correlated fading (``n_taps``) draws from
            ``generator`` only.
    """

    name = "tn_ntn"
    title = "Coexisting TN-NTN OFDM downlink (seed 001)"
    source = "Le, Vu, Andrenacci, Chatzinotas, constrained MARL for TN-NTN, §II and §IV"
    Config = TnNtnConfig

    def __init__(
        self, config: TnNtnConfig | None = None, *, draw_ahead: bool = False, **kwargs
    ) -> None:
        super().__init__(config, **kwargs)
        if not isinstance(draw_ahead, bool):
            raise ConfigError(f"draw_ahead must be True or False, got {draw_ahead!r}")
        self.draw_ahead = draw_ahead
        cfg = self.config
        self.fc_hz = cfg.fc_ghz * 1e9
        self.subchannel_bandwidth_hz = subchannel_bandwidth_hz(
            cfg.bandwidth_mhz * 1e6, cfg.n_subchannels
        )
        self.noise_w = noise_power_w(
            self.subchannel_bandwidth_hz,
            noise_dbm_per_hz=cfg.noise_dbm_per_hz,
            noise_figure_db=cfg.noise_figure_db,
        )
        self.p_max_w = dbm_to_watt(cfg.p_max_dbm)
        self.min_rate_bps = cfg.min_rate_mbps * 1e6
        self.alpha = cfg.ar1_alpha
        self.n_users = cfg.n_bs * cfg.k_max
        self.is_uav = torch.arange(cfg.n_bs, device=self.device) >= cfg.n_tbs
        self.serving = torch.arange(cfg.n_bs, device=self.device).repeat_interleave(cfg.k_max)
        self.half_side_m = cfg.area_side_m / 2
        self.state: TnNtnState | None = None
        # Small-scale fading as real and imaginary planes (2, B, P, N, F) (see small_scale).
        # Large per-frame buffers are reused (a new 44 MB tensor per frame costs more in page
        # faults than its arithmetic): _fading (this frame) and _spare (the last frame), each
        # with the lazy H of the state built on it (a weak reference: detached before reuse),
        # and scratch buffers that never leave the scenario: the draws e(t) and the gathered
        # h(t) of the updated user slots (_row_buffer), the |H| parts.
        self._fading: torch.Tensor | None = None
        self._fading_user: weakref.ref | None = None
        self._spare: torch.Tensor | None = None
        self._spare_user: weakref.ref | None = None
        self._row_buffers: list[torch.Tensor | None] = [None] * 4  # see _row_buffer
        self._parity = 0  # which of row buffers 0 and 1 holds the last step's updated rows
        self._last_rows: torch.Tensor | None = None  # (A,) long, those rows (None: unknown)
        # (B P,) bool: the user slots the last step wrote into _fading, whose spare buffer then
        # holds the frame before (equal on the other slots); None when that is not known.
        self._written: torch.Tensor | None = None
        self.imag_generator = torch.Generator(device=self.device)
        self.imag_generator.manual_seed(_stream_seed(self.generator.initial_seed()))
        # the worker thread of the two-stream draws and of draw_ahead (_launch_prefetch)
        self._ahead = AheadWorker(self, ("generator", "imag_generator"), "tn_ntn-fading")
        self._links_cache: _Links | None = None  # training mode: the episode's, see _links
        self._ready_gain: torch.Tensor | None = None  # the worker's gains of this step

    # ----------------------------------------------------------------------------------------
    # Realizations
    # ----------------------------------------------------------------------------------------

    @property
    def small_scale(self) -> torch.Tensor | None:
        """(B, P, N, F) complex: h_small of the current frame (None before a reset).

        The scenario holds it as real and imaginary planes ``(2, B, P, N, F)`` (the Gauss-Markov
        step and ``|H|^2`` need no complex arithmetic); this builds the complex tensor, a copy.
        Assigning a complex tensor sets it. Inactive user slots hold the values of their last
        active frame (:meth:`_advance_fading`)."""
        if self._fading is None:
            return None
        return torch.complex(self._fading[0], self._fading[1])

    @small_scale.setter
    def small_scale(self, value: torch.Tensor | None) -> None:
        self.cancel_prefetch()
        self._fading = None if value is None else torch.stack((value.real, value.imag))
        self._written = None  # the spare buffer no longer holds the frame before
        self._last_rows = None  # nor the row buffers the last rows
        self._fading_user = None

    def memory_estimate(self) -> float:
        """The subchannel gains of every user slot from every BS (B x N K_max x N x F
        complex): the fading planes of this frame and the last, four row buffers (draws,
        gathers, the parts of H), the env's gain features and their scratch, a frame's gains and a
        lazily built H or gain, about ten such tensors."""
        cfg = self.config
        slots = cfg.n_bs * cfg.k_max
        return 10 * self.batch_size * slots * cfg.n_bs * cfg.n_subchannels * self._complex_bytes

    def _seed(self, seed: int | None) -> None:
        """Seed both generators: ``generator`` with ``seed`` (the config's when None) and
        ``imag_generator`` with a seed derived from it."""
        self.cancel_prefetch()
        super()._seed(seed)
        self.imag_generator.manual_seed(_stream_seed(self.generator.initial_seed()))

    def reset(self, seed: int | None = None) -> TnNtnState:
        """Draw users (training mode) or user traces (dynamic mode), LoS states, shadowing and
        the initial fading; return frame 0."""
        self._seed(seed)
        cfg, B, g = self.config, self.batch_size, self.generator
        N, K, P = cfg.n_bs, cfg.k_max, self.n_users
        opts = {"device": self.device, "dtype": self.dtype}
        bs_xy = torch.tensor([*cfg.tbs_xy_m, *cfg.uav_xy_m], **opts).reshape(N, 2)
        heights = torch.where(self.is_uav, cfg.uav_height_m, cfg.tbs_height_m).to(self.dtype)
        self.bs_positions = with_height(bs_xy, heights).expand(B, N, 3)

        if cfg.dynamic_users:
            # One M/M/K_max/K_max trace per BS (B*N independent traces), resolved every
            # trace_step_s; every arrival takes a fresh drop and walks from there.
            trace = poisson_arrivals(  # at least one step, also for a horizon below one step
                B * N,
                cfg.horizon_s,
                cfg.trace_step_s,
                cfg.arrival_rate_per_min / 60.0,
                cfg.mean_holding_s,
                K,
                g,
                device=self.device,
            )
            S = trace.active.shape[1]
            self.active_trace = trace.active.reshape(B, N, S, K).transpose(1, 2).flatten(2)
            # A new occupant of slot p at trace step s (also when the slot was vacated and
            # refilled within the same step).
            self.arrives = trace.admitted.reshape(B, N, S, K).transpose(1, 2).flatten(2)
            steps = torch.arange(S, device=self.device)[None, :, None]
            # occupant_start[b, s, p]: trace step at which the occupant of slot p arrived.
            self.occupant_start = torch.where(self.arrives, steps, 0).cummax(dim=1).values
            self.drops_xy = self._drop_users(S)  # (B, S, P, 2): the drop of an arrival at s
            free_walk = random_walk(
                torch.zeros(B, P, 3, **opts), S + 1, cfg.trace_step_s, cfg.user_speed_m_s, g
            )
            self.free_walk_xy = free_walk[..., :2]  # (B, S + 1, P, 2), unbounded
        else:
            counts = poisson_population(
                B, K, cfg.active_mean_fraction * K, g, extra_shape=(N,), device=self.device
            )
            self.active = active_mask(counts, K)  # (B, N, K)
            self.drops_xy = self._drop_users(1)  # (B, 1, P, 2)

        # LoS state and shadowing of every drop, frozen for the occupant's stay.
        drops = with_height(self.drops_xy, cfg.ue_height_m)
        self.los_draws, self.shadowing_draws = self._draw_large_scale(drops)  # (B, S, P, N)

        self._fading, self._fading_user = self._draw_fading(), None  # (2, B, P, N, F)
        self._written, self._last_rows = None, None
        self.t = 0
        self.trace_index = 0
        self.arrived = None  # _state(): every active user is new after a reset
        return self._rebuild_state()

    def _rebuild_state(self) -> TnNtnState:
        """The state of frame ``t`` from the fading planes (after a reset, or a restore of the
        attributes by the env's ``load_state_dict``), and the next frame's prefetch."""
        self._links_cache = None  # new users, or restored ones
        live = self._active_slots(self.t).flatten()
        self.state = self._state(None if bool(live.all()) else live.nonzero().squeeze(1))
        self._launch_prefetch()
        return self.state

    def step(self) -> TnNtnState:
        """Advance one frame: AR(1) small-scale fading; in dynamic mode also positions, the
        active mask, path losses and LoS phases along the traces."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        cfg = self.config
        if cfg.dynamic_users and self.t + 1 >= cfg.horizon_slots:
            raise ConfigError(
                f"frame {self.t + 1} is past the simulated horizon horizon_slots="
                f"{cfg.horizon_slots}; raise horizon_slots or reset()"
            )
        self.t += 1
        self.arrived = torch.zeros_like(self.state.arrived)
        if cfg.dynamic_users:
            index = self._trace_index(self.t)
            if index != self.trace_index:
                self.trace_index = index
                self.arrived = self.arrives[:, index]  # (B, P): new occupants, fresh fading
        fading = self._take_spare()
        if fading is None:
            fading, self._written = torch.empty_like(self._fading), None
        rows = self._advance_fading(fading, self._active_slots(self.t), self.arrived)
        self._spare, self._spare_user = self._fading, self._fading_user
        self._fading, self._fading_user = fading, None
        self.state = self._state(*rows)
        self._launch_prefetch()
        return self.state

    def _drop_users(self, n_draws: int) -> torch.Tensor:
        """(B, n_draws, P, 2): TBS users uniform in a disc of radius ``tbs_user_radius_m``
        around their TBS, NTBS users uniform in the whole square (choices, see the docs)."""
        cfg, B, g = self.config, self.batch_size, self.generator
        K, n_tbs, n_uav = cfg.k_max, cfg.n_tbs, cfg.n_uav
        opts = {"device": self.device, "dtype": self.dtype}
        tbs_xy = torch.tensor(cfg.tbs_xy_m, **opts).reshape(n_tbs, 1, 2)
        tbs_users = drop_in_disc(B, n_draws * n_tbs * K, cfg.tbs_user_radius_m, g, **opts)
        tbs_users = tbs_users.reshape(B, n_draws, n_tbs, K, 2) + tbs_xy
        uav_users = drop_in_square(B, n_draws * n_uav * K, cfg.area_side_m, g, **opts)
        uav_users = uav_users.reshape(B, n_draws, n_uav, K, 2)
        return torch.cat([tbs_users, uav_users], dim=2).reshape(B, n_draws, self.n_users, 2)

    def _draw_large_scale(self, users_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LoS states and shadowing for users ``(B, S, P, 3)`` -> two ``(B, S, P, N)`` tensors.

        TBS links: WINNER II C2 LoS probability of the 2D distance (choice, as TR 38.901) and
        C2 shadowing (4/6 dB LoS before/after the breakpoint, 8 dB NLoS). NTBS links: LoS
        probability of the elevation (Al-Hourani et al. 2014), no shadowing (its excess losses
        are already the environment's mean; choice).
        """
        cfg = self.config
        bs = self.bs_positions[:, None]  # (B, 1, N, 3)
        n_tbs = cfg.n_tbs
        d2d = distances_2d(users_m, bs)
        elevation_rad = elevation(bs[:, :, n_tbs:], users_m).transpose(-1, -2)
        probability = torch.cat(
            [
                winner2_c2_los_probability(d2d[..., :n_tbs]),
                a2g_los_probability(elevation_rad, environment=cfg.a2g_environment),
            ],
            dim=-1,
        )
        los = draw_los(probability, self.generator)
        if not cfg.shadowing:
            return los, torch.zeros_like(d2d)
        d3d = distances_3d(users_m, bs)
        std_tbs = winner2_c2_shadow_fading_std_db(
            d3d[..., :n_tbs], cfg.tbs_height_m, cfg.ue_height_m, self.fc_hz, los[..., :n_tbs]
        )
        std_db = torch.cat([std_tbs, torch.zeros_like(d3d[..., n_tbs:])], dim=-1)
        return los, lognormal_shadowing_db(d3d, std_db, self.generator)

    def _active_slots(self, t: int) -> torch.Tensor:
        """(B, P) bool: the user slots active in frame t (``state.user_active`` of frame t)."""
        if not self.config.dynamic_users:
            return self.active.flatten(1)
        return self.active_trace[:, self._trace_index(t)]

    def _advance_fading(
        self, out: torch.Tensor, active: torch.Tensor, arrived: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """h_small of the next frame into ``out`` (2, B, P, N, F) from h(t) in ``_fading``.

        Per user slot (row ``(b, p)`` of N F values of each plane):

        * active, same occupant: the Gauss-Markov step ``h(t+1) = alpha h(t) + sqrt(1 -
          alpha^2) e(t)`` (as :func:`gauss_markov_step`), with ``e(t)`` drawn like h(0) so that
          a frequency correlation (``n_taps``) is preserved;
        * new occupant (``arrived``, dynamic mode): a fresh draw, independent of h(t);
        * inactive: h(t) as it is. An inactive slot is never observed, served or scored (its
          ``state.H`` and ``state.gain`` are 0), so its fading is not evolved (the draw is the
          env's largest cost): the planes keep the values of its last active frame (of the
          reset for a slot that was never active) until it holds a new occupant, which gets a
          fresh draw.

        When every slot is active and none is new (the common case at high load), two passes
        over the planes: the draw of ``sqrt(1 - alpha^2) e(t)`` (scaled inside the draw) into
        ``out``, then ``+ alpha h(t)`` in place. Otherwise the updated rows are drawn compactly
        (``(2, A, N, F)`` for A rows), ``alpha h(t)`` of those rows is added and they are
        written back; the other rows of ``out`` take h(t): ``out`` is the spare buffer holding
        h(t-1), which differs from h(t) only on the rows the last step wrote (``_written``), so
        only those are copied (none in training mode, where the active slots stay the same for
        the episode; all of them when ``out`` is new or ``_written`` unknown). h(t) of the
        updated rows is the last step's compact rows when the rows are the same (training
        mode: no gather), else gathered from ``_fading``. Either way the values are those of
        the formula up to float rounding (one rounding of the scaled draw, one of the fused
        multiply-add), and the draws do not depend on the thread count (:meth:`_draw_fading`).

        Args:
            out: (2, B, P, N, F) real buffer, not ``_fading``: the spare buffer (h(t-1) when
                ``_written`` is known).
            active: (B, P) bool, the slots active in the next frame.
            arrived: (B, P) bool, the slots with a new occupant in the next frame.

        Returns:
            ``(rows, values)`` for :meth:`_power_gain`: ``(None, None)`` when every slot is
            active; else the active rows (A,) long and their new fading ``values`` (2, A, N,
            F) when the updated rows are exactly these (a scratch buffer, valid until the step
            after next), or None (gathered from ``out`` by :meth:`_power_gain`).
        """
        alpha, scale = self.alpha, math.sqrt(1.0 - self.alpha * self.alpha)
        active_rows = active.flatten().nonzero().squeeze(1)
        if alpha == 1.0:  # h(t+1) = h(t): nothing to draw for the evolving slots
            active = torch.zeros_like(active)
        evolve = (active & ~arrived).flatten()  # (B P,)
        fresh = arrived.flatten().nonzero().squeeze(1)
        written, self._written = self._written, evolve | arrived.flatten()
        last_rows, self._last_rows = self._last_rows, None
        self._ready_gain = None
        if fresh.numel() == 0 and bool(evolve.all()):
            self._draw_fading(out, scale=scale)
            if alpha != 0.0:  # (alpha = 0: h(t+1) = e(t), the draws are the fading)
                out.add_(self._fading, alpha=alpha)
            return None, None
        self._copy_unwritten(out, written)
        rows = evolve.nonzero().squeeze(1)
        draws = self._evolve_rows(rows, last_rows, scale) if rows.numel() > 0 else None
        if draws is not None:
            self._scatter_rows(out, rows, draws)
        if fresh.numel() > 0:
            self._scatter_rows(out, fresh, self._draw_fading(self._row_buffer(fresh.numel(), 2)))
            return active_rows, None
        self._last_rows = rows if draws is not None else None
        if draws is not None and rows.numel() == active_rows.numel():  # rows = active_rows
            return rows, draws
        return active_rows, None

    def _evolve_rows(
        self, rows: torch.Tensor, last_rows: torch.Tensor | None, scale: float
    ) -> torch.Tensor:
        """h(t+1) = alpha h(t) + scale e(t) of the user slots ``rows`` (A,) long: (2, A, N, F)
        in the row buffer the last step did not use. The draws (and the AR step, and in
        training mode the gains) come from the draw-ahead worker when it ran for these rows;
        h(t) is the last step's rows when they are the same, else gathered from ``_fading``."""
        alpha = self.alpha
        self._parity ^= 1  # the draws go to the buffer that does not hold h(t)'s rows
        draws = self._row_buffer(rows.numel(), self._parity)
        prefetch = self._take_prefetch(rows)
        if prefetch is None:
            self._draw_fading(draws, scale=scale)
        elif prefetch.info["stepped"]:  # the worker took the AR step (and maybe the gains)
            self._ready_gain = prefetch.result
            return draws
        if alpha != 0.0:
            if last_rows is not None and torch.equal(last_rows, rows):
                previous = self._row_buffer(len(rows), self._parity ^ 1)  # h(t), kept
            else:
                previous = self._gather_rows(self._fading, rows, self._row_buffer(len(rows), 2))
            draws.add_(previous, alpha=alpha)
        return draws

    def _copy_unwritten(self, out: torch.Tensor, written: torch.Tensor | None) -> None:
        """h(t) into the rows of ``out`` that this step does not write (``self._written``):
        all of ``_fading`` when ``written`` (the rows of the last step) is None, else only the
        rows the last step wrote (``out`` holds h(t-1), equal to h(t) on the others)."""
        if written is None:
            out.copy_(self._fading)
            return
        stale = (written & ~self._written).nonzero().squeeze(1)
        if stale.numel() > 0:
            copies = self._gather_rows(self._fading, stale, self._row_buffer(len(stale), 2))
            self._scatter_rows(out, stale, copies)

    @staticmethod
    def _gather_rows(planes: torch.Tensor, rows: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``planes`` (2, B, P, N, F) at the user slots ``rows`` (A,) long (indices into
        B P), written into ``out`` (2, A, N, F) contiguous and returned."""
        row = planes.shape[-2] * planes.shape[-1]
        flat = planes.view(2, -1, row)  # (2, B P, N F)
        for plane in range(2):  # on dim 0 of each plane: torch's fast contiguous-row path
            torch.index_select(flat[plane], 0, rows, out=out[plane].view(rows.numel(), row))
        return out

    @staticmethod
    def _scatter_rows(planes: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
        """``planes`` (2, B, P, N, F) at the user slots ``rows`` (A,) long = ``values``
        (2, A, N, F), in place."""
        row = planes.shape[-2] * planes.shape[-1]
        flat = planes.view(2, -1, row)
        for plane in range(2):
            flat[plane].index_copy_(0, rows, values[plane].view(rows.numel(), row))

    def _row_buffer(self, n_rows: int, which: int = 0) -> torch.Tensor:
        """Reused contiguous (2, n_rows, N, F) scratch buffer number ``which`` for n_rows <= B
        P user slots: 0 and 1 take the updated rows of alternate steps (the last step's rows
        are h(t) of this one), 2 gathered rows, 3 the parts of H (:func:`_power_of_rows`); the
        storage of each is allocated once (a new
        44 MB tensor per frame costs more in page faults than its arithmetic)."""
        cfg = self.config
        row = cfg.n_bs * cfg.n_subchannels
        size = 2 * self.batch_size * self.n_users * row
        if self._row_buffers[which] is None or self._row_buffers[which].numel() != size:
            self._row_buffers[which] = torch.empty(size, device=self.device, dtype=self.dtype)
        storage = self._row_buffers[which]
        return storage[: 2 * n_rows * row].view(2, n_rows, cfg.n_bs, cfg.n_subchannels)

    def _take_spare(self) -> torch.Tensor | None:
        """The spare fading buffer (the last frame's), free for new values (None if there is
        none yet or its shape is stale): a state built on it whose H has not been built yet
        gets its own copy of the planes first."""
        spare, user = self._spare, self._spare_user() if self._spare_user is not None else None
        self._spare, self._spare_user = None, None
        if user is not None:
            user.fading = user.fading.clone()
        if spare is None or spare.shape != self._fading.shape:
            return None
        return spare

    def _draw_fading(self, out: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
        """``scale`` times a draw of h_small ``CN(0, 1)`` per subchannel, as real and imaginary
        planes (2, B, P, N, F), written into ``out`` (a new tensor when None); or, with an
        ``out`` of shape (2, A, N, F), the draws of A user slots (rows) only.

        Without taps: i.i.d. ``N(0, scale^2 / 2)`` parts (:func:`complex_normal_planes`, the
        scale inside the draw), the real plane from :attr:`generator` and the imaginary plane
        from :attr:`imag_generator`. On the CPU with more than one torch thread the two planes
        (of at least 2^15 values each) are drawn at the same time, the imaginary one in the
        scenario's worker thread (:meth:`_executor`); each generator always fills the same
        plane, so the values do not depend on the thread count. With taps (``n_taps``):
        :meth:`_draw_small_scale` from :attr:`generator`, then scaled.
        """
        cfg = self.config
        rows = (self.batch_size, self.n_users) if out is None else tuple(out.shape[1:-2])
        if cfg.n_taps is not None:
            small = self._draw_small_scale(rows)
            if out is None:
                out = torch.stack((small.real, small.imag))
            else:
                out[0].copy_(small.real)
                out[1].copy_(small.imag)
            return out if scale == 1.0 else out.mul_(scale)
        # subchannel_rayleigh without taps is complex_normal of (B, P, N, F), variance 1.
        shape = (*rows, cfg.n_bs, cfg.n_subchannels)
        concurrent = math.prod(shape) >= _CONCURRENT_MIN_NUMEL
        return complex_normal_planes(
            shape,
            self.generator,
            std=scale * _SQRT_HALF,
            out=out,
            device=self.device,
            dtype=self.dtype,
            imag_generator=self.imag_generator,
            executor=self._executor() if concurrent else None,
        )

    def _launch_prefetch(self) -> None:
        """Start drawing the next frame's innovations in the worker thread, so that the draw
        (the env's largest cost) runs while the agents of this frame act.

        Only with ``draw_ahead`` on the CPU, without taps and with alpha < 1, and for a next
        frame that takes the compact row path of
        :meth:`_advance_fading` with no new occupant (training mode every frame; dynamic mode
        except where a trace step brings arrivals): the rows that evolve are then the next
        frame's active slots, known now. The worker draws ``sqrt(1 - alpha^2) e(t+1)`` of those
        rows into the row buffer the next step draws into, the real plane from ``generator``
        and then the imaginary one from ``imag_generator``: the values the step would draw
        itself, so results do not depend on the thread count. Until the step takes the draws,
        the two generators are ahead by them; :meth:`cancel_prefetch` (called before anything
        else uses the generators: reset, seeding, checkpoints) waits for the worker and
        restores their states. No prefetch past ``horizon_slots`` (the env resets there).
        """
        cfg = self.config
        if not self.draw_ahead or self.device.type != "cpu" or cfg.n_taps is not None:
            return
        if self.alpha == 1.0:
            return
        t = self.t + 1
        if t >= cfg.horizon_slots:
            return
        if cfg.dynamic_users:
            index = self._trace_index(t)
            if index != self.trace_index and bool(self.arrives[:, index].any()):
                return
        active = self._active_slots(t).flatten()
        rows = active.nonzero().squeeze(1)
        if rows.numel() == 0 or rows.numel() == active.numel():  # nothing / the full path
            return
        parity = self._parity ^ 1
        out = self._row_buffer(rows.numel(), parity)
        # h(t) of the same rows is in the other row buffer: the worker also takes the AR step,
        # and in training mode (the links stay) the next frame's gains of the active rows
        previous = links = None
        if self.alpha != 0.0 and self._last_rows is not None:
            if torch.equal(self._last_rows, rows):
                previous = self._row_buffer(rows.numel(), self._parity)
        if previous is not None and self._links_cache is not None:
            links = self._links_cache.at_rows(rows)
        self._ahead.submit(
            self._draw_ahead, out, previous, links,
            rows=rows, parity=parity, stepped=previous is not None,
        )  # fmt: skip

    def _draw_ahead(
        self,
        out: torch.Tensor,
        previous: torch.Tensor | None,
        links: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor | None:
        """The worker's part of the next step (:meth:`_launch_prefetch`): the same operations
        :meth:`_advance_fading` and :meth:`_power_gain` would run, on the same buffers.

        ``out`` (2, A, N, F) gets ``sqrt(1 - alpha^2) e(t+1)`` (the real plane from
        ``generator``, then the imaginary one from ``imag_generator``), then ``+ alpha h(t)``
        when ``previous`` (h(t) of the rows) is given; with ``links`` (the rows' LoS and NLoS
        parts) the gains (A, N, F) of the next frame are returned (else None).
        """
        std = math.sqrt(1.0 - self.alpha * self.alpha) * _SQRT_HALF
        complex_normal_planes(
            tuple(out.shape[1:]), self.generator, std=std, out=out,
            imag_generator=self.imag_generator,
        )  # fmt: skip
        if previous is None:
            return None
        out.add_(previous, alpha=self.alpha)
        if links is None:
            return None
        return _power_of_rows(out, *links, self._row_buffer(out.shape[1], 3))

    def _take_prefetch(self, rows: torch.Tensor) -> AheadTask | None:
        """The prefetch for the evolving ``rows`` of this step (its draws (2, A, N, F) in the
        row buffer, with the AR step taken when ``info["stepped"]``, and the gains, when
        computed, in ``result``), or None (no prefetch, or one for other rows: dropped, the
        generators restored)."""
        task = self._ahead.take()
        if task is None:
            return None
        if task.info["parity"] == self._parity and torch.equal(task.info["rows"], rows):
            return task
        self._ahead.restore(task)
        return None

    def cancel_prefetch(self) -> None:
        """Wait for a prefetched draw of the next frame (:meth:`_launch_prefetch`), drop it and
        put ``generator`` and ``imag_generator`` back where they were before it. Call before
        using the generators between steps (the env does for its seed draws and
        checkpoints); a no-op when nothing is prefetched."""
        self._ahead.cancel()

    def _executor(self) -> ThreadPoolExecutor | None:
        """The worker (:meth:`_worker`) that draws the imaginary fading planes while the
        calling thread draws the real ones; None (draw one plane after the other) on other
        devices than the CPU or when torch uses a single thread (``torch.get_num_threads()``).
        """
        if self.device.type != "cpu" or torch.get_num_threads() < 2:
            return None
        return self._ahead.pool()

    def _draw_small_scale(self, rows: tuple[int, ...]) -> torch.Tensor:
        """(*rows, N, F) complex CN(0, 1) per subchannel (seed 001 §II, subchannel_rayleigh),
        for the user slots ``rows``: (B, P) or (A,)."""
        cfg = self.config
        return subchannel_rayleigh(
            (*rows, cfg.n_bs),
            cfg.n_subchannels,
            self.generator,
            n_taps=cfg.n_taps,
            delay_decay_taps=cfg.delay_decay_taps,
            device=self.device,
            dtype=self.cdtype,
        )

    # ----------------------------------------------------------------------------------------
    # Geometry and channels of frame t
    # ----------------------------------------------------------------------------------------

    def _trace_index(self, t: int) -> int:
        """Trace step holding frame t (its arrivals and departures apply from its start)."""
        return int(t * self.config.frame_s / self.config.trace_step_s + 1e-9)

    def _at_occupant_start(self, draws: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """``draws: (B, S, P, X)`` picked at ``start: (B, P) long`` -> ``(B, P, X)``."""
        index = start[:, None, :, None].expand(-1, 1, -1, draws.shape[-1])
        return torch.gather(draws, 1, index).squeeze(1)

    def _reflect(self, xy: torch.Tensor) -> torch.Tensor:
        """Fold free positions into the square (specular reflection at its walls), as
        ``skyshare.geometry.random_walk`` does for its bounds."""
        low, width = -self.half_side_m, 2 * self.half_side_m
        folded = torch.remainder(xy - low, 2 * width)
        return low + width - (folded - width).abs()

    def _occupants(self, t: int) -> tuple[torch.Tensor, ...]:
        """Positions (B, P, 3), active (B, N, K), LoS and shadowing (B, P, N) of frame t."""
        cfg = self.config
        if not cfg.dynamic_users:
            users = with_height(self.drops_xy[:, 0], cfg.ue_height_m)
            return users, self.active, self.los_draws[:, 0], self.shadowing_draws[:, 0]
        u = t * cfg.frame_s / cfg.trace_step_s
        s = self._trace_index(t)
        start = self.occupant_start[:, s]  # (B, P)
        walk = self.free_walk_xy
        walked = walk[:, s] + (u - s) * (walk[:, s + 1] - walk[:, s])
        walked = walked - self._at_occupant_start(walk, start)
        xy = self._reflect(self._at_occupant_start(self.drops_xy, start) + walked)
        active = self.active_trace[:, s].reshape(self.batch_size, cfg.n_bs, cfg.k_max)
        los = self._at_occupant_start(self.los_draws, start)
        shadowing = self._at_occupant_start(self.shadowing_draws, start)
        return with_height(xy, cfg.ue_height_m), active, los, shadowing

    def _pathloss_db(self, users_m: torch.Tensor, los: torch.Tensor) -> torch.Tensor:
        """(B, P, N) path loss: WINNER II C2 (3D distance) to TBSs, air-to-ground to NTBSs."""
        cfg = self.config
        n_tbs = cfg.n_tbs
        d3d = distances_3d(users_m, self.bs_positions)
        pl_tbs = winner2_c2_pathloss_db(
            d3d[..., :n_tbs], cfg.tbs_height_m, cfg.ue_height_m, self.fc_hz, los[..., :n_tbs]
        )
        pl_uav = a2g_pathloss_db(
            d3d[..., n_tbs:], self.fc_hz, los[..., n_tbs:], environment=cfg.a2g_environment
        )
        return torch.cat([pl_tbs, pl_uav], dim=-1)

    def _state(
        self, rows: torch.Tensor | None = None, values: torch.Tensor | None = None
    ) -> TnNtnState:
        """The state of frame ``t`` on the fading planes ``_fading``: ``rows`` (A,) long, the
        active slots (None: all), and ``values`` (2, A, N, F) their fading (None: in
        ``_fading``), as :meth:`_advance_fading` returns them."""
        links = self._links()
        channel = _LazyChannel(self._fading, links.phase, links.rician_k, links.amplitude)
        self._fading_user = weakref.ref(channel)  # step() detaches it before reusing _fading
        rows, active_gain, gain = self._power_gain(self._fading, links, rows, values)
        return TnNtnState(
            t=self.t,
            active_rows=rows,
            active_gain=active_gain,
            pathloss_db=links.pathloss,
            shadowing_db=links.shadowing,
            los=links.los,
            active=links.active,
            user_positions=links.users,
            bs_positions=self.bs_positions,
            serving=self.serving,
            arrived=links.active.flatten(1) if self.arrived is None else self.arrived,
            channel=channel,
            full_gain=gain,
        )

    def _links(self) -> _Links:
        """Positions, activity and the large-scale part of every link in frame ``t``. In
        training mode users do not move within an episode: computed at the reset (and after
        a restore, :meth:`_rebuild_state`) and reused by every frame."""
        cfg = self.config
        if self._links_cache is not None and not cfg.dynamic_users:
            return self._links_cache
        users, active, los, shadowing = self._occupants(self.t)
        pathloss = self._pathloss_db(users, los) + shadowing
        # Rician on LoS NTBS links (K = rician_k_db), Rayleigh (K = 0) everywhere else; the LoS
        # phase exp(-j 2 pi d / lambda) is the same on every subchannel (choice).
        rician_k = torch.where(self.is_uav & los, db_to_linear(cfg.rician_k_db), 0.0).to(self.dtype)
        phase = los_phase(distances_3d(users, self.bs_positions), self.fc_hz, dtype=self.cdtype)
        # An inactive slot holds no user: its channel (H and gain) is 0.
        live = active.reshape(self.batch_size, self.n_users, 1)
        amplitude = torch.where(live, 10.0 ** (-pathloss / 20.0) / math.sqrt(self.noise_w), 0.0)
        # H = los_part + nlos_part h_small (see _power_gain)
        los_weight, nlos_weight = rician_weights(rician_k)
        los_part = torch.stack((phase.real, phase.imag)) * (los_weight * amplitude)
        links = _Links(
            users, active, los, shadowing, pathloss, rician_k, phase, amplitude,
            los_part, nlos_weight * amplitude,
        )  # fmt: skip
        if not cfg.dynamic_users:
            self._links_cache = links
        return links

    def _power_gain(
        self,
        fading: torch.Tensor,
        links: _Links,
        rows: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``|H|^2`` of the active slots, without forming the complex H.

        ``H = amplitude (sqrt(K/(K+1)) phase + sqrt(1/(K+1)) h_small)`` per link (the weights
        are 0 and 1 on Rayleigh links, K = 0). Three passes over the rows: the parts ``[Re H,
        Im H] = amplitude sqrt(K/(K+1)) [Re phase, Im phase] + amplitude sqrt(1/(K+1))
        h_small`` (one fused multiply-add per value, into a scratch buffer), then ``Re H^2``
        and ``+ Im H^2`` (a multiply-add). The gain equals ``H.real^2 + H.imag^2`` of
        ``state.H`` up to float rounding (a few units in the last place: the complex expression
        rounds its products in another order). Inactive slots are not computed (their gain is
        0: ``state.gain`` fills them in when it is asked for).

        Args:
            fading: (2, B, P, N, F) real, the planes of h_small.
            links: the frame's :class:`_Links` (``los_part`` (2, B, P, N) and ``nlos_part``
                (B, P, N): ``amplitude sqrt(K/(K+1)) phase`` and ``amplitude sqrt(1/(K+1))``).
            rows: (A,) long, the active rows ``b P + p`` (None: every slot is active).
            values: (2, A, N, F), ``fading`` at ``rows`` (None: gathered here).

        Returns:
            ``active_rows`` (A,) long, ``active_gain`` (A, N, F) and the full gain (B, P, N,
            F) when every slot is active (``active_gain`` is then a view of it), else None.
        """
        B, P, N, F = fading.shape[1:]
        if rows is None:
            values = fading.view(2, B * P, N, F)
            los_rows = links.los_part.view(2, B * P, N, 1)
            nlos_rows = links.nlos_part.view(B * P, N, 1)
            gain = _power_of_rows(values, los_rows, nlos_rows, self._row_buffer(B * P, 3))
            return torch.arange(B * P, device=gain.device), gain, gain.view(B, P, N, F)
        A = rows.numel()
        ready, self._ready_gain = self._ready_gain, None
        if ready is not None and values is not None:  # computed by the draw-ahead worker
            return rows, ready, None
        if values is None:
            values = self._gather_rows(fading, rows, self._row_buffer(A, 2))
        los_rows, nlos_rows = links.at_rows(rows)
        return rows, _power_of_rows(values, los_rows, nlos_rows, self._row_buffer(A, 3)), None

    # ----------------------------------------------------------------------------------------
    # Schedules, powers and rates
    # ----------------------------------------------------------------------------------------

    def _check_assignment(self, assignment: torch.Tensor) -> None:
        cfg = self.config
        shape = (self.batch_size, cfg.n_bs, cfg.n_subchannels)
        if not isinstance(assignment, torch.Tensor) or assignment.dtype != torch.long:
            raise ShapeError(f"assignment must be a long tensor of shape (B, N, F) = {shape}")
        if tuple(assignment.shape) != shape:
            raise ShapeError(
                f"assignment must have shape (B, N, F) = {shape}, got {tuple(assignment.shape)}"
            )
        if bool(((assignment < -1) | (assignment >= cfg.k_max)).any()):
            raise ConfigError(
                f"assignment values must be -1 (off) or a user slot in [0, K_max={cfg.k_max})"
            )

    def _check_power(self, assignment: torch.Tensor, power_w: torch.Tensor) -> None:
        self._check_assignment(assignment)
        if power_w.shape != assignment.shape:
            raise ShapeError(
                f"power_w must have the shape of assignment {tuple(assignment.shape)}, "
                f"got {tuple(power_w.shape)}"
            )
        if bool((power_w < 0).any()) or bool(power_w.isnan().any()):
            raise ConfigError("power_w must be >= 0 W everywhere")

    def equal_power(self, assignment: torch.Tensor) -> torch.Tensor:
        """Power of seed 001 §III-C-2: p_max split equally over the M SRBs of a BS, then
        equally over the SRB's active subchannels (``assignment >= 0``).

        SRB m holds the contiguous subchannels ``[m S, (m + 1) S)`` with S = ``srb_size``
        (choice; the paper only asks for equal-size subsets). The per-BS total is
        ``p_max * (SRBs with an active subchannel) / M <= p_max`` (constraint (5)).

        Args:
            assignment: (B, N, F) long, user slot 0..K_max-1 of BS n on subchannel f, -1 off.

        Returns:
            power_w: (B, N, F) float, watts.
        """
        self._check_assignment(assignment)
        return self.srb_power(assignment >= 0)

    def srb_power(self, on: torch.Tensor) -> torch.Tensor:
        """:meth:`equal_power` of the "on" subchannels ``on (..., F')`` bool of whole SRBs
        (F' a multiple of ``srb_size``: one BS's band, or one agent's block): p_max / M per
        SRB, split equally over its on subchannels. Returns (..., F') watts."""
        cfg = self.config
        per_srb = on.unflatten(-1, (-1, cfg.srb_size))  # (..., SRBs, S)
        n_on = per_srb.sum(-1, keepdim=True).clamp_min(1).to(self.dtype)
        return ((self.p_max_w / cfg.n_srb) / n_on * per_srb).flatten(-2)

    def round_robin_assignment(self, active: torch.Tensor) -> torch.Tensor:
        """Reference schedule: subchannel f of BS n goes to its ``(f mod A_n)``-th active user.

        Args:
            active: (B, N, K_max) bool, e.g. ``state.active``.

        Returns:
            assignment: (B, N, F) long (-1 on every subchannel of a BS with no active user).
        """
        from skyshare.solvers.ofdm_allocation import round_robin_allocation

        cfg = self.config
        if active.shape != (self.batch_size, cfg.n_bs, cfg.k_max) or active.dtype != torch.bool:
            raise ShapeError(
                f"active must be a bool tensor (B, N, K_max) = "
                f"{(self.batch_size, cfg.n_bs, cfg.k_max)}, got {tuple(active.shape)}"
            )
        return round_robin_allocation(active, cfg.n_subchannels)  # the rule lives with solvers

    def subchannel_sinr(
        self, state: TnNtnState, assignment: torch.Tensor, power_w: torch.Tensor
    ) -> metrics.SinrResult:
        """SINR of every user slot on every subchannel through the SINR kernel (eq. (3)).

        Builds the kernel's beamformers ``W: (B, N, P, F, 1)``, zero except
        ``W[b, n, n K_max + assignment[b, n, f], f] = sqrt(power_w[b, n, f])``, so that at most one
        user per subchannel of a BS is served (eq. (1)); ``A = effective_gains(H, W)`` is
        ``(B, P, P, F)`` (memory grows as B P^2 F). Receiver p's signal on f is
        ``|h_{p,n,f}|^2 p_{n,f}`` when BS n serves it there (0 otherwise) and its interference is
        ``g = sum_{l != n} |h_{p,l,f}|^2 p_{l,f}``; the noise is 1 (normalised).

        Args:
            state: a state of this scenario.
            assignment: (B, N, F) long, user slot 0..K_max-1 of BS n on subchannel f, -1 off.
            power_w: (B, N, F) float, transmit power of BS n on subchannel f in watts (ignored
                where the subchannel is off).

        Returns:
            :class:`skyshare.metrics.SinrResult` with ``sinr``: (B, P, F).
        """
        self._check_power(assignment, power_w)
        cfg = self.config
        B, N, F = assignment.shape
        on = assignment >= 0
        stream = (torch.arange(N, device=assignment.device)[:, None] * cfg.k_max) + (
            assignment.clamp_min(0)
        )
        amplitude = torch.sqrt(power_w.to(self.dtype)) * on
        W = torch.zeros(B, N, self.n_users, F, 1, dtype=self.cdtype, device=self.device)
        W.scatter_(2, stream[:, :, None, :, None], amplitude[:, :, None, :, None].to(self.cdtype))
        return metrics.sinr(metrics.effective_gains(state.H_kernel, W))

    def subchannel_rates(
        self, state: TnNtnState, assignment: torch.Tensor, power_w: torch.Tensor
    ) -> torch.Tensor:
        """Rates ``R_{k,n,f}`` of eq. (3) in bit/s: (B, P, F).

        ``W log2(1 + SINR)`` of the served links (:func:`skyshare.metrics.ofdm_link_sinr`, the
        same values as :meth:`subchannel_sinr` without its B P^2 F gain matrix); inactive user
        slots get rate 0 (a subchannel given to an empty slot carries no data, but its power
        still interferes).
        Per-user rates are ``.sum(-1)`` (see :meth:`user_rates`).

        Args:
            state, assignment, power_w: as in :meth:`subchannel_sinr`.
        """
        self._check_power(assignment, power_w)
        links = metrics.ofdm_link_sinr(state.gain, assignment, power_w, self.config.k_max)
        rate = self.subchannel_bandwidth_hz * torch.log2(1.0 + links.sinr) * links.on
        out = rate.new_zeros(rate.shape[0], self.n_users, rate.shape[-1])
        out.scatter_add_(1, links.slot, rate)  # (B, N, F) -> receiver axis (B, P, F)
        return out * state.user_active[..., None]

    def user_rates(
        self, state: TnNtnState, assignment: torch.Tensor, power_w: torch.Tensor
    ) -> torch.Tensor:
        """Per-user rates ``sum_f R_{k,n,f}`` in bit/s: (B, P) (the left side of (4))."""
        return self.subchannel_rates(state, assignment, power_w).sum(-1)

    # ----------------------------------------------------------------------------------------
    # Summary
    # ----------------------------------------------------------------------------------------

    def link_budget(self) -> LinkBudget:
        """Link budget of the current frame per tier (TBS, NTBS), averaged over the batch.

        The reference schedule is :meth:`round_robin_assignment` with :meth:`equal_power`
        (p_max / F on every subchannel of a BS with an active user); all BSs transmit on all
        subchannels, so every user sees full co-channel interference. Tier rows are over the
        active users of that tier's BSs; a tier without any has one row: 0 active users.
        """
        state = self.state if self.state is not None else self.reset()
        cfg = self.config
        budget = LinkBudget(f"{self.title}: frame {state.t}, B={self.batch_size}")
        p_sub_w = self.p_max_w / cfg.n_subchannels
        budget.add("subchannel width W", self.subchannel_bandwidth_hz / 1e3, "kHz", "B / F")
        budget.add(
            "noise per subchannel W N0",
            watt_to_dbm(self.noise_w),
            "dBm",
            f"{cfg.noise_dbm_per_hz:g} dBm/Hz + NF {cfg.noise_figure_db:g} dB",
        )
        budget.add("p_max / F", watt_to_dbm(p_sub_w), "dBm", f"p_max = {cfg.p_max_dbm:g} dBm")
        budget.add(
            "active users per BS",
            state.active.sum(-1).to(self.dtype).mean(),
            "",
            "mean over BSs and batch",
        )

        users = torch.arange(self.n_users, device=self.device)
        own_pathloss = state.pathloss_db[:, users, self.serving]  # (B, P)
        own_gain = state.gain[:, users, self.serving]  # (B, P, F)
        own_snr_db = linear_to_db(p_sub_w * own_gain.mean(-1))  # (B, P)

        assignment = self.round_robin_assignment(state.active)
        power = self.equal_power(assignment)
        result = self.subchannel_sinr(state, assignment, power)
        served = result.signal > 0  # (B, P, F): user slot scheduled on subchannel f
        rates = self.subchannel_bandwidth_hz * result.rate * served * state.user_active[..., None]
        user_rate = rates.sum(-1)  # (B, P)
        meets = (user_rate >= self.min_rate_bps).to(self.dtype)
        sinr_db = linear_to_db(result.sinr)

        for tier, name, model in (
            (False, "TBS", "WINNER II C2"),
            (True, "NTBS", "air-to-ground"),
        ):
            in_tier = (self.is_uav[self.serving] == tier)[None] & state.user_active  # (B, P)
            if not bool(in_tier.any()):  # no BS in the tier, or no active user: no rows
                if bool((self.is_uav == tier).any()):  # (their means would be NaN)
                    budget.add(f"{name} active users", 0.0, "", "tier rows left out")
                continue
            budget.add(
                f"{name} path loss to own BS",
                _masked_mean(own_pathloss, in_tier),
                "dB",
                f"{model}, mean over active users",
            )
            budget.add(
                f"{name} LoS to own BS",
                100 * _masked_mean(state.los[:, users, self.serving].to(self.dtype), in_tier),
                "%",
                "active users",
            )
            budget.add(
                f"{name} SNR per subchannel at p_max/F",
                _masked_mean(own_snr_db, in_tier),
                "dB",
                "mean over active users of 10log10(mean_f SNR)",
            )
            served_in_tier = served & in_tier[..., None]
            budget.add(
                f"{name} SINR, round robin + equal power",
                sinr_db[served_in_tier].median() if bool(served_in_tier.any()) else math.nan,
                "dB",
                "median over scheduled (user, subchannel)",
            )
            budget.add(
                f"{name} rate per user",
                _masked_mean(user_rate, in_tier) / 1e6,
                "Mbit/s",
                "round robin + equal power, mean over active users",
            )
            budget.add(
                f"{name} users meeting eta",
                100 * _masked_mean(meets, in_tier),
                "%",
                f"rate >= {cfg.min_rate_mbps:g} Mbit/s",
            )
        if bool(state.user_active.any()):  # (a NaN mean without any)
            budget.add(
                "users meeting eta",
                100 * _masked_mean(meets, state.user_active),
                "%",
                "all active users, round robin + equal power",
            )
        budget.add(
            "system throughput",
            metrics.sum_rate(rates).mean() / 1e6,
            "Mbit/s",
            "round robin + equal power, mean over batch",
        )
        return budget

    def trace_positions(self) -> torch.Tensor:
        """Dynamic mode: (B, S, P, 2) metres, the position of each user slot's occupant at
        every trace step (every ``trace_step_s``) over the horizon, whether the slot is active
        then or not; ``active_trace: (B, S, P)`` says when it is and ``arrives: (B, S, P)`` when
        a new occupant takes the slot. Needs a reset scenario in dynamic mode."""
        if not self.config.dynamic_users or self.state is None:
            raise ConfigError("trace_positions() needs a reset scenario with dynamic_users=true")
        start = self.occupant_start  # (B, S, P)
        index = start[..., None].expand(-1, -1, -1, 2)
        walk = self.free_walk_xy[:, :-1]
        walked = walk - torch.gather(walk, 1, index)
        return self._reflect(torch.gather(self.drops_xy, 1, index) + walked)


def _power_of_rows(
    values: torch.Tensor, los_rows: torch.Tensor, nlos_rows: torch.Tensor, parts: torch.Tensor
) -> torch.Tensor:
    """``|H|^2`` (A, N, F) of A user slots from their fading planes ``values`` (2, A, N, F):
    the parts ``[Re H, Im H] = los_rows + nlos_rows h_small`` (``los_rows`` (2, A, N, 1),
    ``nlos_rows`` (A, N, 1)) in one multiply-add into the scratch ``parts`` (2, A, N, F), then
    ``Re^2 + Im^2``. The one formula of the scenario's gains (main thread and worker alike)."""
    torch.addcmul(los_rows, values, nlos_rows, out=parts)
    return torch.mul(parts[0], parts[0]).addcmul_(parts[1], parts[1])


@dataclass
class _Links:
    """Geometry and large-scale channel of one frame (:meth:`TnNtnScenario._links`): the
    state's fields, the :class:`_LazyChannel`'s factors and the parts of H per link."""

    users: torch.Tensor  # (B, P, 3)
    active: torch.Tensor  # (B, N, K_max) bool
    los: torch.Tensor  # (B, P, N) bool
    shadowing: torch.Tensor  # (B, P, N) dB
    pathloss: torch.Tensor  # (B, P, N) dB, shadowing included
    rician_k: torch.Tensor  # (B, P, N)
    phase: torch.Tensor  # (B, P, N) complex
    amplitude: torch.Tensor  # (B, P, N), 0 on inactive slots
    los_part: torch.Tensor  # (2, B, P, N)
    nlos_part: torch.Tensor  # (B, P, N)
    _rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def at_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``los_part`` (2, A, N, 1) and ``nlos_part`` (A, N, 1) of the user slots ``rows``
        (A,) long (rows ``b P + p``), kept for the next frame with the same rows."""
        if self._rows is None or not torch.equal(self._rows[0], rows):
            los = self.los_part.flatten(1, 2).index_select(1, rows)[..., None]
            nlos = self.nlos_part.flatten(0, 1).index_select(0, rows)[..., None]
            self._rows = (rows, los, nlos)
        return self._rows[1], self._rows[2]


class _LazyChannel:
    """``H`` of one frame: (B, P, N, F) complex, built when called (``TnNtnState.channel``).

    ``H = amplitude (sqrt(K/(K+1)) phase + sqrt(1/(K+1)) h_small)``, :func:`rician` times the
    amplitude. ``fading`` (2, B, P, N, F) real holds the planes of h_small; the scenario
    replaces it by a copy before it reuses the buffer for a later frame.
    """

    __slots__ = ("__weakref__", "amplitude", "fading", "phase", "rician_k")

    def __init__(
        self,
        fading: torch.Tensor,
        phase: torch.Tensor,
        rician_k: torch.Tensor,
        amplitude: torch.Tensor,
    ) -> None:
        self.fading, self.phase, self.rician_k, self.amplitude = fading, phase, rician_k, amplitude

    def __call__(self) -> torch.Tensor:
        small = torch.complex(self.fading[0], self.fading[1])
        return rician(self.phase[..., None], small, self.rician_k) * self.amplitude[..., None]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` holds (NaN when it holds nowhere)."""
    count = mask.sum()
    if int(count) == 0:
        return torch.tensor(math.nan)
    return torch.where(mask, values, 0.0).sum() / count
