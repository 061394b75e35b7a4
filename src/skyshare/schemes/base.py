"""What every scheme is, and the registry that names them.

A *scheme* is a named decision rule of one system: an optimisation solver, a fixed rule or a
learner, wrapped in one small interface so that the system's online loop (one per env kind,
e.g. :func:`skyshare.schemes.catn.run_online`) runs them all the same way:

* ``decide(...)``: the actions of the current step (the signature is the env kind's: CATN has
  an association turn and a beamforming turn, multiband one power allocation per block);
* ``learn(...) -> dict``: one learning step on what the last decision led to; a no-op (``{}``)
  for solvers and rules (``learns`` is False);
* ``state_dict()`` / ``load_state_dict()``: everything the scheme needs to continue exactly
  (networks, optimisers, generators, warm-start solutions), as tensors, numbers, strings and
  lists/dicts of them, so that a checkpoint loads with ``torch.load(..., weights_only=True)``.

A :class:`Registry` maps names to factories. Adding a scheme is one ``register`` call (or
decorator) in any module that is imported before the name is used; the CLI reads its choices
from the registries, so a registered scheme is immediately available to ``skyshare solve`` and
``skyshare run``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from skyshare.errors import ConfigError, UnknownNameError

__all__ = ["Registry", "RegistryEntry", "Stateless"]

T = TypeVar("T")


class Stateless:
    """Mixin for schemes without learning or memory: ``learn`` is a no-op, the state empty."""

    learns = False

    def learn(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Nothing to learn: ``{}``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """No state: ``{}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Accept only the empty state of :meth:`state_dict`."""
        if state:
            raise ConfigError(f"{type(self).__name__} has no state, got keys {sorted(state)}")


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered name.

    Attributes:
        name: the name users type (``"SC-WMMSE"``, ``"wmmse-lite"``).
        factory: builds the scheme (arguments are the registry's, documented where it is made).
        description: one line for ``--help`` and the docs.
        tags: free-form properties the loop and the CLI read, e.g. ``{"learns": True}``.
    """

    name: str
    factory: Callable[..., T]
    description: str = ""
    tags: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Names -> factories of one kind of scheme (e.g. ``"catn association"``).

    Example::

        ASSOCIATIONS = Registry("catn association")

        @ASSOCIATIONS.register("sc", description="strongest channel")
        def _sc(env, options): ...

        ASSOCIATIONS.build("sc", env, options)
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T] | None = None,
        *,
        description: str = "",
        replace: bool = False,
        **tags: Any,
    ) -> Any:
        """Register ``factory`` under ``name`` (as a call, or as a decorator without
        ``factory``). A name registered twice is an error unless ``replace``."""
        if not name or not isinstance(name, str):
            raise ConfigError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def add(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and not replace:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = RegistryEntry(name, fn, description, dict(tags))
            return fn

        return add if factory is None else add(factory)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a throwaway scheme clean up with this)."""
        self.entry(name)
        del self._entries[name]

    def entry(self, name: str) -> RegistryEntry[T]:
        """The entry of ``name``; an :class:`UnknownNameError` listing the names otherwise."""
        if name not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            )
        return self._entries[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        """``factory(*args, **kwargs)`` of ``name``."""
        return self.entry(name).factory(*args, **kwargs)

    def names(self, **tags: Any) -> list[str]:
        """Registered names in registration order, only those whose tags match ``tags``."""
        return [
            name
            for name, entry in self._entries.items()
            if all(entry.tags.get(key) == value for key, value in tags.items())
        ]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
