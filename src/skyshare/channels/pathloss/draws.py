"""Random large-scale states: Bernoulli line-of-sight flags and log-normal shadowing.

Pages: ``docs/channels/uma.md`` (``draw_los``) and ``docs/channels/shadowing.md``.
"""

from __future__ import annotations

import torch

from skyshare.channels.pathloss._common import (
    TensorLike,
    _as_float_tensors,
    _describe,
    _require_in_range,
)
from skyshare.errors import ConfigError, ShapeError


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
