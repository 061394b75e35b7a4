"""Instances shared by the beamforming-solver tests (known optima are computed in the tests)."""

from __future__ import annotations

import math

import torch

from skyshare.metrics import strongest_transmitter
from skyshare.scenarios.catn import CatnScenario
from skyshare.solvers.problem import BeamformingProblem

C128 = torch.complex128
LOOSE = 1e30  # an I_max no beam can reach: (2c) inactive


def crandn(*shape: int, generator: torch.Generator) -> torch.Tensor:
    """CN(0, 1) samples, complex128."""
    re = torch.randn(*shape, generator=generator, dtype=torch.float64)
    im = torch.randn(*shape, generator=generator, dtype=torch.float64)
    return torch.complex(re, im) / math.sqrt(2.0)


def random_problem(
    B: int, K: int, N: int, M: int, L: int, *, p_max: float, i_max: float, seed: int
) -> BeamformingProblem:
    g = torch.Generator().manual_seed(seed)
    H = crandn(B, K, N, M, generator=g)
    G = crandn(B, L, N, M, generator=g)
    serving = torch.arange(K).remainder(N).expand(B, K).clone()
    return BeamformingProblem(H=H, G=G, serving=serving, p_max=p_max, i_max=i_max)


def catn_problem(B: int, preset: str = "quick", seed: int = 0) -> BeamformingProblem:
    scenario = CatnScenario.from_preset(preset, batch_size=B)
    state = scenario.reset(seed=seed)
    return BeamformingProblem(
        H=state.H,
        G=state.G,
        serving=strongest_transmitter(state.H),
        p_max=scenario.config.p_max_w,
        i_max=scenario.i_max_normalized,
    )


def water_filling(gains: list[float], p_total: float) -> list[float]:
    """Powers p_k = (nu - 1/g_k)^+ with sum p_k = p_total, by hand (sorted active sets)."""
    order = sorted(range(len(gains)), key=lambda k: -gains[k])
    for n_active in range(len(gains), 0, -1):
        active = order[:n_active]
        nu = (p_total + sum(1.0 / gains[k] for k in active)) / n_active
        if nu - 1.0 / gains[active[-1]] > 0:
            return [max(nu - 1.0 / g, 0.0) if k in active else 0.0 for k, g in enumerate(gains)]
    raise AssertionError("unreachable")
