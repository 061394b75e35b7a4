"""Figures of seed 001 (TN-NTN subchannel assignment), laid out like the paper's Figs. 3-4."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skyshare.plots.figures import moving_average, new_figure, save_figure

__all__ = ["plot_fig3", "plot_fig4"]


def plot_fig3(
    panels: dict[str, dict[str, dict[str, list[Any]]]],
    path: str | Path,
    title: str,
    *,
    span: int = 21,
) -> Path:
    """Fig. 3: one column per setting, reward (9) on top and cost (11) below, over training
    episodes; learned schemes as moving averages over ``span`` episodes (one colour per
    scheme, each seed a line), reference rules as flat dashed lines at their mean.

    Args:
        panels: ``{setting label: {scheme: {"curves": [(reward, cost) per seed],
            "flat": [(mean reward, mean cost) per seed]}}}``.
    """
    columns = len(panels)
    figure, axes = new_figure(2, columns, figsize=(max(7.0, 4.6 * columns), 7), squeeze=False)
    colours: dict[str, str] = {}
    for col, (setting, schemes) in enumerate(panels.items()):
        top, bottom = axes[0][col], axes[1][col]
        for scheme, entry in schemes.items():
            colour = colours.setdefault(scheme, f"C{len(colours) % 10}")
            for seed, (reward, cost) in enumerate(entry["curves"]):
                label = scheme if seed == 0 else None
                episodes = list(range(1, len(reward) + 1))
                top.plot(episodes, moving_average(reward, span), color=colour, label=label)
                bottom.plot(episodes, moving_average(cost, span), color=colour, label=label)
            if entry["flat"]:
                reward = sum(r for r, _ in entry["flat"]) / len(entry["flat"])
                cost = sum(c for _, c in entry["flat"]) / len(entry["flat"])
                top.axhline(reward, color=colour, ls="--", lw=1, label=f"{scheme} (rule)")
                bottom.axhline(cost, color=colour, ls="--", lw=1, label=f"{scheme} (rule)")
        top.set(title=setting, ylabel="reward (9), Mbit/s per user")
        bottom.set(xlabel="training episode (100 frames)", ylabel="cost (11), Mbit/s")
        for axis in (top, bottom):
            axis.grid(alpha=0.3)
        top.legend(fontsize=7)
    figure.suptitle(f"{title}\nmoving averages over {span} episodes", fontsize=9)
    return save_figure(figure, path)


def plot_fig4(
    series: dict[str, dict[str, dict[str, Sequence[float]]]],
    path: str | Path,
    title: str,
    *,
    seconds_per_point: float = 1.0,
) -> Path:
    """Fig. 4: one column per arrival rate, rows active users, QoS misses and system
    throughput (Mbit/s) over the test time (minutes), one line per scheme.

    Args:
        series: ``{arrival rate: {scheme label: {"active_users", "qos_miss", "throughput"}}}``
            per decision.
    """
    rows = (("active_users", "active users", 1.0), ("qos_miss", "QoS misses", 1.0),
            ("throughput", "system throughput (Mbit/s)", 1e-6))  # fmt: skip
    columns = len(series)
    figure, axes = new_figure(3, columns, figsize=(max(7.0, 4.8 * columns), 8.5), squeeze=False)
    colours: dict[str, str] = {}
    for col, (rate, schemes) in enumerate(series.items()):
        for row, (key, ylabel, scale) in enumerate(rows):
            axis = axes[row][col]
            for label, values in schemes.items():
                colour = colours.setdefault(label, f"C{len(colours) % 10}")
                y = [v * scale for v in values[key]]
                minutes = [i * seconds_per_point / 60 for i in range(len(y))]
                axis.plot(minutes, y, color=colour, lw=0.9, label=label)
            axis.set(ylabel=ylabel)
            axis.grid(alpha=0.3)
            if row == 0:
                axis.set_title(f"{rate} arrivals / min / BS")
            if row == len(rows) - 1:
                axis.set_xlabel("time (min)")
        axes[0][col].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
