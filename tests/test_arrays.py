"""Tests for skyshare.channels.arrays: steering phases by hand, codebook, compression."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
import torch

from skyshare.channels.arrays import (
    compress_channel,
    compressed_features,
    dft_codebook,
    los_phase,
    upa_steering,
    ura_steering,
)
from skyshare.errors import ConfigError, ShapeError


def _phase_steps(vector: torch.Tensor) -> list[float]:
    """Phase differences between consecutive entries, wrapped to (-pi, pi]."""
    ratios = vector[1:] / vector[:-1]
    return torch.angle(ratios).tolist()


def test_ura_unit_norm_and_batched_shape():
    theta = torch.rand(2, 3, generator=torch.Generator().manual_seed(0)) * math.pi
    phi = torch.rand(2, 3, generator=torch.Generator().manual_seed(1)) * 2 * math.pi
    a = ura_steering(theta, phi, n_rows=4, n_cols=4)
    assert a.shape == (2, 3, 16)
    assert a.dtype == torch.complex64
    assert torch.allclose(a.abs().pow(2).sum(-1), torch.ones(2, 3), atol=1e-6)
    assert torch.allclose(a.abs(), torch.full_like(a.abs(), 0.25), atol=1e-6)


def test_ura_broadside_all_phases_equal():
    a = ura_steering(math.pi / 2, 0.0, n_rows=4, n_cols=4)
    assert a.shape == (16,)
    assert torch.allclose(a, torch.full((16,), 0.25 + 0j, dtype=torch.complex64), atol=1e-6)


def test_ura_horizontal_endfire_pi_per_column():
    # theta = pi/2, phi = pi/2: direction +y, along the rows; half-wavelength -> pi per column
    a = ura_steering(math.pi / 2, math.pi / 2, n_rows=2, n_cols=4).reshape(2, 4)
    for row in range(2):
        for m_h in range(4):
            expected = cmath.exp(1j * math.pi * m_h) / math.sqrt(8)
            assert abs(complex(a[row, m_h].item()) - expected) < 1e-5
    # every vertical step has zero phase change (cos(pi/2) = 0)
    assert torch.allclose(a[1], a[0], atol=1e-6)


def test_ura_zenith_pi_per_row():
    a = ura_steering(0.0, 0.7, n_rows=4, n_cols=3).reshape(4, 3)
    for m_v in range(4):
        expected = cmath.exp(1j * math.pi * m_v) / math.sqrt(12)
        for m_h in range(3):
            assert abs(complex(a[m_v, m_h].item()) - expected) < 1e-5


def test_ura_specific_element_by_hand():
    theta, phi, spacing = 0.7, 1.1, 0.5
    a = ura_steering(theta, phi, n_rows=4, n_cols=4, spacing_wavelengths=spacing)
    m_v, m_h = 2, 3
    index = m_v * 4 + m_h  # vertical-major
    phase = 2 * math.pi * spacing * (m_h * math.sin(theta) * math.sin(phi) + m_v * math.cos(theta))
    assert abs(complex(a[index].item()) - cmath.exp(1j * phase) / 4) < 1e-5
    # a non-default spacing and a float64 request
    angles = torch.tensor([theta, phi], dtype=torch.float64)
    a64 = ura_steering(angles[:1], angles[1:], 3, 2, 0.8, dtype=torch.complex128)
    phase = 2 * math.pi * 0.8 * (1 * math.sin(theta) * math.sin(phi) + 2 * math.cos(theta))
    assert abs(complex(a64[0, 2 * 2 + 1].item()) - cmath.exp(1j * phase) / math.sqrt(6)) < 1e-12


def test_upa_phases_and_normalisation():
    # theta = pi/2, phi = 0: direction +x, the UPA's horizontal axis -> pi per column
    a = upa_steering(math.pi / 2, 0.0, n_h=4, n_v=2, normalize=False).reshape(2, 4)
    assert torch.allclose(a.abs(), torch.ones(2, 4), atol=1e-6)  # unit modulus
    # a phase step of pi (angle() may report it as -pi after rounding)
    assert all(abs(abs(step) - math.pi) < 1e-5 for step in _phase_steps(a[0]))
    assert torch.allclose(a[1], a[0], atol=1e-6)
    # theta = 0: pi per row, columns equal
    b = upa_steering(0.0, 1.3, n_h=3, n_v=4).reshape(4, 3)
    assert torch.allclose(b.abs().pow(2).sum(), torch.tensor(1.0), atol=1e-6)
    for m in range(4):
        expected = cmath.exp(1j * math.pi * m) / math.sqrt(12)
        assert all(abs(complex(b[m, n].item()) - expected) < 1e-5 for n in range(3))
    # a specific element with unequal spacings
    theta, phi, d_h, d_v = 1.9, -0.4, 0.5, 0.7
    c = upa_steering(theta, phi, 5, 3, d_h, d_v, normalize=False)
    m, n = 2, 4
    phase = 2 * math.pi * (d_h * n * math.sin(theta) * math.cos(phi) + d_v * m * math.cos(theta))
    assert abs(complex(c[m * 5 + n].item()) - cmath.exp(1j * phase)) < 1e-5


def test_steering_rejects_bad_sizes():
    with pytest.raises(ConfigError):
        ura_steering(0.1, 0.2, 0, 4)
    with pytest.raises(ConfigError):
        upa_steering(0.1, 0.2, 4, 4, spacing_h_wavelengths=0.0)
    with pytest.raises(ShapeError):
        ura_steering(torch.zeros(3), torch.zeros(2), 2, 2)


def test_los_phase_quarter_wavelength_and_long_distance():
    fc = 2e9
    wavelength = 299_792_458.0 / fc
    assert abs(complex(los_phase(wavelength / 4, fc).item()) - (-1j)) < 1e-6
    distances = torch.tensor([10_000.123, 25_000.0], dtype=torch.float64)
    out = los_phase(distances, fc)
    assert out.shape == (2,)
    for d, value in zip(distances.tolist(), out.tolist(), strict=True):
        expected = cmath.exp(-2j * math.pi * d / wavelength)
        assert abs(value - expected) < 1e-5
    with pytest.raises(ConfigError):
        los_phase(-1.0, fc)


def test_dft_codebook_entries_and_orthonormality():
    codebook = dft_codebook(4, 8)
    assert codebook.shape == (4, 8)
    for m in range(4):
        for column in range(8):
            c = column + 1  # column 0 is the paper's c = 1
            expected = cmath.exp(2j * math.pi * m * c / 8) / 2
            assert abs(complex(codebook[m, column].item()) - expected) < 1e-6
    square = dft_codebook(16, 16, dtype=torch.complex128)
    assert torch.allclose(square.conj().T @ square, torch.eye(16, dtype=torch.complex128))
    with pytest.raises(ConfigError):
        dft_codebook(0, 8)


def test_compression_keeps_the_strongest_codewords():
    generator = torch.Generator().manual_seed(3)
    h = torch.complex(torch.randn(5, 2, 16, generator=generator), torch.randn(5, 2, 16))
    codebook = dft_codebook(16, 32)
    indices, coefficients = compress_channel(h, codebook, 4)
    assert indices.shape == (5, 2, 4) and indices.dtype == torch.long
    assert coefficients.shape == (5, 2, 4)
    # independent reference: explicit projection and a stable argsort in numpy
    h_np = h.numpy().astype(np.complex128)
    f_np = np.array(
        [[np.exp(2j * np.pi * m * c / 32) / 4 for c in range(1, 33)] for m in range(16)]
    )
    for b in range(5):
        for k in range(2):
            d = f_np.conj().T @ h_np[b, k]
            order = np.argsort(-np.abs(d), kind="stable")[:4]
            assert indices[b, k].tolist() == (order + 1).tolist()  # 1-based
            assert np.allclose(coefficients[b, k].numpy(), d[order], atol=1e-4)


def test_compression_of_a_codeword_and_tie_breaking():
    codebook = dft_codebook(8, 8)
    h = 3.0 * codebook[:, 4]  # codeword c = 5 (column 4)
    indices, coefficients = compress_channel(h, codebook, 1)
    assert indices.tolist() == [5]
    assert abs(complex(coefficients[0].item()) - 3.0) < 1e-5
    zero_indices, _ = compress_channel(torch.zeros(8, dtype=torch.complex64), codebook, 3)
    assert zero_indices.tolist() == [1, 2, 3]  # all ties: lower index first
    with pytest.raises(ConfigError):
        compress_channel(h, codebook, 9)
    with pytest.raises(ShapeError):
        compress_channel(torch.zeros(5, dtype=torch.complex64), codebook, 2)


def test_compressed_features_layout():
    indices = torch.tensor([[7, 2, 5]])
    coefficients = torch.tensor([[1 + 2j, -3 + 0.5j, 0 - 1j]], dtype=torch.complex64)
    features = compressed_features(indices, coefficients)
    assert features.shape == (1, 9)  # 3 N_c real scalars
    assert features.dtype == torch.float32
    assert features[0].tolist() == [7, 1, 2, 2, -3, 0.5, 5, 0, -1]
    with pytest.raises(ShapeError):
        compressed_features(indices[:, :2], coefficients)


def test_los_phase_of_a_python_float_keeps_double_precision():
    """Issue 12 item 5: a Python float distance is a double; it was rounded to float32 first
    (0.03 rad off at 1234.5678 m and 28 GHz)."""
    import math

    import torch

    from skyshare.channels.arrays import los_phase

    wavelength = 299_792_458.0 / 28e9
    exact = -2 * math.pi * 1234.5678 / wavelength
    got = complex(los_phase(1234.5678, 28e9, dtype=torch.complex128))
    assert abs(got - complex(math.cos(exact), math.sin(exact))) < 1e-9
