"""Tests for skyshare.channels.ofdm: per-subchannel fading and seed-004 multiband channels."""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from skyshare.channels.ofdm import (
    exponential_power_delay_profile,
    multiband_average_gains,
    multiband_channels,
    subchannel_bandwidth_hz,
    subchannel_rayleigh,
)
from skyshare.errors import ConfigError, ShapeError


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _adjacent_correlation(h: torch.Tensor) -> complex:
    """E[H_f H_{f+1}^*] / E|H_f|^2 over all samples and subchannels."""
    lagged = (h[..., :-1] * h[..., 1:].conj()).mean()
    return complex(lagged.item()) / h.abs().pow(2).mean().item()


def test_subchannel_bandwidth():
    assert subchannel_bandwidth_hz(20e6, 80) == pytest.approx(250e3)
    with pytest.raises(ConfigError):
        subchannel_bandwidth_hz(20e6, 0)


def test_exponential_profile_by_hand():
    profile = exponential_power_delay_profile(3, 2.0)
    weights = [math.exp(-l / 2.0) for l in range(3)]
    assert profile.tolist() == pytest.approx([w / sum(weights) for w in weights], rel=1e-6)


def test_iid_subchannels_unit_power_and_uncorrelated():
    h = subchannel_rayleigh((200, 2, 3), 80, _generator(1))
    assert h.shape == (200, 2, 3, 80) and h.dtype == torch.complex64
    assert abs(h.abs().pow(2).mean().item() - 1.0) < 0.02  # 96k samples
    assert abs(_adjacent_correlation(h)) < 0.02


def test_tapped_subchannels_unit_power_and_correlation_matches_profile():
    n_subchannels, n_taps, decay = 64, 4, 2.0
    h = subchannel_rayleigh(
        (300, 2, 2), n_subchannels, _generator(2), n_taps=n_taps, delay_decay_taps=decay
    )
    assert h.shape == (300, 2, 2, n_subchannels)
    assert abs(h.abs().pow(2).mean().item() - 1.0) < 0.05  # 1200 independent links
    weights = [math.exp(-l / decay) for l in range(n_taps)]
    expected = sum(
        w / sum(weights) * cmath.exp(2j * math.pi * l / n_subchannels)
        for l, w in enumerate(weights)
    )
    measured = _adjacent_correlation(h)
    assert abs(measured - expected) < 0.03
    iid = subchannel_rayleigh((300, 2, 2), n_subchannels, _generator(3))
    assert abs(measured) > abs(_adjacent_correlation(iid)) + 0.5


def test_subchannel_rayleigh_validation():
    with pytest.raises(ConfigError):
        subchannel_rayleigh((2,), 8, _generator(), n_taps=9)
    with pytest.raises(ConfigError):
        subchannel_rayleigh((2,), 0, _generator())
    with pytest.raises(ConfigError):
        subchannel_rayleigh((2,), 8, _generator(), n_taps=2, delay_decay_taps=0.0)


def test_multiband_gains_by_hand():
    gains = multiband_average_gains(3, snr_db=20.0, sir_db=3.0)
    serving = 100.0
    cross = 100.0 / 10**0.3
    for transmitter in range(3):
        for receiver in range(3):
            expected = serving if transmitter == receiver else cross
            assert gains[transmitter, receiver].item() == pytest.approx(expected, rel=1e-5)
    # normalisation: a_bb = SNR * noise / power
    scaled = multiband_average_gains(2, 10.0, 0.0, noise_power=2.0, power_per_user_channel=4.0)
    assert scaled.flatten().tolist() == pytest.approx([5.0] * 4, rel=1e-6)
    # full SIR matrix indexed [b~, b] with per-cell SNR
    sir_db = torch.tensor([[0.0, 10.0], [20.0, 0.0]])
    full = multiband_average_gains(2, torch.tensor([0.0, 10.0]), sir_db)
    assert full.flatten().tolist() == pytest.approx([1.0, 1.0, 0.01, 10.0], rel=1e-5)
    with pytest.raises(ShapeError):
        multiband_average_gains(3, 20.0, torch.zeros(2, 2))


def test_multiband_channels_shape_and_average_power_per_link():
    gains = torch.tensor([[4.0, 0.5, 0.1], [0.2, 2.0, 1.0], [0.3, 0.05, 1.5]])  # [b~, b]
    users, n_freq, n_antennas = 2, 3, 8
    h = multiband_channels(gains, users, n_freq, n_antennas, _generator(4), 800)
    assert h.shape == (800, 3 * users, 3, n_freq, n_antennas)
    # (1/M) E||h||^2 over 800 x 3 x 8 = 19200 entries per (receiver, transmitter): std ~ 0.7 %
    power = h.abs().pow(2).mean(dim=(0, 3, 4))  # (C*U, C)
    for cell in range(3):
        for user in range(users):
            for transmitter in range(3):
                measured = power[cell * users + user, transmitter].item()
                target = gains[transmitter, cell].item()
                assert abs(measured - target) / target < 0.04
    again = multiband_channels(gains, users, n_freq, n_antennas, _generator(4), 800)
    assert torch.equal(h, again)


def test_multiband_channels_validation():
    with pytest.raises(ShapeError):
        multiband_channels(torch.ones(2, 3), 1, 1, 1, _generator(), 1)
    with pytest.raises(ConfigError):
        multiband_channels(-torch.ones(2, 2), 1, 1, 1, _generator(), 1)
    with pytest.raises(ConfigError):
        multiband_channels(torch.ones(2, 2), 1, 1, 0, _generator(), 1)
