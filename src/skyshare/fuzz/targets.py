"""The fuzz targets: for each, its scenario family, what a case runs, how its options (solver
options, an environment config) are drawn.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skyshare.fuzz.cases import Run
from skyshare.fuzz.configs import draw_config
from skyshare.fuzz.runs import (
    catn_association,
    catn_beamforming,
    catn_env,
    catn_sharded_env,
    catn_steps,
    multiband_env,
    multiband_power,
    multiband_steps,
    tn_ntn_env,
    tn_ntn_steps,
    vhetnet_pf,
    vhetnet_steps,
)


def _no_options(rng: random.Random) -> dict[str, Any]:
    return {}


def _catn_env_options(rng: random.Random) -> dict[str, Any]:
    from skyshare.envs.catn import CatnEnvConfig

    caps = {"n_codewords": 64, "n_compress": 8, "b_in": 8, "b_in_pri": 8, "k_in": 8, "k_out": 8}
    data = draw_config(rng, CatnEnvConfig, caps)
    if data["n_compress"] > data["n_codewords"] and rng.random() < 0.9:
        data["n_compress"] = rng.randint(1, data["n_codewords"])
    low, high = data.get("eta_min", 1e-3), data.get("eta_max", 10.0)
    if low >= high and rng.random() < 0.9:
        data["eta_min"], data["eta_max"] = (high, low) if low > high else (low, 2 * low)
    return data


def _multiband_env_options(rng: random.Random) -> dict[str, Any]:
    from skyshare.envs.multiband import MultibandEnvConfig

    return draw_config(rng, MultibandEnvConfig, {})


@dataclass(frozen=True)
class Target:
    """A fuzz target: its scenario family, what a case runs, how its options are drawn."""

    family: str
    run: Run
    options: Callable[[random.Random], dict[str, Any]] = _no_options


TARGETS: dict[str, Target] = {
    "catn": Target("catn", catn_steps),
    "catn/sc": Target("catn", catn_association("sc")),
    "catn/dcd": Target(
        "catn", catn_association("dcd"), lambda rng: {"power_control": rng.random() < 0.7}
    ),
    "catn/wmmse": Target(
        "catn",
        catn_beamforming("wmmse"),
        lambda rng: {
            "max_iter": rng.choice([1, 5, 20, 100]),
            "mu_update": rng.choice(["subgradient", "bisection"]),
        },
    ),
    "catn/wmmse-lite": Target(
        "catn",
        catn_beamforming("wmmse-lite"),
        lambda rng: {
            "max_iter": rng.choice([1, 3, 10]),
            "lipschitz": rng.choice(["frobenius", "trace"]),
        },
    ),
    "catn/fp": Target(
        "catn",
        catn_beamforming("fp"),
        lambda rng: {
            "max_iter": rng.choice([1, 5, 20]),
            "init": rng.choice(["mrt"] * 4 + ["wmmse"]),
        },
    ),
    "catn/env": Target("catn", catn_env, _catn_env_options),
    "catn/sharded": Target("catn", catn_sharded_env, _catn_env_options),
    "tn_ntn": Target("tn_ntn", tn_ntn_steps),
    "vhetnet": Target("vhetnet", vhetnet_steps(with_rates=False)),
    "vhetnet/mrt": Target(
        "vhetnet", vhetnet_steps(with_rates=True), lambda rng: {"haps_on": rng.random() < 0.8}
    ),
    "vhetnet/pf-wmmse": Target(
        "vhetnet", vhetnet_pf("pf-wmmse"), lambda rng: {"max_iter": rng.choice([1, 5, 30])}
    ),
    "vhetnet/pfbwd": Target(
        "vhetnet",
        vhetnet_pf("pfbwd"),
        lambda rng: {
            "max_outer": rng.choice([1, 2, 4]),
            "max_inner": rng.choice([1, 10, 40]),
            "rho_over_beta": rng.choice([0.5, 2.0]),
        },
    ),
    "tn_ntn/env": Target(
        "tn_ntn",
        tn_ntn_env,
        lambda rng: {
            "formulation": rng.choice(["decomposed", "per_bs"]),
            "inactive_action": rng.choice(["error", "off"]),
        },
    ),
    "multiband": Target("multiband", multiband_steps),
    "multiband/random": Target(
        "multiband",
        multiband_power("random"),
        lambda rng: {"distribution": rng.choice(["dirichlet", "uniform"])},
    ),
    "multiband/sswf": Target("multiband", multiband_power("sswf")),
    "multiband/flwf": Target(
        "multiband",
        multiband_power("flwf"),
        lambda rng: {
            "max_iter": rng.choice([0, 1, 10, 100]),
            "forward_looking": rng.random() < 0.8,
        },
    ),
    "multiband/env": Target("multiband", multiband_env, _multiband_env_options),
}
