"""Seed 003 vHetNet scenario: shapes, determinism, channels against hand formulas, the cell-free
SINR helper against a direct loop, link budget, presets, plot and CLI."""

import cmath
import math

import pytest
import torch

from inspect_check import assert_inspect_json_is_the_link_budget
from skyshare.channels.arrays import upa_steering
from skyshare.channels.pathloss import fspl_db
from skyshare.config import load_preset
from skyshare.errors import ConfigError, ShapeError
from skyshare.plots import plot_topology
from skyshare.scenarios.vhetnet import (
    VhetnetConfig,
    VhetnetScenario,
    cell_free_rates,
    haps_array_angles,
    mbs_grid_xy,
    mrt_joint_transmission,
    pad_beamformers,
    transmit_power_w,
)

C = 299_792_458.0
FC = 2e9
# sigma^2 = -174 dBm/Hz + 10 log10(20 MHz) + 7 dB NF = -93.99 dBm
NOISE_DBM = -174.0 + 10 * math.log10(20e6) + 7.0
NOISE_W = 10 ** ((NOISE_DBM - 30) / 10)


def scenario(batch=2, dtype=torch.float32, **overrides):
    config = VhetnetScenario.config_from("quick", overrides=overrides)
    return VhetnetScenario(config, batch_size=batch, dtype=dtype)


def fspl_38811_db(d_m, f_hz=FC):
    """TR 38.811 eq. (6.6-2), f in GHz, d in m."""
    return 32.45 + 20 * math.log10(f_hz / 1e9) + 20 * math.log10(d_m)


def fspl_38811_db_tensor(d_m, f_hz=FC):
    return 32.45 + 20 * math.log10(f_hz / 1e9) + 20 * torch.log10(d_m.double())


# --------------------------------------------------------------------------------------------
# Shapes, layout, determinism
# --------------------------------------------------------------------------------------------


def test_shapes_dtypes_and_padding():
    scen = scenario(batch=3)
    state = scen.reset()
    assert state.H_haps.shape == (3, 6, 16) and state.H_haps.dtype == torch.complex64
    assert state.H_mbs.shape == (3, 6, 4, 4) and state.H_mbs.dtype == torch.complex64
    assert state.haps_los.shape == (3, 6, 16) and state.pathloss_mbs_db.shape == (3, 6, 4)
    assert state.ue_positions.shape == (3, 6, 3) and state.bs_positions.shape == (3, 5, 3)
    assert state.n_tx == 5 and state.antennas == [16, 4, 4, 4, 4]
    H, mask = state.padded()
    assert H.shape == (3, 6, 5, 16) and mask.shape == (5, 16) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [16, 4, 4, 4, 4]
    assert torch.equal(H[:, :, 0], state.H_haps)
    assert torch.equal(H[:, :, 1:, :4], state.H_mbs)
    assert torch.count_nonzero(H[:, :, 1:, 4:]) == 0
    # Per-BS budgets: HAPS 46 dBm = 39.81 W, MBS 40 dBm = 10 W.
    assert state.p_max_w.tolist() == pytest.approx([10**1.6, 10.0, 10.0, 10.0, 10.0], rel=1e-6)
    assert state.bs_positions[0, 0].tolist() == [0.0, 0.0, 20000.0]
    assert state.noise_w == pytest.approx(NOISE_W, rel=1e-9)
    ue = state.ue_positions
    assert bool((ue[..., :2].abs() <= 500).all()) and bool((ue[..., 2] == 1.5).all())

    state64 = scenario(batch=2, dtype=torch.float64).reset()
    assert state64.H_haps.dtype == torch.complex128 and state64.H_mbs.dtype == torch.complex128


def test_mbs_grid_layout():
    state = VhetnetScenario(VhetnetConfig(), batch_size=1).reset()
    mbs = state.bs_positions[0, 1:].tolist()
    assert sorted(map(tuple, mbs)) == sorted(
        (x, y, 25.0) for x in (-250.0, 250.0) for y in (-250.0, 250.0)
    )
    # Other counts: centred grids with a centred last row.
    assert mbs_grid_xy(1, 1000.0).tolist() == [[0.0, 0.0]]
    assert mbs_grid_xy(3, 1000.0).tolist() == [[-250.0, 250.0], [250.0, 250.0], [0.0, -250.0]]
    nine = mbs_grid_xy(9, 900.0)
    assert nine.shape == (9, 2) and nine.mean(0).abs().max() < 1e-4
    assert nine[:, 0].unique().tolist() == pytest.approx([-300.0, 0.0, 300.0])


def test_determinism_and_independent_realizations():
    a, b = scenario(batch=2), scenario(batch=2)
    sa, sb = a.reset(seed=5), b.reset(seed=5)
    assert torch.equal(sa.H_haps, sb.H_haps) and torch.equal(sa.H_mbs, sb.H_mbs)
    other = scenario(batch=2).reset(seed=6)
    assert not torch.equal(sa.H_mbs, other.H_mbs)
    assert torch.equal(a.step().H_mbs, b.step().H_mbs)

    scen = scenario(batch=2)
    first = scen.reset(seed=1)
    second = scen.step()
    assert second.t == 1 and first.t == 0
    assert not torch.equal(first.ue_positions, second.ue_positions)
    assert not torch.equal(first.shadowing_mbs_db, second.shadowing_mbs_db)

    fixed = scenario(batch=2, redrop_users=False)
    first = fixed.reset(seed=1)
    second = fixed.step()
    assert torch.equal(first.ue_positions, second.ue_positions)
    assert torch.equal(first.shadowing_mbs_db, second.shadowing_mbs_db)
    assert torch.equal(first.haps_los, second.haps_los)
    assert not torch.equal(first.H_mbs, second.H_mbs)
    assert not torch.equal(first.H_haps, second.H_haps)

    with pytest.raises(RuntimeError, match="reset"):
        scenario().step()


def test_standalone_terrestrial_network_shares_the_mbs_channels():
    with_haps = scenario(batch=2).reset(seed=3)
    alone = scenario(batch=2, with_haps=False).reset(seed=3)
    assert alone.H_haps is None and alone.haps_los is None and alone.n_tx == 4
    assert torch.equal(alone.H_mbs, with_haps.H_mbs)  # same draws: Fig. 7 compares like for like
    H, mask = alone.padded()
    assert H.shape == (2, 6, 4, 4) and bool(mask.all())
    assert alone.p_max_w.tolist() == pytest.approx([10.0] * 4)


# --------------------------------------------------------------------------------------------
# Channels against the seed's formulas
# --------------------------------------------------------------------------------------------


def test_fspl_matches_4_pi_d_f_over_c_within_001_db():
    for d in (23.5, 500.0, 19998.5, 20011.0):
        exact = 20 * math.log10(4 * math.pi * d * FC / C)
        assert float(fspl_db(torch.tensor([d], dtype=torch.float64), FC)) == pytest.approx(
            fspl_38811_db(d), abs=1e-9
        )
        assert abs(fspl_38811_db(d) - exact) < 0.01  # 32.45 vs 32.4478 dB


def test_haps_array_frame_mapping():
    # A direction from the HAPS: down and towards north-east, |u| = 1.
    u = (0.36, 0.48, -0.8)
    zenith = math.acos(u[2])
    azimuth = math.atan2(u[1], u[0])
    zp, ap = haps_array_angles(torch.tensor(zenith), torch.tensor(azimuth))
    assert math.sin(zp) * math.cos(ap) == pytest.approx(u[0], abs=1e-6)
    assert math.cos(zp) == pytest.approx(u[1], abs=1e-6)
    # Nadir is broadside: all phases zero.
    zp, ap = haps_array_angles(torch.tensor(math.pi), torch.tensor(0.0))
    a = upa_steering(zp, ap, 3, 2, normalize=False)
    assert torch.allclose(a, torch.ones(6, dtype=torch.complex64), atol=1e-6)


def test_channels_equal_hand_recomputation_for_one_realization():
    """HAPS 3x2 (columns along x, rows along y) and MBS channels rebuilt element by element."""
    scen = scenario(batch=3, dtype=torch.float64, n_ue=2, n_mbs=2, haps_n_h=3, haps_n_v=2)
    scen.reset(seed=11)
    state = scen.step()
    b = 2
    wavelength = C / FC
    sigma = math.sqrt(NOISE_W)
    kappa = 10.0
    mbs_xy = [(-250.0, 0.0), (250.0, 0.0)]  # two MBSs: one row, centred
    for k in range(2):
        x, y, z = state.ue_positions[b, k].tolist()
        # HAPS link.
        dx, dy, dz = x, y, z - 20000.0
        d = math.sqrt(dx * dx + dy * dy + dz * dz)
        ux, uy = dx / d, dy / d
        amplitude = 10 ** (-fspl_38811_db(d) / 20) / sigma
        assert float(state.pathloss_haps_db[b, k]) == pytest.approx(fspl_38811_db(d), abs=1e-9)
        for m in range(2):
            for n in range(3):
                steering = cmath.exp(1j * math.pi * (n * ux + m * uy))  # 2 pi * 0.5 spacing
                los = cmath.exp(-2j * math.pi * d / wavelength) * steering
                g = complex(state.haps_nlos[b, k, m * 3 + n])
                expected = amplitude * (
                    math.sqrt(kappa / (kappa + 1)) * los + math.sqrt(1 / (kappa + 1)) * g
                )
                got = complex(state.H_haps[b, k, m * 3 + n])
                assert abs(got - expected) <= 1e-7 * abs(expected)
        # MBS links.
        for i, (bx, by) in enumerate(mbs_xy):
            d = math.sqrt((x - bx) ** 2 + (y - by) ** 2 + (z - 25.0) ** 2)
            shadow = float(state.shadowing_mbs_db[b, k, i])
            amplitude = 10 ** (-fspl_38811_db(d) / 20) * 10 ** (shadow / 20) / sigma
            for m in range(4):
                expected = amplitude * complex(state.mbs_fading[b, k, i, m])
                got = complex(state.H_mbs[b, k, i, m])
                assert abs(got - expected) <= 1e-9 * abs(expected)


def test_average_channel_power_and_rician_factor():
    scen = scenario(batch=512)
    state = scen.reset(seed=2)
    haps = state.bs_positions[:1, :1]
    d_haps = torch.linalg.vector_norm(state.ue_positions - haps, dim=-1)  # (B, K)
    gain_haps = 10 ** (-fspl_38811_db_tensor(d_haps) / 10) / NOISE_W
    ratio = state.H_haps.abs().double() ** 2 / gain_haps[..., None]
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.02)  # E|h_m|^2 = 1/FSPL (Rician)

    # h / (amplitude * LoS) = sqrt(K/(K+1)) + sqrt(1/(K+1)) g' with g' ~ CN(0, 1), K = 10 dB.
    normalised = state.H_haps.to(torch.complex128) / (gain_haps.sqrt()[..., None] * state.haps_los)
    assert float(normalised.real.mean()) == pytest.approx(math.sqrt(10 / 11), abs=0.01)
    assert float(normalised.imag.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(normalised.var()) == pytest.approx(1 / 11, rel=0.05)
    assert torch.allclose(state.haps_los.abs(), torch.ones(1), atol=1e-5)

    shadow = state.shadowing_mbs_db.double()  # 12288 samples of N(0, 8^2)
    assert float(shadow.mean()) == pytest.approx(0.0, abs=0.3)
    assert float(shadow.std()) == pytest.approx(8.0, rel=0.03)
    mbs = state.bs_positions[:1, 1:]
    d_mbs = torch.linalg.vector_norm(state.ue_positions[:, :, None] - mbs[:, None], dim=-1)
    gain_mbs = 10 ** ((-fspl_38811_db_tensor(d_mbs) + shadow) / 10) / NOISE_W
    ratio = state.H_mbs.abs().double() ** 2 / gain_mbs[..., None]
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.02)  # Rayleigh E|g|^2 = 1


# --------------------------------------------------------------------------------------------
# Cell-free SINR helper and reference transmission
# --------------------------------------------------------------------------------------------


def test_cell_free_rates_match_direct_loop():
    scen = scenario(batch=2, n_ue=3, n_mbs=2, haps_n_h=2, haps_n_v=2, mbs_n_h=2, mbs_n_v=1)
    state = scen.reset(seed=4)
    g = torch.Generator().manual_seed(9)
    W_haps = torch.randn(2, 3, 4, dtype=torch.complex64, generator=g)
    W_mbs = torch.randn(2, 2, 3, 2, dtype=torch.complex64, generator=g)
    W = pad_beamformers(state, W_haps, W_mbs)
    rates = cell_free_rates(state, W)

    for b in range(2):
        # Per transmitter: (channel of UE k, beam of UE j) as Python lists of complex numbers.
        channels = [[state.H_haps[b, k].tolist() for k in range(3)]]
        beams = [[W_haps[b, j].tolist() for j in range(3)]]
        for i in range(2):
            channels.append([state.H_mbs[b, k, i].tolist() for k in range(3)])
            beams.append([W_mbs[b, i, j].tolist() for j in range(3)])

        def gain(k, j, channels=channels, beams=beams):
            total = 0j
            for h_t, w_t in zip(channels, beams, strict=True):
                total += sum(hm.conjugate() * wm for hm, wm in zip(h_t[k], w_t[j], strict=True))
            return total

        pf = 0.0
        for k in range(3):
            interference = sum(abs(gain(k, j)) ** 2 for j in range(3) if j != k)
            sinr = abs(gain(k, k)) ** 2 / (interference + 1.0)
            se = math.log2(1 + sinr)
            pf += math.log(se)
            assert float(rates.sinr[b, k]) == pytest.approx(sinr, rel=1e-4)
            assert float(rates.se[b, k]) == pytest.approx(se, rel=1e-4)
            assert bool(rates.meets_gamma_min[b, k]) == (sinr >= 1.0)
        assert float(rates.pf_objective[b]) == pytest.approx(pf, rel=1e-4, abs=1e-4)

    with pytest.raises(ShapeError, match="W must be"):
        cell_free_rates(state, W[:, :, :2])
    with pytest.raises(ShapeError, match="W_mbs"):
        pad_beamformers(state, W_haps, W_mbs[:, :1])


def test_mrt_joint_transmission_power_and_coherence():
    state = scenario(batch=2).reset(seed=8)
    W = mrt_joint_transmission(state)
    assert W.shape == (2, 5, 6, 16)
    assert torch.allclose(transmit_power_w(W), state.p_max_w.expand(2, 5), rtol=1e-5)
    H, mask = state.padded()
    assert torch.count_nonzero(W[:, ~mask[:, None, :].expand(5, 6, 16)]) == 0
    # Desired term: sum_b sqrt(P_b / K) ||h_{b,k}||, real and positive.
    per_bs = torch.einsum("bktm,btkm->bkt", H.conj(), W)
    expected = (state.p_max_w / 6).sqrt() * torch.linalg.vector_norm(H, dim=-1)
    assert torch.allclose(per_bs.real, expected, rtol=1e-4)
    assert float(per_bs.imag.abs().max()) < 1e-3 * float(expected.min())
    off = mrt_joint_transmission(state, haps_on=False)
    assert torch.count_nonzero(off[:, 0]) == 0 and torch.equal(off[:, 1:], W[:, 1:])


def test_link_budget_array_gain_when_float32_channel_powers_overflow():
    """Regression (fuzzer): at an SNR above float32's range (a 0.04 Hz carrier, -220 dBm/Hz
    over 0.26 Hz) ||h||^2 and the mean element gain both overflowed: the array-gain row was
    inf / inf = NaN. Such rows are now computed in float64: 10 log10 M as always."""
    overrides = {"fc_ghz": 4e-11, "noise_dbm_per_hz": -220.0, "bandwidth_mhz": 2.6e-7}
    scen = scenario(batch=4, mbs_n_h=1, mbs_n_v=4, **overrides)
    state = scen.reset(seed=51)
    assert bool(torch.isinf(state.H_mbs.abs().square().sum(-1)).any())  # float32 overflows
    rows = scen.link_budget().as_dict()
    assert rows["MBS array gain of matched beams"] == pytest.approx(10 * math.log10(4), abs=1.0)
    assert math.isfinite(rows["MBS per-element SNR at full power"])
    # both rows recomputed in float64 from the state: ||h||^2 per link, P_b ||h||^2 / M in dB
    # (mean over links), and mean ||h||^2 over the per-element gain 10^(-(PL - X)/10) / sigma^2
    cfg = scen.config
    strength = state.H_mbs.to(torch.complex128).abs().square().sum(-1)  # (B, K, N)
    power_w = 10 ** ((cfg.mbs_power_dbm - 30) / 10)
    snr_db = 10 * torch.log10(power_w * strength / 4)
    element_gain = 10 ** (-(state.pathloss_mbs_db.double() - state.shadowing_mbs_db) / 10)
    array_gain_db = 10 * math.log10(float((strength / (element_gain / scen.noise_w)).mean()))
    snr_row = rows["MBS per-element SNR at full power"]
    assert snr_row == pytest.approx(float(snr_db.mean()), abs=1e-6)
    assert rows["MBS array gain of matched beams"] == pytest.approx(array_gain_db, abs=1e-6)


def test_haps_alone_with_larger_mbs_arrays_pads_and_transmits():
    """Regression (fuzzer, issue 12 item 5): n_mbs = 0 with M_mbs (4x4) > M_haps (2x1) made
    the padding code slice the MBS channels onto M_max = M_haps columns and crash."""
    scen = scenario(batch=2, n_mbs=0, haps_n_h=2, haps_n_v=1, mbs_n_h=4, mbs_n_v=4)
    state = scen.reset(seed=3)
    H, mask = state.padded()
    assert H.shape == (2, 6, 1, 2) and mask.tolist() == [[True, True]]
    assert torch.equal(H[:, :, 0], state.H_haps)
    W = mrt_joint_transmission(state)
    assert W.shape == (2, 1, 6, 2)
    assert torch.allclose(transmit_power_w(W), state.p_max_w.expand(2, 1), rtol=1e-5)
    rates = cell_free_rates(state, W)
    assert bool(torch.isfinite(rates.se).all()) and bool((rates.se > 0).all())
    assert math.isfinite(scen.link_budget().as_dict()["vHetNet mean SE per UE"])


# --------------------------------------------------------------------------------------------
# Configs, link budget, plot, CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"n_ue": 0}, "n_ue"),
        ({"shadowing_std_db": -1}, "shadowing_std_db"),
        ({"haps_n_h": 0}, "haps_n_h"),
        ({"area_side_m": 0}, "area_side_m"),
        ({"n_mbs": 0, "with_haps": False}, "n_mbs >= 1 or with_haps"),
        ({"haps_altitude_m": 1.0}, "haps_altitude_m"),
        ({"bogus": 1}, "bogus: unknown key"),
    ],
)
def test_bad_config_rejected_naming_the_field(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        VhetnetScenario.config_from("paper", overrides=overrides)


def test_paper_preset_equals_defaults_and_quick_differs():
    assert VhetnetScenario.config_from("paper") == VhetnetConfig()
    assert set(load_preset("vhetnet", "paper")) == set(VhetnetConfig.model_fields)
    quick = VhetnetScenario.config_from("quick")
    assert quick.n_ue < VhetnetConfig().n_ue and quick.m_haps < VhetnetConfig().m_haps


def test_link_budget_against_hand_calculation():
    scen = VhetnetScenario(VhetnetConfig(), batch_size=64)
    scen.reset(seed=0)
    rows = scen.link_budget().as_dict()
    assert all(math.isfinite(v) for v in rows.values())
    assert rows["noise power sigma^2"] == pytest.approx(NOISE_DBM, abs=1e-6)
    # HAPS: every UE is within 20 km +- 12.5 m slant range: FSPL 124.47-124.48 dB.
    pl_haps = fspl_38811_db(20000.0 - 1.5)
    assert rows["HAPS path loss (FSPL)"] == pytest.approx(pl_haps, abs=0.01)
    # Per-element SNR = 46 dBm - FSPL - sigma^2 (dBm) = 15.52 dB (dB-average of a mean of 64
    # Rician powers: bias well under 0.3 dB).
    assert rows["HAPS per-element SNR at full power"] == pytest.approx(
        46.0 - pl_haps - NOISE_DBM, abs=0.3
    )
    assert rows["HAPS array gain of matched beams"] == pytest.approx(10 * math.log10(64), abs=0.2)
    assert rows["MBS array gain of matched beams"] == pytest.approx(10 * math.log10(16), abs=0.2)
    # MBS: 23.5 m <= d <= corner distance; per-element SNR = 40 - PL - sigma^2 + E[X] (~0).
    pl_mbs = rows["MBS path loss (FSPL)"]
    assert fspl_38811_db(23.5) < pl_mbs < fspl_38811_db(math.hypot(750, 750, 23.5))
    assert rows["MBS per-element SNR at full power"] == pytest.approx(
        40.0 - pl_mbs - NOISE_DBM, abs=0.6
    )
    for net in ("vHetNet", "terrestrial"):
        se = rows[f"{net} mean SE per UE"]
        assert 0.1 < se < 20
        assert 1 / 16 <= rows[f"{net} Jain fairness of SE"] <= 1
        assert rows[f"{net} PF objective sum_k ln SE_k"] <= 16 * math.log(20)
        assert 0 <= rows[f"{net} UEs with SINR >= gamma_min"] <= 100
    # MRT joint transmission is interference-limited: INR far above the SINR.
    assert rows["vHetNet median INR"] > rows["vHetNet median SINR"] + 10

    alone = VhetnetScenario(VhetnetConfig(with_haps=False), batch_size=64)
    alone.reset(seed=0)
    rows_alone = alone.link_budget().as_dict()
    assert "HAPS path loss (FSPL)" not in rows_alone and "vHetNet mean SE per UE" not in rows_alone
    assert rows_alone["terrestrial mean SE per UE"] == pytest.approx(
        rows["terrestrial mean SE per UE"], rel=1e-5
    )


@pytest.mark.parametrize("with_haps", [True, False])
def test_plot_topology_writes_png(tmp_path, with_haps):
    scen = scenario(batch=1, with_haps=with_haps)
    scen.reset()
    path = plot_topology(scen, tmp_path / "topology.png")
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_inspect(monkeypatch, tmp_path):
    from skyshare import cli
    from skyshare.scenarios import SCENARIOS

    monkeypatch.setitem(SCENARIOS, VhetnetScenario.name, VhetnetScenario)
    plot = tmp_path / "t.png"
    assert cli.main(["inspect", "vhetnet", "--preset", "quick", "--batch", "2"]) == 0
    assert cli.main(["inspect", "vhetnet", "--preset", "quick", "--plot", str(plot)]) == 0
    assert plot.exists()
    assert cli.main(["inspect", "vhetnet", "--set", "n_ue=0"]) == 2
    assert_inspect_json_is_the_link_budget(
        VhetnetScenario, tmp_path, preset="quick", batch=2, seed=3, slot=1
    )
