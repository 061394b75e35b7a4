"""Frequency-domain channels: per-subchannel OFDM fading (seed 001) and multiband MIMO (seed 004).

Axis order follows the package: batch, receiver, transmitter, subchannel, antenna.
"""

from __future__ import annotations

import torch

from skyshare.channels.fading import complex_normal
from skyshare.checks import positive_int as _positive_int
from skyshare.checks import real_dtype as _real_dtype
from skyshare.errors import ConfigError, ShapeError
from skyshare.units import db_to_linear

__all__ = [
    "exponential_power_delay_profile",
    "multiband_average_gains",
    "multiband_channels",
    "subchannel_bandwidth_hz",
    "subchannel_rayleigh",
]


def subchannel_bandwidth_hz(total_bandwidth_hz: float, n_subchannels: int) -> float:
    """Width of one subchannel, ``W = B / F`` (seed 001 §II: 20 MHz split into F subchannels)."""
    if total_bandwidth_hz <= 0:
        raise ConfigError(f"total_bandwidth_hz must be > 0, got {total_bandwidth_hz}")
    n_subchannels = _positive_int(n_subchannels, "n_subchannels")
    return total_bandwidth_hz / n_subchannels


def exponential_power_delay_profile(
    n_taps: int,
    delay_decay_taps: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Exponential power delay profile ``P_l = exp(-l / tau) / sum_l' exp(-l' / tau)``.

    Taps at integer sample delays ``l = 0..L-1`` (spacing ``1 / B`` for total bandwidth ``B``),
    normalised to unit total power. This is the exponential model of IEEE 802.11 (N. Chayat,
    IEEE P802.11-97/96, 1997; also Goldsmith, *Wireless Communications*, 2005, §3.3), with ``tau``
    the e-folding delay of the power in taps, which is the rms delay spread of the continuous
    exponential profile.

    Args:
        n_taps: ``L >= 1``.
        delay_decay_taps: ``tau > 0`` in taps.
        device, dtype: output device and real dtype.

    Returns:
        ``(L,) float`` summing to 1.
    """
    n_taps = _positive_int(n_taps, "n_taps")
    if delay_decay_taps <= 0:
        raise ConfigError(f"delay_decay_taps must be > 0, got {delay_decay_taps}")
    delays = torch.arange(n_taps, device=device, dtype=dtype)
    profile = torch.exp(-delays / delay_decay_taps)
    return profile / profile.sum()


def subchannel_rayleigh(
    shape_prefix: tuple[int, ...],
    n_subchannels: int,
    generator: torch.Generator,
    *,
    n_taps: int | None = None,
    delay_decay_taps: float = 2.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Rayleigh fading coefficients per OFDM subchannel, unit average power (seed 001 §II).

    Seed 001 says only "Rayleigh fading" per subchannel ``h_{k,n,f}``. Two forms:

    - ``n_taps=None`` (default): i.i.d. ``CN(0, 1)`` per subchannel (block fading per subchannel,
      no frequency correlation).
    - ``n_taps=L``: frequency-selective fading from an ``L``-tap channel with independent
      ``CN(0, P_l)`` taps and the exponential power delay profile
      :func:`exponential_power_delay_profile` (unit total power): ``H[f] = sum_l h_l
      exp(-j 2 pi f l / F)``, the ``F``-point FFT of the taps, so that adjacent subchannels are
      correlated with ``E[H_f H_{f+1}^*] = sum_l P_l exp(j 2 pi l / F)``. The default
      ``delay_decay_taps = 2`` is 100 ns at seed 001's 20 MHz sampling (50 ns taps), the
      "nominal" delay spread of 3GPP TR 38.901 §7.7.3 (TDL/CDL delay scaling examples).

    Either way ``E|H_f|^2 = 1``; path loss and shadowing are applied separately.

    Args:
        shape_prefix: leading shape, e.g. ``(B, K, N)`` (batch, user, BS).
        n_subchannels: ``F >= 1``.
        generator: source of randomness.
        n_taps: ``None`` for i.i.d. subchannels, else ``1 <= L <= F`` taps.
        delay_decay_taps: e-folding delay ``tau > 0`` of the power delay profile, in taps.
        device, dtype: output device and complex dtype.

    Returns:
        ``(*shape_prefix, F) complex``.
    """
    n_subchannels = _positive_int(n_subchannels, "n_subchannels")
    shape_prefix = tuple(int(n) for n in shape_prefix)
    if n_taps is None:
        return complex_normal((*shape_prefix, n_subchannels), generator, device=device, dtype=dtype)
    n_taps = _positive_int(n_taps, "n_taps")
    if n_taps > n_subchannels:
        raise ConfigError(f"n_taps must be <= n_subchannels ({n_subchannels}), got {n_taps}")
    real_dtype = _real_dtype(dtype)
    profile = exponential_power_delay_profile(
        n_taps, delay_decay_taps, device=device, dtype=real_dtype
    )
    taps = complex_normal(
        (*shape_prefix, n_taps), generator, variance=profile, device=device, dtype=dtype
    )
    return torch.fft.fft(taps, n=n_subchannels, dim=-1)


def multiband_average_gains(
    n_cells: int,
    snr_db: float | torch.Tensor,
    sir_db: float | torch.Tensor,
    *,
    noise_power: float = 1.0,
    power_per_user_channel: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Average per-antenna channel gains ``a[b~, b]`` of seed 004 (§II-A eq. (2), §V eq. (23)).

    ``a[b~, b] = (1/M) E||h_{b~,(b,u)}||^2`` is the gain from BS ``b~`` (transmitter, first index)
    to the users of cell ``b`` (second index). The serving gain follows from the SNR, which seed
    004 defines "per slot per user per frequency channel":
    ``a[b, b] = SNR * noise_power / power_per_user_channel`` (default normalisation: unit noise
    power and unit transmit power per user per channel, so ``a[b, b] = SNR``). The cross gains
    follow from the channel SIR (23), ``SIR = a[b, b] / a[b~, b]``:
    ``a[b~, b] = a[b, b] / SIR[b~, b]`` for ``b~ != b``.

    Args:
        n_cells: number of cells ``C >= 1``.
        snr_db: average SNR in dB: a float, or ``(C,)`` one per receiving cell.
        sir_db: channel SIR in dB: a float for all pairs, or a ``(C, C)`` matrix indexed
            ``[b~, b]`` (the diagonal is ignored).
        noise_power: noise power ``sigma^2 > 0`` in the normalised units (default 1).
        power_per_user_channel: transmit power per user per frequency channel ``> 0`` (default 1).
        device, dtype: output device and real dtype.

    Returns:
        ``(C, C) float`` gains ``a[b~, b]`` (transmitter cell, receiver cell).
    """
    n_cells = _positive_int(n_cells, "n_cells")
    if noise_power <= 0 or power_per_user_channel <= 0:
        raise ConfigError(
            "noise_power and power_per_user_channel must be > 0, got "
            f"{noise_power} and {power_per_user_channel}"
        )
    snr = db_to_linear(torch.as_tensor(snr_db, device=device, dtype=dtype))
    if snr.shape not in ((), (n_cells,)):
        raise ShapeError(f"snr_db must be a scalar or ({n_cells},), got {tuple(snr.shape)}")
    sir = db_to_linear(torch.as_tensor(sir_db, device=device, dtype=dtype))
    if sir.shape not in ((), (n_cells, n_cells)):
        raise ShapeError(
            f"sir_db must be a scalar or ({n_cells}, {n_cells}), got {tuple(sir.shape)}"
        )
    serving_gain = (snr * noise_power / power_per_user_channel).expand(n_cells)  # a[b, b]
    cross_gain = serving_gain[None, :] / sir.expand(n_cells, n_cells)  # a[b, b] / SIR[b~, b]
    is_serving = torch.eye(n_cells, dtype=torch.bool, device=cross_gain.device)
    return torch.where(is_serving, serving_gain[None, :].expand(n_cells, n_cells), cross_gain)


def multiband_channels(
    gains: torch.Tensor,
    users_per_cell: int,
    n_freq: int,
    n_antennas: int,
    generator: torch.Generator,
    batch: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Block-fading multicell multiband MIMO channels of seed 004 §II-A.

    ``h_{b~,(b,u)}[f] ~ CN(0, a[b~, b] I_M)``, independent over batch, users, cells, frequency
    channels and antennas, so that ``(1/M) E||h||^2 = a[b~, b]`` (eq. (2)). Each call is a new
    independent block.

    Args:
        gains: ``(C, C) float`` average gains ``a[b~, b]`` indexed (transmitter cell, receiver
            cell), e.g. from :func:`multiband_average_gains`.
        users_per_cell: ``U >= 1`` users in every cell.
        n_freq: ``F >= 1`` frequency channels (seed 004's ``N_f``).
        n_antennas: ``M >= 1`` BS antennas.
        generator: source of randomness.
        batch: ``B >= 1`` independent realisations.
        device, dtype: output device (default: that of ``gains``) and complex dtype.

    Returns:
        ``(B, C*U, C, F, M) complex``: receiver axis is the flattened user index ``b * U + u``
        (user ``u`` of cell ``b``), transmitter axis is the BS ``b~``; entry
        ``[:, b*U + u, b~]`` is ``h_{b~,(b,u)}``.
    """
    if gains.dim() != 2 or gains.shape[0] != gains.shape[1]:
        raise ShapeError(f"gains must be a square (C, C) matrix, got shape {tuple(gains.shape)}")
    if gains.is_complex() or torch.any(gains < 0):
        raise ConfigError("gains must be real and >= 0")
    n_cells = gains.shape[0]
    if n_cells < 1:
        raise ShapeError("gains must have at least one cell (C >= 1)")
    users_per_cell = _positive_int(users_per_cell, "users_per_cell")
    n_freq = _positive_int(n_freq, "n_freq")
    n_antennas = _positive_int(n_antennas, "n_antennas")
    batch = _positive_int(batch, "batch")
    if device is None:
        device = gains.device
    # variance[b*U + u, b~] = a[b~, b]: transpose to (receiver cell, transmitter), repeat users.
    variance = gains.T.repeat_interleave(users_per_cell, dim=0).to(device)  # (C*U, C)
    shape = (batch, n_cells * users_per_cell, n_cells, n_freq, n_antennas)
    return complex_normal(
        shape, generator, variance=variance[:, :, None, None], device=device, dtype=dtype
    )
