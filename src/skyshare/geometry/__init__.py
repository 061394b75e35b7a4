"""Geometry: cell layouts and node drops, distances and angles, mobility and arrivals.

Positions are ``(B, n, 3)`` float tensors in metres (x east, y north, z up, ground at z = 0);
trajectories are ``(B, S, n, 3)``. See ``docs/geometry.md`` for the conventions.
"""

from skyshare.geometry.angles import (
    direction_vector,
    distances_2d,
    distances_3d,
    elevation,
    zenith_azimuth,
)
from skyshare.geometry.layouts import (
    drop_in_disc,
    drop_in_hexagon,
    drop_in_square,
    hex_grid,
    hex_ring_count,
    hex_rings_within,
    with_height,
)
from skyshare.geometry.mobility import (
    ArrivalTrace,
    active_mask,
    poisson_arrivals,
    poisson_population,
    random_walk,
    slot_count,
    smooth_random_trajectories,
    straight_flight,
)

__all__ = [
    "ArrivalTrace",
    "active_mask",
    "direction_vector",
    "distances_2d",
    "distances_3d",
    "drop_in_disc",
    "drop_in_hexagon",
    "drop_in_square",
    "elevation",
    "hex_grid",
    "hex_ring_count",
    "hex_rings_within",
    "poisson_arrivals",
    "poisson_population",
    "random_walk",
    "slot_count",
    "smooth_random_trajectories",
    "straight_flight",
    "with_height",
    "zenith_azimuth",
]
