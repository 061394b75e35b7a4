"""Process-level settings for long runs, and work handed to other threads.

:func:`keep_freed_memory`: training and the batched environments make many temporary tensors
of a few to a few tens of MB per step (activations and their gradients, observations, gains).
glibc's ``malloc`` hands blocks of that size back to the operating system when they are freed
(``mmap`` above a threshold, heap trimming above another), so the next step's tensor of the
same size starts with fresh pages, and on the machines measured here the first touch of a page
costs more than the arithmetic on it (a MAPPO update at (160, 20): 2.7 s -> 2.2 s with the
setting below, BENCHMARKS.md and docs/concepts.md). Keeping freed memory in the process removes
those page faults. The ``skyshare`` command and every experiment job call it; a program that
uses the library directly may call it once at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["keep_freed_memory", "submit_in_caller_modes"]

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest: blocks up to 32 MB come from the heap
TRIM_THRESHOLD_BYTES = 1 << 30  # free heap kept before any is returned to the system
TOP_PAD_BYTES = 256 << 20  # extra heap asked for at each growth (virtual until touched)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse (``mallopt``): tensors up to 32 MB
    come from the heap instead of fresh ``mmap`` pages, and up to 1 GB of free heap stays in
    the process instead of being trimmed. Values computed are unchanged; a process may hold up
    to about 1 GB more of freed memory.

    Returns True when the settings were applied, False where the C library has no ``mallopt``
    (not glibc: macOS, musl), where this does nothing. Applied once per process.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (_M_TOP_PAD, TOP_PAD_BYTES),
    )
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def submit_in_caller_modes(executor: Executor, fn: Callable[..., Any], *args: Any) -> Future:
    """``executor.submit(fn, *args)``, run under the calling thread's grad and inference modes.

    torch's grad and inference modes are thread-local: a worker thread would otherwise run
    with grad enabled and outside inference mode, and fail to write into a tensor made under
    ``torch.inference_mode`` (the draw-ahead worker, the two-stream fading draw and the CATN
    shards all hand work over this way).
    """
    import torch

    modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled())
    return executor.submit(_in_modes, modes, fn, *args)


def _in_modes(modes: tuple[bool, bool], fn: Callable[..., Any], *args: Any) -> Any:
    import torch

    grad, inference = modes
    with torch.inference_mode(inference), torch.set_grad_enabled(grad):
        return fn(*args)
