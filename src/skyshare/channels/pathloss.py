"""Large-scale propagation: path loss, line-of-sight probability and log-normal shadowing.

Models (one documentation page each under ``docs/channels/``):

* 3GPP TR 38.901 V17.0.0 urban macro (UMa): path loss of Table 7.4.1-1 and LoS probability of
  Table 7.4.2-1 (``uma_*``, ``draw_los``). Seed 000 uses it for terrestrial BS-user links.
* Free-space path loss, TR 38.811 §6.6.2 eq. (6.6-2), used by TR 38.876 for air-to-ground links
  (``fspl_db``). Seed 000 uses it for BS-airplane links, seed 003 for MBS-UE links.
* WINNER II D1.1.2 (v1.2, 2007) scenario C2, typical urban macro-cell: path loss of Table 4-4 and
  LoS probability of Table 4-7 (``winner2_c2_*``). Seed 001 names "Winner II" path loss.
* Probabilistic air-to-ground LoS model of Al-Hourani, Kandeepan and Lardner, "Optimal LAP
  altitude for maximum coverage", IEEE WCL 3(6), 2014 (``a2g_*``). Seed 001's UAV-user links.
* Log-normal shadowing: Gaussian samples in dB (``lognormal_shadowing_db``).

Every function works elementwise on tensors of any shape, typically ``(B, R, T)`` (batch,
receiver, transmitter), and broadcasts its arguments against each other. Scalars (Python floats)
are accepted anywhere a tensor is. The result dtype is the promoted floating dtype of the tensor
arguments (float64 in, float64 out), float32 when no argument is a floating tensor. Distances are
in metres, carrier frequencies in hertz, losses in dB (a positive number: received power is
transmitted power minus path loss).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError, UnknownNameError

TensorLike = float | torch.Tensor

BREAKPOINT_PROPAGATION_SPEED_M_S = 3.0e8
"""Propagation speed c used in the breakpoint distances d'_BP = 4 h'_BS h'_UT f_c / c.

Both TR 38.901 (Table 7.4.1-1, note 1) and WINNER II D1.1.2 (Table 4-4, note 1) fix
c = 3.0e8 m/s for the breakpoint, so that value is used there (not 299 792 458 m/s).
"""

UMA_MIN_D2D_M = 10.0
"""Lower end of the TR 38.901 UMa validity range 10 m <= d_2D <= 5 km (Table 7.4.1-1)."""

WINNER2_MIN_D_M = 10.0
"""Lower end of the WINNER II C2 LoS validity range 10 m < d < 5 km (D1.1.2 Table 4-4)."""

FSPL_CONSTANT_DB = 32.45
"""Constant of TR 38.811 eq. (6.6-2), 20 log10(4 pi 1e9 / c) rounded, for f_c in GHz, d in m."""


# --------------------------------------------------------------------------------------------
# Helpers: dtype/device promotion and argument validation
# --------------------------------------------------------------------------------------------


def _as_float_tensors(*values: TensorLike | bool) -> tuple[torch.Tensor, ...]:
    """Convert all values to tensors of one floating dtype on one device.

    The dtype is the promoted dtype of the floating tensors among ``values`` (float32 if there
    are none); the device is the device of the first tensor (CPU if there are none).
    """
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    float_dtypes = [t.dtype for t in tensors if t.is_floating_point()]
    dtype = functools.reduce(torch.promote_types, float_dtypes) if float_dtypes else torch.float32
    device = tensors[0].device if tensors else None
    return tuple(torch.as_tensor(v, dtype=dtype, device=device) for v in values)


def _describe(x: torch.Tensor) -> str:
    """Short description of the offending values of a tensor for an error message."""
    if x.numel() == 1:
        return f"got {x.item()!r}"
    finite = x[torch.isfinite(x)]
    if finite.numel() < x.numel():
        return "got non-finite values"
    return f"got values in [{finite.min().item():.6g}, {finite.max().item():.6g}]"


def _require_at_least(name: str, x: torch.Tensor, low: float, unit: str) -> None:
    if not bool(torch.all(x >= low)):  # also rejects NaN
        raise ConfigError(f"{name} must be >= {low:g} {unit}, {_describe(x)}")


def _require_positive(name: str, x: torch.Tensor, unit: str) -> None:
    if not bool(torch.all(x > 0)):
        raise ConfigError(f"{name} must be > 0 {unit}, {_describe(x)}")


def _require_in_range(name: str, x: torch.Tensor, low: float, high: float, unit: str) -> None:
    if not bool(torch.all((x >= low) & (x <= high))):
        range_text = f"[{low:g}, {high:g}] {unit}".rstrip()
        raise ConfigError(f"{name} must be in {range_text}, {_describe(x)}")


def _require_above(name: str, x: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    if not bool(torch.all(x > other)):
        raise ConfigError(
            f"{name} must be > {other_name} (effective antenna height {name} - {other_name} "
            f"must be positive), {_describe(x)}"
        )


def _as_bool_tensor(name: str, value: bool | torch.Tensor) -> torch.Tensor:
    """Accept a Python bool or a bool tensor (LoS flags); anything else is a ShapeError."""
    if isinstance(value, bool):
        return torch.tensor(value)
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
        return value
    kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
    raise ShapeError(f"{name} must be a bool tensor (True = line of sight), got {kind}")


def _ghz(fc_hz: torch.Tensor) -> torch.Tensor:
    _require_positive("fc_hz", fc_hz, "Hz")
    return fc_hz / 1e9


# --------------------------------------------------------------------------------------------
# 3GPP TR 38.901 V17.0.0, UMa
# --------------------------------------------------------------------------------------------


def uma_los_probability(d2d_m: TensorLike, h_ut_m: TensorLike) -> torch.Tensor:
    """UMa line-of-sight probability, TR 38.901 V17.0.0 Table 7.4.2-1.

    ``Pr_LOS = 1`` for d_2D <= 18 m, otherwise::

        Pr_LOS = [18/d_2D + exp(-d_2D/63) (1 - 18/d_2D)]
                 * [1 + C'(h_UT) * 5/4 * (d_2D/100)^3 * exp(-d_2D/150)]

    with ``C'(h_UT) = 0`` for h_UT <= 13 m and ``((h_UT - 13)/10)^1.5`` for 13 m < h_UT <= 23 m.
    ``d_2D`` is the outdoor 2D distance (all users outdoors here).

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
    probability = base * height_factor
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


def _breakpoint_distance_m(
    h_bs_m: TensorLike,
    h_terminal_m: TensorLike,
    fc_hz: TensorLike,
    h_e_m: TensorLike,
    terminal_name: str,
) -> torch.Tensor:
    """``4 (h_BS - h_E)(h_terminal - h_E) f_c / c``, shared by UMa and WINNER II C2."""
    h_bs, h_terminal, fc, h_e = _as_float_tensors(h_bs_m, h_terminal_m, fc_hz, h_e_m)
    _require_positive("fc_hz", fc, "Hz")
    _require_at_least("h_e_m", h_e, 0.0, "m")
    _require_above("h_bs_m", h_bs, "h_e_m", h_e)
    _require_above(terminal_name, h_terminal, "h_e_m", h_e)
    return 4.0 * (h_bs - h_e) * (h_terminal - h_e) * fc / BREAKPOINT_PROPAGATION_SPEED_M_S


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


def draw_los(probability: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Draw line-of-sight states: one independent Bernoulli(probability) per element.

    Element i is LoS when ``u_i < probability_i`` with ``u_i ~ U[0, 1)`` (TR 38.901 §7.5 step 2
    / WINNER II: draw the LoS state from the LoS probability).

    Args:
        probability: (B, R, T) float tensor in [0, 1].
        generator: torch.Generator on the same device as ``probability``.

    Returns:
        (B, R, T) bool tensor, True = line of sight.

    Raises:
        ConfigError: a probability outside [0, 1] (or NaN).
    """
    (p,) = _as_float_tensors(probability)
    _require_in_range("probability", p, 0.0, 1.0, "")
    uniform = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    return uniform < p


# --------------------------------------------------------------------------------------------
# Free-space path loss, TR 38.811 §6.6.2 / TR 38.876
# --------------------------------------------------------------------------------------------


def fspl_db(d3d_m: TensorLike, fc_hz: TensorLike) -> torch.Tensor:
    """Free-space path loss, TR 38.811 §6.6.2 eq. (6.6-2)::

        FSPL(d, f_c) = 32.45 + 20 log10(f_c) + 20 log10(d)        f_c in GHz, d in m

    (equivalently ``20 log10(4 pi d f_c / c)``, 32.45 being that constant rounded). TR 38.876
    uses the same basic path loss for air-to-ground links.

    Args:
        d3d_m: (B, R, T) float, slant (3D) distance in m, > 0.
        fc_hz: scalar or tensor, carrier frequency in Hz, > 0.

    Returns:
        (B, R, T) float path loss in dB.

    Raises:
        ConfigError: ``d3d_m <= 0`` or ``fc_hz <= 0``.
    """
    d3d, fc = _as_float_tensors(d3d_m, fc_hz)
    _require_positive("d3d_m", d3d, "m")
    return FSPL_CONSTANT_DB + 20.0 * torch.log10(_ghz(fc)) + 20.0 * torch.log10(d3d)


# --------------------------------------------------------------------------------------------
# WINNER II D1.1.2, scenario C2 (typical urban macro-cell)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Air-to-ground probabilistic LoS model, Al-Hourani, Kandeepan, Lardner (IEEE WCL 2014)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AirToGroundEnvironment:
    """Parameters of the Al-Hourani et al. (2014) air-to-ground model for one environment.

    Attributes:
        a: S-curve parameter a of P_LoS (dimensionless).
        b: S-curve parameter b of P_LoS (1/degree).
        excess_los_db: mean excess loss eta_LoS over free space for LoS links, dB.
        excess_nlos_db: mean excess loss eta_NLoS over free space for NLoS links, dB.
    """

    a: float
    b: float
    excess_los_db: float
    excess_nlos_db: float


A2G_ENVIRONMENTS: dict[str, AirToGroundEnvironment] = {
    "suburban": AirToGroundEnvironment(a=4.88, b=0.43, excess_los_db=0.1, excess_nlos_db=21.0),
    "urban": AirToGroundEnvironment(a=9.61, b=0.16, excess_los_db=1.0, excess_nlos_db=20.0),
    "dense_urban": AirToGroundEnvironment(a=12.08, b=0.11, excess_los_db=1.6, excess_nlos_db=23.0),
    "highrise_urban": AirToGroundEnvironment(
        a=27.23, b=0.08, excess_los_db=2.3, excess_nlos_db=34.0
    ),
}
"""The four ITU-R environments of the environment table of Al-Hourani et al. (2014)."""


def a2g_environment(name: str) -> AirToGroundEnvironment:
    """Look up an air-to-ground environment by name (see ``A2G_ENVIRONMENTS``).

    Raises:
        UnknownNameError: ``name`` is not one of the keys of ``A2G_ENVIRONMENTS``.
    """
    try:
        return A2G_ENVIRONMENTS[name]
    except KeyError:
        allowed = ", ".join(A2G_ENVIRONMENTS)
        raise UnknownNameError(
            f"unknown air-to-ground environment {name!r} for argument environment; "
            f"allowed: {allowed}"
        ) from None


def a2g_los_probability(
    elevation_rad: TensorLike,
    a: float | None = None,
    b: float | None = None,
    *,
    environment: str = "urban",
) -> torch.Tensor:
    """Air-to-ground LoS probability of Al-Hourani et al. (2014)::

        P_LoS(theta) = 1 / (1 + a exp(-b (theta - a)))

    with theta the elevation angle of the aerial node seen from the ground node, in degrees
    above the horizon. ``a`` and ``b`` default to the values of ``environment`` (urban:
    a = 9.61, b = 0.16); explicit values override them.

    Args:
        elevation_rad: (B, R, T) float, elevation angle in rad, in [0, pi/2] (values up to
            1e-6 rad outside, float rounding of an arcsin, are clipped).
        a: S-curve parameter a; None takes it from ``environment``.
        b: S-curve parameter b in 1/degree; None takes it from ``environment``.
        environment: one of ``A2G_ENVIRONMENTS`` (suburban, urban, dense_urban, highrise_urban).

    Returns:
        (B, R, T) float probability in (0, 1).
    """
    parameters = a2g_environment(environment)
    a = parameters.a if a is None else a
    b = parameters.b if b is None else b
    if a <= 0 or b <= 0:
        raise ConfigError(f"a and b must be > 0, got a={a!r}, b={b!r}")
    (elevation,) = _as_float_tensors(elevation_rad)
    tolerance = 1e-6
    _require_in_range("elevation_rad", elevation, -tolerance, math.pi / 2 + tolerance, "rad")
    theta_deg = torch.rad2deg(torch.clamp(elevation, 0.0, math.pi / 2))
    return 1.0 / (1.0 + a * torch.exp(-b * (theta_deg - a)))


def _a2g_excess_losses(
    excess_los_db: float | None, excess_nlos_db: float | None, environment: str
) -> tuple[float, float]:
    parameters = a2g_environment(environment)
    eta_los = parameters.excess_los_db if excess_los_db is None else excess_los_db
    eta_nlos = parameters.excess_nlos_db if excess_nlos_db is None else excess_nlos_db
    return eta_los, eta_nlos


def a2g_pathloss_db(
    d3d_m: TensorLike,
    fc_hz: TensorLike,
    los: bool | torch.Tensor,
    excess_los_db: float | None = None,
    excess_nlos_db: float | None = None,
    *,
    environment: str = "urban",
) -> torch.Tensor:
    """Air-to-ground path loss of one LoS/NLoS realisation, Al-Hourani et al. (2014)::

        PL_xi = FSPL(d, f_c) + eta_xi,     xi in {LoS, NLoS}

    with FSPL from :func:`fspl_db` and the mean excess losses eta of ``environment`` (urban:
    eta_LoS = 1 dB, eta_NLoS = 20 dB) unless given explicitly.

    Args:
        d3d_m: (B, R, T) float, slant distance in m, > 0.
        fc_hz: scalar or tensor, carrier frequency in Hz, > 0.
        los: (B, R, T) bool, line-of-sight flags (e.g. ``draw_los(a2g_los_probability(...))``).
        excess_los_db: eta_LoS in dB; None takes it from ``environment``.
        excess_nlos_db: eta_NLoS in dB; None takes it from ``environment``.
        environment: one of ``A2G_ENVIRONMENTS``.

    Returns:
        (B, R, T) float path loss in dB.
    """
    los_mask = _as_bool_tensor("los", los)
    eta_los, eta_nlos = _a2g_excess_losses(excess_los_db, excess_nlos_db, environment)
    free_space = fspl_db(d3d_m, fc_hz)
    excess = torch.where(los_mask.to(free_space.device), eta_los, eta_nlos).to(free_space.dtype)
    return free_space + excess


def a2g_mean_pathloss_db(
    d3d_m: TensorLike,
    fc_hz: TensorLike,
    elevation_rad: TensorLike,
    a: float | None = None,
    b: float | None = None,
    excess_los_db: float | None = None,
    excess_nlos_db: float | None = None,
    *,
    environment: str = "urban",
) -> torch.Tensor:
    """Mean air-to-ground path loss over the LoS state, Al-Hourani et al. (2014)::

        PL = P_LoS PL_LoS + (1 - P_LoS) PL_NLoS
           = FSPL(d, f_c) + P_LoS eta_LoS + (1 - P_LoS) eta_NLoS

    Args:
        d3d_m: (B, R, T) float, slant distance in m, > 0.
        fc_hz: scalar or tensor, carrier frequency in Hz, > 0.
        elevation_rad: (B, R, T) float, elevation angle in rad, in [0, pi/2].
        a, b, excess_los_db, excess_nlos_db, environment: as in :func:`a2g_los_probability`
            and :func:`a2g_pathloss_db`.

    Returns:
        (B, R, T) float mean path loss in dB.
    """
    eta_los, eta_nlos = _a2g_excess_losses(excess_los_db, excess_nlos_db, environment)
    d3d, fc, elevation = _as_float_tensors(d3d_m, fc_hz, elevation_rad)
    p_los = a2g_los_probability(elevation, a, b, environment=environment)
    return fspl_db(d3d, fc) + p_los * eta_los + (1.0 - p_los) * eta_nlos


# --------------------------------------------------------------------------------------------
# Log-normal shadowing
# --------------------------------------------------------------------------------------------


def lognormal_shadowing_db(
    shape_or_like: torch.Size | tuple[int, ...] | torch.Tensor,
    std_db: TensorLike,
    generator: torch.Generator,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Log-normal shadowing samples in dB: ``X ~ N(0, std_db^2)`` per element.

    The linear shadowing gain ``10^(X/10)`` is then log-normal (TR 38.901 §7.4.1: "the shadow
    fading has a log-normal distribution"). Samples are independent across elements; spatial
    correlation (TR 38.901 Table 7.5-6 decorrelation distances) is not modelled here.

    Args:
        shape_or_like: output shape, e.g. ``(B, R, T)``, or a tensor whose shape (and, unless
            given, floating dtype and device) the result takes.
        std_db: standard deviation in dB, >= 0: a float or a tensor broadcastable to the shape
            (e.g. ``uma_shadow_fading_std_db(los)``).
        generator: torch.Generator on the output device.
        dtype: floating dtype (default: that of ``shape_or_like`` if a floating tensor, else
            float32).
        device: output device (default: that of ``shape_or_like`` or ``std_db`` if tensors,
            else CPU).

    Returns:
        Tensor of the requested shape, shadowing in dB.

    Raises:
        ConfigError: negative or non-finite ``std_db``.
        ShapeError: ``std_db`` does not broadcast to the requested shape.
    """
    if isinstance(shape_or_like, torch.Tensor):
        shape = shape_or_like.shape
        if dtype is None and shape_or_like.is_floating_point():
            dtype = shape_or_like.dtype
        if device is None:
            device = shape_or_like.device
    else:
        shape = torch.Size(shape_or_like)
    if device is None and isinstance(std_db, torch.Tensor):
        device = std_db.device
    dtype = torch.float32 if dtype is None else dtype
    std = torch.as_tensor(std_db, dtype=dtype, device=device)
    if not bool(torch.all(torch.isfinite(std) & (std >= 0))):
        raise ConfigError(f"std_db must be finite and >= 0 dB, {_describe(std)}")
    try:
        broadcast = torch.broadcast_shapes(shape, std.shape)
    except RuntimeError as error:
        raise ShapeError(
            f"std_db of shape {tuple(std.shape)} does not broadcast to shape {tuple(shape)}"
        ) from error
    if broadcast != shape:
        raise ShapeError(
            f"std_db of shape {tuple(std.shape)} does not broadcast to shape {tuple(shape)}"
        )
    standard_normal = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return standard_normal * std
