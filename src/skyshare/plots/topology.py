"""Topology figures: the layout of a scenario's realization 0, one drawing per system.

The scenarios provide the data (positions, tracks, gains as tensors); the functions here draw
it on matplotlib's object API (no state-machine interface, no global backend switch)::

    from skyshare.plots import plot_topology

    scenario = CatnScenario.from_preset("quick")
    scenario.reset(seed=0)
    plot_topology(scenario, "topology.png")

:func:`plot_topology` picks the drawing from ``scenario.name``; a scenario without a drawing
raises :class:`~skyshare.errors.UnknownNameError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from skyshare.errors import UnknownNameError
from skyshare.geometry import hex_grid
from skyshare.plots.figures import new_figure, save_figure
from skyshare.units import linear_to_db

if TYPE_CHECKING:
    from skyshare.scenarios.catn import CatnScenario
    from skyshare.scenarios.multiband import MultibandScenario
    from skyshare.scenarios.tn_ntn import TnNtnScenario
    from skyshare.scenarios.vhetnet import VhetnetScenario

__all__ = ["plot_topology"]


def plot_topology(scenario: Any, path: str | Path) -> Path:
    """Write a PNG of the layout of ``scenario``'s realization 0 to ``path``; return the path.

    A scenario that was never reset is reset first (with its config's seed), except
    ``multiband``, whose schematic needs only the config and the average gains.

    Args:
        scenario: a scenario object; its ``name`` picks the drawing (``catn``, ``tn_ntn``,
            ``vhetnet``, ``multiband``).
        path: PNG file to write (folders created).

    Raises:
        UnknownNameError: no drawing exists for ``scenario.name``.
    """
    name = getattr(scenario, "name", None)
    drawer = _DRAWERS.get(name) if isinstance(name, str) else None
    if drawer is None:
        raise UnknownNameError(
            f"no topology drawing for scenario {name!r}; available: {', '.join(sorted(_DRAWERS))}"
        )
    return drawer(scenario, Path(path))


# --------------------------------------------------------------------------------------------
# CATN (seed 000)
# --------------------------------------------------------------------------------------------


def _catn(scenario: CatnScenario, path: Path) -> Path:
    """Two panels like seed 000 Fig. 3: the whole area with AU ground tracks, and a zoom on
    the terrestrial network with TU trajectories (realization 0)."""
    if scenario.state is None:
        scenario.reset()
    bs = scenario.bs_positions[0, :, :2].cpu()
    fig, (wide, zoom) = new_figure(1, 2, figsize=(12, 5.5))
    for ax, scale in ((wide, 1000.0), (zoom, 1.0)):
        ax.scatter(
            bs[:, 0] / scale,
            bs[:, 1] / scale,
            marker="^",
            s=80,
            c="tab:red",
            label="BS",
            zorder=3,
        )
        ax.set_aspect("equal")
    _catn_network(zoom, scenario, bs)
    _catn_au_tracks(wide, scenario)
    fig.suptitle(scenario.title)
    return save_figure(fig, path)


def _catn_network(ax: Any, scenario: CatnScenario, bs: torch.Tensor) -> None:
    """The zoom panel: hexagonal cells, BS indices and TU trajectories, in metres."""
    cfg = scenario.config
    for n in range(cfg.n_bs):
        ax.add_patch(_hexagon(bs[n], cfg.isd_m))
        ax.annotate(str(n), bs[n] + 12, fontsize=8, color="tab:red")
    knots = scenario.tu_knots[0, :, :, :2].cpu()  # (S, K, 2)
    t_end = min(knots.shape[0], math.ceil(cfg.duration_s / cfg.trajectory_step_s) + 1)
    for k in range(cfg.n_tu):
        ax.plot(knots[:t_end, k, 0], knots[:t_end, k, 1], c="tab:blue", lw=1)
        ax.scatter(knots[0, k, 0], knots[0, k, 1], s=10, c="tab:blue")
    ax.plot([], [], c="tab:blue", label="TU trajectory")
    ax.set(
        xlabel="x (m)",
        ylabel="y (m)",
        title=f"{cfg.n_bs} BSs, {cfg.n_tu} TUs ({cfg.tu_speed_kmh:g} km/h)",
    )
    ax.legend(loc="upper right", fontsize=8)


def _catn_au_tracks(ax: Any, scenario: CatnScenario) -> None:
    """The wide panel: each AU's straight ground track with its direction, in km."""
    cfg = scenario.config
    au_track = scenario.au_track()[0, ..., :2].cpu() / 1000  # (2, L, 2) km
    for idx in range(cfg.n_au):
        start, end = au_track[0, idx], au_track[1, idx]
        ax.plot([start[0], end[0]], [start[1], end[1]], c="tab:green", ls="--", lw=1)
        ax.annotate(
            "",
            xy=end.tolist(),
            xytext=(start + 0.9 * (end - start)).tolist(),
            arrowprops={"arrowstyle": "->", "color": "tab:green", "lw": 1.5},
        )
        ax.annotate(f"AU {idx}", start.tolist(), color="tab:green", fontsize=8)
    ax.plot([], [], c="tab:green", ls="--", label="AU ground track")
    span = 1.15 * max(float(au_track.abs().max()) if cfg.n_au else 0.0, cfg.isd_m / 500)
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.legend(loc="upper right", fontsize=8)
    ax.set(
        xlabel="x (km)",
        ylabel="y (km)",
        title=f"AU ground tracks ({cfg.au_altitude_m / 1000:g} km, "
        f"{cfg.au_speed_m_s:g} m/s, {cfg.duration_s:g} s)",
    )


def _hexagon(centre: torch.Tensor, isd_m: float) -> Any:
    """A matplotlib hexagon patch of a cell with inter-site distance ``isd_m``."""
    from matplotlib.patches import RegularPolygon

    return RegularPolygon(
        (float(centre[0]), float(centre[1])),
        numVertices=6,
        radius=isd_m / math.sqrt(3),
        orientation=math.pi / 6,  # flat-topped, as skyshare.geometry.hex_grid tiles
        fill=False,
        lw=0.6,
        ec="0.6",
    )


# --------------------------------------------------------------------------------------------
# TN-NTN (seed 001)
# --------------------------------------------------------------------------------------------


def _tn_ntn(scenario: TnNtnScenario, path: Path) -> Path:
    """The area with TBSs, NTBS(s) and users of realization 0 at the current frame: active
    users filled in their BS's colour, inactive slots hollow; in dynamic mode the random-walk
    paths of every user over the horizon."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    state = scenario.state if scenario.state is not None else scenario.reset()
    cfg = scenario.config
    half = scenario.half_side_m
    bs = state.bs_positions[0].cpu()
    users = state.user_positions[0, :, :2].cpu()
    active = state.user_active[0].cpu()
    colours = colormaps["tab10"]

    fig, ax = new_figure(figsize=(7.5, 8.0))
    ax.add_patch(
        Rectangle((-half, -half), 2 * half, 2 * half, fill=False, ec="0.3", lw=1.2, zorder=1)
    )
    if cfg.dynamic_users:
        _tn_ntn_paths(ax, scenario, colours)
    for n in range(cfg.n_bs):
        mine = scenario.serving.cpu() == n
        _tn_ntn_station(ax, scenario, n, bs[n], users[mine & active], users[mine & ~active])
    ax.scatter([], [], marker="^", s=80, c="0.5", edgecolors="k", label="TBS")
    ax.scatter([], [], marker="*", s=120, c="0.5", edgecolors="k", label="NTBS (UAV)")
    ax.scatter([], [], s=22, c="0.5", edgecolors="k", linewidths=0.3, label="active user")
    ax.scatter([], [], s=22, facecolors="none", edgecolors="0.5", label="inactive slot")
    margin = 0.04 * cfg.area_side_m
    ax.set_xlim(-half - margin, half + margin)
    ax.set_ylim(-half - margin, half + margin)
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=5, fontsize=8)
    mode = (
        f"dynamic: {cfg.arrival_rate_per_min:g}/min, {cfg.user_speed_m_s:g} m/s"
        if cfg.dynamic_users
        else f"training: Poisson({cfg.active_mean_fraction:g} K_max) users"
    )
    ax.set(
        xlabel="x (m)",
        ylabel="y (m)",
        title=f"{scenario.title}\nframe {state.t}, F = {cfg.n_subchannels}, "
        f"K_max = {cfg.k_max}, {mode}",
    )
    return save_figure(fig, path)


def _tn_ntn_paths(ax: Any, scenario: TnNtnScenario, colours: Any) -> None:
    """Dynamic mode: the random-walk path of every occupant of every user slot over the
    horizon, in its BS's colour, broken between occupants and while the slot is empty."""
    knots = scenario.trace_positions()[0].cpu()  # (S, P, 2)
    trace_active = scenario.active_trace[0].cpu()  # (S, P)
    arrives = scenario.arrives[0].cpu()
    for p in range(scenario.n_users):
        xy = knots[:, p].clone()
        xy[~trace_active[:, p]] = math.nan
        breaks = arrives[:, p].nonzero().flatten()
        pieces = torch.tensor_split(xy, breaks)  # one piece per occupant
        joined = torch.cat([torch.cat([q, q.new_full((1, 2), math.nan)]) for q in pieces])
        n = int(scenario.serving[p])
        ax.plot(joined[:, 0], joined[:, 1], c=colours(n % 10), lw=0.6, alpha=0.6)
    ax.plot([], [], c="0.4", lw=0.6, label="random-walk paths")


def _tn_ntn_station(
    ax: Any,
    scenario: TnNtnScenario,
    n: int,
    bs: torch.Tensor,
    active_users: torch.Tensor,
    inactive_users: torch.Tensor,
) -> None:
    """BS ``n`` at ``bs: (3,)`` with its user disc (TBS only), its active users ``(A, 2)``
    filled and its inactive slots ``(I, 2)`` hollow, and a label with its height."""
    from matplotlib import colormaps
    from matplotlib.patches import Circle

    colour = colormaps["tab10"](n % 10)
    is_uav = bool(scenario.is_uav[n])
    x, y = float(bs[0]), float(bs[1])
    if not is_uav:
        ax.add_patch(
            Circle((x, y), scenario.config.tbs_user_radius_m, fill=False, ls=":", ec=colour, lw=1.0)
        )
    ax.scatter(
        active_users[:, 0],
        active_users[:, 1],
        s=22,
        color=colour,
        edgecolors="k",
        linewidths=0.3,
        zorder=3,
    )
    ax.scatter(
        inactive_users[:, 0],
        inactive_users[:, 1],
        s=22,
        facecolors="none",
        edgecolors=colour,
        linewidths=0.8,
        zorder=3,
    )
    ax.scatter(
        x,
        y,
        marker="*" if is_uav else "^",
        s=320 if is_uav else 200,
        color=colour,
        edgecolors="k",
        linewidths=1.0,
        zorder=4,
    )
    ax.annotate(
        f"{'NTBS' if is_uav else 'TBS'} {n} ({float(bs[2]):g} m)",
        (x, y),
        xytext=(8, 10),
        textcoords="offset points",
        fontsize=9,
        fontweight="bold",
        color=colour,
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        zorder=5,
    )


# --------------------------------------------------------------------------------------------
# vHetNet (seed 003)
# --------------------------------------------------------------------------------------------


def _vhetnet(scenario: VhetnetScenario, path: Path) -> Path:
    """Realization 0: the square area, MBSs, UEs and the HAPS ground projection."""
    from matplotlib.patches import Rectangle

    state = scenario.state if scenario.state is not None else scenario.reset()
    cfg = scenario.config
    half = cfg.area_side_m / 2
    ue = state.ue_positions[0, :, :2].cpu()

    fig, ax = new_figure(figsize=(6.0, 7.0))
    ax.add_patch(Rectangle((-half, -half), cfg.area_side_m, cfg.area_side_m, fill=False, ec="0.4"))
    ax.scatter(ue[:, 0], ue[:, 1], s=18, c="tab:blue", label=f"UE ({cfg.n_ue})", zorder=3)
    if cfg.n_mbs > 0:
        _vhetnet_mbs(ax, scenario)
    if cfg.with_haps:
        ax.scatter(
            0.0,
            0.0,
            marker="*",
            s=260,
            c="tab:purple",
            label=f"HAPS 0, ground projection ({cfg.haps_altitude_m / 1000:g} km altitude, "
            f"{cfg.haps_n_h}x{cfg.haps_n_v} UPA)",
            zorder=5,
        )
    margin = 0.08 * cfg.area_side_m
    ax.set_xlim(-half - margin, half + margin)
    ax.set_ylim(-half - margin, half + margin)
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
    network = "vHetNet" if cfg.with_haps else "standalone terrestrial network"
    ax.set(
        xlabel="x (m)",
        ylabel="y (m)",
        title=f"{network}: {cfg.area_side_m:g} m x {cfg.area_side_m:g} m area",
    )
    return save_figure(fig, path)


def _vhetnet_mbs(ax: Any, scenario: VhetnetScenario) -> None:
    """The MBSs, labelled with their transmitter index (the HAPS, when present, is 0)."""
    cfg = scenario.config
    mbs = scenario.mbs_positions[:, :2].cpu()
    ax.scatter(
        mbs[:, 0],
        mbs[:, 1],
        marker="^",
        s=120,
        c="tab:red",
        label=f"MBS ({cfg.n_mbs}, {cfg.mbs_n_h}x{cfg.mbs_n_v} UPA, {cfg.mbs_height_m:g} m)",
        zorder=4,
    )
    for b in range(cfg.n_mbs):
        ax.annotate(
            f"{b + int(cfg.with_haps)}",
            (float(mbs[b, 0]), float(mbs[b, 1])),
            xytext=(6, 6),
            textcoords="offset points",
            color="tab:red",
            fontsize=9,
        )


# --------------------------------------------------------------------------------------------
# Multiband (seed 004)
# --------------------------------------------------------------------------------------------

_ISD = 1.0  # arbitrary: the multiband schematic has no scale
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}


def _multiband(scenario: MultibandScenario, path: Path) -> Path:
    """A schematic of the system (seed 004 has no geometry, gains are set by SNR and SIR):
    C hexagonal cells, U user dots per cell at illustrative positions, and arrows labelled
    with the average gains a_bb (serving) and a_b~b (interfering) in dB."""
    cfg = scenario.config
    C, U = cfg.n_cells, cfg.users_per_cell
    rings = 0
    while 1 + 3 * rings * (rings + 1) < C:
        rings += 1
    centres = hex_grid(1 + 3 * rings * (rings + 1), _ISD, dtype=torch.float64)[:C].tolist()
    gains_db = linear_to_db(scenario.gains.double()).tolist()
    offsets = _sunflower(U, 0.36 * _ISD)
    centroid = (sum(x for x, _ in centres) / C, sum(y for _, y in centres) / C)

    fig, ax = new_figure(figsize=(7.5, 7))
    for c, centre in enumerate(centres):
        _multiband_cell(ax, scenario, c, centre, offsets, centroid, gains_db[c][c])
    # Each interference arc is labelled up to 3 cells; beyond, one box gives the gains.
    label_arcs = C <= 3
    if C <= 7:
        _multiband_interference(ax, scenario, centres, gains_db, label_arcs)
    if not label_arcs and C > 1:
        _multiband_gain_box(ax, scenario, gains_db[0][0])
    ax.plot([], [], c="tab:green", label="serving gain $a_{bb}$")
    ax.plot(
        [],
        [],
        c="tab:orange",
        ls="--",
        label=r"interfering gain $a_{\tilde{b}b}$, $\tilde{b} \neq b$",
    )
    xs = [x for x, _ in centres]
    ys = [y for _, y in centres]
    margin = 0.75 * _ISD
    ax.set_xlim(min(xs) - margin, max(xs) + margin)
    ax.set_ylim(min(ys) - margin, max(ys) + margin)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, fontsize=8.5)
    ax.set_title(
        f"{C} cells, (M, U) = ({cfg.n_antennas}, {U}), $N_f$ = {cfg.n_freq}, "
        f"SIR = {cfg.sir_db:g} dB, SNR = {cfg.snr_db:g} dB\n"
        "schematic: no geometry in seed 004, user positions illustrative",
        fontsize=10,
    )
    return save_figure(fig, path)


def _sunflower(n: int, radius: float) -> list[tuple[float, float]]:
    """``n`` points on a sunflower (golden-angle) spiral of ``radius``: illustrative users."""
    golden = math.pi * (3 - math.sqrt(5))
    return [
        (
            radius * math.sqrt((i + 0.5) / n) * math.cos(i * golden),
            radius * math.sqrt((i + 0.5) / n) * math.sin(i * golden),
        )
        for i in range(n)
    ]


def _multiband_cell(
    ax: Any,
    scenario: MultibandScenario,
    c: int,
    centre: list[float],
    offsets: list[tuple[float, float]],
    centroid: tuple[float, float],
    serving_db: float,
) -> None:
    """Cell ``c``: its hexagon, users and BS, and the serving-gain arrow from the BS to its
    user farthest out from the network centre, labelled beyond it."""
    from matplotlib.patches import RegularPolygon

    x, y = centre
    ax.add_patch(
        RegularPolygon(
            (x, y),
            numVertices=6,
            radius=_ISD / math.sqrt(3),
            orientation=math.pi / 6,  # flat-topped, as hex_grid tiles
            fill=False,
            lw=1,
            ec="0.5",
        )
    )
    ax.scatter(
        [x + dx for dx, _ in offsets],
        [y + dy for _, dy in offsets],
        s=14,
        c="tab:blue",
        zorder=3,
        label="user (illustrative position)" if c == 0 else None,
    )
    ax.scatter(x, y, marker="^", s=140, c="tab:red", zorder=4, label="BS" if c == 0 else None)
    ax.annotate(
        f"BS {c}\nM={scenario.config.n_antennas}",
        (x, y),
        xytext=(8, 6),
        textcoords="offset points",
        fontsize=8,
        color="tab:red",
    )
    ox, oy = x - centroid[0], y - centroid[1]
    norm = math.hypot(ox, oy)
    ox, oy = (ox / norm, oy / norm) if norm > 1e-9 else (0.0, -1.0)
    dx, dy = max(offsets, key=lambda o: o[0] * ox + o[1] * oy)
    ax.annotate(
        "",
        xy=(x + dx, y + dy),
        xytext=(x, y),
        arrowprops={"arrowstyle": "->", "color": "tab:green", "lw": 1.8},
        zorder=5,
    )
    ax.text(
        x + 0.44 * _ISD * ox,
        y + 0.44 * _ISD * oy,
        f"$a_{{{c}{c}}}$ = {serving_db:.1f} dB",
        ha="center",
        va="center",
        fontsize=9,
        color="tab:green",
        bbox=_LABEL_BOX,
        zorder=6,
    )


def _multiband_interference(
    ax: Any,
    scenario: MultibandScenario,
    centres: list[list[float]],
    gains_db: list[list[float]],
    label_arcs: bool,
) -> None:
    """Interference links BS b~ -> the users of cell b, both directions of every pair with a
    positive gain, bending to opposite sides; labelled with a_b~b when ``label_arcs``.

    matplotlib's arc3 puts the control point at the chord's middle + rad * (dy, -dx), so the
    arc's middle is half of that away from the chord: the label goes there.
    """
    rad, start, end = 0.3, 0.12, 0.8
    C = len(centres)
    for tx in range(C):
        for rx in range(C):
            if tx == rx or scenario.gains[tx, rx] <= 0:
                continue
            (x0, y0), (x1, y1) = centres[tx], centres[rx]
            ax0, ay0 = x0 + start * (x1 - x0), y0 + start * (y1 - y0)
            ax1, ay1 = x0 + end * (x1 - x0), y0 + end * (y1 - y0)
            ax.annotate(
                "",
                xy=(ax1, ay1),
                xytext=(ax0, ay0),
                arrowprops={
                    "arrowstyle": "->",
                    "color": "tab:orange",
                    "lw": 1.2 if label_arcs else 0.8,
                    "ls": "--",
                    "connectionstyle": f"arc3,rad={rad}",
                    "alpha": 1.0 if label_arcs else 0.6,
                },
            )
            if not label_arcs:
                continue
            cdx, cdy = ax1 - ax0, ay1 - ay0
            ax.text(
                (ax0 + ax1) / 2 + 0.5 * rad * cdy,
                (ay0 + ay1) / 2 - 0.5 * rad * cdx,
                f"$a_{{{tx}{rx}}}$ = {gains_db[tx][rx]:.1f} dB",
                ha="center",
                va="center",
                fontsize=8,
                color="tab:orange",
                bbox=_LABEL_BOX,
                zorder=6,
            )


def _multiband_gain_box(ax: Any, scenario: MultibandScenario, serving_db: float) -> None:
    """One box with the serving gain and the mean cross gain (uniform over pairs)."""
    gains = scenario.gains
    off_diagonal = gains[~torch.eye(len(gains), dtype=torch.bool, device=gains.device)]
    cross_db = float(linear_to_db(off_diagonal.double().mean()))
    ax.text(
        0.02,
        0.98,
        f"$a_{{bb}}$ = {serving_db:.1f} dB\n$a_{{\\tilde{{b}}b}}$ = {cross_db:.1f} dB\n(all pairs)",
        transform=ax.transAxes,
        va="top",
        fontsize=9,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
    )


_DRAWERS: dict[str, Callable[[Any, Path], Path]] = {
    "catn": _catn,
    "multiband": _multiband,
    "tn_ntn": _tn_ntn,
    "vhetnet": _vhetnet,
}
