"""Scenario families: the config model of each scenario, the fuzzer's caps on its size fields,
a repair step that makes most drawn configs valid, and an estimate of a case's tensor sizes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skyshare.config import StrictModel


@dataclass(frozen=True)
class Family:
    """How the configs of one scenario are drawn and sized."""

    model: str  # "module:Class" of the config model
    caps: dict[str, float]
    repair: Callable[[random.Random, dict[str, Any]], None]
    elements: Callable[[Any, int], float]

    def config_model(self) -> type[StrictModel]:
        from importlib import import_module

        module, name = self.model.split(":")
        return getattr(import_module(module), name)


# ------------------------------------------------------------------------------------------
# CATN (seed 000)
# ------------------------------------------------------------------------------------------


def _repair_catn(rng: random.Random, data: dict[str, Any]) -> None:
    """Mostly whole hexagonal rings and a TU exclusion zone inside the cell; often co-located
    nodes (an AU hovering at BS height over BS 0, TUs at the site) and no I_max."""
    if rng.random() < 0.9:
        data["n_bs"] = rng.choice([1, 1, 7, 7, 19])
    isd = data.get("isd_m", 500.0)
    if data.get("min_distance_m", 35.0) >= isd / math.sqrt(3) and rng.random() < 0.8:
        data["min_distance_m"] = rng.choice([0.0, rng.uniform(0, isd / math.sqrt(3))])
    if rng.random() < 0.15:  # AU l = 0 of an odd L sits still above BS 0 at its height
        data.update(au_speed_m_s=0.0, au_track_spacing_m=0.0)
        data["au_altitude_m"] = data.get("bs_height_m", 30.0)


def _drop_candidates(isd_m: float, min_distance_m: float, per_cell: int) -> float:
    """Candidates per cell of one rejection round of ``drop_in_hexagon`` (~1 / acceptance)."""
    from skyshare.geometry.layouts import _hexagon_annulus_area

    radius = isd_m / math.sqrt(3)
    accept = _hexagon_annulus_area(radius, min_distance_m) / (2 * radius * radius * math.sqrt(3))
    return (per_cell + 4 * math.sqrt(per_cell) + 4) / max(accept, 1e-300)


def _catn_elements(cfg: Any, batch: int) -> float:
    K, N, L, M = cfg.n_tu, cfg.n_bs, cfg.n_au, cfg.n_antennas
    knots = math.ceil(cfg.n_slots * cfg.slot_s / cfg.trajectory_step_s) + 2
    drops = N * 8 * _drop_candidates(cfg.isd_m, cfg.min_distance_m, -(-K // N))
    per_batch = knots * K * 3 + drops + 4 * (K + 2 * L) * N * M + N * M * M + K * K * N
    return batch * per_batch + knots * 100  # knots: also a Python-level loop length


CATN = Family(
    model="skyshare.scenarios.catn:CatnConfig",
    caps={"n_au": 4, "n_bs": 19, "n_tu": 24, "ura_rows": 4, "ura_cols": 4, "n_slots": 40},
    repair=_repair_catn,
    elements=_catn_elements,
)


# ------------------------------------------------------------------------------------------
# TN-NTN (seed 001)
# ------------------------------------------------------------------------------------------


def _repair_tn_ntn(rng: random.Random, data: dict[str, Any]) -> None:
    """BS positions inside the area (often co-located), SRBs dividing F, taps <= F."""
    half = data.get("area_side_m", 1000.0) / 2
    radius = data.setdefault("tbs_user_radius_m", rng.choice([1e-3, half / 4, half / 2]))
    if radius >= half and rng.random() < 0.8:
        data["tbs_user_radius_m"] = radius = half * rng.choice([0.0001, 0.5, 0.999])
    room = max(half - radius, 0.0)

    def spot() -> list[float]:  # lists: the JSON of a case reads back equal
        return rng.choice([[0.0, 0.0], [room, -room], [rng.uniform(-room, room), 0.0]])

    tbs = [spot() for _ in range(rng.choice([0, 1, 2, 3]))]
    uav = [
        rng.choice(tbs) if tbs and rng.random() < 0.3 else spot()
        for _ in range(rng.choice([0, 1, 2]))
    ]
    data["tbs_xy_m"], data["uav_xy_m"] = (
        tbs,
        uav if tbs or rng.random() < 0.1 else uav or [[0.0, 0.0]],
    )
    F = data.get("n_subchannels", 160)
    if rng.random() < 0.9:
        data["srb_size"] = rng.choice([d for d in range(1, F + 1) if F % d == 0])
    if data.get("n_taps") is not None and data["n_taps"] > F and rng.random() < 0.9:
        data["n_taps"] = rng.randint(1, F)
    if data.get("trace_step_s", 1.0) < data.get("frame_s", 0.01) and rng.random() < 0.9:
        data["trace_step_s"] = data.get("frame_s", 0.01)


def _tn_ntn_elements(cfg: Any, batch: int) -> float:
    N, K, F = cfg.n_bs, cfg.k_max, cfg.n_subchannels
    P = N * K
    traces = math.ceil(cfg.horizon_s / cfg.trace_step_s) + 2 if cfg.dynamic_users else 1
    return batch * (6 * P * N * F + 2 * P * P * F + traces * P * (2 * N + 6)) + traces * 100


TN_NTN = Family(
    model="skyshare.scenarios.tn_ntn_config:TnNtnConfig",
    caps={"n_subchannels": 16, "k_max": 4, "srb_size": 16, "horizon_slots": 30, "n_taps": 16},
    repair=_repair_tn_ntn,
    elements=_tn_ntn_elements,
)


# ------------------------------------------------------------------------------------------
# vHetNet (seed 003)
# ------------------------------------------------------------------------------------------


def _repair_vhetnet(rng: random.Random, data: dict[str, Any]) -> None:
    """Often no MBS (the HAPS alone), heights that differ, a HAPS above the UEs."""
    if rng.random() < 0.3:
        data.update(n_mbs=0, with_haps=rng.random() < 0.95)
    if data.get("mbs_height_m", 25.0) == data.get("ue_height_m", 1.5):
        data["mbs_height_m"] = data.get("ue_height_m", 1.5) + rng.choice([1e-6, 1.0])
    if data.get("haps_altitude_m", 2e4) <= data.get("ue_height_m", 1.5) and rng.random() < 0.9:
        data["haps_altitude_m"] = data.get("ue_height_m", 1.5) + rng.choice([1e-6, 1.0, 2e4])


def _vhetnet_elements(cfg: Any, batch: int) -> float:
    K, T = cfg.n_ue, cfg.n_tx
    m_max = max(cfg.m_haps * cfg.with_haps, cfg.m_mbs)
    return batch * (4 * K * (cfg.n_mbs * cfg.m_mbs + cfg.m_haps) + 3 * T * K * m_max + 2 * K * K)


VHETNET = Family(
    model="skyshare.scenarios.vhetnet_config:VhetnetConfig",
    caps={"n_ue": 12, "n_mbs": 6, "mbs_n_h": 4, "mbs_n_v": 4, "haps_n_h": 8, "haps_n_v": 8},
    repair=_repair_vhetnet,
    elements=_vhetnet_elements,
)


# ------------------------------------------------------------------------------------------
# Multiband (seed 004)
# ------------------------------------------------------------------------------------------


def _repair_multiband(rng: random.Random, data: dict[str, Any]) -> None:
    if data.get("users_per_cell", 16) > data.get("n_antennas", 32) and rng.random() < 0.9:
        data["users_per_cell"] = rng.randint(1, data.get("n_antennas", 32))


def _multiband_elements(cfg: Any, batch: int) -> float:
    K, C, F, M = cfg.n_users, cfg.n_cells, cfg.n_freq, cfg.n_antennas
    return batch * (4 * K * C * F * M + 4 * K * K * F)


MULTIBAND = Family(
    model="skyshare.scenarios.multiband:MultibandConfig",
    caps={"n_cells": 4, "n_antennas": 12, "users_per_cell": 6, "n_freq": 12, "n_blocks": 6},
    repair=_repair_multiband,
    elements=_multiband_elements,
)


FAMILIES: dict[str, Family] = {
    "catn": CATN,
    "tn_ntn": TN_NTN,
    "vhetnet": VHETNET,
    "multiband": MULTIBAND,
}
