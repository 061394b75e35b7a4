"""skyshare.runtime: the allocator setting is applied on glibc and changes no value."""

import ctypes.util
import platform

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
    assert ctypes.util.find_library("c") is not None
