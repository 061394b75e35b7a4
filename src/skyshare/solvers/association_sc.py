"""Strongest-channel (SC) user association (seed 000 §VI).

Each terrestrial user joins the BS with the largest channel strength ``||h_{n,k}||^2``; it needs
only the strengths it measures itself, no information exchange (seed 000 Table I: 0 scalars).
"""

from __future__ import annotations

import time

import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.problem import AssociationResult

__all__ = ["associate_sc", "bs_loads"]


def bs_loads(serving: torch.Tensor, n_bs: int) -> torch.Tensor:
    """Users per BS |K_n|: serving (B, K) long -> (B, N) long."""
    if serving.ndim != 2 or serving.dtype != torch.long:
        raise ShapeError(f"serving must be (B, K) long, got {tuple(serving.shape)}")
    loads = torch.zeros(serving.shape[0], n_bs, dtype=torch.long, device=serving.device)
    return loads.scatter_add_(1, serving, torch.ones_like(serving))


def associate_sc(H: torch.Tensor, *, p_max: float | torch.Tensor) -> AssociationResult:
    """Strongest-channel association ``rho_k = argmax_n ||h_{n,k}||^2`` (seed 000 §VI, "SC").

    Args:
        H: (B, K, N, M) complex, BS n -> TU k (any normalisation; only the argmax matters).
        p_max: P_max in watts, float or (B, N); SC does not control power, every BS is reported
            at P_max.

    Returns:
        :class:`AssociationResult` with ``serving`` (B, K), ``loads`` (B, N), ``bs_power`` (B, N)
        = P_max, an empty ``dual_trace`` (B, 0), ``iterations`` 0 and ``converged`` all True.
        Ties go to the lowest BS index.
    """
    start = time.perf_counter()
    if H.ndim != 4 or not H.is_complex():
        raise ShapeError(f"H must be (B, K, N, M) complex, got {tuple(H.shape)}")
    B, _, N, _ = H.shape
    real = H.real.dtype
    power = torch.as_tensor(p_max, dtype=real, device=H.device)
    if bool((power <= 0).any()) or not bool(torch.isfinite(power).all()):
        raise ConfigError(f"p_max must be finite and > 0 W, got {p_max}")
    try:
        power = power.expand(B, N).clone()
    except RuntimeError:
        raise ShapeError(
            f"p_max must be a float or broadcast to (B, N) = {(B, N)}, got {tuple(power.shape)}"
        ) from None
    serving = metrics.strongest_transmitter(H)
    return AssociationResult(
        serving=serving,
        iterations=0,
        converged=torch.ones(B, dtype=torch.bool, device=H.device),
        wall_time_s=time.perf_counter() - start,
        dual_trace=torch.zeros(B, 0, dtype=real, device=H.device),
        bs_power=power,
        loads=bs_loads(serving, N),
    )
