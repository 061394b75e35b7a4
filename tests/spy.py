"""Recording what a method returns, for tests that compare a loop's log with what it was given."""

from __future__ import annotations

from typing import Any


def returns_of(obj: Any, name: str) -> list:
    """Wrap ``obj.<name>`` (an instance attribute shadows the method) so that every call's
    return value is appended to the list returned here, in call order."""
    method, returned = getattr(obj, name), []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        value = method(*args, **kwargs)
        returned.append(value)
        return value

    setattr(obj, name, recorded)
    return returned
