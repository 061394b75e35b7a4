"""Work a scenario does ahead of time in a worker thread, invisibly.

A channel process's next step does not depend on what the agents do in the current one, so a
scenario can compute it (its random draws, its AR(1) step, its channels) in a worker thread
while the caller plays the current step, and hand it over at the next ``step()``. The results
must be exactly those of computing them then, so the worker runs the same operations on the
same generators; until the step takes them, those generators are ahead by the worker's draws.
:class:`AheadWorker` keeps their states from before the task and puts them back when the
task is cancelled: a scenario cancels before anything else uses its generators between steps
(a reset, a reseed, a checkpoint, an env's own draws from the scenario's generator).

The worker thread runs torch operations with the caller's intra-op thread count; the point is
one torch thread in the caller and a second core for the worker (with more torch threads the
worker competes with their intra-op workers).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import torch

from skyshare.runtime import submit_in_caller_modes

__all__ = ["AheadTask", "AheadWorker"]


@dataclass
class AheadTask:
    """A computation of the next step running in (or done by) the worker thread."""

    future: Future
    states: tuple[torch.Tensor, ...]  # the generators' states before the task
    info: dict[str, Any] = field(default_factory=dict)  # what the task was computed for
    result: Any = None  # the future's result, once taken
    pid: int = 0  # the process whose worker runs it (a forked child has no such thread)


class AheadWorker:
    """One worker thread of a scenario and the task it runs ahead.

    Args:
        owner: the scenario (held weakly: the worker thread is shut down when it is
            garbage collected, and at interpreter exit).
        generators: names of the owner's ``torch.Generator`` attributes a task draws from.
        name: thread name prefix.
    """

    def __init__(self, owner: object, generators: Sequence[str], name: str) -> None:
        self._owner = weakref.ref(owner)
        self._generators = tuple(generators)
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self.task: AheadTask | None = None

    def pool(self) -> ThreadPoolExecutor:
        """The one-worker thread pool, made at the first use (and per process: a forked child
        makes its own)."""
        if self._pool is None or self._pid != os.getpid():
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
            owner = self._owner()
            if owner is not None:
                weakref.finalize(owner, pool.shutdown, wait=False)
            self._pool, self._pid = pool, os.getpid()
        return self._pool

    def submit(self, fn: Callable[..., Any], *args: Any, **info: Any) -> None:
        """Run ``fn(*args)`` in the worker as the task ahead (``info`` says what it is for);
        the generators' states are kept first. A task still pending is cancelled. The worker
        runs it under the caller's grad and inference modes (both are thread-local in torch,
        and a buffer made under inference mode can only be written under it)."""
        self.cancel()
        states = tuple(generator.get_state() for generator in self._generator_objects())
        future = submit_in_caller_modes(self.pool(), fn, *args)
        self.task = AheadTask(future, states, info, pid=os.getpid())

    def take(self) -> AheadTask | None:
        """The task ahead, finished (its ``result`` set), and no longer pending; None when
        there is none, or when it belongs to the parent of this forked process (its thread
        does not exist here: dropped, the generators restored). If the task failed or the
        wait is interrupted, the generators are restored once the worker has stopped, and
        the exception is raised here."""
        task, self.task = self.task, None
        if task is None:
            return None
        if task.pid != os.getpid():
            self.restore(task)
            return None
        try:
            task.result = task.future.result()
        except BaseException:
            wait([task.future])  # (a KeyboardInterrupt: the worker still draws; let it end)
            self.restore(task)
            raise
        return task

    def restore(self, task: AheadTask) -> None:
        """Put the generators back where they were before ``task`` (a taken task that is
        not used)."""
        for generator, state in zip(self._generator_objects(), task.states, strict=True):
            generator.set_state(state)

    def cancel(self) -> None:
        """Wait for the task ahead, drop it (its result or error: a step recomputes it) and
        restore the generators; a no-op without one."""
        task, self.task = self.task, None
        if task is None:
            return
        if task.pid == os.getpid():  # a forked child has no such thread to wait for
            wait([task.future])
        self.restore(task)

    def _generator_objects(self) -> tuple[torch.Generator, ...]:
        owner = self._owner()
        return tuple(getattr(owner, name) for name in self._generators)
