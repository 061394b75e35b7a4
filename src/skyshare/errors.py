"""Exceptions raised for bad input.

Every error a user can cause derives from :class:`SkyshareError`; the CLI prints its message
without a traceback and exits with status 2.
"""

from __future__ import annotations


class SkyshareError(Exception):
    """Base class of all user-facing errors."""


class ConfigError(SkyshareError, ValueError):
    """An invalid configuration value, unknown key or unreadable config file."""


class ShapeError(SkyshareError, ValueError):
    """A tensor argument has the wrong shape, dtype or device."""


class UnknownNameError(SkyshareError, KeyError):
    """An unknown scenario, preset, model or scheme name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
