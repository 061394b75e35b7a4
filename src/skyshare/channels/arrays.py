"""Antenna arrays: URA/UPA steering vectors, LoS phase, DFT codebook and channel compression.

Angle convention (the one of :func:`skyshare.geometry.angles.zenith_azimuth`, docs/geometry.md):
``theta`` is the zenith angle measured from +z, ``phi`` the azimuth measured from +x towards +y,
and the unit direction is ``u = (sin th cos ph, sin th sin ph, cos th)``.

Element ordering (everywhere in skyshare): vertical-major, ``m = m_v * M_h + m_h`` with
0-based row (vertical) index ``m_v`` and column (horizontal) index ``m_h``. A flat ``(..., M)``
vector reshapes to ``(..., M_v, M_h)`` with ``.reshape(..., n_rows, n_cols)``.
"""

from __future__ import annotations

import math

import torch

from skyshare.checks import positive_int as _positive_int
from skyshare.checks import real_dtype as _real_dtype
from skyshare.errors import ConfigError, ShapeError
from skyshare.units import wavelength_m

__all__ = [
    "compress_channel",
    "compressed_features",
    "dft_codebook",
    "los_phase",
    "upa_steering",
    "ura_steering",
]


def _angles(
    zenith_rad: float | torch.Tensor,
    azimuth_rad: float | torch.Tensor,
    device: torch.device | str | None,
    real_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both angles as real tensors of one broadcast shape ``(...)``."""
    if device is None:
        for angle in (zenith_rad, azimuth_rad):
            if isinstance(angle, torch.Tensor):
                device = angle.device
                break
    zenith = torch.as_tensor(zenith_rad, dtype=real_dtype, device=device)
    azimuth = torch.as_tensor(azimuth_rad, dtype=real_dtype, device=device)
    try:
        return torch.broadcast_tensors(zenith, azimuth)
    except RuntimeError as error:
        raise ShapeError(
            f"zenith_rad {tuple(zenith.shape)} and azimuth_rad {tuple(azimuth.shape)} do not "
            "broadcast together"
        ) from error


def _planar_steering(
    phase_per_column: torch.Tensor,
    phase_per_row: torch.Tensor,
    n_rows: int,
    n_cols: int,
    normalize: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``exp(j (m_h * phase_per_column + m_v * phase_per_row))`` in vertical-major order.

    ``phase_per_column``/``phase_per_row``: ``(...)`` phase increment (rad) between adjacent
    columns/rows. Returns ``(..., n_rows * n_cols) complex``.
    """
    real_dtype = phase_per_column.dtype
    device = phase_per_column.device
    column_index = torch.arange(n_cols, dtype=real_dtype, device=device)  # m_h
    row_index = torch.arange(n_rows, dtype=real_dtype, device=device)  # m_v
    phase = (
        row_index[:, None] * phase_per_row[..., None, None]
        + column_index[None, :] * phase_per_column[..., None, None]
    )  # (..., n_rows, n_cols)
    vector = torch.polar(torch.ones_like(phase), phase).flatten(-2)  # m = m_v * n_cols + m_h
    if normalize:
        vector = vector / math.sqrt(n_rows * n_cols)
    return vector.to(dtype)


def ura_steering(
    zenith_rad: float | torch.Tensor,
    azimuth_rad: float | torch.Tensor,
    n_rows: int,
    n_cols: int,
    spacing_wavelengths: float = 0.5,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Steering vector of the seed-000 uniform rectangular array (URA), seed 000 §III-B.

    ``a(theta, phi)_m = 1/sqrt(M) exp(j 2 pi Delta (m_h sin(theta) sin(phi) + m_v cos(theta)))``

    with ``Delta = Delta d / lambda`` the spacing in wavelengths, 0-based ``m_h`` (the paper's
    ``m_h - 1``) and ``m_v``, ``M = M_h M_v``, ``M_h = n_cols`` columns along +y and
    ``M_v = n_rows`` rows along +z: the array lies in the y-z plane with broadside along +x, and
    the phase is ``2 pi / lambda * u . r_m`` for element position ``r_m = Delta d (0, m_h, m_v)``.
    Element order ``m = m_v * n_cols + m_h`` (vertical-major). ``||a|| = 1``.

    Args:
        zenith_rad: ``(...)`` zenith angle ``theta`` of the other end seen from the array.
        azimuth_rad: ``(...)`` azimuth ``phi`` from +x, broadcastable with ``zenith_rad``.
        n_rows: ``M_v >= 1`` vertical elements.
        n_cols: ``M_h >= 1`` horizontal elements.
        spacing_wavelengths: ``Delta d / lambda`` (default 0.5, half-wavelength).
        device: output device (default: the angles' device).
        dtype: complex output dtype; the phase is computed in the matching real precision.

    Returns:
        ``(..., M) complex`` with ``M = n_rows * n_cols``.
    """
    n_rows = _positive_int(n_rows, "n_rows")
    n_cols = _positive_int(n_cols, "n_cols")
    if spacing_wavelengths <= 0:
        raise ConfigError(f"spacing_wavelengths must be > 0, got {spacing_wavelengths}")
    theta, phi = _angles(zenith_rad, azimuth_rad, device, _real_dtype(dtype))
    wavenumber_spacing = 2.0 * math.pi * spacing_wavelengths
    phase_per_column = wavenumber_spacing * torch.sin(theta) * torch.sin(phi)
    phase_per_row = wavenumber_spacing * torch.cos(theta)
    return _planar_steering(phase_per_column, phase_per_row, n_rows, n_cols, True, dtype)


def upa_steering(
    zenith_rad: float | torch.Tensor,
    azimuth_rad: float | torch.Tensor,
    n_h: int,
    n_v: int,
    spacing_h_wavelengths: float = 0.5,
    spacing_v_wavelengths: float = 0.5,
    *,
    normalize: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Steering vector of the seed-003 uniform planar array (UPA); docs/channels/arrays.md.

    ``a(theta, phi)_(m, n) = c exp(j 2 pi (d_h n sin(theta) cos(phi) + d_v m cos(theta)))``

    with ``d_h``/``d_v`` the spacings in wavelengths, 0-based column ``n < n_h`` along +x and row
    ``m < n_v`` along +z (the array lies in the x-z plane, broadside along +y), element order
    ``m * n_h + n`` (vertical-major, as :func:`ura_steering`). ``c = 1/sqrt(M)`` when
    ``normalize`` (unit norm, the default, for parity with :func:`ura_steering`), else ``c = 1``
    (unit-modulus entries). The HAPS scenario passes ``normalize=False``: the seed's HAPS LoS
    vector is not normalised, so every element sees the full path gain ``1/FSPL`` and the Rician
    LoS and NLoS parts have equal per-element power scale (``E|h_m|^2 = 1/FSPL``). Angles are in
    the array's frame: a scenario whose array is tilted (e.g. a HAPS array facing the ground)
    rotates the direction into that frame before calling this function.

    Args:
        zenith_rad: ``(...)`` zenith angle ``theta`` in the array frame.
        azimuth_rad: ``(...)`` azimuth ``phi`` from +x, broadcastable with ``zenith_rad``.
        n_h: ``N_h >= 1`` horizontal elements (columns).
        n_v: ``N_v >= 1`` vertical elements (rows).
        spacing_h_wavelengths: ``d_h / lambda`` (default 0.5).
        spacing_v_wavelengths: ``d_v / lambda`` (default 0.5).
        normalize: divide by ``sqrt(N_h N_v)`` (default True).
        device, dtype: output device (default: the angles' device) and complex dtype.

    Returns:
        ``(..., M) complex`` with ``M = n_h * n_v``.
    """
    n_h = _positive_int(n_h, "n_h")
    n_v = _positive_int(n_v, "n_v")
    if spacing_h_wavelengths <= 0 or spacing_v_wavelengths <= 0:
        raise ConfigError(
            "spacing_h_wavelengths and spacing_v_wavelengths must be > 0, got "
            f"{spacing_h_wavelengths} and {spacing_v_wavelengths}"
        )
    theta, phi = _angles(zenith_rad, azimuth_rad, device, _real_dtype(dtype))
    phase_per_column = 2.0 * math.pi * spacing_h_wavelengths * torch.sin(theta) * torch.cos(phi)
    phase_per_row = 2.0 * math.pi * spacing_v_wavelengths * torch.cos(theta)
    return _planar_steering(phase_per_column, phase_per_row, n_v, n_h, normalize, dtype)


def los_phase(
    d_m: float | torch.Tensor,
    fc_hz: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Phase rotation of a line-of-sight path, ``exp(-j 2 pi d / lambda)`` (seed 000 §III-B).

    Seed 000 writes the LoS channel as ``g^LoS = exp(-j 2 pi d / lambda) a(theta, phi)``.
    ``d / lambda`` is reduced modulo 1 in float64 before the complex exponential, so kilometre
    distances keep their sub-wavelength phase even for a complex64 output.

    Args:
        d_m: ``(...)`` path length ``d >= 0`` in metres.
        fc_hz: carrier frequency ``f_c > 0``.
        device, dtype: output device (default: that of ``d_m``) and complex dtype.

    Returns:
        ``(...) complex`` unit-modulus phase factors.
    """
    wavelength = wavelength_m(fc_hz)
    if device is None and isinstance(d_m, torch.Tensor):
        device = d_m.device
    if isinstance(d_m, torch.Tensor):
        distance = d_m.to(device=device, dtype=torch.float64)
    else:  # a Python float is a double: keep all of it (as_tensor would round to float32)
        distance = torch.as_tensor(d_m, dtype=torch.float64, device=device)
    if torch.any(distance < 0):
        raise ConfigError("d_m must be >= 0")
    cycles = torch.remainder(distance / wavelength, 1.0)
    phase = -2.0 * math.pi * cycles
    return torch.polar(torch.ones_like(phase), phase).to(dtype)


def dft_codebook(
    n_antennas: int,
    size: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """DFT codebook ``F = [f_1, ..., f_C]`` of seed 000 §V-C-2.

    ``f_c = 1/sqrt(M) [1, e^{j 2 pi c/C}, ..., e^{j 2 pi (M-1) c/C}]^T`` for ``c = 1..C`` as in
    the paper: column ``i`` (0-based) holds codeword ``c = i + 1``, so the last column (``c = C``)
    is the all-ones beam. Columns have unit norm; with ``C = M`` they are orthonormal.

    Args:
        n_antennas: ``M >= 1``.
        size: codebook size ``C >= 1`` (seed 000: 128).
        device, dtype: output device and complex dtype.

    Returns:
        ``(M, C) complex``.
    """
    n_antennas = _positive_int(n_antennas, "n_antennas")
    size = _positive_int(size, "size")
    antenna = torch.arange(n_antennas, dtype=torch.float64, device=device)
    codeword = torch.arange(1, size + 1, dtype=torch.float64, device=device)  # c = 1..C
    cycles = torch.remainder(antenna[:, None] * codeword[None, :], size) / size
    phase = 2.0 * math.pi * cycles
    codebook = torch.polar(torch.ones_like(phase), phase) / math.sqrt(n_antennas)
    return codebook.to(dtype)


def compress_channel(
    h: torch.Tensor, codebook: torch.Tensor, n_strongest: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codebook compression of a channel vector (seed 000 §V-C-2).

    ``d = F^H h = [d_1, ..., d_C]^T``; the entries are sorted by ``|d_c|`` descending and the
    ``N_c`` largest are kept, giving ``h^c = [c_1, d_{c_1}, ..., c_{N_c}, d_{c_{N_c}}]``. Ties
    are broken deterministically (zero magnitudes: lower codeword index first).

    Args:
        h: ``(..., M) complex`` channel vectors.
        codebook: ``(M, C) complex`` codebook (:func:`dft_codebook`).
        n_strongest: compression factor ``N_c``, ``1 <= N_c <= C`` (seed 000: 4).

    Returns:
        indices: ``(..., N_c) long`` codeword indices ``c_i``, **1-based** like the paper
            (column ``c_i - 1`` of ``codebook``), strongest first.
        coefficients: ``(..., N_c) complex`` the matching ``d_{c_i}``.
    """
    if codebook.dim() != 2:
        raise ShapeError(f"codebook must be (M, C), got shape {tuple(codebook.shape)}")
    n_antennas, size = codebook.shape
    if h.dim() < 1 or h.shape[-1] != n_antennas:
        raise ShapeError(
            f"h must be (..., M) with M = {n_antennas} (the codebook's rows), "
            f"got shape {tuple(h.shape)}"
        )
    if int(n_strongest) != n_strongest or not 1 <= n_strongest <= size:
        raise ConfigError(
            f"n_strongest (N_c) must be an integer in [1, C={size}], got {n_strongest}"
        )
    dtype = torch.promote_types(h.dtype, codebook.dtype)
    projections = h.to(dtype) @ codebook.to(dtype).conj()  # (..., C): d_c = f_c^H h
    # top-N_c by |d_c|^2 (topk is ~10x faster than a stable sort of all C entries); a tiny
    # index-proportional offset orders exact ties of zero magnitude lower codeword first.
    power = projections.real.square() + projections.imag.square()
    index = torch.arange(size, device=h.device, dtype=power.dtype)
    key = power - index * torch.finfo(power.dtype).tiny
    kept = key.topk(int(n_strongest), dim=-1, sorted=True).indices
    coefficients = torch.gather(projections, -1, kept)
    return kept + 1, coefficients


def compressed_features(indices: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Flatten a compressed channel into real scalars ``[c_1, Re d_1, Im d_1, c_2, ...]``.

    Three real scalars per kept entry (index, real part, imaginary part): a compressed channel is
    ``3 N_c`` real numbers, the count behind seed 000's observation size and its signaling term
    ``3 N_c K``.

    Args:
        indices: ``(..., N_c) long`` from :func:`compress_channel` (1-based).
        coefficients: ``(..., N_c) complex`` from :func:`compress_channel`.

    Returns:
        ``(..., 3 N_c) float`` (real dtype of ``coefficients``).
    """
    if indices.shape != coefficients.shape:
        raise ShapeError(
            f"indices {tuple(indices.shape)} and coefficients {tuple(coefficients.shape)} "
            "must have the same shape (..., N_c)"
        )
    if not coefficients.is_complex():
        raise ShapeError("coefficients must be complex")
    real_dtype = _real_dtype(coefficients.dtype)
    triples = torch.stack(
        (indices.to(real_dtype), coefficients.real, coefficients.imag), dim=-1
    )  # (..., N_c, 3)
    return triples.flatten(-2)
