"""Shared pieces of the path-loss models: tensor promotion, argument checks, breakpoint distance.

Private to :mod:`skyshare.channels.pathloss`; the conventions (dtype promotion, units, errors)
are those described in the package docstring.
"""

from __future__ import annotations

import functools

import torch

from skyshare.errors import ConfigError, ShapeError

TensorLike = float | torch.Tensor

BREAKPOINT_PROPAGATION_SPEED_M_S = 3.0e8
"""Propagation speed c used in the breakpoint distances d'_BP = 4 h'_BS h'_UT f_c / c.

Both TR 38.901 (Table 7.4.1-1, note 1) and WINNER II D1.1.2 (Table 4-4, note 1) fix
c = 3.0e8 m/s for the breakpoint, so that value is used there (not 299 792 458 m/s).
"""


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
