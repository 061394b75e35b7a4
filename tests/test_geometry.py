"""Tests of skyshare.geometry layouts and angles.

Reference values are computed here with plain ``math`` from the definitions (hexagonal lattice,
uniform-in-area densities, spherical angles), not by calling the code under test.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.geometry import (
    direction_vector,
    distances_2d,
    distances_3d,
    drop_in_disc,
    drop_in_hexagon,
    drop_in_square,
    elevation,
    hex_grid,
    hex_ring_count,
    with_height,
    zenith_azimuth,
)

ISD = 500.0


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- hex_grid


@pytest.mark.parametrize(("n_cells", "rings"), [(1, 0), (7, 1), (19, 2), (37, 3)])
def test_hex_ring_count(n_cells, rings):
    assert hex_ring_count(n_cells) == rings


def test_hex_grid_centre_first_and_ring_sizes():
    centres = hex_grid(37, ISD, dtype=torch.float64).tolist()
    assert centres[0] == [0.0, 0.0]
    # Ring k starts at index 1 + 3k(k-1) and holds 6k cells, every one at hex distance k: its
    # Euclidean distance from the origin lies in [k * sqrt(3)/2 * isd, k * isd].
    for ring in (1, 2, 3):
        first = 1 + 3 * ring * (ring - 1)
        ring_cells = centres[first : first + 6 * ring]
        assert len(ring_cells) == 6 * ring
        for x, y in ring_cells:
            radius = math.hypot(x, y)
            assert ring * ISD * math.sqrt(3) / 2 - 1e-6 <= radius <= ring * ISD + 1e-6
        # The ring's six corners sit at exactly ring * isd.
        corners = [c for c in ring_cells if abs(math.hypot(*c) - ring * ISD) < 1e-6]
        assert len(corners) == 6


def test_hex_grid_first_ring_angles_counter_clockwise_from_30_degrees():
    centres = hex_grid(7, ISD, dtype=torch.float64)
    for k in range(6):
        angle = math.radians(30 + 60 * k)
        x, y = centres[1 + k].tolist()
        assert x == pytest.approx(ISD * math.cos(angle), abs=1e-9)
        assert y == pytest.approx(ISD * math.sin(angle), abs=1e-9)


@pytest.mark.parametrize(("n_cells", "n_edges"), [(7, 12), (19, 42), (37, 90)])
def test_hex_grid_neighbour_distance_is_isd(n_cells, n_edges):
    # A hexagonal patch of r rings of a triangular lattice has 3 r (3 r + 1) nearest-neighbour
    # pairs (r = 1: 6 spokes + 6 ring edges = 12); all other pairs are farther than the ISD.
    centres = hex_grid(n_cells, ISD, dtype=torch.float64).tolist()
    distances = [math.dist(a, b) for a, b in itertools.combinations(centres, 2)]
    assert min(distances) == pytest.approx(ISD)
    assert sum(abs(d - ISD) < 1e-6 for d in distances) == n_edges
    assert len({(round(x, 6), round(y, 6)) for x, y in centres}) == n_cells


def test_hex_grid_invalid_count_lists_valid_values():
    with pytest.raises(ConfigError, match=r"n_cells.*7, 19, 37.*got 8"):
        hex_grid(8, ISD)
    with pytest.raises(ConfigError, match="isd_m"):
        hex_grid(7, 0.0)


def test_hex_grid_device_dtype():
    centres = hex_grid(19, ISD, dtype=torch.float64, device="cpu")
    assert centres.shape == (19, 2)
    assert centres.dtype == torch.float64


# ----------------------------------------------------------------------------- drops


def inside_flat_topped_hexagon(dx: torch.Tensor, dy: torch.Tensor, apothem: float) -> torch.Tensor:
    """Independent containment test: six half-planes with outward normals at 30 + 60 k deg."""
    inside = torch.ones_like(dx, dtype=torch.bool)
    for k in range(6):
        angle = math.radians(30 + 60 * k)
        inside &= dx * math.cos(angle) + dy * math.sin(angle) <= apothem * (1 + 1e-6)
    return inside


def test_drop_in_hexagon_inside_cell_and_outside_min_distance():
    centres = hex_grid(7, ISD)
    xy = drop_in_hexagon(8, 200, centres, gen(1), isd_m=ISD, min_distance_m=35.0)
    assert xy.shape == (8, 7, 200, 2)
    offset = xy - centres[None, :, None, :]
    assert bool(inside_flat_topped_hexagon(offset[..., 0], offset[..., 1], ISD / 2).all())
    assert float(offset.norm(dim=-1).min()) >= 35.0


def test_drop_in_hexagon_tiles_with_hex_grid():
    # Every point of cell c must be closer to centre c than to any other centre of the grid.
    centres = hex_grid(19, ISD)
    xy = drop_in_hexagon(4, 300, centres, gen(2), isd_m=ISD)
    distance = (xy[..., None, :] - centres).norm(dim=-1)  # (B, C, n, C)
    nearest = distance.argmin(dim=-1)
    expected = torch.arange(19)[None, :, None].expand_as(nearest)
    assert bool((nearest == expected).all())


def test_drop_in_hexagon_uniform_in_area():
    # Uniform density: the fraction of points within the apothem a (the inscribed circle) is
    # (pi a^2 - pi r0^2) / (3 sqrt(3)/2 R^2 - pi r0^2), with R = isd / sqrt(3).
    r0, radius, apothem = 35.0, ISD / math.sqrt(3), ISD / 2
    expected = (math.pi * apothem**2 - math.pi * r0**2) / (
        1.5 * math.sqrt(3) * radius**2 - math.pi * r0**2
    )
    centres = torch.tensor([[100.0, -50.0]])
    xy = drop_in_hexagon(200, 400, centres, gen(3), circumradius_m=radius, min_distance_m=r0)
    offset = xy - centres
    fraction = float((offset.norm(dim=-1) <= apothem).double().mean())
    # 80000 points: binomial standard deviation about 0.001.
    assert fraction == pytest.approx(expected, abs=0.006)
    assert offset.mean(dim=(0, 1, 2)).abs().max() < 3.0  # symmetric about the centre


def test_drop_in_hexagon_min_distance_beyond_apothem():
    # r0 between apothem and circumradius: only the six corner regions remain.
    radius = 100.0
    r0 = 0.95 * radius
    xy = drop_in_hexagon(3, 50, torch.zeros(2, 2), gen(4), circumradius_m=radius, min_distance_m=r0)
    assert xy.shape == (3, 2, 50, 2)
    assert float(xy.norm(dim=-1).min()) >= r0
    assert bool(inside_flat_topped_hexagon(xy[..., 0], xy[..., 1], radius * math.sqrt(3) / 2).all())


def test_drop_in_hexagon_tiny_acceptance_region_is_refused_not_allocated():
    # min distance a hair below the circumradius: ~2e-7 of the bounding box is acceptable; the
    # candidates this needs (~1e8 per cell) are refused up front instead of allocated
    radius = 100.0
    with pytest.raises(ConfigError, match="acceptance fraction"):
        drop_in_hexagon(
            4, 21, torch.zeros(7, 2), gen(8), circumradius_m=radius, min_distance_m=0.99995 * radius
        )
    # a small but feasible region still works (more rounds, bounded memory per round)
    xy = drop_in_hexagon(
        1, 5, torch.zeros(1, 2), gen(9), circumradius_m=radius, min_distance_m=0.99 * radius
    )
    assert float(xy.norm(dim=-1).min()) >= 0.99 * radius


def test_drop_in_hexagon_batched_centres_and_errors():
    centres = torch.randn(5, 3, 2, generator=gen(5), dtype=torch.float64) * 1000
    xy = drop_in_hexagon(5, 10, centres, gen(6), isd_m=ISD)
    assert xy.dtype == torch.float64
    offset = xy - centres[:, :, None, :]
    assert bool(inside_flat_topped_hexagon(offset[..., 0], offset[..., 1], ISD / 2).all())
    with pytest.raises(ConfigError, match="min_distance_m"):
        drop_in_hexagon(1, 5, centres[0], gen(), circumradius_m=10.0, min_distance_m=10.0)
    with pytest.raises(ConfigError, match="exactly one"):
        drop_in_hexagon(1, 5, centres[0], gen(), isd_m=1.0, circumradius_m=1.0)
    with pytest.raises(ShapeError, match="centres"):
        drop_in_hexagon(2, 5, centres, gen(), isd_m=ISD)


def test_drop_in_disc_mean_radius_and_annulus():
    radius = 250.0
    xy = drop_in_disc(100, 500, radius, gen(7))
    r = xy.norm(dim=-1)
    assert float(r.max()) <= radius
    # Uniform in area: E[r] = 2R/3, sd(r) = R/sqrt(18); 50000 points -> sd of mean 0.16 m.
    assert float(r.mean()) == pytest.approx(2 * radius / 3, abs=1.0)

    r0 = 100.0
    centre = torch.tensor([[10.0, 20.0], [-30.0, 5.0]])
    xy = drop_in_disc(2, 20000, radius, gen(8), min_radius_m=r0, centre=centre)
    r = (xy - centre[:, None, :]).norm(dim=-1)
    assert float(r.min()) >= r0 - 1e-3
    assert float(r.max()) <= radius + 1e-3
    # E[r] on an annulus = (2/3) (R^3 - r0^3) / (R^2 - r0^2).
    expected = 2 / 3 * (radius**3 - r0**3) / (radius**2 - r0**2)
    assert float(r.mean()) == pytest.approx(expected, abs=1.0)
    with pytest.raises(ConfigError, match="min_radius_m"):
        drop_in_disc(1, 1, 10.0, gen(), min_radius_m=10.0)


def test_drop_in_square_inside_and_quadrants_even():
    side = 1000.0
    xy = drop_in_square(50, 1000, side, gen(9), centre=(200.0, -100.0))
    offset = xy - torch.tensor([200.0, -100.0])
    assert float(offset.abs().max()) <= side / 2
    east, north = offset[..., 0] >= 0, offset[..., 1] >= 0
    counts = [int((e & n).sum()) for e in (east, ~east) for n in (north, ~north)]
    # 50000 points, 12500 expected per quadrant, binomial sd ~ 97: allow 5 sd.
    assert all(abs(count - 12500) < 500 for count in counts)


def test_drops_deterministic_per_seed():
    a = drop_in_square(2, 5, 10.0, gen(11))
    b = drop_in_square(2, 5, 10.0, gen(11))
    c = drop_in_square(2, 5, 10.0, gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    centres = hex_grid(7, ISD)
    h1 = drop_in_hexagon(2, 5, centres, gen(13), isd_m=ISD, min_distance_m=35.0)
    h2 = drop_in_hexagon(2, 5, centres, gen(13), isd_m=ISD, min_distance_m=35.0)
    assert torch.equal(h1, h2)
    assert torch.equal(drop_in_disc(2, 5, 1.0, gen(14)), drop_in_disc(2, 5, 1.0, gen(14)))


def test_with_height():
    xy = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert with_height(xy, 1.5).tolist() == [[[1.0, 2.0, 1.5], [3.0, 4.0, 1.5]]]
    per_node = with_height(xy, torch.tensor([30.0, 10000.0]))
    assert per_node[..., 2].tolist() == [[30.0, 10000.0]]
    with pytest.raises(ShapeError):
        with_height(torch.zeros(2, 3), 1.0)


# ----------------------------------------------------------------------------- angles


def test_distances_against_hand_computation():
    rx = torch.tensor([[[0.0, 0.0, 1.5], [100.0, 50.0, 1.5]]], dtype=torch.float64)  # (1, 2, 3)
    tx = torch.tensor(
        [[[0.0, 0.0, 30.0]], [[300.0, -400.0, 25.0]], [[-10.0, 20.0, 10000.0]]],
        dtype=torch.float64,
    )  # (3, 1, 3): batch broadcast against rx's B = 1
    d2 = distances_2d(rx, tx)
    d3 = distances_3d(rx, tx)
    assert d2.shape == d3.shape == (3, 2, 1)
    for b, r in itertools.product(range(3), range(2)):
        p, q = rx[0, r].tolist(), tx[b, 0].tolist()
        assert float(d2[b, r, 0]) == pytest.approx(math.hypot(p[0] - q[0], p[1] - q[1]))
        assert float(d3[b, r, 0]) == pytest.approx(math.dist(p, q))


def test_distances_shape_errors():
    with pytest.raises(ShapeError, match="rx_m"):
        distances_2d(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
    with pytest.raises(ShapeError, match="broadcast"):
        distances_3d(torch.zeros(2, 2, 3), torch.zeros(3, 2, 3))


def test_zenith_azimuth_known_geometry():
    tx = torch.tensor([[[10.0, 20.0, 30.0]]], dtype=torch.float64)
    rx = torch.tensor(
        [
            [
                [10.0, 20.0, 1030.0],  # straight above
                [10.0, 120.0, 30.0],  # on +y, same height
                [-90.0, 20.0, 30.0],  # on -x, same height: azimuth +pi, not -pi
                [10.0, 20.0, 1.5],  # straight below
                [110.0, 20.0, 130.0],  # 45 degrees above the horizon towards +x
                [10.0, -80.0, 30.0 - 100.0 * math.sqrt(3)],  # towards -y, 60 degrees below
            ]
        ],
        dtype=torch.float64,
    )
    zenith, azimuth = zenith_azimuth(rx, tx)
    assert zenith.shape == azimuth.shape == (1, 6, 1)
    expected_zenith = [0.0, math.pi / 2, math.pi / 2, math.pi, math.pi / 4, math.pi * 5 / 6]
    expected_azimuth = [0.0, math.pi / 2, math.pi, 0.0, 0.0, -math.pi / 2]
    assert zenith[0, :, 0].tolist() == pytest.approx(expected_zenith)
    assert azimuth[0, :, 0].tolist() == pytest.approx(expected_azimuth)
    expected_elevation = [math.pi / 2, 0.0, 0.0, -math.pi / 2, math.pi / 4, -math.pi / 3]
    assert elevation(rx, tx)[0, :, 0].tolist() == pytest.approx(expected_elevation, abs=1e-12)


def test_azimuth_range_with_negative_zero():
    rx = torch.tensor([[[-5.0, -0.0, 0.0]]])
    tx = torch.tensor([[[0.0, 0.0, 0.0]]])
    _, azimuth = zenith_azimuth(rx, tx)
    assert float(azimuth) == pytest.approx(math.pi)


def test_direction_vector_reconstructs_direction():
    g = gen(21)
    rx = torch.randn(4, 5, 3, generator=g, dtype=torch.float64) * 1000
    tx = torch.randn(4, 3, 3, generator=g, dtype=torch.float64) * 1000
    zenith, azimuth = zenith_azimuth(rx, tx)
    assert float(zenith.min()) >= 0 and float(zenith.max()) <= math.pi
    assert float(azimuth.min()) > -math.pi and float(azimuth.max()) <= math.pi
    u = direction_vector(zenith, azimuth)  # (4, 5, 3, 3)
    for b, r, t in [(0, 0, 0), (1, 4, 2), (3, 2, 1)]:
        delta = [p - q for p, q in zip(rx[b, r].tolist(), tx[b, t].tolist(), strict=True)]
        norm = math.sqrt(sum(d * d for d in delta))
        assert u[b, r, t].tolist() == pytest.approx([d / norm for d in delta], abs=1e-12)
    assert torch.allclose(u.norm(dim=-1), torch.ones(4, 5, 3, dtype=torch.float64))


def test_hex_rings_within_is_the_largest_whole_ring_count_at_any_size():
    """1 + 3 r (r + 1) <= n < 1 + 3 (r + 1)(r + 2) for every n up to 5000 and for n far past
    what a loop over rings could reach (the closed form with an integer square root)."""
    from skyshare.geometry import hex_rings_within

    for n in [*range(1, 5000), 10**18, 10**40 + 7]:
        r = hex_rings_within(n)
        assert 1 + 3 * r * (r + 1) <= n < 1 + 3 * (r + 1) * (r + 2), n
    assert [hex_rings_within(n) for n in (1, 6, 7, 18, 19, 61)] == [0, 0, 1, 1, 2, 4]
