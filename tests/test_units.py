"""Unit conversions against hand-computed values."""

import math

import pytest
import torch

from skyshare import units


def test_db_round_trips_and_known_values():
    assert units.db_to_linear(3.0) == pytest.approx(1.9952623149688795)
    assert units.linear_to_db(100.0) == pytest.approx(20.0)
    assert units.dbm_to_watt(30.0) == pytest.approx(1.0)
    assert units.dbm_to_watt(43.0) == pytest.approx(19.952623149688797)
    assert units.watt_to_dbm(20.0) == pytest.approx(43.01029995663981)
    assert units.dbm_to_mw(-100.0) == pytest.approx(1e-10)
    assert units.mw_to_dbm(1.6e-10) == pytest.approx(10 * math.log10(1.6e-10))
    x = torch.tensor([-10.0, 0.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(units.linear_to_db(units.db_to_linear(x)), x)


def test_seed000_noise_power():
    """-114 dBm/MHz over 10 MHz = -104 dBm = 3.98e-11 mW (seed 000 §VI)."""
    p = units.noise_power_w(10e6, noise_dbm_per_mhz=-114.0)
    assert units.watt_to_dbm(p) == pytest.approx(-104.0)
    assert p * 1e3 == pytest.approx(3.98e-11, rel=1e-3)


def test_thermal_noise_per_hz_with_noise_figure():
    p = units.noise_power_w(20e6, noise_dbm_per_hz=-174.0, noise_figure_db=7.0)
    assert units.watt_to_dbm(p) == pytest.approx(-174 + 10 * math.log10(20e6) + 7)


def test_noise_power_needs_exactly_one_density():
    with pytest.raises(ValueError, match="exactly one"):
        units.noise_power_w(1e6)
    with pytest.raises(ValueError, match="exactly one"):
        units.noise_power_w(1e6, noise_dbm_per_hz=-174, noise_dbm_per_mhz=-114)
    with pytest.raises(ValueError, match="bandwidth"):
        units.noise_power_w(0.0, noise_dbm_per_hz=-174)


def test_wavelength():
    assert units.wavelength_m(2e9) == pytest.approx(299_792_458.0 / 2e9)
    with pytest.raises(ValueError, match="carrier"):
        units.wavelength_m(-1.0)
