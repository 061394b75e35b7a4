"""WINNER II D1.1.2 (v1.2, 2007) scenario C2, typical urban macro-cell.

Path loss (Table 4-4), LoS probability (Table 4-7) and shadow-fading standard deviation.
Page: ``docs/channels/winner2.md``.
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
)
from skyshare.errors import ConfigError

WINNER2_MIN_D_M = 10.0
"""Lower end of the WINNER II C2 LoS validity range 10 m < d < 5 km (D1.1.2 Table 4-4)."""


def winner2_c2_breakpoint_distance_m(
    h_bs_m: TensorLike, h_ms_m: TensorLike, fc_hz: TensorLike, h_e_m: TensorLike = 1.0
) -> torch.Tensor:
    """WINNER II C2 breakpoint ``d'_BP = 4 h'_BS h'_MS f_c / c``, D1.1.2 Table 4-4 note 1.

    Effective heights ``h' = h - 1.0 m`` (``h_e_m``), ``c = 3.0e8 m/s``.

    Returns:
        (B, R, T) float breakpoint distance in m.
    """
    return _breakpoint_distance_m(h_bs_m, h_ms_m, fc_hz, h_e_m, terminal_name="h_ms_m")


def _winner2_c2_beyond_breakpoint(
    d: torch.Tensor, h_bs: torch.Tensor, h_ms: torch.Tensor, fc: torch.Tensor, h_e: torch.Tensor
) -> torch.Tensor:
    return d >= winner2_c2_breakpoint_distance_m(h_bs, h_ms, fc, h_e)


def winner2_c2_pathloss_db(
    d_m: TensorLike,
    h_bs_m: TensorLike,
    h_ms_m: TensorLike,
    fc_hz: TensorLike,
    los: bool | torch.Tensor,
    *,
    h_e_m: TensorLike = 1.0,
    min_d_m: float = WINNER2_MIN_D_M,
) -> torch.Tensor:
    """WINNER II scenario C2 (urban macro) path loss, D1.1.2 v1.2 Table 4-4 (f_c in GHz)::

        LoS, 10 m < d < d'_BP:   PL = 26 log10(d) + 39 + 20 log10(f_c / 5.0)
        LoS, d'_BP <= d < 5 km:  PL = 40 log10(d) + 13.47 - 14.0 log10(h'_BS) - 14.0 log10(h'_MS)
                                      + 6.0 log10(f_c / 5.0)
        NLoS, 50 m < d < 5 km:   PL = (44.9 - 6.55 log10(h_BS)) log10(d) + 34.46
                                      + 5.83 log10(h_BS) + 23 log10(f_c / 5.0)

    with ``d'_BP`` from :func:`winner2_c2_breakpoint_distance_m` (h' = h - 1 m). The table's
    defaults are h_BS = 25 m, h_MS = 1.5 m; its frequency range is 2-6 GHz.

    Choices: D1.1.2 calls d the Tx-Rx distance without separating 2D and 3D distance; pass the
    3D distance. Distances below ``min_d_m`` (10 m) are evaluated at 10 m (LoS and NLoS; the
    NLoS formula is extrapolated below its stated 50 m); beyond 5 km, outside 2-6 GHz and for
    other heights the formulas are extrapolated without error.

    Args:
        d_m: (B, R, T) float, Tx-Rx distance in m, >= 0.
        h_bs_m: (B, R, T) float or scalar, BS antenna height in m, > h_e_m.
        h_ms_m: (B, R, T) float or scalar, MS antenna height in m, > h_e_m.
        fc_hz: scalar or tensor, carrier frequency in Hz, > 0.
        los: (B, R, T) bool, line-of-sight flags.
        h_e_m: height subtracted for the effective heights h' (default 1.0 m, Table 4-4 note 1).
        min_d_m: clamp distance in m (default 10 m).

    Returns:
        (B, R, T) float path loss in dB.
    """
    los_mask = _as_bool_tensor("los", los)
    d, h_bs, h_ms, fc, h_e = _as_float_tensors(d_m, h_bs_m, h_ms_m, fc_hz, h_e_m)
    _require_at_least("d_m", d, 0.0, "m")
    if min_d_m <= 0:
        raise ConfigError(f"min_d_m must be > 0 m, got {min_d_m!r}")
    d = torch.clamp(d, min=min_d_m)
    beyond_breakpoint = _winner2_c2_beyond_breakpoint(d, h_bs, h_ms, fc, h_e)
    log_f = torch.log10(_ghz(fc) / 5.0)
    log_d = torch.log10(d)
    pl_los_1 = 26.0 * log_d + 39.0 + 20.0 * log_f
    pl_los_2 = (
        40.0 * log_d
        + 13.47
        - 14.0 * torch.log10(h_bs - h_e)
        - 14.0 * torch.log10(h_ms - h_e)
        + 6.0 * log_f
    )
    pl_nlos = (
        (44.9 - 6.55 * torch.log10(h_bs)) * log_d + 34.46 + 5.83 * torch.log10(h_bs) + 23.0 * log_f
    )
    pl_los = torch.where(beyond_breakpoint, pl_los_2, pl_los_1)
    return torch.where(los_mask.to(pl_los.device), pl_los, pl_nlos)


def winner2_c2_los_probability(d_m: TensorLike) -> torch.Tensor:
    """WINNER II C2 LoS probability, D1.1.2 Table 4-7::

        P_LOS = min(18/d, 1) (1 - exp(-d/63)) + exp(-d/63)

    Args:
        d_m: (B, R, T) float, Tx-Rx distance in m, >= 0 (P_LOS = 1 for d <= 18 m).

    Returns:
        (B, R, T) float probability in [0, 1].
    """
    (d,) = _as_float_tensors(d_m)
    _require_at_least("d_m", d, 0.0, "m")
    near_fraction = 18.0 / torch.clamp(d, min=18.0)  # = min(18/d, 1), safe at d = 0
    decay = torch.exp(-d / 63.0)
    return near_fraction * (1.0 - decay) + decay


def winner2_c2_shadow_fading_std_db(
    d_m: TensorLike,
    h_bs_m: TensorLike,
    h_ms_m: TensorLike,
    fc_hz: TensorLike,
    los: bool | torch.Tensor,
    *,
    h_e_m: TensorLike = 1.0,
) -> torch.Tensor:
    """WINNER II C2 shadow-fading standard deviation, D1.1.2 Table 4-4.

    sigma_SF = 4 dB for LoS before the breakpoint (d < d'_BP), 6 dB for LoS beyond it, and
    8 dB for NLoS. (The LoS value depends on the breakpoint, hence the distance arguments.)

    Args:
        As in :func:`winner2_c2_pathloss_db`.

    Returns:
        (B, R, T) float standard deviation in dB.
    """
    los_mask = _as_bool_tensor("los", los)
    d, h_bs, h_ms, fc, h_e = _as_float_tensors(d_m, h_bs_m, h_ms_m, fc_hz, h_e_m)
    _require_at_least("d_m", d, 0.0, "m")
    beyond_breakpoint = _winner2_c2_beyond_breakpoint(d, h_bs, h_ms, fc, h_e)
    los_std = torch.where(beyond_breakpoint, 6.0, 4.0).to(d.dtype)
    nlos_std = torch.full_like(los_std, 8.0)
    return torch.where(los_mask.to(d.device), los_std, nlos_std)
