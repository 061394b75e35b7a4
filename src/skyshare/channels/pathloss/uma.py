"""3GPP TR 38.901 V17.0.0 urban macro (UMa).

Path loss (Table 7.4.1-1), LoS probability (Table 7.4.2-1) and shadow-fading standard deviation.
Page: ``docs/channels/uma.md``.
"""

from __future__ import annotations

import torch

from skyshare.channels.pathloss._common import (
    TensorLike,
    _as_bool_tensor,
    _as_float_tensors,
    _breakpoint_distance_m,
    _ghz,
    _require_at_least,
    _require_in_range,
)
from skyshare.errors import ConfigError

UMA_MIN_D2D_M = 10.0
"""Lower end of the TR 38.901 UMa validity range 10 m <= d_2D <= 5 km (Table 7.4.1-1)."""


def uma_los_probability(d2d_m: TensorLike, h_ut_m: TensorLike) -> torch.Tensor:
    """UMa line-of-sight probability, TR 38.901 V17.0.0 Table 7.4.2-1.

    ``Pr_LOS = 1`` for d_2D <= 18 m, otherwise::

        Pr_LOS = [18/d_2D + exp(-d_2D/63) (1 - 18/d_2D)]
                 * [1 + C'(h_UT) * 5/4 * (d_2D/100)^3 * exp(-d_2D/150)]

    with ``C'(h_UT) = 0`` for h_UT <= 13 m and ``((h_UT - 13)/10)^1.5`` for 13 m < h_UT <= 23 m.
    ``d_2D`` is the outdoor 2D distance (all users outdoors here). The product can exceed 1
    slightly for h_UT > 13 m near 18 m; the result is clamped to [0, 1].

    Args:
        d2d_m: (B, R, T) float, horizontal BS-UT distance in m, >= 0.
        h_ut_m: (B, R, T) float or scalar, UT antenna height in m, in [1, 23] (the model's range).

    Returns:
        (B, R, T) float probability in [0, 1] (broadcast shape of the arguments).

    Raises:
        ConfigError: ``d2d_m`` negative or ``h_ut_m`` outside [1, 23] m.
    """
    d2d, h_ut = _as_float_tensors(d2d_m, h_ut_m)
    _require_at_least("d2d_m", d2d, 0.0, "m")
    _require_in_range("h_ut_m", h_ut, 1.0, 23.0, "m")
    d = torch.clamp(d2d, min=18.0)  # the formula is only used beyond 18 m
    base = 18.0 / d + torch.exp(-d / 63.0) * (1.0 - 18.0 / d)
    c_prime = torch.where(
        h_ut <= 13.0, torch.zeros_like(h_ut), torch.clamp((h_ut - 13.0) / 10.0, min=0.0) ** 1.5
    )
    height_factor = 1.0 + c_prime * 1.25 * (d / 100.0) ** 3 * torch.exp(-d / 150.0)
    # For h_UT > 13 m just beyond 18 m the product exceeds 1 (up to 1.0059 at h_UT = 22.5 m):
    # a probability, so clamped to [0, 1], as ns-3's ThreeGppUmaChannelConditionModel does in
    # effect (it compares a uniform draw with the value, so anything >= 1 is always LoS).
    probability = (base * height_factor).clamp(0.0, 1.0)
    return torch.where(d2d <= 18.0, torch.ones_like(probability), probability)


def uma_breakpoint_distance_m(
    h_bs_m: TensorLike, h_ut_m: TensorLike, fc_hz: TensorLike, h_e_m: TensorLike = 1.0
) -> torch.Tensor:
    """UMa breakpoint distance ``d'_BP = 4 h'_BS h'_UT f_c / c``, TR 38.901 Table 7.4.1-1 note 1.

    Effective heights ``h'_BS = h_BS - h_E`` and ``h'_UT = h_UT - h_E``; ``c = 3.0e8 m/s`` as in
    the note. The standard takes ``h_E = 1 m`` with probability ``1/(1 + C(d_2D, h_UT))`` and
    otherwise uniformly from {12, 15, ..., h_UT - 1.5} m (note 1); ``C = 0`` for h_UT < 13 m,
    so ``h_E = 1 m`` there. Choice: that stochastic draw for taller UTs is replaced by the
    parameter ``h_e_m`` (default 1 m), which may be a per-link tensor if the caller draws it.

    Args:
        h_bs_m: (B, R, T) float or scalar, BS antenna height in m, > h_e_m.
        h_ut_m: (B, R, T) float or scalar, UT antenna height in m, > h_e_m.
        fc_hz: scalar or (B, R, T) float, carrier frequency in Hz, > 0.
        h_e_m: scalar or (B, R, T) float, effective environment height in m, >= 0.

    Returns:
        (B, R, T) float breakpoint distance in m.
    """
    return _breakpoint_distance_m(h_bs_m, h_ut_m, fc_hz, h_e_m, terminal_name="h_ut_m")


def _uma_clamped_distances(
    d2d: torch.Tensor, d3d: torch.Tensor, h_bs: torch.Tensor, h_ut: torch.Tensor, min_d2d: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate links closer than ``min_d2d`` at the point d_2D = min_d2d (same heights)."""
    _require_at_least("d2d_m", d2d, 0.0, "m")
    _require_at_least("d3d_m", d3d, 0.0, "m")
    if min_d2d < 0:
        raise ConfigError(f"min_d2d_m must be >= 0 m, got {min_d2d!r}")
    d3d_floor = torch.sqrt(min_d2d**2 + (h_bs - h_ut) ** 2)
    return torch.clamp(d2d, min=min_d2d), torch.maximum(d3d, d3d_floor)


def uma_pathloss_los_db(
    d2d_m: TensorLike,
    d3d_m: TensorLike,
    h_bs_m: TensorLike,
    h_ut_m: TensorLike,
    fc_hz: TensorLike,
    h_e_m: TensorLike = 1.0,
    *,
    min_d2d_m: float = UMA_MIN_D2D_M,
) -> torch.Tensor:
    """UMa LoS path loss, TR 38.901 V17.0.0 Table 7.4.1-1 (f_c in GHz, distances in m)::

        PL_1 = 28.0 + 22 log10(d_3D) + 20 log10(f_c)                        d_2D <= d'_BP
        PL_2 = 28.0 + 40 log10(d_3D) + 20 log10(f_c)
               - 9 log10(d'_BP^2 + (h_BS - h_UT)^2)                         d'_BP < d_2D

    with ``d'_BP`` from :func:`uma_breakpoint_distance_m`.

    Validity 10 m <= d_2D <= 5 km. Choices: links with d_2D < ``min_d2d_m`` (10 m) are evaluated
    at d_2D = 10 m, i.e. d_3D is raised to ``sqrt(10^2 + (h_BS - h_UT)^2)`` when smaller;
    beyond 5 km the formula is extrapolated without error. Heights outside the standard's
    1.5 m <= h_UT <= 22.5 m, h_BS = 25 m are accepted (extrapolation).

    Args:
        d2d_m: (B, R, T) float, horizontal distance in m, >= 0.
        d3d_m: (B, R, T) float, 3D distance in m, >= 0 (consistent with d2d_m and the heights).
        h_bs_m: (B, R, T) float or scalar, BS antenna height in m.
        h_ut_m: (B, R, T) float or scalar, UT antenna height in m.
        fc_hz: scalar or tensor, carrier frequency in Hz.
        h_e_m: effective environment height in m (see :func:`uma_breakpoint_distance_m`).
        min_d2d_m: clamp distance in m (default 10 m, the standard's lower validity limit).

    Returns:
        (B, R, T) float path loss in dB.
    """
    d2d, d3d, h_bs, h_ut, fc, h_e = _as_float_tensors(d2d_m, d3d_m, h_bs_m, h_ut_m, fc_hz, h_e_m)
    d_bp = uma_breakpoint_distance_m(h_bs, h_ut, fc, h_e)
    d2d, d3d = _uma_clamped_distances(d2d, d3d, h_bs, h_ut, min_d2d_m)
    frequency_term = 20.0 * torch.log10(_ghz(fc))
    pl_1 = 28.0 + 22.0 * torch.log10(d3d) + frequency_term
    pl_2 = (
        28.0
        + 40.0 * torch.log10(d3d)
        + frequency_term
        - 9.0 * torch.log10(d_bp**2 + (h_bs - h_ut) ** 2)
    )
    return torch.where(d2d <= d_bp, pl_1, pl_2)


def uma_pathloss_nlos_db(
    d2d_m: TensorLike,
    d3d_m: TensorLike,
    h_bs_m: TensorLike,
    h_ut_m: TensorLike,
    fc_hz: TensorLike,
    h_e_m: TensorLike = 1.0,
    *,
    min_d2d_m: float = UMA_MIN_D2D_M,
) -> torch.Tensor:
    """UMa NLoS path loss, TR 38.901 V17.0.0 Table 7.4.1-1::

        PL_NLOS  = max(PL_LOS, PL'_NLOS)
        PL'_NLOS = 13.54 + 39.08 log10(d_3D) + 20 log10(f_c) - 0.6 (h_UT - 1.5)

    (f_c in GHz). The optional simplified NLoS formula of the table
    (32.4 + 20 log10(f_c) + 30 log10(d_3D), sigma_SF = 7.8 dB) is not used. Arguments, shapes
    and the clamping choice as in :func:`uma_pathloss_los_db`.

    Returns:
        (B, R, T) float path loss in dB.
    """
    d2d, d3d, h_bs, h_ut, fc, h_e = _as_float_tensors(d2d_m, d3d_m, h_bs_m, h_ut_m, fc_hz, h_e_m)
    pl_los = uma_pathloss_los_db(d2d, d3d, h_bs, h_ut, fc, h_e, min_d2d_m=min_d2d_m)
    _, d3d = _uma_clamped_distances(d2d, d3d, h_bs, h_ut, min_d2d_m)
    pl_nlos_prime = (
        13.54 + 39.08 * torch.log10(d3d) + 20.0 * torch.log10(_ghz(fc)) - 0.6 * (h_ut - 1.5)
    )
    return torch.maximum(pl_los, pl_nlos_prime)


def uma_pathloss_db(
    d2d_m: TensorLike,
    d3d_m: TensorLike,
    h_bs_m: TensorLike,
    h_ut_m: TensorLike,
    fc_hz: TensorLike,
    los: bool | torch.Tensor,
    h_e_m: TensorLike = 1.0,
    *,
    min_d2d_m: float = UMA_MIN_D2D_M,
) -> torch.Tensor:
    """UMa path loss per link: LoS formula where ``los`` is True, NLoS formula elsewhere.

    TR 38.901 V17.0.0 Table 7.4.1-1; see :func:`uma_pathloss_los_db` and
    :func:`uma_pathloss_nlos_db`.

    Args:
        los: (B, R, T) bool, line-of-sight state of each link (e.g. from :func:`draw_los`).
        Others as in :func:`uma_pathloss_los_db`.

    Returns:
        (B, R, T) float path loss in dB.
    """
    los_mask = _as_bool_tensor("los", los)
    d2d, d3d, h_bs, h_ut, fc, h_e = _as_float_tensors(d2d_m, d3d_m, h_bs_m, h_ut_m, fc_hz, h_e_m)
    pl_los = uma_pathloss_los_db(d2d, d3d, h_bs, h_ut, fc, h_e, min_d2d_m=min_d2d_m)
    pl_nlos = uma_pathloss_nlos_db(d2d, d3d, h_bs, h_ut, fc, h_e, min_d2d_m=min_d2d_m)
    return torch.where(los_mask.to(pl_los.device), pl_los, pl_nlos)


def uma_shadow_fading_std_db(
    los: bool | torch.Tensor, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """UMa shadow-fading standard deviation, TR 38.901 Table 7.4.1-1: 4 dB LoS, 6 dB NLoS.

    Args:
        los: (B, R, T) bool line-of-sight flags.
        dtype: floating dtype of the result (default float32); the device is that of ``los``.

    Returns:
        (B, R, T) float standard deviation in dB.
    """
    los_mask = _as_bool_tensor("los", los)
    los_std = torch.tensor(4.0, dtype=dtype, device=los_mask.device)
    nlos_std = torch.tensor(6.0, dtype=dtype, device=los_mask.device)
    return torch.where(los_mask, los_std, nlos_std)
