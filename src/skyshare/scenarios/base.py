"""What every scenario provides.

A scenario is one seed paper's system: a config with the paper's parameters as defaults, a
batched network (B independent realizations of the layout) and a time-stepping channel
process. Usage::

    scenario = CatnScenario.from_preset("paper", batch_size=64)
    state = scenario.reset(seed=0)      # slot 0
    state = scenario.step()             # slot 1, channels evolved
    print(scenario.link_budget().render_text())

Figures of a scenario live in the plots layer: ``skyshare.plots.plot_topology(scenario, path)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch

from skyshare.checks import check_memory
from skyshare.config import StrictModel, build_config
from skyshare.errors import ConfigError

C = TypeVar("C", bound=StrictModel)


@dataclass
class LinkBudgetRow:
    """One line of a link-budget table: a quantity, its value, its unit and how it was obtained."""

    quantity: str
    value: float
    unit: str
    note: str = ""


@dataclass
class LinkBudget:
    """A titled list of :class:`LinkBudgetRow` (averaged over the batch unless a row says so)."""

    title: str
    rows: list[LinkBudgetRow] = field(default_factory=list)

    def add(self, quantity: str, value: float | torch.Tensor, unit: str, note: str = "") -> None:
        self.rows.append(LinkBudgetRow(quantity, float(value), unit, note))

    def as_dict(self) -> dict[str, float]:
        return {row.quantity: row.value for row in self.rows}

    def render_text(self) -> str:
        width = max(len(r.quantity) for r in self.rows) if self.rows else 0
        lines = [self.title]
        for r in self.rows:
            note = f"  ({r.note})" if r.note else ""
            lines.append(f"  {r.quantity:<{width}}  {r.value:>12.4g} {r.unit}{note}")
        return "\n".join(lines)


class Scenario(ABC, Generic[C]):
    """Base class of all scenarios.

    Subclasses set ``name``, ``title``, ``source`` and ``Config`` and implement :meth:`reset`,
    :meth:`step` and :meth:`link_budget`.

    Args:
        config: validated config (the ``paper`` preset when omitted).
        batch_size: number B of independent realizations simulated together.
        device: torch device of every tensor the scenario allocates.
        dtype: real dtype (float32 default, float64 on request); complex tensors use the
            matching complex dtype.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    source: ClassVar[str]
    Config: ClassVar[type[StrictModel]]

    def __init__(
        self,
        config: C | None = None,
        *,
        batch_size: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if config is None:
            config = self.config_from(preset="paper")
        if not isinstance(config, self.Config):
            raise ConfigError(
                f"{self.name} needs a {self.Config.__name__}, got {type(config).__name__}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.config: C = config
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.dtype = dtype
        self.cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        check_memory(self.memory_estimate(), f"{self.name} with batch {batch_size}")
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(config.seed))

    def memory_estimate(self) -> float:
        """Bytes of the scenario's largest tensors for its config and batch (an estimate
        with a margin for temporaries, checked before anything is allocated); 0 when a
        scenario does not say."""
        return 0.0

    @property
    def _complex_bytes(self) -> int:
        return 8 if self.dtype == torch.float32 else 16

    @classmethod
    def config_from(
        cls,
        preset: str | None = "paper",
        *,
        file: str | Path | None = None,
        overrides: list[str] | dict[str, Any] | None = None,
    ) -> C:
        """Build a validated config from a preset, a YAML file and ``key=value`` overrides."""
        return build_config(cls.Config, cls.name, preset=preset, file=file, overrides=overrides)

    @classmethod
    def from_preset(
        cls,
        preset: str = "paper",
        *,
        overrides: list[str] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Scenario[C]:
        """Shorthand for ``cls(cls.config_from(preset, overrides=overrides), **kwargs)``."""
        return cls(cls.config_from(preset, overrides=overrides), **kwargs)

    def _seed(self, seed: int | None) -> None:
        seed = int(self.config.seed if seed is None else seed)
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        self.generator.manual_seed(seed)

    @abstractmethod
    def reset(self, seed: int | None = None) -> Any:
        """Draw a new batch of realizations (layout, initial fading); return slot 0's state."""

    @abstractmethod
    def step(self) -> Any:
        """Advance one time slot (or one block) and return the new state."""

    @abstractmethod
    def link_budget(self) -> LinkBudget:
        """Summary numbers of the current realizations (mean SNR per tier, INR at primaries...)."""
