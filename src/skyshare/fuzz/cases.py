"""A fuzz case, its outcome, and the checks that decide it.

:class:`FuzzCase` is what is drawn and replayed (one JSON line), :class:`Outcome` what running
it gave; :class:`Checks` collects the constraint violations of one case, and
:func:`must_accept` turns a consumer's refusal of what the case produced into a failure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from skyshare.errors import SkyshareError

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class FuzzCase:
    """One case; ``config`` is the raw scenario config (it may be one the model rejects),
    ``options`` the solver options or the environment config of the target."""

    target: str
    config: dict[str, Any]
    options: dict[str, Any]
    batch_size: int
    dtype: str
    seed: int

    def reproduction(self) -> str:
        """The case as one JSON line (``python -m benchmarks.fuzz --replay '<this>'``)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FuzzCase:
        return cls(**json.loads(text))


@dataclass
class Outcome:
    """``status``: "ok", "rejected" or "failure"; ``stage``: "config" (the model refused),
    "run" (a later clean refusal or a failure); ``message`` says what happened."""

    case: FuzzCase
    status: str
    stage: str = ""
    message: str = ""
    seconds: float = 0.0


class Checks:
    """Collects constraint violations of one case (messages name the output)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def finite(self, name: str, x: torch.Tensor | float) -> None:
        x = torch.as_tensor(x)
        if x.is_floating_point() or x.is_complex():
            bad = int((~torch.isfinite(x)).sum())
            if bad:
                self.problems.append(f"{name}: {bad} of {x.numel()} values are NaN/Inf")

    def at_least(self, name: str, x: torch.Tensor, low: float) -> None:
        self.finite(name, x)
        if x.numel() and bool((x < low).any()):
            self.problems.append(f"{name}: min {float(x.min()):.6g} < {low:g}")

    def within(self, name: str, used: torch.Tensor, limit: torch.Tensor, rtol: float) -> None:
        """``used <= limit (1 + rtol)`` element-wise (a budget)."""
        self.finite(name, used)
        excess = used.double() - limit.double() * (1 + rtol)
        if used.numel() and bool((excess > 0).any()):
            i = int(excess.flatten().argmax())
            u, lim = float(used.flatten()[i]), float(limit.expand_as(used).flatten()[i])
            self.problems.append(f"{name}: {u:.9g} exceeds its limit {lim:.9g} (rtol {rtol:g})")

    def probability(self, name: str, x: torch.Tensor) -> None:
        self.at_least(name, x, 0.0)
        if x.numel() and bool((x > 1).any()):
            self.problems.append(f"{name}: max {float(x.max()):.9g} > 1")

    def link_budget(self, budget: Any) -> None:
        """No NaN in a link budget; +-inf only in dB rows (the dB of 0 or of inf)."""
        for row in budget.rows:
            if math.isnan(row.value) or (math.isinf(row.value) and "dB" not in row.unit):
                self.problems.append(f"link budget {row.quantity!r} = {row.value}")


class Refused(Exception):
    """A consumer refused what the case produced (a failure, not a clean rejection)."""


@contextmanager
def must_accept(what: str) -> Iterator[None]:
    """A SkyshareError inside is a failure: ``what`` should have been accepted."""
    try:
        yield
    except SkyshareError as exc:
        raise Refused(f"{what} was refused: {exc}") from exc


# what a target runs on a case: (case, the validated config, the checks to fill in)
Run = Callable[["FuzzCase", Any, Checks], None]
