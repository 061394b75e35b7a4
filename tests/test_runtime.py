"""skyshare.runtime: the allocator setting is applied on glibc and changes no value."""

import ctypes.util
import platform
import subprocess
import sys

import pytest
import torch

from skyshare.runtime import keep_freed_memory


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_keep_freed_memory_applies_on_glibc_and_computes_the_same():
    before = torch.randn(512, 4096, generator=torch.Generator().manual_seed(0))
    expected = (before @ before.T).sum()
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # once per process, cached
    after = torch.randn(512, 4096, generator=torch.Generator().manual_seed(0))
    assert torch.equal(after, before) and torch.equal((after @ after.T).sum(), expected)


MMAPPED_BYTES_AFTER_A_16_MB_TENSOR = """
import ctypes, ctypes.util, sys
import torch
from skyshare.runtime import keep_freed_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "apply":
    assert keep_freed_memory()
before = libc.mallinfo2().hblkhd
tensor = torch.empty(4 << 20).fill_(1.0)
print(libc.mallinfo2().hblkhd - before)
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_keep_freed_memory_serves_a_16_mb_tensor_from_the_heap():
    """What the setting is for: in a fresh process glibc maps a 16 MB block with its own
    ``mmap`` (above its 128 KB starting threshold; ``mallinfo2().hblkhd`` grows by 16 MB), and
    after ``keep_freed_memory()`` (threshold 32 MB) the block comes from the heap instead."""
    if not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"):
        pytest.skip("glibc older than 2.33 (no mallinfo2)")

    def mmapped_growth(mode: str) -> int:
        command = [sys.executable, "-c", MMAPPED_BYTES_AFTER_A_16_MB_TENSOR, mode]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        return int(done.stdout.strip())

    assert mmapped_growth("default") >= 16 << 20
    assert mmapped_growth("apply") == 0
