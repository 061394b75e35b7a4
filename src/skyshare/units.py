"""Unit conversions and physical constants.

Internally skyshare works in SI linear units: watts, metres, hertz, seconds. Configs carry the
unit in the field name (``p_max_dbm``, ``noise_dbm_per_mhz``, ``fc_ghz``) and are converted with
the functions below. All functions accept Python floats or tensors and return the same kind.
"""

from __future__ import annotations

import math

import torch

SPEED_OF_LIGHT_M_S = 299_792_458.0
"""Speed of light in vacuum, c (m/s)."""

BOLTZMANN_J_K = 1.380649e-23
"""Boltzmann constant, k_B (J/K)."""

THERMAL_NOISE_DBM_PER_HZ = -174.0
"""Thermal noise density k_B T at T = 290 K, rounded as in 3GPP evaluations (dBm/Hz)."""

Number = float | torch.Tensor


def _log10(x: Number) -> Number:
    return torch.log10(x) if isinstance(x, torch.Tensor) else math.log10(x)


def db_to_linear(x_db: Number) -> Number:
    """Power ratio in dB to linear: ``10^(x/10)``."""
    return 10.0 ** (x_db / 10.0)


def linear_to_db(x: Number) -> Number:
    """Linear power ratio to dB: ``10 log10(x)``."""
    return 10.0 * _log10(x)


def dbm_to_watt(p_dbm: Number) -> Number:
    """Power in dBm to watts: ``10^((p - 30)/10)``."""
    return 10.0 ** ((p_dbm - 30.0) / 10.0)


def watt_to_dbm(p_w: Number) -> Number:
    """Power in watts to dBm: ``10 log10(p) + 30``."""
    return 10.0 * _log10(p_w) + 30.0


def dbm_to_mw(p_dbm: Number) -> Number:
    """Power in dBm to milliwatts."""
    return 10.0 ** (p_dbm / 10.0)


def mw_to_dbm(p_mw: Number) -> Number:
    """Power in milliwatts to dBm."""
    return 10.0 * _log10(p_mw)


def wavelength_m(fc_hz: float) -> float:
    """Carrier wavelength ``lambda = c / f_c`` in metres."""
    if fc_hz <= 0:
        raise ValueError(f"carrier frequency must be > 0 Hz, got {fc_hz}")
    return SPEED_OF_LIGHT_M_S / fc_hz


def noise_power_w(
    bandwidth_hz: float,
    *,
    noise_dbm_per_hz: float | None = None,
    noise_dbm_per_mhz: float | None = None,
    noise_figure_db: float = 0.0,
) -> float:
    """Noise power ``N0 * W * NF`` in watts over ``bandwidth_hz``.

    Give the density either per hertz or per megahertz (exactly one). Example (seed 000 §VI):
    ``noise_power_w(10e6, noise_dbm_per_mhz=-114)`` is -104 dBm = 3.98e-14 W (3.98e-11 mW).
    """
    if (noise_dbm_per_hz is None) == (noise_dbm_per_mhz is None):
        raise ValueError("give exactly one of noise_dbm_per_hz or noise_dbm_per_mhz")
    if bandwidth_hz <= 0:
        raise ValueError(f"bandwidth must be > 0 Hz, got {bandwidth_hz}")
    density_dbm_hz = noise_dbm_per_hz if noise_dbm_per_hz is not None else noise_dbm_per_mhz - 60.0
    return dbm_to_watt(density_dbm_hz + 10.0 * math.log10(bandwidth_hz) + noise_figure_db)
