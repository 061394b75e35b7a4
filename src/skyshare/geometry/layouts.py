"""Cell layouts and random node drops.

Coordinates are metres in a local east-north-up frame: x east, y north, z up, ground at z = 0.
The functions here work on the ground plane and return ``(..., 2)`` tensors; :func:`with_height`
adds the z coordinate.

Hexagonal layout convention (used by :func:`hex_grid` and :func:`drop_in_hexagon`, so that the
hexagons around the grid centres tile the plane):

* cell centres lie on a triangular lattice with neighbour distance ``isd_m`` (inter-site distance);
  the six neighbours of a centre are at angles 30, 90, 150, 210, 270 and 330 degrees;
* each cell is a *flat-topped* regular hexagon: vertices at angles 0, 60, ..., 300 degrees,
  circumradius ``R = isd / sqrt(3)``, apothem (centre-to-edge distance) ``isd / 2``.

Sources: 3GPP TR 38.901 Table 7.8-1 (UMa: hexagonal grid, ISD 500 m, minimum 2D BS-UT distance
35 m); seed 000 §VI (7 BSs on a hexagonal layout, Fig. 3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = [
    "drop_in_disc",
    "drop_in_hexagon",
    "drop_in_square",
    "hex_grid",
    "hex_ring_count",
    "hex_rings_within",
    "with_height",
]

_CANDIDATES_PER_ROUND = 2**24
_SQRT3 = math.sqrt(3.0)


def hex_rings_within(n_cells: int) -> int:
    """The most whole rings ``r`` whose hexagonal grid has at most ``n_cells`` cells (the
    largest ``r`` with ``1 + 3 r (r + 1) <= n_cells``, n_cells >= 1), in closed form: ``r =
    (sqrt(12 n - 3) - 3) / 6`` rounded down, with an integer square root (any size at once)."""
    rings = max(0, (math.isqrt(12 * n_cells - 3) - 3) // 6)
    while 1 + 3 * (rings + 1) * (rings + 2) <= n_cells:  # integer rounding guards
        rings += 1
    while rings > 0 and 1 + 3 * rings * (rings + 1) > n_cells:
        rings -= 1
    return rings


def hex_ring_count(n_cells: int) -> int:
    """Ring count ``r`` with ``1 + 3 r (r + 1) == n_cells`` (0 for 1 cell, 1 for 7, 2 for 19).

    Raises :class:`ConfigError` when ``n_cells`` is not a centred hexagonal number.
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, int) or n_cells < 1:
        raise ConfigError(f"n_cells must be an integer >= 1, got {n_cells!r}")
    rings = hex_rings_within(n_cells)
    if 1 + 3 * rings * (rings + 1) != n_cells:
        valid = ", ".join(str(1 + 3 * r * (r + 1)) for r in range(8))
        raise ConfigError(
            f"n_cells must be 1 + 3 r (r + 1) for a ring count r >= 0 (one of {valid}, ...), "
            f"got {n_cells}"
        )
    return rings


def hex_grid(
    n_cells: int,
    isd_m: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Centres of a hexagonal cell layout in rings around the origin.

    Returns ``centres_m: (n_cells, 2) float``. ``n_cells = 1 + 3 r (r + 1)`` (1, 7, 19, 37, ...)
    for ``r`` rings; ring ``k`` holds ``6 k`` cells. Neighbouring centres are ``isd_m`` apart.

    Ordering (deterministic): the centre cell first (index 0), then ring 1, ring 2, ... Each ring
    starts at its corner at angle 30 degrees, ``k * isd * (cos 30°, sin 30°)``, and walks
    counter-clockwise along its six sides. For 7 cells, cells 1..6 are at angles 30, 90, 150, 210,
    270, 330 degrees. This is the 3GPP 7/19-site wrap-around numbering up to a rotation
    (TR 38.901 Table 7.8-1 uses this layout with ISD 500 m for UMa).
    """
    rings = hex_ring_count(n_cells)
    if not isd_m > 0:
        raise ConfigError(f"isd_m must be > 0 m, got {isd_m}")
    corner_angles = torch.deg2rad(30.0 + 60.0 * torch.arange(6, dtype=torch.float64))
    corner_dirs = isd_m * torch.stack([corner_angles.cos(), corner_angles.sin()], dim=-1)  # (6, 2)
    centres = [torch.zeros(1, 2, dtype=torch.float64)]
    for ring in range(1, rings + 1):
        side = torch.arange(6).repeat_interleave(ring)  # which side of the ring, (6 ring,)
        step = torch.arange(ring).repeat(6)  # position along that side, (6 ring,)
        # Walk from corner ``ring * d_j`` towards corner ``ring * d_{j+1}``; on a hexagonal lattice
        # d_{j+1} - d_j = d_{j+2}, so the step along side j is d_{j+2}.
        centres.append(ring * corner_dirs[side] + step[:, None] * corner_dirs[(side + 2) % 6])
    return torch.cat(centres).to(device=device, dtype=dtype)


def _generator_device(generator: torch.Generator, device: torch.device | str | None):
    return torch.device(device) if device is not None else generator.device


def _check_counts(batch: int, n: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be an integer >= 1, got {batch!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be an integer >= 0, got {n!r}")


def _centre_tensor(
    centre: Sequence[float] | torch.Tensor | None,
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """A centre given as ``(2,)`` or ``(B, 2)`` as a tensor broadcastable to ``(B, n, 2)``."""
    if centre is None:
        return torch.zeros(1, 1, 2, device=device, dtype=dtype)
    centre_t = torch.as_tensor(centre, device=device, dtype=dtype)
    if centre_t.shape == (2,):
        return centre_t.reshape(1, 1, 2)
    if centre_t.shape == (batch, 2):
        return centre_t[:, None, :]
    raise ShapeError(f"centre must have shape (2,) or (B, 2) = ({batch}, 2), got {centre_t.shape}")


def drop_in_disc(
    batch: int,
    n: int,
    radius_m: float,
    generator: torch.Generator,
    *,
    min_radius_m: float = 0.0,
    centre: Sequence[float] | torch.Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Points uniform in area in a disc (or annulus ``min_radius_m <= r <= radius_m``).

    Returns ``xy_m: (B, n, 2) float``. Inverse-CDF sampling: ``r = sqrt(r0^2 + U (R^2 - r0^2))``,
    angle uniform in ``[0, 2 pi)``; the mean radius of a full disc is ``2R/3``.

    ``centre``: ``(2,)`` or ``(B, 2)`` (one centre per realization), default the origin.
    ``device`` defaults to the generator's device.
    """
    _check_counts(batch, n)
    if not radius_m > 0:
        raise ConfigError(f"radius_m must be > 0 m, got {radius_m}")
    if not 0 <= min_radius_m < radius_m:
        raise ConfigError(f"min_radius_m must be in [0, radius_m={radius_m}) m, got {min_radius_m}")
    device = _generator_device(generator, device)
    uniforms = torch.rand(2, batch, n, generator=generator, device=device, dtype=dtype)
    radius = torch.sqrt(min_radius_m**2 + uniforms[0] * (radius_m**2 - min_radius_m**2))
    angle = 2.0 * math.pi * uniforms[1]
    offsets = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)
    return offsets + _centre_tensor(centre, batch, device, dtype)


def drop_in_square(
    batch: int,
    n: int,
    side_m: float,
    generator: torch.Generator,
    *,
    centre: Sequence[float] | torch.Tensor = (0.0, 0.0),
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Points uniform in an axis-aligned square of side ``side_m`` centred on ``centre``.

    Returns ``xy_m: (B, n, 2) float``. ``centre``: ``(2,)`` or ``(B, 2)``. Used for the seed 001
    1000 m x 1000 m area and the seed 003 urban square. ``device`` defaults to the generator's.
    """
    _check_counts(batch, n)
    if not side_m > 0:
        raise ConfigError(f"side_m must be > 0 m, got {side_m}")
    device = _generator_device(generator, device)
    offsets = (
        torch.rand(batch, n, 2, generator=generator, device=device, dtype=dtype) - 0.5
    ) * side_m
    return offsets + _centre_tensor(centre, batch, device, dtype)


def _hexagon_annulus_area(circumradius_m: float, min_distance_m: float) -> float:
    """Area of a regular hexagon (circumradius R) minus the disc of radius r0 at its centre."""
    apothem = circumradius_m * _SQRT3 / 2.0
    hexagon_area = 1.5 * _SQRT3 * circumradius_m**2
    r0 = min_distance_m
    if r0 <= apothem:
        disc_inside = math.pi * r0**2
    elif r0 < circumradius_m:  # the disc pokes out of the six edges: remove six circular segments
        segment = r0**2 * math.acos(apothem / r0) - apothem * math.sqrt(r0**2 - apothem**2)
        disc_inside = math.pi * r0**2 - 6.0 * segment
    else:
        disc_inside = hexagon_area
    return hexagon_area - disc_inside


def _circumradius(isd_m: float | None, circumradius_m: float | None) -> float:
    """The hexagon's circumradius from exactly one of ``isd_m`` or ``circumradius_m``."""
    if (isd_m is None) == (circumradius_m is None):
        raise ConfigError("give exactly one of isd_m or circumradius_m")
    name, size = ("isd_m", isd_m) if isd_m is not None else ("circumradius_m", circumradius_m)
    if not size > 0:
        raise ConfigError(f"{name} must be > 0 m, got {size}")
    return circumradius_m if circumradius_m is not None else isd_m / _SQRT3


def _batched_centres(centres: torch.Tensor, batch: int) -> torch.Tensor:
    """``(C, 2)`` or ``(B, C, 2)`` centres as ``(B, C, 2)``."""
    if centres.ndim == 2:
        centres = centres.unsqueeze(0).expand(batch, -1, -1)
    if centres.ndim != 3 or centres.shape[0] != batch or centres.shape[-1] != 2:
        raise ShapeError(
            f"centres must have shape (C, 2) or (B={batch}, C, 2), got {centres.shape}"
        )
    return centres


def drop_in_hexagon(
    batch: int,
    n: int,
    centres: torch.Tensor,
    generator: torch.Generator,
    *,
    isd_m: float | None = None,
    circumradius_m: float | None = None,
    min_distance_m: float = 0.0,
    max_rounds: int = 64,
) -> torch.Tensor:
    """``n`` points uniform in the hexagonal cell around each centre, at least ``min_distance_m``
    from it.

    Args:
        centres: ``(C, 2)`` or ``(B, C, 2)`` float, cell centres in metres (e.g. :func:`hex_grid`).
        isd_m / circumradius_m: the cell size, exactly one of them;
            ``circumradius = isd / sqrt(3)``.
        min_distance_m: minimum 2D distance to the centre (3GPP TR 38.901 Table 7.8-1: 35 m for UMa,
            10 m for UMi).
        max_rounds: bound on rejection-sampling rounds.

    Returns ``xy_m: (B, C, n, 2)`` in the dtype and on the device of ``centres`` (the generator must
    live on that device).

    The hexagons are flat-topped (vertices at 0, 60, ... degrees), the orientation that tiles with
    :func:`hex_grid`. Sampling is batched rejection: each round draws enough candidates per cell in
    the bounding box ``[-R, R] x [-sqrt(3)R/2, sqrt(3)R/2]`` to expect ``n`` accepted ones with a
    margin, and the first still-missing accepted candidates of every cell are scattered into the
    output in one vectorised step. Accepted points are independent and uniform on the acceptance
    region; the loop ends when every cell holds ``n`` points (almost always after one round).
    """
    _check_counts(batch, n)
    radius = _circumradius(isd_m, circumradius_m)
    if not min_distance_m >= 0:
        raise ConfigError(f"min_distance_m must be >= 0 m, got {min_distance_m}")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ConfigError(f"max_rounds must be an integer >= 1, got {max_rounds!r}")
    centres = _batched_centres(centres, batch)
    n_centres = centres.shape[1]

    accept_area = _hexagon_annulus_area(radius, min_distance_m)
    if accept_area <= 0:
        raise ConfigError(
            f"min_distance_m={min_distance_m} m leaves no room in a hexagon of circumradius "
            f"{radius:.3f} m: it must be < the circumradius"
        )
    half_height = radius * _SQRT3 / 2.0
    accept_prob = accept_area / (2.0 * radius * 2.0 * half_height)
    # Expected n accepted plus ~4 standard deviations of margin, per cell and round.
    needed = math.ceil((n + 4.0 * math.sqrt(n) + 4.0) / accept_prob)
    # At most _CANDIDATES_PER_ROUND candidates per round over all cells (a few hundred MB), so
    # a tiny acceptance region costs rounds, not memory; refuse what the rounds cannot fill.
    n_candidates = min(needed, max(1, _CANDIDATES_PER_ROUND // (batch * n_centres)))
    if math.ceil(needed / n_candidates) > max_rounds:
        raise ConfigError(
            f"drop_in_hexagon: min_distance_m={min_distance_m} m leaves an acceptance fraction "
            f"of {accept_prob:.2e} of the cell's bounding box, too small to place n={n} points "
            f"in each of {batch * n_centres} cells in max_rounds={max_rounds} rounds; lower "
            f"min_distance_m (circumradius {radius:.3f} m), n or the batch"
        )

    device, dtype = centres.device, centres.dtype
    out = torch.zeros(batch, n_centres, n, 2, device=device, dtype=dtype)
    filled = torch.zeros(batch, n_centres, dtype=torch.long, device=device)
    for _ in range(max_rounds):
        if n == 0 or bool((filled >= n).all()):
            return out + centres[:, :, None, :]
        unit = torch.rand(
            batch, n_centres, n_candidates, 2, generator=generator, device=device, dtype=dtype
        )
        x = (2.0 * unit[..., 0] - 1.0) * radius
        y = (2.0 * unit[..., 1] - 1.0) * half_height
        # Flat-topped hexagon: |y| <= sqrt(3) R / 2 holds by construction; the four slanted edges
        # through (R, 0) and (R/2, sqrt(3) R / 2) give sqrt(3)|x| + |y| <= sqrt(3) R.
        inside = _SQRT3 * x.abs() + y.abs() <= _SQRT3 * radius
        valid = inside & (x * x + y * y >= min_distance_m**2)
        slot = filled[..., None] + valid.long().cumsum(dim=-1) - 1  # output slot of each candidate
        keep = valid & (slot < n)
        b_idx, c_idx, _ = keep.nonzero(as_tuple=True)
        out[b_idx, c_idx, slot[keep]] = torch.stack([x[keep], y[keep]], dim=-1)
        filled = filled + keep.sum(dim=-1)
    if n == 0 or bool((filled >= n).all()):
        return out + centres[:, :, None, :]
    raise ConfigError(
        f"drop_in_hexagon could not place n={n} points per cell in max_rounds={max_rounds} "
        f"rounds (acceptance fraction {accept_prob:.2e}); raise max_rounds or lower min_distance_m"
    )


def with_height(xy_m: torch.Tensor, height_m: float | torch.Tensor) -> torch.Tensor:
    """Append a z coordinate: ``xy_m: (..., 2)`` -> ``(..., 3)``.

    ``height_m`` is a float or a tensor broadcastable to ``xy_m[..., 0]`` (e.g. per-node heights).
    """
    if xy_m.shape[-1] != 2:
        raise ShapeError(f"xy_m must have shape (..., 2), got {tuple(xy_m.shape)}")
    z = torch.as_tensor(height_m, device=xy_m.device, dtype=xy_m.dtype)
    z = torch.broadcast_to(z, xy_m.shape[:-1])
    return torch.cat([xy_m, z.unsqueeze(-1)], dim=-1)
