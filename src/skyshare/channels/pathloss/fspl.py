"""Free-space path loss, TR 38.811 §6.6.2 eq. (6.6-2).

TR 38.876 uses it for air-to-ground links. Page: ``docs/channels/fspl.md``.
"""

from __future__ import annotations

import torch

from skyshare.channels.pathloss._common import (
    TensorLike,
    _as_float_tensors,
    _ghz,
    _require_positive,
)

FSPL_CONSTANT_DB = 32.45
"""Constant of TR 38.811 eq. (6.6-2), 20 log10(4 pi 1e9 / c) rounded, for f_c in GHz, d in m."""


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
