"""Small argument checks shared across the package (raise skyshare errors)."""

from __future__ import annotations

import math
import os
import pickle
import warnings
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
        with warnings.catch_warnings():
            # a file pickled with another protocol than torch.save's (crafted or foreign)
            # loads, or is refused below with a clear message; torch's warning about the
            # protocol would only be noise before that message
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
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


MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer
MEMORY_LIMIT_ENV = "SKYSHARE_MEMORY_LIMIT_GB"
MEMORY_FRACTION = 0.5  # default limit: this share of the memory available when checked


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of /proc/meminfo (Linux), else physical memory, else None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit_bytes() -> int | None:
    """The allocation limit: ``$SKYSHARE_MEMORY_LIMIT_GB`` (``skyshare --memory-limit``; 0 or
    ``inf`` disables the check), else half of the memory available now."""
    text = os.environ.get(MEMORY_LIMIT_ENV)
    if text:
        try:
            gb = float(text)
        except ValueError:
            raise ConfigError(
                f"{MEMORY_LIMIT_ENV} must be a number of GB (0 or inf: no limit), got {text!r}"
            ) from None
        if math.isnan(gb) or gb < 0:
            raise ConfigError(f"{MEMORY_LIMIT_ENV} must be >= 0 GB, got {text!r}")
        return None if gb == 0 or math.isinf(gb) else int(gb * 1e9)
    available = available_memory_bytes()
    return None if available is None else int(MEMORY_FRACTION * available)


def check_memory(estimate_bytes: float, what: str) -> None:
    """A :class:`ConfigError` before allocating when ``what`` needs more than the limit
    (:func:`memory_limit_bytes`), with the estimate, the limit and how to change either."""
    limit = memory_limit_bytes()
    if limit is not None and estimate_bytes > limit:
        source = "--memory-limit" if os.environ.get(MEMORY_LIMIT_ENV) else "half the free memory"
        raise ConfigError(
            f"{what} needs about {estimate_bytes / 1e9:.3g} GB for its largest tensors, above "
            f"the limit of {limit / 1e9:.3g} GB ({source}); reduce the "
            f"sizes or the batch, or raise the limit with --memory-limit GB "
            f"(${MEMORY_LIMIT_ENV}; 0 disables the check)"
        )
