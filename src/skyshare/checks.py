"""Small argument checks shared by the physical-layer modules (raise skyshare errors)."""

from __future__ import annotations

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
