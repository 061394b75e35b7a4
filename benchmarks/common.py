"""Timing helpers and the result format shared by all benchmark modules."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Section:
    """One titled table of BENCHMARKS.md."""

    key: str
    title: str
    description: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.description, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


class SectionSkipped(Exception):
    """Raised by a benchmark module that cannot measure on this machine (e.g. no GPU); the
    runner keeps the section's previous figures."""


def time_call(fn: Callable[[], object], *, repeats: int = 5, min_time_s: float = 0.2) -> float:
    """Median seconds per call of ``fn`` (after one warm-up call).

    Each repeat runs ``fn`` enough times to last at least ``min_time_s / repeats``.
    """
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    inner = max(1, int(min_time_s / repeats / once))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def machine_description() -> str:
    """CPU model, cores, memory, Python and PyTorch versions, threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
            memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores{memory}; Python {platform.python_version()}, "
        f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{platform.system()} {platform.release()}"
    )


def fmt(x: float, digits: int = 3) -> str:
    """Compact number formatting for tables."""
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{digits}g}"
    return f"{x:,.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
