"""Distances and angles between receivers and transmitters.

Positions are ``(B, n, 3)`` float tensors in metres (x east, y north, z up). Every function here
pairs each receiver ``r`` with each transmitter ``t`` and returns ``(B, R, T)`` tensors (axis
order of the package: batch, receiver, transmitter). Leading batch dimensions broadcast, so one
side may have ``B = 1`` (e.g. fixed base stations against a batch of user drops); extra leading
dimensions such as a time axis ``(B, S, n, 3)`` broadcast the same way.

Angle convention (spherical coordinates of ISO 80000-2, also 3GPP TR 38.901 §7.1): the direction
of receiver ``r`` seen from transmitter ``t`` is the unit vector

    u = (rx - tx) / |rx - tx| = (sin(theta) cos(phi), sin(theta) sin(phi), cos(theta)),

with zenith angle ``theta`` in ``[0, pi]`` measured from the +z axis (0 = straight up) and azimuth
``phi`` in ``(-pi, pi]`` measured from the +x axis counter-clockwise (towards +y). The elevation
above the local horizon is ``pi/2 - theta``.

The seed 000 steering vector (§III-B) has element phases
``(2 pi / lambda) dd ((m_h - 1) sin(theta) sin(phi) + (m_v - 1) cos(theta))``: the projections
``u_y`` and ``u_z``, so its ``theta`` is this zenith angle and its horizontal array axis is y
(although the paper calls ``theta`` the "elevation angle"). Seed 003's UPA phases
``d_h n sin(theta) cos(phi) + d_v m cos(theta)`` use the same angles with horizontal axis x.
"""

from __future__ import annotations

import math

import torch

from skyshare.errors import ShapeError

__all__ = [
    "direction_vector",
    "distances_2d",
    "distances_3d",
    "elevation",
    "zenith_azimuth",
]


def _differences(rx_m: torch.Tensor, tx_m: torch.Tensor) -> torch.Tensor:
    """``rx - tx`` for every pair: ``(..., R, 3)`` and ``(..., T, 3)`` -> ``(..., R, T, 3)``."""
    for name, positions in (("rx_m", rx_m), ("tx_m", tx_m)):
        if positions.ndim < 2 or positions.shape[-1] != 3:
            raise ShapeError(
                f"{name} must have shape (B, n, 3) (x, y, z in metres), "
                f"got {tuple(positions.shape)}"
            )
    try:
        return rx_m.unsqueeze(-2) - tx_m.unsqueeze(-3)
    except RuntimeError as error:
        raise ShapeError(
            f"batch dimensions of rx_m {tuple(rx_m.shape)} and tx_m {tuple(tx_m.shape)} do not "
            "broadcast (they must be equal or 1)"
        ) from error


def distances_2d(rx_m: torch.Tensor, tx_m: torch.Tensor) -> torch.Tensor:
    """Horizontal distance ``d_2D = sqrt(dx^2 + dy^2)`` (TR 38.901 Fig. 7.4.1-1).

    ``rx_m: (B, R, 3)``, ``tx_m: (B, T, 3)`` -> ``d2d_m: (B, R, T) float``.
    """
    delta = _differences(rx_m, tx_m)
    return torch.hypot(delta[..., 0], delta[..., 1])


def distances_3d(rx_m: torch.Tensor, tx_m: torch.Tensor) -> torch.Tensor:
    """Straight-line distance ``d_3D = sqrt(dx^2 + dy^2 + dz^2)`` (TR 38.901 Fig. 7.4.1-1).

    ``rx_m: (B, R, 3)``, ``tx_m: (B, T, 3)`` -> ``d3d_m: (B, R, T) float``.
    """
    return torch.linalg.vector_norm(_differences(rx_m, tx_m), dim=-1)


def zenith_azimuth(rx_m: torch.Tensor, tx_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Direction of each receiver seen from each transmitter, in radians.

    ``rx_m: (B, R, 3)``, ``tx_m: (B, T, 3)`` -> ``(zenith_rad, azimuth_rad)``, both ``(B, R, T)``:

    * ``zenith = atan2(sqrt(dx^2 + dy^2), dz)`` in ``[0, pi]`` (0: receiver straight above);
    * ``azimuth = atan2(dy, dx)`` in ``(-pi, pi]`` (0: towards +x, pi/2: towards +y);

    with ``(dx, dy, dz) = rx - tx``, so ``u = (sin th cos ph, sin th sin ph, cos th)`` is the unit
    vector from the transmitter to the receiver (see :func:`direction_vector`). For coincident
    points both angles are 0.
    """
    delta = _differences(rx_m, tx_m)
    horizontal = torch.hypot(delta[..., 0], delta[..., 1])
    zenith = torch.atan2(horizontal, delta[..., 2])
    azimuth = torch.atan2(delta[..., 1], delta[..., 0])
    # atan2(-0.0, x < 0) returns -pi; fold it onto +pi so the range is (-pi, pi].
    azimuth = torch.where(azimuth <= -math.pi, azimuth + 2.0 * math.pi, azimuth)
    return zenith, azimuth


def elevation(rx_m: torch.Tensor, tx_m: torch.Tensor) -> torch.Tensor:
    """Elevation angle of each receiver above the local horizon of each transmitter.

    ``rx_m: (B, R, 3)``, ``tx_m: (B, T, 3)`` -> ``elevation_rad: (B, R, T)`` in
    ``[-pi/2, pi/2]``, ``elevation = pi/2 - zenith``. This is the angle of air-to-ground LoS
    probability models (Al-Hourani et al. 2014); for a ground user seen from an aerial base station
    pass the base station as ``rx_m`` (the angle is then positive) or negate.
    """
    zenith, _ = zenith_azimuth(rx_m, tx_m)
    return 0.5 * math.pi - zenith


def direction_vector(zenith_rad: torch.Tensor, azimuth_rad: torch.Tensor) -> torch.Tensor:
    """Unit vector ``u = (sin th cos ph, sin th sin ph, cos th)``: ``(...)`` x 2 -> ``(..., 3)``."""
    sin_zenith = torch.sin(zenith_rad)
    return torch.stack(
        [
            sin_zenith * torch.cos(azimuth_rad),
            sin_zenith * torch.sin(azimuth_rad),
            torch.cos(zenith_rad),
        ],
        dim=-1,
    )
