"""Tests of skyshare.channels.pathloss against values computed by hand from the sources.

Reference values are computed here with plain ``math`` on scalars, straight from the formulas
of TR 38.901 V17.0.0 Tables 7.4.1-1 / 7.4.2-1, TR 38.811 eq. (6.6-2), WINNER II D1.1.2
Tables 4-4 / 4-7 and Al-Hourani et al. (2014), never by calling the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from skyshare.channels.pathloss import (
    A2G_ENVIRONMENTS,
    a2g_los_probability,
    a2g_mean_pathloss_db,
    a2g_pathloss_db,
    draw_los,
    fspl_db,
    lognormal_shadowing_db,
    uma_breakpoint_distance_m,
    uma_los_probability,
    uma_pathloss_db,
    uma_pathloss_los_db,
    uma_pathloss_nlos_db,
    uma_shadow_fading_std_db,
    winner2_c2_breakpoint_distance_m,
    winner2_c2_los_probability,
    winner2_c2_pathloss_db,
    winner2_c2_shadow_fading_std_db,
)
from skyshare.errors import ConfigError, ShapeError, UnknownNameError

C_BREAKPOINT = 3.0e8  # c in the breakpoint notes of 38.901 Table 7.4.1-1 and WINNER II Table 4-4
H_BS = 25.0
H_UT = 1.5

# ------------------------------------------------------------------------------------------
# Hand formulas (scalars, plain math)
# ------------------------------------------------------------------------------------------


def hand_uma_los(d2d: float, h_bs: float, h_ut: float, fc_ghz: float) -> float:
    d3d = math.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    d_bp = 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_ghz * 1e9 / C_BREAKPOINT
    if d2d <= d_bp:
        return 28.0 + 22.0 * math.log10(d3d) + 20.0 * math.log10(fc_ghz)
    return (
        28.0
        + 40.0 * math.log10(d3d)
        + 20.0 * math.log10(fc_ghz)
        - 9.0 * math.log10(d_bp**2 + (h_bs - h_ut) ** 2)
    )


def hand_uma_nlos_prime(d2d: float, h_bs: float, h_ut: float, fc_ghz: float) -> float:
    d3d = math.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    return 13.54 + 39.08 * math.log10(d3d) + 20.0 * math.log10(fc_ghz) - 0.6 * (h_ut - 1.5)


def hand_uma_p_los(d2d: float, h_ut: float) -> float:
    if d2d <= 18.0:
        return 1.0
    c_prime = 0.0 if h_ut <= 13.0 else ((h_ut - 13.0) / 10.0) ** 1.5
    return (18.0 / d2d + math.exp(-d2d / 63.0) * (1.0 - 18.0 / d2d)) * (
        1.0 + c_prime * 5.0 / 4.0 * (d2d / 100.0) ** 3 * math.exp(-d2d / 150.0)
    )


def hand_winner2_c2(d: float, h_bs: float, h_ms: float, fc_ghz: float, los: bool) -> float:
    if not los:
        return (
            (44.9 - 6.55 * math.log10(h_bs)) * math.log10(d)
            + 34.46
            + 5.83 * math.log10(h_bs)
            + 23.0 * math.log10(fc_ghz / 5.0)
        )
    d_bp = 4.0 * (h_bs - 1.0) * (h_ms - 1.0) * fc_ghz * 1e9 / C_BREAKPOINT
    if d < d_bp:
        return 26.0 * math.log10(d) + 39.0 + 20.0 * math.log10(fc_ghz / 5.0)
    return (
        40.0 * math.log10(d)
        + 13.47
        - 14.0 * math.log10(h_bs - 1.0)
        - 14.0 * math.log10(h_ms - 1.0)
        + 6.0 * math.log10(fc_ghz / 5.0)
    )


def hand_fspl(d: float, fc_ghz: float) -> float:
    return 32.45 + 20.0 * math.log10(fc_ghz) + 20.0 * math.log10(d)


def hand_a2g_p_los(theta_deg: float, a: float, b: float) -> float:
    return 1.0 / (1.0 + a * math.exp(-b * (theta_deg - a)))


def d3d_of(d2d: float, h_bs: float = H_BS, h_ut: float = H_UT) -> float:
    return math.sqrt(d2d**2 + (h_bs - h_ut) ** 2)


# ------------------------------------------------------------------------------------------
# 3GPP TR 38.901 UMa
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fc_ghz", "expected_bp_m"), [(3.5, 560.0), (2.0, 320.0)])
def test_uma_breakpoint_distance_by_hand(fc_ghz: float, expected_bp_m: float) -> None:
    # 4 * (25 - 1) * (1.5 - 1) * fc / 3e8
    assert expected_bp_m == pytest.approx(4 * 24.0 * 0.5 * fc_ghz * 1e9 / 3e8)
    d_bp = uma_breakpoint_distance_m(H_BS, H_UT, fc_ghz * 1e9)
    assert d_bp.item() == pytest.approx(expected_bp_m, rel=1e-6)


# d'BP = 560 m at 3.5 GHz and 320 m at 2 GHz: 100 and 300 m lie below both, 450 m lies between,
# 1000 and 4000 m lie above both.
@pytest.mark.parametrize("fc_ghz", [3.5, 2.0])
@pytest.mark.parametrize("d2d", [10.0, 100.0, 300.0, 450.0, 1000.0, 4000.0])
def test_uma_los_pathloss_both_sides_of_breakpoint(fc_ghz: float, d2d: float) -> None:
    got = uma_pathloss_los_db(d2d, d3d_of(d2d), H_BS, H_UT, fc_ghz * 1e9)
    assert got.item() == pytest.approx(hand_uma_los(d2d, H_BS, H_UT, fc_ghz), abs=1e-3)


def test_uma_los_branch_really_switches_at_breakpoint() -> None:
    # At 450 m and 2 GHz (beyond d'BP = 320 m) PL2 is used and differs from the PL1 formula.
    d2d, fc_ghz = 450.0, 2.0
    pl1_formula = 28.0 + 22.0 * math.log10(d3d_of(d2d)) + 20.0 * math.log10(fc_ghz)
    got = uma_pathloss_los_db(d2d, d3d_of(d2d), H_BS, H_UT, fc_ghz * 1e9).item()
    assert abs(got - pl1_formula) > 0.5
    # PL1 and PL2 coincide at d2D = d'BP (the model is continuous there).
    d_bp = 320.0
    below = uma_pathloss_los_db(d_bp - 1e-3, d3d_of(d_bp - 1e-3), H_BS, H_UT, 2e9, 1.0)
    above = uma_pathloss_los_db(d_bp + 1e-3, d3d_of(d_bp + 1e-3), H_BS, H_UT, 2e9, 1.0)
    assert below.item() == pytest.approx(above.item(), abs=1e-3)


@pytest.mark.parametrize("fc_ghz", [3.5, 2.0, 28.0])
@pytest.mark.parametrize("d2d", [20.0, 100.0, 450.0, 1000.0])
def test_uma_nlos_pathloss_is_max_of_los_and_nlos_prime(fc_ghz: float, d2d: float) -> None:
    expected = max(
        hand_uma_los(d2d, H_BS, H_UT, fc_ghz), hand_uma_nlos_prime(d2d, H_BS, H_UT, fc_ghz)
    )
    got = uma_pathloss_nlos_db(d2d, d3d_of(d2d), H_BS, H_UT, fc_ghz * 1e9)
    assert got.item() == pytest.approx(expected, abs=1e-3)


def test_uma_nlos_takes_los_value_where_los_is_larger() -> None:
    # A 22.5 m tall UT at 10 m: PL'_NLOS is 12.6 dB lower by the height term and falls below PL_LOS.
    h_ut, d2d, fc_ghz = 22.5, 10.0, 3.5
    los = hand_uma_los(d2d, H_BS, h_ut, fc_ghz)
    nlos_prime = hand_uma_nlos_prime(d2d, H_BS, h_ut, fc_ghz)
    assert los > nlos_prime
    got = uma_pathloss_nlos_db(d2d, d3d_of(d2d, H_BS, h_ut), H_BS, h_ut, fc_ghz * 1e9)
    assert got.item() == pytest.approx(los, abs=1e-3)


def test_uma_pathloss_picks_per_link() -> None:
    d2d = torch.tensor([[100.0, 100.0], [1000.0, 1000.0]])
    d3d = torch.sqrt(d2d**2 + (H_BS - H_UT) ** 2)
    los = torch.tensor([[True, False], [True, False]])
    got = uma_pathloss_db(d2d, d3d, H_BS, H_UT, 3.5e9, los)
    for i, d in enumerate([100.0, 1000.0]):
        pl_los = hand_uma_los(d, H_BS, H_UT, 3.5)
        pl_nlos = max(pl_los, hand_uma_nlos_prime(d, H_BS, H_UT, 3.5))
        assert got[i, 0].item() == pytest.approx(pl_los, abs=1e-3)
        assert got[i, 1].item() == pytest.approx(pl_nlos, abs=1e-3)


def test_uma_clamps_below_10_m_and_extrapolates_beyond_5_km() -> None:
    at_10 = hand_uma_los(10.0, H_BS, H_UT, 3.5)
    for d2d in (0.0, 3.0, 9.99):
        got = uma_pathloss_los_db(d2d, d3d_of(d2d), H_BS, H_UT, 3.5e9)
        assert got.item() == pytest.approx(at_10, abs=1e-3)
    got_nlos = uma_pathloss_nlos_db(2.0, d3d_of(2.0), H_BS, H_UT, 3.5e9)
    expected_nlos = max(at_10, hand_uma_nlos_prime(10.0, H_BS, H_UT, 3.5))
    assert got_nlos.item() == pytest.approx(expected_nlos, abs=1e-3)
    far = uma_pathloss_los_db(8000.0, d3d_of(8000.0), H_BS, H_UT, 3.5e9)
    assert far.item() == pytest.approx(hand_uma_los(8000.0, H_BS, H_UT, 3.5), abs=1e-3)


@pytest.mark.parametrize("h_ut", [1.5, 20.0])
@pytest.mark.parametrize("d2d", [10.0, 18.0, 50.0, 200.0, 1000.0])
def test_uma_los_probability_by_hand(d2d: float, h_ut: float) -> None:
    got = uma_los_probability(d2d, h_ut)
    assert got.item() == pytest.approx(hand_uma_p_los(d2d, h_ut), abs=1e-6)


def test_uma_los_probability_height_term() -> None:
    # At 200 m the C'(h_UT) term of a 20 m UT raises the probability by a visible factor.
    low = hand_uma_p_los(200.0, 1.5)
    high = hand_uma_p_los(200.0, 20.0)
    c_prime = (7.0 / 10.0) ** 1.5
    assert high / low == pytest.approx(1 + c_prime * 1.25 * 8.0 * math.exp(-200 / 150), rel=1e-9)
    assert uma_los_probability(200.0, 20.0).item() == pytest.approx(high, abs=1e-6)
    assert uma_los_probability(200.0, 13.0).item() == pytest.approx(low, abs=1e-6)
    # Literal check at 50 m, h_UT = 1.5 m: 18/50 + exp(-50/63) (1 - 18/50) = 0.64940...
    assert uma_los_probability(50.0, 1.5).item() == pytest.approx(0.649402, abs=1e-5)


def test_uma_shadow_fading_std() -> None:
    std = uma_shadow_fading_std_db(torch.tensor([True, False]))
    assert std.tolist() == [4.0, 6.0]
    assert std.dtype == torch.float32
    assert uma_shadow_fading_std_db(torch.tensor([True]), dtype=torch.float64).dtype == (
        torch.float64
    )


# ------------------------------------------------------------------------------------------
# Free-space path loss
# ------------------------------------------------------------------------------------------


def test_fspl_1km_2ghz() -> None:
    expected = 32.45 + 20.0 * math.log10(2.0) + 20.0 * math.log10(1000.0)
    assert expected == pytest.approx(98.47, abs=5e-3)
    assert fspl_db(1000.0, 2e9).item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("d", "fc_ghz"), [(10.0, 2.0), (200.0, 3.5), (10_000.0, 2.0)])
def test_fspl_matches_4_pi_d_f_over_c(d: float, fc_ghz: float) -> None:
    exact = 20.0 * math.log10(4.0 * math.pi * d * fc_ghz * 1e9 / 299_792_458.0)
    got = fspl_db(d, fc_ghz * 1e9).item()
    assert got == pytest.approx(hand_fspl(d, fc_ghz), abs=1e-3)
    assert got == pytest.approx(exact, abs=0.02)  # 32.45 is the rounded constant


# ------------------------------------------------------------------------------------------
# WINNER II C2
# ------------------------------------------------------------------------------------------


def test_winner2_breakpoint() -> None:
    assert winner2_c2_breakpoint_distance_m(H_BS, H_UT, 2e9).item() == pytest.approx(320.0)
    assert winner2_c2_breakpoint_distance_m(H_BS, H_UT, 3.5e9).item() == pytest.approx(560.0)


@pytest.mark.parametrize("fc_ghz", [2.0, 3.5, 5.0])
@pytest.mark.parametrize("d", [10.0, 50.0, 200.0, 450.0, 1000.0, 4000.0])
@pytest.mark.parametrize("los", [True, False])
def test_winner2_c2_pathloss_by_hand(fc_ghz: float, d: float, los: bool) -> None:
    got = winner2_c2_pathloss_db(d, H_BS, H_UT, fc_ghz * 1e9, los)
    assert got.item() == pytest.approx(hand_winner2_c2(d, H_BS, H_UT, fc_ghz, los), abs=1e-3)


def test_winner2_c2_literal_values() -> None:
    # NLoS, 25 m BS, 1 km, 5 GHz: (44.9 - 6.55 log10 25) * 3 + 34.46 + 5.83 log10 25 = 149.84 dB
    assert winner2_c2_pathloss_db(1000.0, 25.0, 1.5, 5e9, False).item() == pytest.approx(
        149.8405, abs=1e-3
    )
    # LoS below the breakpoint at 5 GHz: 26 * 2 + 39 = 91 dB at 100 m.
    assert winner2_c2_pathloss_db(100.0, 25.0, 1.5, 5e9, True).item() == pytest.approx(91.0)


def test_winner2_c2_other_heights() -> None:
    got = winner2_c2_pathloss_db(
        torch.tensor([300.0, 3000.0]), 32.0, 2.0, 2.5e9, torch.tensor([True, True])
    )
    for i, d in enumerate([300.0, 3000.0]):
        assert got[i].item() == pytest.approx(hand_winner2_c2(d, 32.0, 2.0, 2.5, True), abs=1e-3)


@pytest.mark.parametrize("d", [5.0, 18.0, 50.0, 200.0, 1000.0])
def test_winner2_c2_los_probability(d: float) -> None:
    expected = min(18.0 / d, 1.0) * (1.0 - math.exp(-d / 63.0)) + math.exp(-d / 63.0)
    assert winner2_c2_los_probability(d).item() == pytest.approx(expected, abs=1e-6)


def test_winner2_c2_shadow_fading_std() -> None:
    d = torch.tensor([100.0, 500.0, 100.0, 500.0])
    los = torch.tensor([True, True, False, False])
    std = winner2_c2_shadow_fading_std_db(d, H_BS, H_UT, 2e9, los)  # d'BP = 320 m
    assert std.tolist() == [4.0, 6.0, 8.0, 8.0]


# ------------------------------------------------------------------------------------------
# Air-to-ground (Al-Hourani et al. 2014)
# ------------------------------------------------------------------------------------------


def test_a2g_los_probability_90_and_10_degrees() -> None:
    got = a2g_los_probability(torch.tensor([math.pi / 2, math.radians(10.0)]))
    assert got[0].item() == pytest.approx(hand_a2g_p_los(90.0, 9.61, 0.16), abs=1e-6)
    assert got[1].item() == pytest.approx(hand_a2g_p_los(10.0, 9.61, 0.16), abs=1e-6)
    assert got[0].item() > 0.9999
    assert got[1].item() == pytest.approx(0.0997, abs=1e-3)


@pytest.mark.parametrize("environment", ["suburban", "urban", "dense_urban", "highrise_urban"])
def test_a2g_environments(environment: str) -> None:
    table = {
        "suburban": (4.88, 0.43, 0.1, 21.0),
        "urban": (9.61, 0.16, 1.0, 20.0),
        "dense_urban": (12.08, 0.11, 1.6, 23.0),
        "highrise_urban": (27.23, 0.08, 2.3, 34.0),
    }
    a, b, eta_los, eta_nlos = table[environment]
    theta = 30.0
    p = a2g_los_probability(math.radians(theta), environment=environment).item()
    assert p == pytest.approx(hand_a2g_p_los(theta, a, b), abs=1e-6)
    d, fc_ghz = 400.0, 2.0
    los = torch.tensor([True, False])
    pl = a2g_pathloss_db(d, fc_ghz * 1e9, los, environment=environment)
    assert pl[0].item() == pytest.approx(hand_fspl(d, fc_ghz) + eta_los, abs=1e-3)
    assert pl[1].item() == pytest.approx(hand_fspl(d, fc_ghz) + eta_nlos, abs=1e-3)
    mean = a2g_mean_pathloss_db(d, fc_ghz * 1e9, math.radians(theta), environment=environment)
    p_hand = hand_a2g_p_los(theta, a, b)
    expected = p_hand * (hand_fspl(d, fc_ghz) + eta_los) + (1 - p_hand) * (
        hand_fspl(d, fc_ghz) + eta_nlos
    )
    assert mean.item() == pytest.approx(expected, abs=1e-3)
    assert A2G_ENVIRONMENTS[environment].a == a


def test_a2g_explicit_parameters_override_environment() -> None:
    p = a2g_los_probability(math.radians(45.0), a=5.0, b=0.3).item()
    assert p == pytest.approx(hand_a2g_p_los(45.0, 5.0, 0.3), abs=1e-6)
    pl = a2g_pathloss_db(100.0, 2e9, False, excess_los_db=0.0, excess_nlos_db=7.0)
    assert pl.item() == pytest.approx(hand_fspl(100.0, 2.0) + 7.0, abs=1e-3)


def test_a2g_unknown_environment_lists_allowed_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        a2g_los_probability(0.5, environment="rural")
    message = str(info.value)
    for name in ("environment", "suburban", "urban", "dense_urban", "highrise_urban"):
        assert name in message


def test_a2g_uav_geometry() -> None:
    # UAV at 200 m, user 300 m away horizontally (seed 001): elevation atan(198.5/300).
    h, r = 198.5, 300.0
    d3d = torch.tensor(math.hypot(h, r))
    elevation = torch.atan2(torch.tensor(h), torch.tensor(r))
    theta = math.degrees(math.atan2(h, r))
    p = hand_a2g_p_los(theta, 9.61, 0.16)
    expected = hand_fspl(math.hypot(h, r), 2.0) + p * 1.0 + (1 - p) * 20.0
    assert a2g_mean_pathloss_db(d3d, 2e9, elevation).item() == pytest.approx(expected, abs=1e-3)


# ------------------------------------------------------------------------------------------
# Randomness: LoS draws and shadowing
# ------------------------------------------------------------------------------------------


def test_draw_los_frequency_and_reproducibility() -> None:
    n = 200_000
    probability = torch.full((n,), 0.3)
    los = draw_los(probability, torch.Generator().manual_seed(1))
    assert los.dtype == torch.bool
    # std of the frequency is sqrt(0.3 * 0.7 / n) = 0.001; 5 sigma tolerance.
    assert los.float().mean().item() == pytest.approx(0.3, abs=0.005)
    again = draw_los(probability, torch.Generator().manual_seed(1))
    assert torch.equal(los, again)
    edges = draw_los(torch.tensor([0.0, 1.0] * 100), torch.Generator().manual_seed(2))
    assert edges.tolist() == [False, True] * 100


def test_shadowing_std_within_two_percent() -> None:
    n = 200_000
    los = torch.arange(n) % 2 == 0
    std = uma_shadow_fading_std_db(los)
    samples = lognormal_shadowing_db(los.shape, std, torch.Generator().manual_seed(3))
    assert samples.shape == (n,)
    for mask, sigma in ((los, 4.0), (~los, 6.0)):
        group = samples[mask]
        assert group.std().item() == pytest.approx(sigma, rel=0.02)
        # std of the mean is sigma / sqrt(n / 2) <= 0.019 dB; 5 sigma tolerance.
        assert abs(group.mean().item()) < 0.1
    again = lognormal_shadowing_db(los.shape, std, torch.Generator().manual_seed(3))
    assert torch.equal(samples, again)
    other = lognormal_shadowing_db(los.shape, std, torch.Generator().manual_seed(4))
    assert not torch.equal(samples, other)


def test_shadowing_like_tensor_and_dtype() -> None:
    like = torch.zeros(2, 3, 4, dtype=torch.float64)
    samples = lognormal_shadowing_db(like, 8.0, torch.Generator().manual_seed(0))
    assert samples.shape == (2, 3, 4)
    assert samples.dtype == torch.float64
    zero = lognormal_shadowing_db((2, 3), 0.0, torch.Generator().manual_seed(0))
    assert zero.dtype == torch.float32
    assert torch.all(zero == 0)
    per_tx = torch.tensor([4.0, 6.0, 8.0, 0.0])  # broadcasts over (B, R, T=4)
    samples = lognormal_shadowing_db((5, 3, 4), per_tx, torch.Generator().manual_seed(0))
    assert torch.all(samples[..., 3] == 0)


# ------------------------------------------------------------------------------------------
# Shapes, broadcasting and dtypes
# ------------------------------------------------------------------------------------------


def test_shapes_broadcast_and_values_per_element() -> None:
    batch, receivers, transmitters = 2, 3, 4
    d2d = torch.linspace(15.0, 3000.0, batch * receivers * transmitters).reshape(
        batch, receivers, transmitters
    )
    h_bs = torch.tensor([25.0, 30.0, 35.0, 25.0]).reshape(1, 1, transmitters)
    d3d = torch.sqrt(d2d**2 + (h_bs - H_UT) ** 2)
    los = torch.rand(d2d.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    pl = uma_pathloss_db(d2d, d3d, h_bs, H_UT, 3.5e9, los)
    assert pl.shape == (batch, receivers, transmitters)
    for b in range(batch):
        for r in range(receivers):
            for t in range(transmitters):
                d, hb = d2d[b, r, t].item(), h_bs[0, 0, t].item()
                expected = hand_uma_los(d, hb, H_UT, 3.5)
                if not los[b, r, t]:
                    expected = max(expected, hand_uma_nlos_prime(d, hb, H_UT, 3.5))
                assert pl[b, r, t].item() == pytest.approx(expected, abs=2e-3)
    assert uma_los_probability(d2d, H_UT).shape == d2d.shape
    assert fspl_db(d3d, 2e9).shape == d2d.shape
    assert winner2_c2_pathloss_db(d3d, h_bs, H_UT, 2e9, los).shape == d2d.shape
    assert winner2_c2_los_probability(d3d).shape == d2d.shape
    assert a2g_los_probability(torch.zeros(batch, receivers, 1)).shape == (batch, receivers, 1)


def test_float64_in_float64_out_and_float32_default() -> None:
    d = torch.tensor([[100.0, 700.0]], dtype=torch.float64)
    los = torch.tensor([[True, False]])
    outputs = [
        uma_los_probability(d, H_UT),
        uma_breakpoint_distance_m(torch.tensor(25.0, dtype=torch.float64), H_UT, 2e9),
        uma_pathloss_los_db(d, d, H_BS, H_UT, 2e9),
        uma_pathloss_nlos_db(d, d, H_BS, H_UT, 2e9),
        uma_pathloss_db(d, d, H_BS, H_UT, 2e9, los),
        fspl_db(d, 2e9),
        winner2_c2_pathloss_db(d, H_BS, H_UT, 2e9, los),
        winner2_c2_los_probability(d),
        winner2_c2_shadow_fading_std_db(d, H_BS, H_UT, 2e9, los),
        a2g_los_probability(d / 1000.0),
        a2g_pathloss_db(d, 2e9, los),
        a2g_mean_pathloss_db(d, 2e9, d / 1000.0),
    ]
    for out in outputs:
        assert out.dtype == torch.float64
    assert fspl_db(100.0, 2e9).dtype == torch.float32
    assert uma_pathloss_los_db(100.0, 105.0, H_BS, H_UT, 2e9).dtype == torch.float32
    assert fspl_db(d.float(), 2e9).dtype == torch.float32


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: uma_los_probability(-1.0, 1.5), "d2d_m"),
        (lambda: uma_los_probability(100.0, 30.0), "h_ut_m"),
        (lambda: uma_los_probability(100.0, 0.5), "h_ut_m"),
        (lambda: uma_pathloss_los_db(-5.0, 30.0, H_BS, H_UT, 2e9), "d2d_m"),
        (lambda: uma_pathloss_los_db(5.0, -30.0, H_BS, H_UT, 2e9), "d3d_m"),
        (lambda: uma_pathloss_los_db(100.0, 103.0, H_BS, H_UT, 0.0), "fc_hz"),
        (lambda: uma_pathloss_nlos_db(100.0, 103.0, H_BS, 1.0, 2e9), "h_ut_m"),
        (lambda: uma_breakpoint_distance_m(0.5, H_UT, 2e9), "h_bs_m"),
        (lambda: uma_breakpoint_distance_m(H_BS, H_UT, 2e9, -1.0), "h_e_m"),
        (lambda: fspl_db(0.0, 2e9), "d3d_m"),
        (lambda: fspl_db(torch.tensor([10.0, -1.0]), 2e9), "d3d_m"),
        (lambda: fspl_db(10.0, -2e9), "fc_hz"),
        (lambda: winner2_c2_pathloss_db(-1.0, H_BS, H_UT, 2e9, True), "d_m"),
        (lambda: winner2_c2_pathloss_db(100.0, H_BS, 1.0, 2e9, True), "h_ms_m"),
        (lambda: winner2_c2_los_probability(-3.0), "d_m"),
        (lambda: draw_los(torch.tensor([0.2, 1.5]), torch.Generator()), "probability"),
        (lambda: draw_los(torch.tensor([-0.1]), torch.Generator()), "probability"),
        (lambda: draw_los(torch.tensor([float("nan")]), torch.Generator()), "probability"),
        (lambda: a2g_los_probability(-0.3), "elevation_rad"),
        (lambda: a2g_los_probability(2.0), "elevation_rad"),
        (lambda: lognormal_shadowing_db((3,), -1.0, torch.Generator()), "std_db"),
    ],
)
def test_invalid_values_raise_config_error_naming_argument(call, argument: str) -> None:
    with pytest.raises(ConfigError, match=argument):
        call()


def test_invalid_los_and_shapes_raise_shape_error() -> None:
    with pytest.raises(ShapeError, match="los"):
        uma_pathloss_db(100.0, 103.0, H_BS, H_UT, 2e9, torch.tensor([1.0]))
    with pytest.raises(ShapeError, match="los"):
        uma_shadow_fading_std_db(torch.tensor([1, 0]))
    with pytest.raises(ShapeError, match="std_db"):
        lognormal_shadowing_db((2, 3), torch.ones(4), torch.Generator())
    with pytest.raises(ShapeError, match="std_db"):
        lognormal_shadowing_db((3,), torch.ones(2, 3), torch.Generator())


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        fspl_db(-1.0, 2e9)


def test_uma_los_probability_is_a_probability_for_tall_users_near_18_m():
    """Issue 12 item 5: the 38.901 product exceeds 1 (1.0059 at h_UT = 22.5 m, d_2D just
    above 18 m); it is clamped to [0, 1] so that LoS draws never fail on a valid config."""
    import torch

    from skyshare.channels.pathloss import draw_los, uma_los_probability

    d = torch.linspace(18.0001, 40.0, 500, dtype=torch.float64)
    for h_ut in (13.5, 17.0, 22.5):
        p = uma_los_probability(d, h_ut)
        assert float(p.max()) == 1.0 and float(p.min()) > 0.0
        raw = (18 / d + torch.exp(-d / 63) * (1 - 18 / d)) * (
            1 + ((h_ut - 13) / 10) ** 1.5 * 1.25 * (d / 100) ** 3 * torch.exp(-d / 150)
        )
        torch.testing.assert_close(p, raw.clamp(max=1.0))  # the formula, only clamped
    assert float(uma_los_probability(torch.tensor([18.01], dtype=torch.float64), 22.5)) == 1.0
    draw_los(uma_los_probability(d, 22.5), torch.Generator().manual_seed(0))  # no error
