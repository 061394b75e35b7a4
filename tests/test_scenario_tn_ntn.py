"""Tests for the seed 001 TN-NTN scenario (skyshare.scenarios.tn_ntn).

Reference numbers are computed here by hand from the standards' formulas with ``math``:
WINNER II D1.1.2 Table 4-4 (C2 path loss), Al-Hourani et al. 2014 (air-to-ground), thermal noise
-174 dBm/Hz, seed 001 eq. (3) (rates) and §III-C-2 (equal power split).
"""

from __future__ import annotations

import cmath
import contextlib
import dataclasses
import gc
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from inspect_check import assert_inspect_json_is_the_link_budget
from skyshare import cli
from skyshare.channels.arrays import los_phase
from skyshare.channels.fading import rician
from skyshare.channels.pathloss import a2g_pathloss_db, winner2_c2_pathloss_db
from skyshare.errors import ConfigError, ShapeError
from skyshare.plots import plot_topology
from skyshare.scenarios import SCENARIOS
from skyshare.scenarios.tn_ntn import TnNtnConfig, TnNtnScenario, TnNtnState, _stream_seed

C_M_S = 299_792_458.0


def _scenario(batch: int = 2, preset: str = "quick", **overrides) -> TnNtnScenario:
    return TnNtnScenario.from_preset(preset, overrides=overrides, batch_size=batch)


def _noise_w(bandwidth_hz: float, n_subchannels: int, noise_figure_db: float = 0.0) -> float:
    """W N0 NF in watts: -174 dBm/Hz over one subchannel."""
    dbm = -174.0 + 10 * math.log10(bandwidth_hz / n_subchannels) + noise_figure_db
    return 10 ** ((dbm - 30) / 10)


def _winner2_c2_db(d_m: float, los: bool, fc_ghz: float = 2.0) -> float:
    """WINNER II D1.1.2 Table 4-4, C2, h_BS = 25 m, h_MS = 1.5 m (h' = h - 1 m)."""
    h_bs, h_ms = 25.0, 1.5
    if not los:
        return (
            (44.9 - 6.55 * math.log10(h_bs)) * math.log10(d_m)
            + 34.46
            + 5.83 * math.log10(h_bs)
            + 23 * math.log10(fc_ghz / 5)
        )
    breakpoint_m = 4 * (h_bs - 1) * (h_ms - 1) * fc_ghz * 1e9 / 3.0e8
    if d_m < breakpoint_m:
        return 26 * math.log10(d_m) + 39 + 20 * math.log10(fc_ghz / 5)
    return (
        40 * math.log10(d_m)
        + 13.47
        - 14 * math.log10(h_bs - 1)
        - 14 * math.log10(h_ms - 1)
        + 6 * math.log10(fc_ghz / 5)
    )


def _a2g_urban_db(d_m: float, los: bool, fc_ghz: float = 2.0) -> float:
    """Free space (TR 38.811 constant 32.45) plus the urban excess loss 1 / 20 dB."""
    return 32.45 + 20 * math.log10(fc_ghz) + 20 * math.log10(d_m) + (1.0 if los else 20.0)


def _hand_pathloss_db(state: TnNtnState, b: int, p: int, n: int) -> float:
    user = state.user_positions[b, p].tolist()
    bs = state.bs_positions[b, n].tolist()
    d3d = math.dist(user, bs)
    los = bool(state.los[b, p, n])
    return _a2g_urban_db(d3d, los) if n == 2 else _winner2_c2_db(d3d, los)


def _bessel_j0(x: float) -> float:
    return sum((-1) ** m * (x / 2) ** (2 * m) / math.factorial(m) ** 2 for m in range(30))


# ------------------------------------------------------------------------------ structure


def test_shapes_dtypes_and_layout():
    scenario = _scenario(batch=3)
    state = scenario.reset()
    B, P, N, F, K = 3, 30, 3, 80, 10
    assert state.H.shape == (B, P, N, F) and state.H.dtype == torch.complex64
    assert state.H_kernel.shape == (B, P, N, F, 1)
    assert state.pathloss_db.shape == (B, P, N) and state.pathloss_db.dtype == torch.float32
    assert state.shadowing_db.shape == (B, P, N)
    assert state.los.shape == (B, P, N) and state.los.dtype == torch.bool
    assert state.active.shape == (B, N, K) and state.active.dtype == torch.bool
    assert state.user_positions.shape == (B, P, 3) and state.bs_positions.shape == (B, N, 3)
    assert state.serving.dtype == torch.long
    assert state.serving.tolist() == [0] * K + [1] * K + [2] * K
    assert state.bs_positions[1].tolist() == [[-250, 0, 25], [250, 0, 25], [0, 0, 200]]
    assert torch.allclose(state.user_positions[..., 2], torch.tensor(1.5))
    assert state.t == 0 and scenario.step().t == 1
    assert scenario.subchannel_bandwidth_hz == pytest.approx(250e3)
    assert scenario.noise_w == pytest.approx(_noise_w(20e6, 80), rel=1e-9)

    state64 = TnNtnScenario(scenario.config, dtype=torch.float64).reset()
    assert state64.H.dtype == torch.complex128 and state64.pathloss_db.dtype == torch.float64


def test_same_seed_same_tensors_different_seed_different():
    first, second = _scenario(), _scenario()
    a, b = first.reset(seed=3), second.reset(seed=3)
    assert torch.equal(a.H, b.H) and torch.equal(a.active, b.active)
    assert torch.equal(first.step().H, second.step().H)
    assert not torch.equal(second.reset(seed=4).H, a.H)
    assert torch.equal(first.reset().H, second.reset().H)  # the config's seed


def test_channel_equals_recomputation_for_one_sliced_realization():
    scenario = _scenario(batch=3, n_subchannels=40, srb_size=40)
    scenario.reset()
    state = scenario.step()
    b = 1
    users, bs = state.user_positions[b : b + 1], state.bs_positions[b : b + 1]
    los = state.los[b : b + 1]
    d3d = torch.linalg.vector_norm(users[:, :, None] - bs[:, None], dim=-1)  # (1, P, N)
    pathloss = (
        torch.cat(
            [
                winner2_c2_pathloss_db(d3d[..., :2], 25.0, 1.5, 2e9, los[..., :2]),
                a2g_pathloss_db(d3d[..., 2:], 2e9, los[..., 2:]),
            ],
            dim=-1,
        )
        + state.shadowing_db[b : b + 1]
    )
    k_factor = torch.zeros_like(pathloss)
    k_factor[..., 2] = torch.where(los[..., 2], 10.0, 0.0)
    small = rician(los_phase(d3d, 2e9)[..., None], scenario.small_scale[b : b + 1], k_factor)
    expected = small * (10 ** (-pathloss / 20) / math.sqrt(_noise_w(20e6, 40)))[..., None]
    live = state.user_active[b : b + 1, :, None, None]
    assert bool(live.any()) and not bool(live.all())
    expected = torch.where(live, expected, 0.0)  # an inactive slot holds no user: H = 0
    assert torch.allclose(state.pathloss_db[b : b + 1], pathloss, atol=1e-4)
    assert torch.allclose(state.H[b : b + 1], expected, rtol=1e-4, atol=0)
    assert torch.equal(state.gain[b : b + 1] == 0, ~live.expand_as(state.gain[b : b + 1]))
    # TBS users stay inside their disc, NTBS users inside the square.
    xy = state.user_positions[..., :2]
    to_own_tbs = (xy[:, :20] - state.bs_positions[:, :2, :2].repeat_interleave(10, 1)).norm(dim=-1)
    assert bool((to_own_tbs <= 250 + 1e-3).all())
    assert bool((xy[:, 20:].abs() <= 500).all())


def test_pathloss_of_every_link_by_hand():
    scenario = _scenario(batch=2, shadowing=False)
    state = scenario.reset()
    assert bool((state.shadowing_db == 0).all())
    assert bool(state.los[..., 2].any()) and bool((~state.los[..., :2]).any())  # both states
    for b in range(2):
        for p in range(30):
            for n in range(3):
                expected = _hand_pathloss_db(state, b, p, n)
                assert float(state.pathloss_db[b, p, n]) == pytest.approx(expected, abs=2e-3)


def test_mean_channel_gain_matches_pathloss_and_noise_by_hand():
    scenario = _scenario(batch=4, shadowing=False)
    state = scenario.reset()
    noise = _noise_w(20e6, 80)
    ratios = []
    for b in range(4):
        for p in range(30):
            if not bool(state.user_active[b, p]):  # no user, no channel (H = 0)
                assert not bool(state.H[b, p].any())
                continue
            for n in range(3):
                mean_gain = float(state.H[b, p, n].abs().square().mean())  # over 80 subchannels
                ratios.append(mean_gain * noise * 10 ** (_hand_pathloss_db(state, b, p, n) / 10))
    # E|h_small|^2 = 1 for Rayleigh and Rician: about 180 active links x 80 subchannels.
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.03)


def test_uav_los_links_are_rician_k_10db_others_rayleigh():
    scenario = _scenario(batch=16)
    state = scenario.reset()
    amplitude = 10 ** (-state.pathloss_db / 20) / math.sqrt(_noise_w(20e6, 80))
    power = (state.H / amplitude[..., None]).abs().square()  # |h_small|^2
    fourth = power.square()
    uav_los = torch.zeros_like(state.los)
    uav_los[..., 2] = state.los[..., 2]
    live = state.user_active[..., None].expand_as(uav_los)  # inactive slots: H = 0
    uav_los, rayleigh = uav_los & live, ~uav_los & live
    k = 10.0  # 10 dB; E|g|^4 of a unit-power Rician channel is (2 + 4K + K^2)/(1 + K)^2
    assert float(fourth[uav_los].mean()) == pytest.approx(
        (2 + 4 * k + k * k) / (1 + k) ** 2, abs=0.05
    )
    assert float(fourth[rayleigh].mean()) == pytest.approx(2.0, abs=0.1)  # Rayleigh: 2
    assert float(power[uav_los].mean()) == pytest.approx(1.0, abs=0.03)


def test_gauss_markov_correlation_is_jakes():
    scenario = _scenario(batch=8)
    scenario.reset()
    before = scenario.small_scale.clone()
    active = scenario.step().user_active  # only active user slots evolve
    before, after = before[active], scenario.small_scale[active]
    correlation = complex((after * before.conj()).mean()) / float(before.abs().square().mean())
    x = 2 * math.pi * (1.0 * 2e9 / C_M_S) * 0.01  # 2 pi f_D T, 1 m/s at 2 GHz, 10 ms
    assert correlation.real == pytest.approx(_bessel_j0(x), abs=0.01)  # 0.956
    assert abs(correlation.imag) < 0.01
    assert float(after.abs().square().mean()) == pytest.approx(1.0, abs=0.02)


# Dynamic mode with frequent arrivals and short stays: new occupants and departures every few
# frames (the fresh draws and the row updates of the fading step).
BUSY_DYNAMIC = {
    "dynamic_users": True,
    "trace_step_s": 0.01,
    "arrival_rate_per_min": 3000.0,  # about one arrival per BS every other frame
    "mean_holding_s": 0.05,
}


@contextlib.contextmanager
def _with_threads(n: int):
    """torch.set_num_threads(n) inside, the previous count restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _frames(scenario: TnNtnScenario, n_steps: int, seed: int = 5) -> list[TnNtnState]:
    states = [scenario.reset(seed=seed)]
    states += [scenario.step() for _ in range(n_steps)]
    return states


@pytest.mark.parametrize("overrides", [{}, BUSY_DYNAMIC])
def test_fading_draws_do_not_depend_on_the_thread_count(overrides):
    """Two streams (real planes from ``generator``, imaginary from ``imag_generator``): drawn
    concurrently with two torch threads, one after the other with one, the same values (a
    batch large enough for concurrent draws, also of the active rows only)."""
    with _with_threads(1):
        one = _scenario(batch=16, **overrides)
        serial = [(s.H, s.gain) for s in _frames(one, 6)]
        assert one._ahead._pool is None  # no worker thread with one torch thread
    with _with_threads(2):
        two = _scenario(batch=16, **overrides)
        states = _frames(two, 6)
        parallel = [(s.H, s.gain) for s in states]
        assert two._ahead._pool is not None
    if overrides:  # new occupants (fresh draws) and inactive slots (row updates) on the way
        assert any(bool(s.arrived.any()) for s in states[1:])
        assert any(bool((~s.user_active).any()) for s in states[1:])
    for (h1, g1), (h2, g2) in zip(serial, parallel, strict=True):
        assert torch.equal(h1, h2) and torch.equal(g1, g2)


def test_reset_reseeds_both_fading_streams():
    scenario, fresh = _scenario(), _scenario()
    scenario.reset(seed=1)
    scenario.step()
    assert torch.equal(scenario.reset(seed=7).H, fresh.reset(seed=7).H)
    assert torch.equal(scenario.step().H, fresh.step().H)
    assert torch.equal(scenario.imag_generator.get_state(), fresh.imag_generator.get_state())
    first = scenario.reset(seed=7).H
    other = scenario.reset(seed=8).H
    assert not torch.equal(first.imag, other.imag) and not torch.equal(first.real, other.real)
    # the imaginary stream is not the real stream, nor the main stream of a nearby seed
    planes = scenario._fading
    assert not torch.equal(planes[0], planes[1])
    scenario._seed(8)
    imag = torch.Generator().manual_seed(_stream_seed(8))
    assert torch.equal(scenario.imag_generator.get_state(), imag.get_state())
    for seed in (7, 8, 9):
        main = torch.randn(16, generator=torch.Generator().manual_seed(seed))
        assert not torch.equal(main, torch.randn(16, generator=imag.clone_state()))


def _expected_next_fading(
    scenario: TnNtnScenario, h: torch.Tensor, real_state: torch.Tensor, imag_state: torch.Tensor
) -> torch.Tensor:
    """h(t+1) of every user slot by the formula, in float64, from h(t) (2, B, P, N, F) and
    the generators' states before the step: the draws rebuilt in the scenario's order (the
    evolving slots, then the new occupants; real parts from one generator, imaginary parts
    from the other), inactive slots unchanged."""
    state, alpha = scenario.state, scenario.alpha
    real, imag = torch.Generator().set_state(real_state), torch.Generator().set_state(imag_state)
    flat = h.double().reshape(2, -1, *h.shape[-2:])  # (2, B P, N, F)
    expected = flat.clone()
    evolve = (state.user_active & ~state.arrived).flatten().nonzero().squeeze(1)
    fresh = state.arrived.flatten().nonzero().squeeze(1)
    for rows, a in ((evolve, alpha), (fresh, 0.0)):
        if rows.numel() == 0:
            continue
        draws = torch.empty(2, rows.numel(), *h.shape[-2:], dtype=h.dtype)
        draws[0].normal_(generator=real)
        draws[1].normal_(generator=imag)
        innovation = math.sqrt(1 - a * a) * math.sqrt(0.5) * draws.double()
        expected[:, rows] = a * flat[:, rows] + innovation
    return expected.reshape(h.shape)


@pytest.mark.parametrize(
    "overrides",
    [
        {"fading_correlation": 0.64},
        {"fading_correlation": 0.64, "every_slot_active": True},
        {"fading_correlation": 0.9, **BUSY_DYNAMIC},
    ],
)
def test_gauss_markov_step_is_the_formula_within_rounding(overrides):
    """h(t+1) = alpha h(t) + sqrt(1 - alpha^2) e(t), e(t) ~ CN(0, 1), on the active user slots
    (the scaled draw, then a fused multiply-add), a fresh draw for new occupants, no change on
    inactive slots: against the formula in float64 on the same draws, rebuilt from the
    generators' states (float32 rounding only; inactive slots bit for bit)."""
    every_slot_active = overrides.pop("every_slot_active", False)
    scenario = _scenario(batch=3, **overrides)
    scenario.reset(seed=3)
    if every_slot_active:  # (set by hand: the one-pass update of the whole buffer)
        scenario.active.fill_(True)
        scenario.state = scenario._state()
    seen_arrivals = seen_inactive = False
    for _ in range(8):
        h = scenario._fading.clone()  # (2, B, P, N, F)
        real_state = scenario.generator.get_state()
        imag_state = scenario.imag_generator.get_state()
        state = scenario.step()
        expected = _expected_next_fading(scenario, h, real_state, imag_state)
        torch.testing.assert_close(scenario._fading.double(), expected, rtol=1e-6, atol=1e-6)
        inactive = ~state.user_active
        assert torch.equal(scenario._fading[:, inactive], h[:, inactive])
        if bool(state.user_active.any()):
            assert not torch.equal(scenario._fading[:, ~inactive], h[:, ~inactive])
        seen_arrivals |= bool(state.arrived.any())
        seen_inactive |= bool(inactive.any())
    assert seen_inactive != every_slot_active
    assert seen_arrivals == ("dynamic_users" in overrides)


def test_power_gain_is_abs_h_squared_within_rounding():
    """state.gain (three passes on the real planes) against |H|^2 of the complex expression
    in float64: equal up to float32 rounding, relative to the size of the terms of H."""
    scenario = _scenario(batch=3)
    scenario.reset(seed=2)
    state = scenario.step()
    lazy = state.channel
    small = torch.complex(lazy.fading[0].double(), lazy.fading[1].double())
    k = lazy.rician_k.double()[..., None]
    los = torch.sqrt(k / (k + 1)) * lazy.phase.to(torch.complex128)[..., None]
    nlos = torch.sqrt(1 / (k + 1)) * small
    amplitude = lazy.amplitude.double()[..., None]
    expected = (amplitude * (los + nlos)).abs().square()
    scale = (amplitude * (los.abs() + nlos.abs())).square()  # bound of |H|^2 for rounding
    assert bool(((state.gain.double() - expected).abs() <= 1e-6 * scale).all())
    torch.testing.assert_close(state.gain, state.H.abs().square(), rtol=1e-4, atol=0)


def test_fading_statistics_unit_power_and_lag_one_correlation():
    """Over 30 frames of the active links of 16 x 30 x 3 x 80 (about 58k complex samples per
    frame at half load): E|h|^2 = 1, each part has variance 1/2, the parts are uncorrelated
    (also across the two streams at lag one) and the lag-one correlation is alpha. With the
    frames' correlation (alpha^2 = 0.64 for |h|^2) the std of each estimate is below 0.002;
    the tolerances are 0.01."""
    alpha, n_frames = 0.8, 30
    scenario = _scenario(batch=16, fading_correlation=alpha)
    active = scenario.reset(seed=4).user_active  # (training mode: fixed for the episode)
    previous = scenario.small_scale[active]
    lag, power, real_var, imag_var, cross, cross_lag = [], [], [], [], [], []
    for _ in range(n_frames):
        scenario.step()
        current = scenario.small_scale[active]
        lag.append(complex((current * previous.conj()).mean()))
        power.append(float(current.abs().square().mean()))
        real_var.append(float(current.real.square().mean()))
        imag_var.append(float(current.imag.square().mean()))
        cross.append(float((current.real * current.imag).mean()))
        cross_lag.append(float((current.imag * previous.real).mean()))
        previous = current
    correlation = sum(lag) / len(lag)
    assert correlation.real == pytest.approx(alpha, abs=0.01)
    assert abs(correlation.imag) < 0.01
    assert sum(power) / n_frames == pytest.approx(1.0, abs=0.01)
    assert sum(real_var) / n_frames == pytest.approx(0.5, abs=0.01)
    assert sum(imag_var) / n_frames == pytest.approx(0.5, abs=0.01)
    assert abs(sum(cross) / n_frames) < 0.01 and abs(sum(cross_lag) / n_frames) < 0.01


def test_fading_worker_thread_ends_with_its_scenario_and_at_exit():
    """The draw pool is shut down when its scenario is collected, and a process that used it
    exits (no hang on the idle worker)."""
    with _with_threads(2):
        scenario = _scenario(batch=16)
        _frames(scenario, 1)
        pool = scenario._ahead._pool
    assert pool is not None and not pool._shutdown
    del scenario
    gc.collect()
    assert pool._shutdown
    code = (
        "import torch; torch.set_num_threads(2)\n"
        "from skyshare.scenarios.tn_ntn import TnNtnScenario\n"
        "s = TnNtnScenario.from_preset('quick', batch_size=16); s.reset(); s.step()\n"
        "assert s._ahead._pool is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_static_users_at_zero_speed_keep_their_channel():
    scenario = _scenario(user_speed_m_s=0.0)
    first = scenario.reset()
    assert torch.equal(scenario.step().H, first.H)  # alpha = J0(0) = 1, training mode: static


def test_frequency_correlation_survives_time_steps():
    scenario = _scenario(batch=8, n_taps=4)

    def adjacent(h: torch.Tensor) -> complex:
        return complex((h[..., 1:] * h[..., :-1].conj()).mean()) / float(h.abs().square().mean())

    scenario.reset()
    weights = [math.exp(-tap / 2.0) for tap in range(4)]
    expected = sum(
        w / sum(weights) * cmath.exp(-2j * math.pi * tap / 80) for tap, w in enumerate(weights)
    )
    start = adjacent(scenario.small_scale)
    for _ in range(10):
        scenario.step()
    assert abs(start) == pytest.approx(abs(expected), abs=0.03)
    assert abs(adjacent(scenario.small_scale)) == pytest.approx(abs(expected), abs=0.03)


def test_training_population_is_capped_poisson_with_prefix_mask():
    scenario = _scenario(batch=400)
    state = scenario.reset()
    counts = state.active.sum(-1)  # (B, N)
    prefix = torch.arange(10) < counts[..., None]
    assert torch.equal(state.active, prefix)
    mean = 5.0  # 0.5 K_max
    pmf = [math.exp(-mean) * mean**k / math.factorial(k) for k in range(10)]
    expected = sum(k * q for k, q in enumerate(pmf)) + 10 * (1 - sum(pmf))  # E min(X, 10)
    assert float(counts.float().mean()) == pytest.approx(expected, abs=0.25)  # se 0.065
    assert int(counts.max()) <= 10


# ------------------------------------------------------------------------------ dynamic mode


def test_dynamic_users_follow_arrivals_and_random_walk():
    config = TnNtnScenario.config_from(
        "quick",
        overrides={
            "dynamic_users": True,
            "arrival_rate_per_min": 600.0,
            "mean_holding_s": 1.0,
            "trace_step_s": 0.05,
            "horizon_slots": 60,
        },
    )
    scenario = TnNtnScenario(config, batch_size=4, dtype=torch.float64)  # exact step lengths
    state = scenario.reset()
    counts = [int(state.active.sum())]
    moved = 0
    for _ in range(59):
        previous = state
        state = scenario.step()
        counts.append(int(state.active.sum()))
        kept = previous.user_active & state.user_active & ~state.arrived
        step = (state.user_positions - previous.user_positions)[..., :2].norm(dim=-1)
        assert bool((step[kept] <= 1.0 * 0.01 + 1e-9).all())  # 1 m/s for 10 ms
        moved += int((step[kept] > 1e-4).sum())
        changed_pl = (state.pathloss_db != previous.pathloss_db).any(-1)
        assert bool(changed_pl[kept & (step > 1e-3)].all())  # path loss follows the positions
        assert bool((state.user_positions[..., :2].abs() <= 500 + 1e-3).all())
        arrived = state.arrived
        assert bool((arrived <= state.user_active).all())
        assert bool(((state.user_active & ~previous.user_active) <= arrived).all())
        xy = state.user_positions[..., :2]
        own = state.bs_positions[:, state.serving, :2]
        tbs_slot = (state.serving < 2)[None].expand_as(arrived)
        # A new TBS user appears at a fresh drop, inside the disc around its TBS.
        assert bool(((xy - own).norm(dim=-1)[arrived & tbs_slot] <= 250 + 1e-3).all())
    assert counts[0] < max(counts) and moved > 0
    assert len(set(counts)) > 3  # arrivals and departures change the population
    with pytest.raises(ConfigError, match="horizon_slots"):
        scenario.step()


def test_dynamic_users_with_a_horizon_of_a_tiny_fraction_of_a_trace_step():
    """Regression (fuzzer): a horizon below 1e-9 trace steps (frames of picoseconds) gave a
    trace of ceil(horizon / step - 1e-9) = 0 steps and an IndexError at reset; frame 0 needs
    one. Other horizons keep their trace (same draws): checked on the quick preset."""
    tiny = {"dynamic_users": True, "frame_s": 1e-12, "horizon_slots": 5, "trace_step_s": 1.0}
    scenario = _scenario(batch=2, **tiny)
    state = scenario.reset(seed=4)
    for _ in range(4):
        state = scenario.step()
    assert bool(torch.isfinite(state.H).all()) and state.active.shape == (2, 3, 10)
    quick = {"dynamic_users": True, "arrival_rate_per_min": 300.0}
    for horizon_slots in (40, 100, 250):  # below, at and above one trace step of 1 s
        scenario = _scenario(batch=2, horizon_slots=horizon_slots, **quick)
        scenario.reset(seed=4)
        assert scenario.active_trace.shape[1] == math.ceil(horizon_slots * 0.01 / 1.0 - 1e-9)


# ------------------------------------------------------------------------------ rates and power


# The kernel sums the off-diagonal interference terms directly, so float32 stays accurate at
# 60 dB SINR (subtracting |A_kk|^2 from the total power would cost ~0.2 % of the rate there).
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_subchannel_rates_equal_eq3_by_hand(dtype, tolerance):
    config = TnNtnScenario.config_from("quick", overrides={"n_subchannels": 40})
    scenario = TnNtnScenario(config, batch_size=1, dtype=dtype)
    state = scenario.reset()
    state = dataclasses.replace(state, active=torch.ones_like(state.active))
    assignment = torch.full((1, 3, 40), -1, dtype=torch.long)
    assignment[0, 0, 0], assignment[0, 1, 0] = 1, 0  # f = 0: BS0 -> its user 1, BS1 -> user 0
    assignment[0, 2, 1], assignment[0, 0, 1] = 2, 0  # f = 1: NTBS -> its user 2, BS0 -> user 0
    power = torch.zeros(1, 3, 40, dtype=dtype)
    power[0, 0, 0], power[0, 1, 0], power[0, 2, 1], power[0, 0, 1] = 2.0, 5.0, 0.5, 1.0
    power[0, 2, 0] = 7.0  # off subchannel: its power must be ignored
    rates = scenario.subchannel_rates(state, assignment, power)
    assert rates.shape == (1, 30, 40)

    noise = _noise_w(20e6, 40)
    width = 20e6 / 40

    def gain(p: int, n: int, f: int) -> float:  # |h_{k,n,f}|^2 in watts/watt
        return abs(complex(state.H[0, p, n, f])) ** 2 * noise

    expected = {
        (1, 0): width * math.log2(1 + gain(1, 0, 0) * 2.0 / (gain(1, 1, 0) * 5.0 + noise)),
        (10, 0): width * math.log2(1 + gain(10, 1, 0) * 5.0 / (gain(10, 0, 0) * 2.0 + noise)),
        (22, 1): width * math.log2(1 + gain(22, 2, 1) * 0.5 / (gain(22, 0, 1) * 1.0 + noise)),
        (0, 1): width * math.log2(1 + gain(0, 0, 1) * 1.0 / (gain(0, 2, 1) * 0.5 + noise)),
    }
    for (p, f), value in expected.items():
        assert float(rates[0, p, f]) == pytest.approx(value, rel=tolerance)
    assert int((rates > 0).sum()) == 4  # nobody else receives anything
    user_rates = scenario.user_rates(state, assignment, power)
    assert float(user_rates[0, 0]) == pytest.approx(expected[(0, 1)], rel=tolerance)

    # An empty slot gets no rate but its subchannel's power still interferes.
    inactive = state.active.clone()
    inactive[0, 0, 1] = False
    masked = scenario.subchannel_rates(
        dataclasses.replace(state, active=inactive), assignment, power
    )
    assert float(masked[0, 1, 0]) == 0.0
    assert float(masked[0, 10, 0]) == pytest.approx(expected[(10, 0)], rel=tolerance)


def test_assignment_format_enforces_orthogonality_inside_a_bs():
    scenario = _scenario(batch=3)
    state = scenario.reset()
    generator = torch.Generator().manual_seed(7)
    assignment = torch.randint(-1, 10, (3, 3, 80), generator=generator)
    chosen = torch.gather(state.active, 2, assignment.clamp_min(0))
    assignment = torch.where(chosen, assignment, -1)  # active slots only (others have H = 0)
    rates = scenario.subchannel_rates(state, assignment, scenario.equal_power(assignment))
    per_bs = rates.unflatten(1, (3, 10))  # (B, N, K, F)
    served = (per_bs > 0).sum(2)  # users of BS n served on subchannel f
    assert int(served.max()) <= 1  # eq. (1)
    assert torch.equal(served.bool(), assignment >= 0)  # and exactly the assigned one


def test_equal_power_split_by_hand():
    scenario = _scenario(batch=1)  # F = 80, SRBs of 40 -> M = 2
    p_max = 10 ** ((46 - 30) / 10)
    assignment = torch.full((1, 3, 80), -1, dtype=torch.long)
    assignment[0, 0, [0, 5, 39]] = 3  # BS0, SRB 0: three active subchannels
    assignment[0, 0, 40:] = 1  # BS0, SRB 1: all 40 active
    assignment[0, 2, 7] = 0  # NTBS, SRB 0: one active subchannel
    power = scenario.equal_power(assignment)
    assert float(power[0, 0, 5]) == pytest.approx(p_max / 2 / 3, rel=1e-6)
    assert float(power[0, 0, 60]) == pytest.approx(p_max / 2 / 40, rel=1e-6)
    assert float(power[0, 2, 7]) == pytest.approx(p_max / 2, rel=1e-6)
    assert float(power[0, 1].sum()) == 0.0 and float(power[0, 0, 1]) == 0.0
    assert power.sum(-1)[0].tolist() == pytest.approx([p_max, 0.0, p_max / 2], rel=1e-6)


def test_round_robin_reference_schedule():
    scenario = _scenario(batch=1)
    active = torch.zeros(1, 3, 10, dtype=torch.bool)
    active[0, 0, [1, 4]] = True
    active[0, 2, :] = True
    assignment = scenario.round_robin_assignment(active)
    assert assignment[0, 0, :6].tolist() == [1, 4, 1, 4, 1, 4]
    assert bool((assignment[0, 1] == -1).all())
    assert assignment[0, 2, :12].tolist() == [*range(10), 0, 1]


def test_bad_assignment_and_power_rejected():
    scenario = _scenario(batch=1)
    state = scenario.reset()
    good = torch.zeros(1, 3, 80, dtype=torch.long)
    power = scenario.equal_power(good)
    with pytest.raises(ShapeError, match="assignment"):
        scenario.subchannel_rates(state, good[:, :2], power)
    with pytest.raises(ShapeError, match="assignment"):
        scenario.equal_power(good.float())
    with pytest.raises(ConfigError, match="K_max"):
        scenario.equal_power(torch.full((1, 3, 80), 10, dtype=torch.long))
    with pytest.raises(ConfigError, match="power_w"):
        scenario.subchannel_rates(state, good, -power)


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"n_subchannels": 100}, "srb_size"),
        ({"frame_s": 0.0}, "frame_s"),
        ({"k_max": 0}, "k_max"),
        ({"tbs_user_radius_m": 300.0}, "tbs_user_radius_m"),
        ({"uav_xy_m": [[600.0, 0.0]]}, "uav_xy_m"),
        ({"user_speed_m_s": 7.2}, "user_speed_m_s"),  # 2 pi f_D T = 3.0: J0 < 0
        ({"trace_step_s": 0.001}, "trace_step_s"),
        ({"a2g_environment": "forest"}, "a2g_environment"),
        ({"n_taps": 200}, "n_taps"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_config_values_rejected_naming_the_field(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        TnNtnScenario.config_from("paper", overrides=overrides)


def test_paper_preset_equals_defaults():
    assert TnNtnScenario.config_from("paper") == TnNtnConfig()
    config = TnNtnConfig()
    assert (config.n_bs, config.n_srb, config.horizon_s) == (3, 4, 1.0)


# ------------------------------------------------------------------------------ summaries


def test_link_budget_matches_hand_link_budget():
    scenario = _scenario(batch=32)
    scenario.reset()
    rows = scenario.link_budget().as_dict()
    assert all(math.isfinite(v) for v in rows.values())
    p_sub_dbm = 46 - 10 * math.log10(80)
    noise_dbm = -174 + 10 * math.log10(250e3)
    assert rows["noise per subchannel W N0"] == pytest.approx(noise_dbm, abs=1e-3)
    assert rows["p_max / F"] == pytest.approx(p_sub_dbm, abs=1e-3)
    for tier in ("TBS", "NTBS"):
        # mean_users 10log10(p |h|^2 / N) = p - PL - N + mean 10log10(mean_f |h_small|^2),
        # the last term ~ -0.03 dB for 80 unit-power subchannels.
        expected = p_sub_dbm - rows[f"{tier} path loss to own BS"] - noise_dbm
        assert rows[f"{tier} SNR per subchannel at p_max/F"] == pytest.approx(expected, abs=0.2)
        assert 0 <= rows[f"{tier} users meeting eta"] <= 100
        # Full power, i.e. no more than the interference-free Shannon rate of the whole band:
        assert 0 < rows[f"{tier} rate per user"] < 20 * math.log2(1 + 10**7)
    # Path loss in the plausible range: 1 m-500 m urban macro, 200 m-700 m air-to-ground.
    assert 70 < rows["TBS path loss to own BS"] < 135
    assert 80 < rows["NTBS path loss to own BS"] < 120
    # The UAV reaches every TBS user through a strong LoS link: TBS users see much worse SINR.
    assert (
        rows["TBS SINR, round robin + equal power"] < rows["NTBS SINR, round robin + equal power"]
    )
    assert rows["active users per BS"] == pytest.approx(5.0, abs=0.6)
    assert rows["system throughput"] > 0


def test_link_budget_without_active_users_has_no_nan():
    """Regression (fuzzer): a tier without active users (here: nobody, as in dynamic mode at
    frame 0) gave NaN rows; it now gives one row, its 0 active users."""
    scenario = _scenario(batch=2, active_mean_fraction=0.0)
    scenario.reset(seed=1)
    rows = scenario.link_budget().as_dict()
    assert not any(math.isnan(v) for v in rows.values())
    assert rows["TBS active users"] == 0 and rows["NTBS active users"] == 0
    assert "TBS path loss to own BS" not in rows and "users meeting eta" not in rows
    assert rows["system throughput"] == 0


def test_plot_topology_writes_png(tmp_path):
    for overrides in ({}, {"dynamic_users": True, "horizon_slots": 300, "trace_step_s": 0.1}):
        scenario = _scenario(batch=1, arrival_rate_per_min=300.0, **overrides)
        scenario.reset()
        scenario.step()
        path = plot_topology(scenario, tmp_path / f"topology_{len(overrides)}.png")
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_trace_positions_follow_the_occupants():
    training = _scenario(batch=1)
    training.reset()
    with pytest.raises(ConfigError, match="dynamic_users"):
        training.trace_positions()
    scenario = _scenario(
        batch=2, dynamic_users=True, horizon_slots=300, trace_step_s=0.1, arrival_rate_per_min=300.0
    )
    state = scenario.reset()
    knots = scenario.trace_positions()  # (B, S, P, 2)
    assert knots.shape == (*scenario.active_trace.shape, 2)
    assert bool((knots.abs() <= scenario.half_side_m + 1e-3).all())
    # frame 0 sits on trace step 0: the state's positions are the knots there
    torch.testing.assert_close(state.user_positions[..., :2], knots[:, 0])


def test_cli_inspect(monkeypatch, tmp_path):
    monkeypatch.setitem(SCENARIOS, TnNtnScenario.name, TnNtnScenario)
    assert cli.main(["inspect", "tn_ntn", "--preset", "quick", "--batch", "2"]) == 0
    plot = tmp_path / "tn_ntn.png"
    assert (
        cli.main(["inspect", "tn_ntn", "--preset", "quick", "--batch", "2", "--plot", str(plot)])
        == 0
    )
    assert plot.stat().st_size > 0
    assert_inspect_json_is_the_link_budget(TnNtnScenario, tmp_path, preset="quick", batch=2, seed=4)


@pytest.mark.parametrize("threads, draw_ahead", [(1, True), (2, False), (2, True)])
def test_worker_draws_under_inference_mode_give_the_same_channels(threads, draw_ahead):
    """The worker thread (two-stream draws with two torch threads, ``draw_ahead``) enters the
    caller's inference mode (thread-local in torch; buffers made under it are written there
    too): the channels equal a plain run's."""
    with _with_threads(1):
        expected = [s.H for s in _frames(_scenario(batch=16), 3)]
    with _with_threads(threads), torch.inference_mode():
        scenario = TnNtnScenario.from_preset("quick", batch_size=16, draw_ahead=draw_ahead)
        got = [s.H for s in _frames(scenario, 3)]
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)


def test_a_forked_child_drops_the_parents_draw_ahead():
    """A fork while the worker draws ahead: the child has no such thread; it drops the task,
    restores the generators and draws itself (the same channels as the parent, no hang)."""
    scenario = TnNtnScenario.from_preset("quick", batch_size=64, draw_ahead=True)
    draw_ahead = scenario._draw_ahead

    def slow_draw_ahead(*args):  # still running when the fork happens
        time.sleep(0.5)
        return draw_ahead(*args)

    scenario._draw_ahead = slow_draw_ahead
    twin = _scenario(batch=64)
    scenario.reset(seed=3)
    twin.reset(seed=3)
    expected = twin.step().H
    assert scenario._ahead.task is not None and not scenario._ahead.task.future.done()
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when its step equals the twin's
        signal.alarm(60)
        os._exit(0 if torch.equal(scenario.step().H, expected) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert torch.equal(scenario.step().H, expected)  # and the parent's own step
