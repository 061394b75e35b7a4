"""Checks shared by the sweep experiments (``multiband-fig5/6/7``, ``vhetnet-fig6/7/8/9``...).

A sweep preset has fixed fields (e.g. ``scenario``) and ``points``, each of which overrides
some of them; the figure is drawn against ``sweep``, a field every point sets. Both checks
run when the jobs are built, so a bad preset is refused before anything is written:

* :func:`check_swept_fields`: a fixed field that every point sets too would be silently
  ignored (the points' values win), so it is refused;
* :func:`check_sweep_points`: every point must set the field(s) the figure's x axis reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from skyshare.errors import ConfigError

__all__ = ["check_sweep_points", "check_swept_fields"]


def _indexed(point_path: str, i: int | str) -> str:
    """``"points[].scenario"`` -> ``"points[i].scenario"`` (the first ``[]``)."""
    return point_path.replace("[]", f"[{i}]", 1)


def check_swept_fields(
    path: str,
    fixed: Mapping[str, Any],
    point_path: str,
    points: Sequence[Mapping[str, Any]],
) -> None:
    """Refuse a fixed field that every point sets too (its value would be ignored).

    Args:
        path: the dotted path of the fixed fields, e.g. ``"scenario"`` or
            ``"options.distributed"``.
        fixed: the fixed values there.
        point_path: the dotted path of the same fields in a point, ``[]`` standing for the
            point's index, e.g. ``"points[].scenario"`` (vhetnet) or ``"points[]"``
            (multiband, whose points are scenario overrides).
        points: every point's values at ``point_path``.

    A field only some points set is kept (the other points use it). The error names the
    full dotted path, the points' values and what to do instead.
    """
    for name in fixed:
        swept = [point[name] for point in points if name in point]
        if not swept or len(swept) < len(points):
            continue
        field = f"{path}.{name}"
        distinct = list(dict.fromkeys(json.dumps(value) for value in swept))
        shown = ", ".join(distinct)
        what = "swept by" if len(distinct) > 1 else "set by every point of"
        raise ConfigError(
            f"{field} is {what} this experiment ({point_path}.{name}: {shown}), so the value "
            f"given would be ignored; set the points' values instead "
            f"({_indexed(point_path, 'i')}.{name}, e.g. in a --config file) or leave "
            f"{field} out"
        )


def check_sweep_points(
    experiment: str,
    sweep: str | None,
    needs: Sequence[str],
    point_path: str,
    points: Sequence[Mapping[str, Any]],
    *,
    example: str,
) -> None:
    """Refuse a sweep the figure cannot be drawn against, before any job runs.

    Args:
        experiment: the experiment id (for the message).
        sweep: the preset's ``sweep``; None or empty: refused (the figure needs one).
        needs: the fields every point must set for its x value (e.g. ``("sir_db",)``, or
            ``("n_antennas", "users_per_cell")`` for multiband's ``(M, U)``); empty when the
            x value has defaults (vhetnet's ``haps_array``).
        point_path: the dotted path of those fields in a point (``[]`` for the index).
        points: every point's values at ``point_path``.
        example: the allowed sweeps or an example, for the message.
    """
    if not sweep:
        raise ConfigError(
            f"sweep: {experiment} draws its figure against a scenario field; name it ({example})"
        )
    for i, point in enumerate(points):
        for name in needs:
            if name not in point:
                raise ConfigError(
                    f"{_indexed(point_path, i)}.{name}: not set, but sweep = {sweep!r} needs "
                    f"every point's x value ({', '.join(needs)}); set it in each point or name "
                    "another sweep"
                )
