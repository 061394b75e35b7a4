"""Tests for skyshare.channels.fading: statistics with seeded generators, hand-computed values."""

from __future__ import annotations

import cmath
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from skyshare.channels.fading import (
    GaussMarkovFading,
    apply_large_scale,
    complex_normal,
    complex_normal_planes,
    doppler_hz,
    gauss_markov_step,
    jakes_correlation,
    rayleigh,
    real_scaled,
    rician,
)
from skyshare.errors import ConfigError, ShapeError


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _bessel_j0_series(x: float, terms: int = 60) -> float:
    """J0(x) = sum_k (-1)^k (x/2)^(2k) / (k!)^2, evaluated in double precision."""
    return sum((-1) ** k * (x / 2.0) ** (2 * k) / math.factorial(k) ** 2 for k in range(terms))


def test_rayleigh_unit_power_and_half_variance_per_component():
    h = rayleigh((4000, 2, 3, 4), _generator(1))  # 96k samples
    assert h.shape == (4000, 2, 3, 4)
    assert h.dtype == torch.complex64
    # std of the sample mean of |h|^2 (Exp(1)) is 1/sqrt(96000) = 0.0032: 0.02 is > 6 sigma.
    assert abs(h.abs().pow(2).mean().item() - 1.0) < 0.02
    assert abs(h.real.var().item() - 0.5) < 0.015
    assert abs(h.imag.var().item() - 0.5) < 0.015
    assert abs(h.mean().item()) < 0.02
    # real and imaginary parts uncorrelated
    assert abs((h.real * h.imag).mean().item()) < 0.015


def test_complex_normal_variance_tensor_and_reproducibility():
    variance = torch.tensor([0.5, 4.0])[:, None]  # (2, 1) broadcast to (2, 50000)
    x = complex_normal((2, 50_000), _generator(2), variance=variance, dtype=torch.complex128)
    assert x.dtype == torch.complex128
    power = x.abs().pow(2).mean(dim=1)
    assert abs(power[0].item() - 0.5) / 0.5 < 0.03
    assert abs(power[1].item() - 4.0) / 4.0 < 0.03
    same = complex_normal((2, 50_000), _generator(2), variance=variance, dtype=torch.complex128)
    assert torch.equal(x, same)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 3), (16,), (7, 9), (4, 30, 3, 80)])
def test_complex_normal_planes_scale_in_the_draw_equals_draw_times_std(shape, dtype):
    """A float std applied inside the draw gives the values of N(0, 1) times std bit for bit
    (planes of 16 values or more; smaller ones are drawn and multiplied), so complex_normal
    and every user of it keep their values."""
    for std in (math.sqrt(0.5), 0.2071, 3.0):
        generator = _generator(11)
        expected = torch.empty((2, *shape), dtype=dtype)
        expected[0].normal_(generator=generator)
        expected[1].normal_(generator=generator)
        expected.mul_(std)
        planes = complex_normal_planes(shape, _generator(11), std=std, dtype=dtype)
        assert planes.dtype == dtype and torch.equal(planes, expected)
    variance = torch.rand(shape[-1], generator=_generator(12), dtype=dtype) + 0.5
    x = complex_normal(shape, _generator(13), variance=variance, dtype=_complex(dtype))
    planes = complex_normal_planes(shape, _generator(13), std=(variance / 2).sqrt(), dtype=dtype)
    assert torch.equal(torch.complex(planes[0], planes[1]), x)


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex64 if dtype == torch.float32 else torch.complex128


def test_complex_normal_planes_two_streams_same_values_in_one_thread_or_two():
    """With imag_generator each generator fills one plane: the real plane is the first
    generator's draw, the imaginary plane the second's, whether the worker thread draws it
    concurrently or not (and into out as into a new tensor)."""
    shape, std = (3, 30, 3, 80), 0.3
    alone = complex_normal_planes(shape, _generator(1), std=std)
    second = complex_normal_planes(shape, _generator(2), std=std)
    sequential = complex_normal_planes(shape, _generator(1), std=std, imag_generator=_generator(2))
    with ThreadPoolExecutor(max_workers=1) as pool:
        out = torch.empty(2, *shape)
        concurrent = complex_normal_planes(
            shape, _generator(1), std=std, out=out, imag_generator=_generator(2), executor=pool
        )
        assert concurrent is out
        small = complex_normal_planes((2, 3), _generator(1), imag_generator=_generator(2),
                                      executor=pool)  # fmt: skip
    assert torch.equal(sequential, concurrent)
    assert torch.equal(sequential[0], alone[0]) and torch.equal(sequential[1], second[0])
    assert torch.equal(small, complex_normal_planes((2, 3), _generator(1),
                                                    imag_generator=_generator(2)))  # fmt: skip
    with pytest.raises(ShapeError):
        complex_normal_planes(shape, _generator(1), out=torch.empty(2, 3))


def test_complex_normal_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        complex_normal((3,), _generator(), variance=-1.0)
    with pytest.raises(ConfigError):
        complex_normal((3,), _generator(), dtype=torch.float32)
    with pytest.raises(ShapeError):
        complex_normal((3,), _generator(), variance=torch.ones(4))


def test_rician_unit_power_and_k_factor_recovered_by_moments():
    k_linear = 10.0  # 10 dB
    n_samples, n_antennas = 20_000, 4
    phases = torch.tensor([0.3, -1.2, 2.0, 0.0])
    los = torch.polar(torch.ones(n_antennas), phases).expand(n_samples, n_antennas)
    nlos = rayleigh((n_samples, n_antennas), _generator(3))
    g = rician(los, nlos, k_linear)
    assert g.shape == (n_samples, n_antennas)
    assert abs(g.abs().pow(2).mean().item() - 1.0) < 0.02
    mean = g.mean(dim=0)
    variance = (g - mean).abs().pow(2).mean(dim=0)
    k_hat = (mean.abs().pow(2) / variance).mean().item()
    # K_hat = |E g|^2 / var g; the var estimate has ~0.7 % relative error per antenna
    assert abs(k_hat - k_linear) / k_linear < 0.05
    # the mean is the scaled LoS: sqrt(K/(K+1)) exp(j phase)
    expected = [math.sqrt(k_linear / (k_linear + 1)) * cmath.exp(1j * p) for p in phases.tolist()]
    for m in range(n_antennas):
        assert abs(complex(mean[m].item()) - expected[m]) < 0.01


def test_rician_per_link_k_and_limits():
    los = torch.full((3, 2), 1.0 + 0.0j, dtype=torch.complex64)
    nlos = torch.full((3, 2), 0.0 + 1.0j, dtype=torch.complex64)
    k = torch.tensor([0.0, 3.0, math.inf])  # one K per link, broadcast over antennas
    g = rician(los, nlos, k)
    assert torch.allclose(g[0], torch.full((2,), 1j, dtype=torch.complex64))  # pure NLoS
    assert torch.allclose(g[1], torch.full((2,), math.sqrt(0.75) + 0.5j, dtype=torch.complex64))
    assert torch.allclose(g[2], torch.full((2,), 1.0 + 0.0j, dtype=torch.complex64))  # pure LoS
    with pytest.raises(ConfigError):
        rician(los, nlos, -1.0)
    with pytest.raises(ShapeError):
        rician(los, nlos, torch.ones(5))


def test_gauss_markov_lag_one_correlation_and_stationary_power():
    alpha = 0.64  # seed 000 §VI
    process = GaussMarkovFading((2000, 4), alpha, _generator(4))
    previous = process.h
    lag_products, powers = [], [previous.abs().pow(2).mean()]
    for _ in range(40):
        current = process.step()
        assert current is process.h
        lag_products.append((current * previous.conj()).mean())
        powers.append(current.abs().pow(2).mean())
        previous = current
    correlation = torch.stack(lag_products).mean()
    # 320k products; std of the estimate ~ 1/sqrt(320000) = 0.0018
    assert abs(correlation.real.item() - alpha) < 0.01
    assert abs(correlation.imag.item()) < 0.01
    assert abs(torch.stack(powers).mean().item() - 1.0) < 0.01
    assert max(abs(p.item() - 1.0) for p in powers) < 0.06  # every slot, 8000 samples each


def test_gauss_markov_step_extremes_and_validation():
    h = rayleigh((5, 3), _generator(5))
    assert torch.equal(gauss_markov_step(h, 1.0, _generator(6)), h)  # static channel
    fresh = gauss_markov_step(h, 0.0, _generator(6))
    assert torch.equal(fresh, rayleigh((5, 3), _generator(6)))  # independent redraw
    per_link = gauss_markov_step(h, torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]), _generator(6))
    assert torch.equal(per_link[:4], h[:4])
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ConfigError):
            gauss_markov_step(h, bad, _generator())
    with pytest.raises(ConfigError):
        GaussMarkovFading((2, 2), 1.5, _generator())


def test_reset_redraws_initial_state():
    process = GaussMarkovFading((3, 2), 0.9, _generator(7))
    first = process.h.clone()
    again = process.reset()
    assert again is process.h
    assert not torch.equal(first, again)


def test_doppler_and_jakes_against_hand_values():
    # 250 m/s at 2 GHz (seed 000 airplanes): f_D = v f_c / c
    assert doppler_hz(250.0, 2e9) == pytest.approx(250.0 * 2e9 / 299_792_458.0, rel=1e-12)
    # 3 km/h pedestrian at 2 GHz, 1 ms slot: small argument
    f_d = (3.0 / 3.6) * 2e9 / 299_792_458.0
    x = 2.0 * math.pi * f_d * 1e-3
    assert jakes_correlation(f_d, 1e-3) == pytest.approx(_bessel_j0_series(x), abs=1e-6)
    # larger arguments, including past the first zero (negative correlation)
    doppler = torch.tensor([100.0, 300.0, 795.77])
    alphas = jakes_correlation(doppler, 1e-3)
    for f, a in zip(doppler.tolist(), alphas.tolist(), strict=True):
        assert a == pytest.approx(_bessel_j0_series(2.0 * math.pi * f * 1e-3), abs=1e-5)
    assert alphas[-1] < 0  # 2 pi * 795.77 * 1e-3 = 5.0, J0(5) = -0.1776
    with pytest.raises(ConfigError):
        jakes_correlation(10.0, 0.0)
    with pytest.raises(ConfigError):
        doppler_hz(-1.0, 2e9)


def test_apply_large_scale_matches_db_amplitude():
    h = torch.ones(2, 3, 4, dtype=torch.complex64)
    pathloss_db = torch.tensor([[100.0, 120.0, 80.0], [90.0, 60.0, 140.0]])
    shadowing_db = torch.tensor([[3.0, -2.0, 0.0], [0.0, 5.0, -8.0]])
    out = apply_large_scale(h, pathloss_db, shadowing_db)
    assert out.shape == (2, 3, 4)
    for b in range(2):
        for k in range(3):
            total = pathloss_db[b, k].item() + shadowing_db[b, k].item()
            expected = 10.0 ** (-total / 20.0)
            assert out[b, k].abs().tolist() == pytest.approx([expected] * 4, rel=1e-5)
    # power scales by 10^(-PL/10)
    scalar = apply_large_scale(h, 30.0)
    assert scalar.abs().pow(2)[0, 0, 0].item() == pytest.approx(1e-3, rel=1e-5)
    with pytest.raises(ShapeError):
        apply_large_scale(h, torch.zeros(5))


@pytest.mark.parametrize("cdtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize(
    "z_shape,factor",
    [
        ((4, 3, 2), 0.64),
        ((4, 3, 2), 3),
        ((4, 3, 2), "per-link"),  # (4, 3, 1), as the scenarios pass it
        ((4, 3, 2), "row"),  # (2,), fewer dimensions than z
        ((4, 3, 2), "leading"),  # (5, 1, 1, 1), an extra leading axis
        ((4, 3, 2), "0-dim float64"),
    ],
)
def test_real_scaled_equals_the_complex_product_bit_for_bit(cdtype, z_shape, factor):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(z_shape, generator=g, dtype=cdtype)
    z[0, 0, 0] = complex(0.0, -0.0)
    real = torch.float64 if cdtype == torch.complex128 else torch.float32
    factors = {
        "per-link": torch.rand(4, 3, 1, generator=g, dtype=real),
        "row": torch.rand(2, generator=g, dtype=real),
        "leading": torch.rand(5, 1, 1, 1, generator=g, dtype=real),
        "0-dim float64": torch.tensor(0.37, dtype=torch.float64),
    }
    f = factors.get(factor, factor)
    expected = z * f
    got = real_scaled(z, f)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert torch.equal(torch.view_as_real(got), torch.view_as_real(expected))
    # non-contiguous and conjugated inputs too
    zt = z.transpose(0, 1)
    ft = f.transpose(0, 1) if isinstance(f, torch.Tensor) and f.ndim == 3 else f
    assert torch.equal(real_scaled(zt, ft), zt * ft)
    assert torch.equal(real_scaled(z.conj(), f), z.conj() * f)
