"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """Run every test single-threaded and restore the setting afterwards: the solvers and
    learners run thousands of small tensor ops, and with several intra-op threads on a busy
    2-core machine each op can wait ~10 ms for a descheduled thread (measured 20x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
