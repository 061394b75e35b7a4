"""The CATN scenario of seed 000 against hand computations from its equations."""

import cmath
import math
import statistics

import pytest
import torch
import yaml

from skyshare.config import load_preset
from skyshare.errors import ConfigError
from skyshare.plots import plot_topology
from skyshare.scenarios import CatnConfig, CatnScenario

C = 299_792_458.0


@pytest.fixture(scope="module")
def scenario():
    s = CatnScenario.from_preset("paper", batch_size=8)
    s.reset(seed=3)
    return s


def test_shapes_dtypes_and_noise_normalisation(scenario):
    state = scenario.state
    assert state.H.shape == (8, 21, 7, 16) and state.H.dtype == torch.complex64
    assert state.G.shape == (8, 2, 7, 16) and state.G.dtype == torch.complex64
    assert state.los.dtype == torch.bool and state.los.shape == (8, 21, 7)
    # -114 dBm/MHz over 10 MHz = -104 dBm; I_max = 1.6e-10 mW -> 4.02 noise units
    assert scenario.noise_w == pytest.approx(10 ** (-104 / 10) * 1e-3)
    assert scenario.i_max_normalized == pytest.approx(1.6e-13 / 10 ** (-13.4), rel=1e-9)


def test_float64_option():
    s = CatnScenario.from_preset("quick", batch_size=2, dtype=torch.float64)
    state = s.reset()
    assert state.H.dtype == torch.complex128 and state.pathloss_tu_db.dtype == torch.float64


def _uma_by_hand(d2d, d3d, h_bs, h_ut, fc_ghz, los):
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * fc_ghz * 1e9 / 3e8
    if d2d <= d_bp:
        pl_los = 28.0 + 22 * math.log10(d3d) + 20 * math.log10(fc_ghz)
    else:
        pl_los = (
            28.0
            + 40 * math.log10(d3d)
            + 20 * math.log10(fc_ghz)
            - 9 * math.log10(d_bp**2 + (h_bs - h_ut) ** 2)
        )
    if los:
        return pl_los
    pl_nlos = 13.54 + 39.08 * math.log10(d3d) + 20 * math.log10(fc_ghz) - 0.6 * (h_ut - 1.5)
    return max(pl_los, pl_nlos)


def test_tu_channel_is_uma_pathloss_times_rayleigh_state(scenario):
    state = scenario.state
    sigma = math.sqrt(scenario.noise_w)
    for b, k, n in [(0, 0, 0), (1, 5, 3), (7, 20, 6)]:
        tu = state.tu_positions[b, k].double()
        bs = state.bs_positions[b, n].double()
        d2d = float(torch.linalg.vector_norm(tu[:2] - bs[:2]))
        d3d = float(torch.linalg.vector_norm(tu - bs))
        pl = _uma_by_hand(d2d, d3d, 30.0, 1.5, 2.0, bool(state.los[b, k, n]))
        assert float(state.pathloss_tu_db[b, k, n]) == pytest.approx(pl, abs=1e-3)
        expected = scenario.tu_fading.h[b, k, n] * (10 ** (-pl / 20) / sigma)
        torch.testing.assert_close(state.H[b, k, n], expected.to(state.H.dtype), rtol=1e-3, atol=0)


def test_au_channel_is_rician_with_fspl_and_ura_steering(scenario):
    state = scenario.state
    cfg = scenario.config
    sigma = math.sqrt(scenario.noise_w)
    lam = C / 2e9
    kappa = 10**1.5
    b, l_, n = 2, 1, 4
    au = state.au_positions[b, l_].double()
    bs = state.bs_positions[b, n].double()
    delta = (au - bs).tolist()
    d = math.sqrt(sum(x * x for x in delta))
    theta = math.acos(delta[2] / d)  # zenith angle
    phi = math.atan2(delta[1], delta[0])
    fspl = 20 * math.log10(4 * math.pi * d * 2e9 / C)
    assert float(state.pathloss_au_db[b, l_, n]) == pytest.approx(fspl, abs=0.01)
    M_h = M_v = 4
    for m_v, m_h in [(0, 0), (1, 2), (3, 3)]:
        m = m_v * M_h + m_h  # vertical-major element order
        phase = 2 * math.pi * 0.5 * (m_h * math.sin(theta) * math.sin(phi) + m_v * math.cos(theta))
        a = cmath.exp(1j * phase) / math.sqrt(M_h * M_v)
        los = cmath.exp(-2j * math.pi * d / lam) * a
        nlos = complex(scenario.au_fading.h[b, l_, n, m])
        g = (
            10 ** (-fspl / 20)
            / sigma
            * (math.sqrt(kappa / (kappa + 1)) * los + math.sqrt(1 / (kappa + 1)) * nlos)
        )
        assert complex(state.G[b, l_, n, m]) == pytest.approx(g, rel=2e-3)
    assert cfg.au_steering_normalized


def test_gauss_markov_correlation_and_frozen_los():
    s = CatnScenario.from_preset("quick", batch_size=64)
    s.reset(seed=1)
    los0 = s.los.clone()
    h0 = s.tu_fading.h.clone()
    s.step()
    h1 = s.tu_fading.h
    rho = (h1 * h0.conj()).mean().real / (h0.abs() ** 2).mean()
    assert float(rho) == pytest.approx(0.64, abs=0.01)  # alpha of seed 000 §VI
    for _ in range(5):
        s.step()
    assert torch.equal(s.los, los0)


def test_unfrozen_los_is_redrawn():
    s = CatnScenario.from_preset("quick", batch_size=32, overrides=["los_frozen=false"])
    s.reset(seed=1)
    los0 = s.los.clone()
    s.step()
    assert not torch.equal(s.los, los0)


def test_motion_airplanes_and_users(scenario):
    s = CatnScenario.from_preset("quick", batch_size=4)
    s0 = s.reset(seed=2)
    for _ in range(50):
        s1 = s.step()
    travelled = torch.linalg.vector_norm(s1.au_positions - s0.au_positions, dim=-1)
    torch.testing.assert_close(travelled, torch.full_like(travelled, 250.0 * 50 * 0.02))
    assert torch.all(s1.au_positions[..., 2] == 10_000.0)
    step = torch.linalg.vector_norm(s1.tu_positions - s0.tu_positions, dim=-1)
    assert float(step.max()) <= 3.0 / 3.6 * 50 * 0.02 + 1e-3  # never faster than 3 km/h
    assert float(step.max()) > 0
    # airplanes cross the network half way through the run
    cfg = s.config
    mid = s._au_positions(cfg.n_slots // 2)
    assert float(mid[..., 0].abs().max()) < 250.0 * cfg.slot_s + 1e-3


def test_users_dropped_in_cells_beyond_min_distance(scenario):
    state = scenario.state
    d2d = torch.linalg.vector_norm(
        state.tu_positions[:, :, None, :2] - state.bs_positions[:, None, :, :2], dim=-1
    )
    assert float(d2d.min()) >= 35.0 - 1.0  # 35 m at t = 0, users move < 1 m per second


def test_determinism_same_seed_same_tensors_different_seed_different():
    a = CatnScenario.from_preset("quick", batch_size=3)
    b = CatnScenario.from_preset("quick", batch_size=3)
    sa, sb = a.reset(seed=7), b.reset(seed=7)
    assert torch.equal(sa.H, sb.H) and torch.equal(sa.G, sb.G)
    assert torch.equal(a.step().H, b.step().H)
    sc = b.reset(seed=8)
    assert not torch.equal(sa.H, sc.H)


def test_batch_of_b_equals_b_batches_of_one():
    """The channel map of each realization does not depend on the rest of the batch."""
    full = CatnScenario.from_preset("quick", batch_size=3)
    full.reset(seed=4)
    full.step()
    single = CatnScenario.from_preset("quick", batch_size=1)
    single.reset(seed=0)
    for b in range(3):
        single.t = full.t
        single.bs_positions = full.bs_positions[b : b + 1]
        single.tu_knots = full.tu_knots[b : b + 1]
        single.los = full.los[b : b + 1]
        single.shadowing_db = full.shadowing_db[b : b + 1]
        single.tu_fading.h = full.tu_fading.h[b : b + 1]
        single.au_fading.h = full.au_fading.h[b : b + 1]
        one = single._state()
        torch.testing.assert_close(one.H, full.state.H[b : b + 1])
        torch.testing.assert_close(one.G, full.state.G[b : b + 1])


def test_link_budget_matches_hand_values(scenario):
    rows = scenario.link_budget().as_dict()
    assert rows["noise power sigma^2"] == pytest.approx(-104.0)
    assert rows["I_max"] == pytest.approx(10 * math.log10(1.6e-10))
    assert rows["P_max per BS"] == pytest.approx(10 * math.log10(20e3))
    # FSPL at >= 10 km and 2 GHz is >= 118.5 dB
    assert rows["AU path loss (FSPL)"] >= 20 * math.log10(4 * math.pi * 1e4 * 2e9 / C)
    assert rows["TUs per loaded BS (SC)"] >= 1.0
    for value in rows.values():
        assert math.isfinite(value)


def _db(x: float) -> float:
    return 10 * math.log10(x)


def _lower_median(values: list[float]) -> float:
    """torch.median's convention: the lower of the two middle values."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def test_link_budget_rows_equal_a_per_user_recomputation(scenario):
    """Every derived row of the link budget, recomputed one realization, user and beam at a
    time in float64 from the state's channels and positions: strongest-channel association
    (largest ||h_{n,k}||^2), MRT at P_max split equally over a BS's users, SINR_k =
    |h_k^H w_k|^2 / (1 + sum_{j != k} |h_{n_j,k}^H w_j|^2) (channels in noise units), the
    free-space path loss of TR 38.811 eq. (6.6-1), 32.45 + 20 log10(f_c / GHz) + 20 log10(d / m),
    over the 3-D BS-AU distances."""
    state = scenario.state
    rows = scenario.link_budget().as_dict()
    cfg = scenario.config
    H = state.H.to(torch.complex128).numpy()
    G = state.G.to(torch.complex128).numpy()
    pl_tu = state.pathloss_tu_db.double().numpy()
    p_max = cfg.p_max_w
    i_max_normalized = 10 ** ((rows["I_max"] - rows["noise power sigma^2"]) / 10)
    B, K, N, _ = H.shape
    L = G.shape[1]
    sinr_db, snr_db, pl_serving, sum_rates, loads, inr_db, over_db, fspl = ([] for _ in range(8))
    for b in range(B):
        strength = [[float((abs(H[b, k, n]) ** 2).sum()) for n in range(N)] for k in range(K)]
        serving = [max(range(N), key=lambda n, k=k: strength[k][n]) for k in range(K)]
        users = {n: [k for k in range(K) if serving[k] == n] for n in set(serving)}
        loads += [len(u) for u in users.values()]
        w = {}
        for n, members in users.items():
            for k in members:
                h = H[b, k, n]
                w[k] = math.sqrt(p_max / len(members)) * h / math.sqrt(strength[k][n])
        rate = 0.0
        for k in range(K):
            gains = [abs((H[b, k, serving[j]].conj() * w[j]).sum()) ** 2 for j in range(K)]
            sinr = gains[k] / (1 + sum(gains) - gains[k])
            sinr_db.append(_db(sinr))
            snr_db.append(_db(p_max * strength[k][serving[k]]))
            pl_serving.append(pl_tu[b, k, serving[k]])
            rate += math.log2(1 + sinr)
        sum_rates.append(rate)
        for l_ in range(L):
            rho = sum(abs((G[b, l_, serving[j]].conj() * w[j]).sum()) ** 2 for j in range(K))
            inr_db.append(_db(rho))
            over_db.append(_db(rho / i_max_normalized))
            for n in range(N):
                d = math.dist(state.au_positions[b, l_].tolist(), state.bs_positions[b, n].tolist())
                fspl.append(32.45 + 20 * math.log10(cfg.fc_ghz) + 20 * math.log10(d))
    mean = statistics.fmean
    assert rows["AU path loss (FSPL)"] == pytest.approx(mean(fspl), abs=1e-3)
    assert rows["TUs per loaded BS (SC)"] == pytest.approx(mean(loads), rel=1e-12)
    assert rows["TU path loss to serving BS"] == pytest.approx(mean(pl_serving), abs=1e-3)
    assert rows["TU LoS links"] == pytest.approx(100 * state.los.double().mean().item())
    assert rows["TU SNR, full power MRT, alone"] == pytest.approx(_lower_median(snr_db), abs=1e-3)
    assert rows["TU SINR, SC + MRT equal power"] == pytest.approx(_lower_median(sinr_db), abs=1e-3)
    assert rows["TU sum rate, SC + MRT equal power"] == pytest.approx(mean(sum_rates), rel=1e-4)
    assert rows["AU interference-to-noise"] == pytest.approx(mean(inr_db), abs=1e-3)
    assert rows["AU interference / I_max"] == pytest.approx(mean(over_db), abs=1e-3)


def test_paper_preset_equals_defaults():
    assert CatnConfig.from_dict(load_preset("catn", "paper")) == CatnConfig()


def test_paper_values():
    cfg = CatnConfig()
    assert (cfg.n_au, cfg.n_bs, cfg.n_tu, cfg.n_antennas) == (2, 7, 21, 16)
    assert (cfg.fc_ghz, cfg.bandwidth_mhz, cfg.noise_dbm_per_mhz) == (2.0, 10.0, -114.0)
    assert (cfg.ar1_alpha, cfg.rician_k_db, cfg.p_max_w, cfg.i_max_mw) == (
        0.64,
        15.0,
        20.0,
        1.6e-10,
    )
    assert (cfg.slot_s, cfg.n_slots, cfg.au_speed_m_s, cfg.au_altitude_m) == (0.02, 6000, 250, 1e4)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"n_bs": 8}, "n_bs must fill whole hexagonal rings: 1, 7, 19, 37, 61, ..."),
        ({"p_max_w": -1}, "p_max_w = -1"),
        ({"ar1_alpha": 1.5}, "ar1_alpha = 1.5"),
        ({"ura_rows": 0}, "ura_rows = 0"),
        ({"tu_height_m": 30}, "tu_height_m = 30"),
        ({"min_distance_m": 400}, "min_distance_m must be <"),
        ({"antennas": 4}, "antennas: unknown key"),
    ],
)
def test_bad_values_rejected_with_field_named(override, needle):
    with pytest.raises(ConfigError, match=None) as info:
        CatnScenario.config_from("paper", overrides=override)
    assert needle in str(info.value)


def test_step_past_horizon_and_before_reset():
    s = CatnScenario.from_preset("quick", batch_size=1, overrides=["n_slots=2"])
    with pytest.raises(RuntimeError, match="reset"):
        s.step()
    s.reset()
    s.step()
    with pytest.raises(ConfigError, match="n_slots"):
        s.step()


def test_plot_topology_writes_png(tmp_path, scenario):
    path = plot_topology(scenario, tmp_path / "catn.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_au_track_ends_of_the_straight_flights():
    s = CatnScenario.from_preset("quick", batch_size=2)
    with pytest.raises(RuntimeError, match="reset"):
        s.au_track()
    s.reset(seed=1)
    cfg = s.config
    track = s.au_track()  # (B, 2, L, 3)
    assert track.shape == (2, 2, cfg.n_au, 3)
    torch.testing.assert_close(track[:, 0], s.state.au_positions)  # slot 0
    length = torch.linalg.vector_norm(track[:, 1] - track[:, 0], dim=-1)
    expected = cfg.au_speed_m_s * (cfg.n_slots - 1) * cfg.slot_s
    torch.testing.assert_close(length, torch.full_like(length, expected))


def test_quick_preset_file_is_valid_yaml_subset():
    quick = load_preset("catn", "quick")
    assert set(quick) <= set(CatnConfig.model_fields)
    assert yaml.safe_dump(quick)


@pytest.mark.parametrize("n_au", [1, 2, 3, 4])
def test_au_tracks_are_the_spacing_apart_at_every_slot(n_au):
    """Issue 12 item 1: neighbouring AU ground tracks are au_track_spacing_m apart at every
    slot, whatever the headings (the AUs fly opposite ways and must not share one line), and
    the tracks are centred on the network (the middle one over it for odd L)."""
    spacing = 1500.0
    s = CatnScenario.from_preset(
        "quick", overrides={"n_au": n_au, "au_track_spacing_m": spacing, "n_slots": 200}
    )
    s.reset(seed=0)
    positions = [s.state.au_positions[0]]
    for _ in range(199):
        positions.append(s.step().au_positions[0])
    track = torch.stack(positions)  # (S, L, 3)
    y = track[..., 1].double()  # every AU flies east-west: y is its ground track
    expected = (torch.arange(n_au, dtype=torch.float64) - (n_au - 1) / 2) * spacing
    torch.testing.assert_close(y, expected.expand_as(y))
    for a in range(n_au):
        for b in range(a + 1, n_au):
            lateral = (track[:, a, 1] - track[:, b, 1]).abs().double()
            assert bool((lateral == (b - a) * spacing).all())  # never on one line
    headings = torch.sign(track[-1, :, 0] - track[0, :, 0])
    assert headings.tolist() == [1.0 if l_ % 2 == 0 else -1.0 for l_ in range(n_au)]


def test_interference_limit_floor_is_1e_minus_20_of_the_noise_by_hand():
    """The smallest I_max accepted: 1e-20 of N0 B F, with N0 = -174 dBm/Hz (as the paper
    preset's noise_dbm_per_mhz = -114), B = 10 MHz and F = 7 dB computed here by hand."""
    import math

    from skyshare.errors import ConfigError

    cfg = CatnScenario.config_from("paper")
    noise_mw = 10 ** (
        (cfg.noise_dbm_per_mhz + 10 * math.log10(cfg.bandwidth_mhz) + cfg.noise_figure_db) / 10
    )
    CatnScenario.config_from("paper", overrides={"i_max_mw": 1.01e-20 * noise_mw})
    with pytest.raises(ConfigError, match="1e-20 of the noise"):
        CatnScenario.config_from("paper", overrides={"i_max_mw": 0.99e-20 * noise_mw})


def test_an_aerial_track_through_a_bs_antenna_is_refused_naming_the_fields():
    # one BS at the origin at 30 m, the AU flying straight over it at 30 m (fuzzer finding:
    # a zero AU-BS distance gave NaN channels instead of an error)
    config = CatnConfig(n_bs=1, n_tu=1, n_au=1, bs_height_m=30.0, au_altitude_m=30.0,
                        au_speed_m_s=0.0, au_track_spacing_m=0.0, n_slots=2)  # fmt: skip
    with pytest.raises(ConfigError, match=r"au_altitude_m \(now 30\).*bs_height_m"):
        CatnScenario(config, batch_size=1).reset(0)
    CatnScenario(config.model_copy(update={"au_altitude_m": 60.0}), batch_size=1).reset(0)


@pytest.mark.parametrize(
    ("n_bs", "nearest"), [(2, "1 or 7"), (8, "7 or 19"), (36, "19 or 37"), (100, "91 or 127")]
)
def test_n_bs_off_the_hexagonal_rings_names_the_rule_not_a_range_it_meets(n_bs, nearest):
    """n_bs = 8 is inside [1, inf): the message states the ring rule with its allowed values
    (and the nearest ones), not that range."""
    with pytest.raises(ConfigError) as info:
        CatnScenario.config_from("paper", overrides={"n_bs": n_bs})
    message = str(info.value)
    assert (
        f"n_bs = {n_bs}: n_bs must fill whole hexagonal rings: 1, 7, 19, 37, 61, ... "
        f"(3r(r+1)+1 for r rings around the centre cell), got {n_bs}; nearest: {nearest}"
    ) in message
    assert "allowed range" not in message
    for ok in (1, 7, 19, 37, 61):  # every value the message lists is accepted
        assert CatnScenario.config_from("paper", overrides={"n_bs": ok}).n_bs == ok
    # a bound a value breaks is still stated with its range
    with pytest.raises(ConfigError, match=r"n_bs = 0: must be >= 1 \(allowed range: \[1, inf\)\)"):
        CatnScenario.config_from("paper", overrides={"n_bs": 0})


def test_cli_n_bs_off_the_rings_exits_2_with_the_rule(capsys):
    from skyshare.cli import main

    assert main(["inspect", "catn", "--set", "n_bs=8"]) == 2
    err = capsys.readouterr().err
    assert "n_bs must fill whole hexagonal rings: 1, 7, 19, 37, 61, ..." in err
    assert "allowed range" not in err and "Traceback" not in err
