"""Drawing raw config values from the declared ranges of a pydantic config model.

Every field with a ``ge``/``gt``/``le``/``lt`` range is drawn inside it, half of the draws at an
edge (the bound, just inside an open bound, 3 to 9 orders of magnitude above the default where
no upper bound is declared, ``inf`` where the field allows it), the rest uniform or
log-uniform. Booleans, literals and optional fields are drawn too; other fields keep their
default.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at

from skyshare.config import StrictModel

EDGE = 0.5  # probability that a drawn number is an edge value
DRAW = 0.4  # probability that a field other than a size is drawn (else its default)


@dataclass(frozen=True)
class FieldRange:
    """The declared range of a number field (``None``: no bound on that side)."""

    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    allow_inf: bool = False


def field_range(metadata: list[Any]) -> FieldRange:
    """The range that a field's pydantic metadata (``ge``/``gt``/``le``/``lt``) declares."""
    bounds: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, at.Ge):
            bounds.update(lo=item.ge)
        elif isinstance(item, at.Gt):
            bounds.update(lo=item.gt, lo_open=True)
        elif isinstance(item, at.Le):
            bounds.update(hi=item.le)
        elif isinstance(item, at.Lt):
            bounds.update(hi=item.lt, hi_open=True)
        elif getattr(item, "allow_inf_nan", False):
            bounds.update(allow_inf=True)
    return FieldRange(**bounds)


def _near(value: float, scale: float, rng: random.Random, sign: float) -> float:
    """A value just inside an open bound (3 to 12 orders of magnitude below ``scale``)."""
    return value + sign * scale * 10.0 ** -rng.uniform(3, 12)


def _draw_int(rng: random.Random, r: FieldRange, cap: float | None) -> int:
    lo = int(r.lo if r.lo is not None else 0) + int(r.lo_open)
    hi = r.hi - int(r.hi_open) if r.hi is not None else lo + 64
    hi = int(max(lo, min(hi, cap))) if cap is not None else int(hi)
    if rng.random() < EDGE:
        return rng.choice([lo, lo, min(lo + 1, hi), hi])
    return rng.randint(lo, hi)


def _float_ends(rng: random.Random, r: FieldRange, scale: float, cap: float | None):
    lo = -scale * 1e3 if r.lo is None else r.lo
    lo = _near(lo, scale, rng, +1) if r.lo_open else lo
    if r.hi is None:
        hi = scale * 10.0 ** rng.uniform(3, 9)  # huge
    else:
        hi = _near(r.hi, scale, rng, -1) if r.hi_open else r.hi
    return lo, (hi if cap is None else min(hi, cap))


def _draw_float(rng: random.Random, r: FieldRange, default: Any, cap: float | None) -> float:
    if r.allow_inf and rng.random() < 0.2:
        return math.inf
    scale = abs(float(default)) if isinstance(default, int | float) and default else 1.0
    lo, hi = _float_ends(rng, r, scale, cap)
    if rng.random() < EDGE:
        return rng.choice([lo, hi])
    if lo > 0 and hi / lo > 1e3:
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return rng.uniform(lo, hi)


_KEEP = object()  # what _draw_field returns for a field it has no rule for


def _draw_field(rng: random.Random, info: Any, cap: float | None) -> Any:
    """A value for one field (``_KEEP`` where the fuzzer has no rule: the default stays)."""
    annotation = info.annotation
    options = get_args(annotation) if get_origin(annotation) in (Union, type(int | None)) else ()
    if type(None) in options:
        if rng.random() < 0.3:
            return None
        annotation = next(a for a in options if a is not type(None))
    if annotation is bool:
        return rng.random() < 0.5
    if get_origin(annotation) is Literal:
        return rng.choice(get_args(annotation))
    r = field_range(info.metadata)
    if annotation is int:
        return _draw_int(rng, r, cap)
    if annotation is float:
        return _draw_float(rng, r, info.default, cap)
    return _KEEP


def draw_config(
    rng: random.Random, model: type[StrictModel], caps: dict[str, float]
) -> dict[str, Any]:
    """Raw field values for ``model``: every capped field (the sizes) is drawn within its cap,
    every other field with probability :data:`DRAW` (else its default stays)."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in caps and rng.random() >= DRAW:
            continue
        value = _draw_field(rng, info, caps.get(name))
        if value is not _KEEP:
            data[name] = value
    return data
