"""Small argument checks shared across the package (raise skyshare errors)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from skyshare.errors import ConfigError

_REAL_OF_COMPLEX = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def real_dtype(complex_dtype: torch.dtype) -> torch.dtype:
    """The real dtype of the same precision as ``complex_dtype`` (complex64 -> float32)."""
    if complex_dtype not in _REAL_OF_COMPLEX:
        raise ConfigError(f"dtype must be torch.complex64 or torch.complex128, got {complex_dtype}")
    return _REAL_OF_COMPLEX[complex_dtype]


def positive_int(value: int, name: str) -> int:
    """``value`` as an int, or a ConfigError naming ``name`` unless it is an integer >= 1."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def read_checkpoint(path: str | Path, map_location: Any = None) -> Any:
    """``torch.load`` of a checkpoint this package wrote, safely and with clear errors.

    Checkpoints hold only tensors, numbers, strings and lists/dicts of them (state_dicts), so
    they are read with ``weights_only=True``: a crafted file cannot execute code when loaded,
    it is refused. A truncated, corrupt or foreign file raises a :class:`ConfigError` naming
    the file and what to do, instead of an unpickling traceback.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"checkpoint {str(path)!r} is a directory, not a file") from None
    except pickle.UnpicklingError:
        raise ConfigError(
            f"checkpoint {str(path)!r} is unreadable as a skyshare checkpoint: it is corrupt, "
            "truncated, or holds objects other than tensors, numbers, strings, lists and dicts "
            "(written by an older skyshare, or tampered with); it was refused without running "
            "anything; delete it to start that job afresh"
        ) from None
    except Exception as exc:  # zip and tensor errors: the file is not a checkpoint
        raise ConfigError(
            f"checkpoint {str(path)!r} is unreadable (corrupt or truncated: "
            f"{type(exc).__name__}: {_first_line(exc)}); delete it to start that job afresh"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
