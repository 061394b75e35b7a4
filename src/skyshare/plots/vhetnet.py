"""Figures of seed 003 (HAPS vHetNet, PFBWD), laid out like the paper's Figs. 3-9."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from skyshare.plots.figures import new_figure, save_figure

__all__ = ["plot_cdfs", "plot_convergence", "plot_sweep"]


def _ecdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    x = torch.as_tensor(list(values), dtype=torch.float64).sort().values
    n = x.numel()
    return x.tolist(), (torch.arange(1, n + 1, dtype=torch.float64) / max(n, 1)).tolist()


def plot_cdfs(
    panels: Sequence[tuple[str, dict[str, Sequence[float]]]],
    path: str | Path,
    title: str,
    *,
    reference_line: float | None = None,
) -> Path:
    """Empirical CDFs side by side, one panel per ``(x label, {curve label: values})`` (seed
    003 Figs. 4(a)-(b) and 5); the curve's mean is marked by a dotted vertical line.

    Args:
        reference_line: an x value drawn as a dashed black line in every panel (e.g. 1 for
            the relative LPEI).
    """
    figure, axes = new_figure(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for axis, (xlabel, curves) in zip(axes[0], panels, strict=True):
        for i, (label, values) in enumerate(curves.items()):
            x, y = _ecdf(values)
            colour = f"C{i % 10}"
            axis.step(x, y, where="post", color=colour, label=f"{label} (mean {_mean(x):.3g})")
            axis.axvline(_mean(x), color=colour, ls=":", lw=1)
        if reference_line is not None:
            axis.axvline(reference_line, color="k", ls="--", lw=1)
        axis.set(xlabel=xlabel, ylabel="CDF", ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def _mean(x: Sequence[float]) -> float:
    return sum(x) / len(x) if len(x) else math.nan


def plot_sweep(
    panels: Sequence[tuple[str, dict[str, tuple[list[float], list[float], list[float]]]]],
    xlabel: str,
    path: str | Path,
    title: str,
    *,
    integer_x: bool = False,
) -> Path:
    """Line plots with 95 % confidence bars, one panel per ``(y label, {curve: (x, mean,
    half-width)})`` (seed 003 Figs. 6-9).

    Args:
        integer_x: the x values are counts (UEs, MBSs): integer ticks only (no 1.5).
    """
    from matplotlib.ticker import MaxNLocator

    figure, axes = new_figure(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    markers = ("o", "s", "^", "D", "v", "P")
    for axis, (ylabel, curves) in zip(axes[0], panels, strict=True):
        for i, (label, (x, mean, half)) in enumerate(curves.items()):
            axis.errorbar(
                x, mean, yerr=half, marker=markers[i % len(markers)], capsize=3, label=label
            )
        axis.set(xlabel=xlabel, ylabel=ylabel)
        if integer_x:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def plot_convergence(
    residuals: dict[str, list[float]],
    objectives: dict[str, list[float]],
    path: str | Path,
    title: str,
) -> Path:
    """Seed 003 Fig. 3: (a) average sum of residuals over the inner ADMM iterations (log
    scale), (b) average PF objective over the outer ALM iterations, one curve per setting."""
    figure, (left, right) = new_figure(1, 2, figsize=(11, 4.2))
    for i, (label, values) in enumerate(residuals.items()):
        y = [v if v > 0 else math.nan for v in values]
        left.semilogy(range(1, len(y) + 1), y, color=f"C{i % 10}", label=label)
    left.set(xlabel="inner ADMM iteration", ylabel="average sum of residuals")
    for i, (label, values) in enumerate(objectives.items()):
        right.plot(range(1, len(values) + 1), values, "o-", color=f"C{i % 10}", label=label)
    right.set(xlabel="outer ALM iteration", ylabel="average PF objective sum_k ln SE_k")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
