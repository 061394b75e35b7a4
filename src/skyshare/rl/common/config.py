"""Base of the learners' configs: a validated, frozen pydantic model with a seed."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from skyshare.config import InvalidConfigError, StrictModel

__all__ = ["LearnerConfig", "plain"]


class LearnerConfig(StrictModel):
    """A :class:`~skyshare.config.StrictModel` (frozen, unknown keys rejected) whose constructor
    raises :class:`~skyshare.errors.ConfigError` naming every bad field, like ``from_dict``.

    ``model_dump()`` gives a plain dict (numbers, strings, bools, None, tuples), which is what
    the agents' ``state_dict`` stores.
    """

    seed: int = Field(
        0, description="seeds the agents' own generator (initialisation, exploration, sampling)"
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            # an InvalidConfigError keeps the fields, so that a preset names their full
            # path (td3.gamma), as for the scenario and env configs
            raise InvalidConfigError.from_validation(type(self), err) from None


def plain(value: Any) -> Any:
    """``value`` with every tuple turned into a list (recursively through dicts and lists): what
    a checkpoint stores of a config (``plain(config.model_dump())``)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
