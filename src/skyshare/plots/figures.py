"""Figures, on matplotlib's object API.

Every function builds a :class:`matplotlib.figure.Figure` directly (no state-machine
interface, no global backend switch), so importing skyshare never changes the plotting
backend of the caller's session, and figures are written to PNG files from any thread or
process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TrainingCurve",
    "moving_average",
    "new_figure",
    "plot_capacity_sweep",
    "plot_fig8_bars",
    "plot_online_log",
    "plot_training_curves",
    "save_figure",
]


def moving_average(values: list[float] | torch.Tensor, span: int = 41) -> list[float]:
    """Centred moving average over ``span`` points (seed 000 §VI: "each value is a moving
    average with a span of 41 time slots"), edges padded with the end values."""
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    if x.numel() == 0:
        return []
    k = max(1, min(span, x.numel()))
    padded = torch.nn.functional.pad(x[None, None], (k // 2, k - 1 - k // 2), "replicate")
    return torch.nn.functional.conv1d(padded, torch.ones(1, 1, k, dtype=x.dtype) / k)[0, 0].tolist()


def new_figure(rows: int = 1, cols: int = 1, **kwargs: Any):
    """``(figure, axes)`` like matplotlib's ``subplots`` but without its global state."""
    from matplotlib.figure import Figure

    figsize = kwargs.pop("figsize", None)
    figure = Figure(figsize=figsize)
    axes = figure.subplots(rows, cols, **kwargs)
    return figure, axes


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lay out and write ``figure`` as PNG to ``path`` (folders created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    return path


def plot_online_log(
    slots: list[int],
    sum_rate: list[float],
    au_interference_ratio: list[list[float]],
    path: str | Path,
    *,
    title: str,
    span: int = 41,
) -> Path:
    """Two panels over slots: TU sum rate (bit/s/Hz) and each AU's interference relative to
    I_max (dB, I_max dashed), moving averages over ``span`` slots (seed 000 §VI).

    Args:
        slots: (S,) slot indices. sum_rate: (S,) mean over realizations.
        au_interference_ratio: (S, L) rho_l / I_max, mean over realizations.
    """
    figure, (top, bottom) = new_figure(2, 1, figsize=(8, 7), sharex=True)
    top.plot(slots, moving_average(sum_rate, span), label="sum rate")
    top.set(ylabel="TU sum rate (bit/s/Hz)", title=title)
    ratio = torch.as_tensor(au_interference_ratio, dtype=torch.float64).reshape(len(slots), -1)
    for l_ in range(ratio.shape[1]):
        db = 10 * torch.log10(ratio[:, l_].clamp_min(1e-30))
        bottom.plot(slots, moving_average(db, span), label=f"AU {l_ + 1}")
    bottom.axhline(0.0, color="k", ls="--", lw=1, label="I_max")
    bottom.set(xlabel="slot", ylabel="AU interference / I_max (dB)")
    bottom.legend()
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3)
    return save_figure(figure, path)


@dataclass
class TrainingCurve:
    """One curve of a training-curves figure (seed 000 Figs. 4-7).

    Attributes:
        label: legend text. slots: (S,) slot indices.
        sum_rate: (S,) TU sum rate, bit/s/Hz. au_ratio: L lists of (S,) rho_l / I_max.
        i_max_mw: the curve's interference limit I_max in mW.
        group: curves of one group (one scheme over several seeds) share a colour and differ
            by line width and opacity; None = a group of its own.
    """

    label: str
    slots: list[float]
    sum_rate: list[float]
    au_ratio: list[list[float]]
    i_max_mw: float
    group: str | None = None


def plot_training_curves(
    curves: list[TrainingCurve], path: str | Path, title: str, *, span: int = 41
) -> Path:
    """Two panels like seed 000 Figs. 4-7: (a) TU sum rate and (b) received interference
    power of each AU in dBm (solid AU 1, dashed AU 2, ...) over training slots, moving
    averages over ``span`` slots, with each curve's I_max as a dotted line; one colour per
    group (scheme), the members of a group (its seeds) drawn thinner and lighter one after
    the other. A curve logged on spaced slots (DCD-DFP on 100 of 6000) is drawn unsmoothed
    with markers."""
    fig, (top, bottom) = new_figure(2, 1, figsize=(9, 8), sharex=True)
    styles = ("-", "--", "-.", ":")
    limits_drawn: set[float] = set()
    groups: dict[str, int] = {}
    members: dict[str, int] = {}
    for i, curve in enumerate(curves):
        group = curve.group if curve.group is not None else f"#{i}"
        colour = f"C{groups.setdefault(group, len(groups)) % 10}"
        member = members[group] = members.get(group, -1) + 1
        width, alpha = max(0.5, 1.4 - 0.45 * member), max(0.35, 1.0 - 0.3 * member)
        slots = curve.slots
        sparse = _sparse(slots)
        marker = "." if sparse else None

        def smooth(x: list[float], sparse: bool = sparse) -> list[float]:
            return list(x) if sparse else moving_average(x, span)

        top.plot(
            slots,
            smooth(curve.sum_rate),
            color=colour,
            marker=marker,
            lw=width,
            alpha=alpha,
            label=curve.label,
        )
        i_max_dbm = 10 * torch.log10(torch.tensor(curve.i_max_mw)).item()
        for l_, ratio in enumerate(curve.au_ratio):
            dbm = (10 * torch.log10(torch.tensor(ratio)) + i_max_dbm).tolist()
            bottom.plot(
                slots,
                smooth(dbm),
                styles[l_ % len(styles)],
                color=colour,
                marker=marker,
                lw=0.65 * width,
                alpha=alpha,
                label=f"{curve.label}, AU {l_ + 1}",
            )
        if round(i_max_dbm, 3) not in limits_drawn:
            limits_drawn.add(round(i_max_dbm, 3))
            bottom.axhline(i_max_dbm, color=colour, lw=1, ls=":")
    longest = max((len(c.slots) for c in curves if not _sparse(c.slots)), default=0)
    if longest:  # moving_average's window on the longest smoothed curve
        title = f"{title}, moving average over {max(1, min(span, longest))} slots"
    top.set(ylabel="TU sum rate (bit/s/Hz)", title=title)
    bottom.set(
        xlabel="training slot", ylabel="received interference power (dBm)", title="dotted: I_max"
    )
    top.legend(fontsize=7, ncol=2)
    bottom.legend(fontsize=6, ncol=2)
    return save_figure(fig, path)


def _sparse(slots: list[float]) -> bool:
    """A curve logged on spaced slots (drawn unsmoothed, with markers)."""
    return len(slots) > 1 and slots[1] - slots[0] > 1


def plot_fig8_bars(
    names: list[str],
    results: list[dict],
    path: str | Path,
    *,
    seeds: list[list[dict]] | None = None,
) -> Path:
    """Three bar charts like seed 000 Fig. 8, one bar (colour) per entry of ``names``: (a) sum
    throughput in Mbit/s, (b) received interference power per AU in mW with I_max dotted,
    (c) handover percentage. ``results[i]`` holds ``throughput_bps``, ``au_rho_mw`` (L,),
    ``i_max_mw`` and ``handover_percent``; with ``seeds[i]`` (the per-seed results whose mean
    is ``results[i]``) every seed is drawn as a black dot on its bar."""
    colours = [f"C{i % 10}" for i in range(len(results))]
    fig, (a, b, c) = new_figure(1, 3, figsize=(13, 4.2))
    a.bar(names, [r["throughput_bps"] / 1e6 for r in results], color=colours)
    for i, members in enumerate(seeds or []):
        if len(members) > 1:
            a.plot([i] * len(members), [r["throughput_bps"] / 1e6 for r in members], "k.")
            c.plot([i] * len(members), [r["handover_percent"] for r in members], "k.")
    a.set(ylabel="sum throughput (Mbit/s)", title="(a) throughput of the TUs in one second")
    n_au = len(results[0]["au_rho_mw"])
    width = 0.8 / max(1, n_au)
    for l_ in range(n_au):
        x = [i + (l_ - (n_au - 1) / 2) * width for i in range(len(results))]
        b.bar(x, [r["au_rho_mw"][l_] for r in results], width, label=f"AU {l_ + 1}",
              color=colours, alpha=max(0.3, 1.0 - 0.35 * l_), edgecolor="k")  # fmt: skip
    b.axhline(results[0]["i_max_mw"], color="k", ls=":", lw=1, label="I_max")
    b.set_xticks(range(len(results)), names)
    b.set(ylabel="received interference power (mW)", title="(b) interference at the AUs")
    b.legend(fontsize=8)
    c.bar(names, [r["handover_percent"] for r in results], color=colours)
    c.set(ylabel="TUs performing a handover (%)", title="(c) handover percentage")
    n_seeds = max((len(m) for m in seeds or []), default=1)
    fig.suptitle(
        "catn-fig8 (seed 000 Fig. 8): test slots after training, frozen policies"
        + (f"; bars: mean of {n_seeds} seeds, dots: each seed" if n_seeds > 1 else "")
    )
    return save_figure(fig, path)


def _x_value(sweep: str, point: dict[str, Any]) -> float:
    return {"(M, U)": point.get("n_antennas"), "n_freq": point.get("n_freq")}.get(
        sweep, point.get("sir_db")
    )


_MARKERS = ("x", "s", "o", "^", "*", "D", "v", "P", "h", "<", ">", "p")
_LINE_STYLES = ("-", "--", ":", "-.")


def _series(
    rows: list[dict[str, Any]], sweep: str
) -> dict[tuple[str, str], list[tuple[float, float, float | None]]]:
    """(scheme, group) -> sorted [(x, capacity, std over starts or None)]; the group is the
    (M, U) of Fig. 6's two families, "" otherwise."""
    series: dict[tuple[str, str], list[tuple[float, float, float | None]]] = {}
    for row in rows:
        point = row["point"]
        family = sweep == "n_freq" and "n_antennas" in point and "users_per_cell" in point
        group = f"(M,U)=({point['n_antennas']},{point['users_per_cell']})" if family else ""
        series.setdefault((row["scheme"], group), []).append(
            (_x_value(sweep, point), row["capacity_per_cell"], row["capacity_std_over_starts"])
        )
    return {key: sorted(values) for key, values in series.items()}


def _plot_series(ax: Any, values: list, label: str, color: str, marker: str, style: str) -> None:
    """One line; with a +- 1 std band where the scheme has a spread over starts (FLWF)."""
    xs = [v[0] for v in values]
    ys = [v[1] for v in values]
    over_starts = all(v[2] is not None for v in values)
    suffix = " (mean over starts)" if over_starts else ""
    ax.plot(xs, ys, style, color=color, marker=marker, label=label + suffix)
    if over_starts:
        low = [y - v[2] for y, v in zip(ys, values, strict=True)]
        high = [y + v[2] for y, v in zip(ys, values, strict=True)]
        ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)


def _label_axes(ax: Any, sweep: str, rows: list[dict[str, Any]], title: str) -> None:
    if sweep == "(M, U)":
        points = sorted({(r["point"]["n_antennas"], r["point"]["users_per_cell"]) for r in rows})
        ax.set_xscale("log", base=2)
        ax.set_xticks([m for m, _ in points], [f"({m}, {u})" for m, u in points])
        ax.minorticks_off()
        xlabel = "(M, U)"
    else:
        ax.set_xticks(sorted({_x_value(sweep, row["point"]) for row in rows}))
        xlabel = (
            "number of frequency channels $N_f$"
            if sweep == "n_freq"
            else "channel SIR (dB), eq. (23)"
        )
    ax.set(xlabel=xlabel, ylabel="average capacity per cell (bit/s/Hz)", title=title)
    ax.grid(alpha=0.3)


def plot_capacity_sweep(
    rows: list[dict[str, Any]], sweep: str, title: str, path: str | Path
) -> Path:
    """Capacity per cell versus the sweep variable, one line per scheme (and per (M, U) for
    Fig. 6), like seed 004 Figs. 5-7; FLWF with its spread over starts (+- 1 std).

    Args:
        rows: one per (sweep point, scheme), in the summary's order: ``point`` (scenario
            overrides), ``scheme``, ``capacity_per_cell`` and ``capacity_std_over_starts``
            (None for schemes without starts).
        sweep: ``"(M, U)"``, ``"n_freq"`` or ``"sir_db"``.

    Any number of schemes: scheme i gets colour ``C{i % 10}`` of matplotlib's cycle and the
    i-th marker; Fig. 6's (M, U) families differ by line style.
    """
    schemes = list(dict.fromkeys(row["scheme"] for row in rows))
    series = _series(rows, sweep)
    groups = sorted({group for _, group in series})
    fig, ax = new_figure(figsize=(7.5, 5))
    for (scheme, group), values in sorted(
        series.items(), key=lambda item: (schemes.index(item[0][0]), item[0][1])
    ):
        i = schemes.index(scheme)
        _plot_series(
            ax,
            values,
            f"{scheme} {group}".strip(),
            color=f"C{i % 10}",
            marker=_MARKERS[i % len(_MARKERS)],
            style=_LINE_STYLES[groups.index(group) % len(_LINE_STYLES)],
        )
    _label_axes(ax, sweep, rows, title)
    ax.legend(fontsize=8, ncol=2 if len(series) > 6 else 1)
    return save_figure(fig, path)
