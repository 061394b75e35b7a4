"""Count the tensor operations a piece of code dispatches (ATen calls), for the benchmarks'
"ops per slot" figures.

Every ATen call that reaches the dispatcher is counted once, views included (they cost a
dispatch too); ``kernels`` leaves out the pure view and metadata operations (view, expand,
select, slice, transpose, ...), which move no data.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

from torch.utils._python_dispatch import TorchDispatchMode

VIEW_OPS = frozenset(
    {
        "aten.alias",
        "aten.as_strided",
        "aten.detach",
        "aten.diagonal",
        "aten.expand",
        "aten.imag",
        "aten.lift_fresh",
        "aten.permute",
        "aten.promote_types",
        "aten.real",
        "aten.result_type",
        "aten.select",
        "aten.slice",
        "aten.split",
        "aten.squeeze",
        "aten.t",
        "aten.transpose",
        "aten.unbind",
        "aten.unflatten",
        "aten.unsqueeze",
        "aten._unsafe_view",
        "aten.view",
        "aten.view_as_real",
        "aten._conj",
    }
)


@dataclass
class OpCount:
    """ATen calls of one run: ``total`` (all), ``kernels`` (without views) and ``by_op``."""

    total: int
    kernels: int
    by_op: collections.Counter


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.by_op: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.by_op[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> OpCount:
    """Run ``fn`` once and count the ATen operations it dispatches."""
    with _Counter() as counter:
        fn()
    by_op = counter.by_op
    kernels = sum(n for op, n in by_op.items() if op not in VIEW_OPS)
    return OpCount(total=sum(by_op.values()), kernels=kernels, by_op=by_op)
