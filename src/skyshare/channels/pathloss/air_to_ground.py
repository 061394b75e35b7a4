"""Probabilistic air-to-ground LoS model of Al-Hourani, Kandeepan and Lardner (2014).

"Optimal LAP altitude for maximum coverage", IEEE Wireless Communications Letters 3(6), 2014:
LoS probability, path loss of a LoS/NLoS realisation and mean path loss.
Page: ``docs/channels/air_to_ground.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare.channels.pathloss._common import (
    TensorLike,
    _as_bool_tensor,
    _as_float_tensors,
    _require_in_range,
)
from skyshare.channels.pathloss.fspl import fspl_db
from skyshare.errors import ConfigError, UnknownNameError


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
