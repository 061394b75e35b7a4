"""WMMSE coordinated beamforming under the interference-temperature constraints, seed 000 Alg. 2.

Problem (2a)-(2c) for a fixed association (:class:`BeamformingProblem`, noise-normalised). With
the effective gains A_kj = h_{rho_j,k}^H w_j and T_k = sum_j |A_kj|^2 + 1 (total received power
plus noise), one iteration is (Algorithm 2, lines 3-5):

    u_k     = |A_kk|^2 / (T_k - |A_kk|^2)                       SINR, line 3
    v_k     = sqrt(1 + u_k) A_kk / T_k,   alpha_k = |v_k|^2      line 4
    w_k     = D_{rho_k}^{-1} sqrt(1 + u_k) v_k h_{rho_k,k}       line 5
    D_n     = sum_i alpha_i h_{n,i} h_{n,i}^H + sum_l mu_l g_{n,l} g_{n,l}^H + eta_n I

Conjugations, derived from the Lagrangian-dual + quadratic transform of the sum rate (Shen & Yu,
"Fractional programming for communication systems - Part II", IEEE TSP 2018, eq. (25), which is
WMMSE, Shi et al., IEEE TSP 2011):

    f(w, u, v) = sum_k log(1 + u_k) - u_k + 2 sqrt(1 + u_k) Re(v_k^* A_kk) - |v_k|^2 T_k(w).

Maximising f over v gives line 4, over u (with v optimal) gives u_k = SINR_k, and
max_{u,v} f = sum_k ln(1 + SINR_k). In w, f is the concave quadratic
sum_k 2 Re(b_k^H w_k) - w_k^H C_{rho_k} w_k (+ const) with b_k = sqrt(1 + u_k) v_k h_{rho_k,k}
(so v_k, not its conjugate, multiplies h in line 5) and C_n = sum_i alpha_i h_{n,i} h_{n,i}^H;
line 5 is its constrained maximiser, computed by :func:`skyshare.solvers.wstep.solve_w_step`.
Each step maximises f in one block, so the sum rate never decreases when the w-step is exact
(``mu_update="bisection"``, or the AU constraints inactive).

The seed leaves open how mu and eta are found; see :mod:`skyshare.solvers.wstep` and
docs/solvers/wmmse.md for the two mu updates, their cost and the default.
"""

from __future__ import annotations

import time

import torch

from skyshare import metrics
from skyshare.errors import ConfigError
from skyshare.solvers.problem import (
    ActiveSet,
    BeamformingProblem,
    BeamformingResult,
    finish_safeguarded,
    initial_beamformers,
)
from skyshare.solvers.wstep import (
    MU_UPDATES,
    bs_covariances,
    own_channels,
    solve_w_step,
    warm_multiplier,
    with_dtype,
)

__all__ = ["wmmse", "wmmse_auxiliaries"]


def wmmse_auxiliaries(
    A: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 2 lines 3-4 from the effective gains ``A (B, K, K)`` (noise power 1).

    The sum rate (2a) of the same beams is ``log2(1 + u).sum(-1)``.

    Returns:
        u: (B, K) SINR. v: (B, K) complex MMSE receivers. alpha: (B, K) = |v|^2.
    """
    gain_power = A.real.square() + A.imag.square()
    signal_amplitude = torch.diagonal(A, dim1=1, dim2=2)  # A_kk
    signal = torch.diagonal(gain_power, dim1=1, dim2=2)
    total = gain_power.sum(-1) + 1.0  # T_k
    u = signal / (total - signal).clamp_min(1.0)  # interference + noise >= noise = 1
    v = torch.sqrt(1.0 + u) * signal_amplitude / total
    return u, v, v.real.square() + v.imag.square()


def _check_common(max_iter: int, tol: float, mu_update: str, feasibility_tol: float) -> None:
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not 0 <= tol < 1:
        raise ConfigError(f"tol must lie in [0, 1), got {tol!r}")
    if mu_update not in MU_UPDATES:
        raise ConfigError(f"mu_update must be one of {MU_UPDATES}, got {mu_update!r}")
    if not 0 <= feasibility_tol < 1:
        raise ConfigError(f"feasibility_tol must lie in [0, 1), got {feasibility_tol!r}")


def wmmse(
    problem: BeamformingProblem,
    *,
    w0: torch.Tensor | None = None,
    mu0: torch.Tensor | None = None,
    eta0: torch.Tensor | None = None,
    max_iter: int = 200,
    tol: float = 1e-5,
    mu_update: str = "subgradient",
    mu_step: float = 1.0,
    feasibility_tol: float = 1e-3,
    compute_dtype: torch.dtype | None = torch.complex128,
) -> BeamformingResult:
    """WMMSE beamforming with the AU interference constraints (seed 000 Algorithm 2).

    Args:
        problem: B instances of (2a)-(2c), noise-normalised.
        w0: (B, K, M) warm start (previous slot's beams); MRT at full power when None
            (:func:`skyshare.solvers.problem.initial_beamformers`).
        mu0: (B, L) real >= 0 warm start of the AU multipliers (the previous slot's
            ``multipliers["mu"]``); zeros when None.
        eta0: (B, N) real >= 0 warm start of the power multipliers (the previous slot's
            ``multipliers["eta"]``); zeros when None. Only a starting point of the eta search.
        max_iter: iteration limit (Algorithm 2's repeat loop).
        tol: stop when the relative change of the sum rate (2a) is below ``tol`` (and, with the
            subgradient update, (2c) holds within ``feasibility_tol``).
        mu_update: AU multipliers by ``"subgradient"`` (one scaled dual step per iteration;
            the default because it is the faster of the two, about half the cost per
            iteration) or ``"bisection"`` (exact multipliers every iteration: monotone (2a),
            slightly higher sum rate). See docs/solvers/wmmse.md.
        mu_step: dimensionless subgradient step (:mod:`skyshare.solvers.wstep`).
        feasibility_tol: relative tolerance of (2b)-(2c) for ``feasible`` and the final
            rescaling safeguard.
        compute_dtype: complex dtype of the iterations (complex128 default: the
            eigendecomposition must resolve SNRs of 1e8); None keeps the problem's dtype
            (complex64 measured: several bit/s/Hz lower and the exact mu search stalls on
            float32 noise, so not recommended).

    Returns:
        :class:`BeamformingResult` with w in the problem's dtype; ``multipliers`` holds
        ``mu (B, L)``, ``eta (B, N)`` and ``scaled_for_feasibility (B,) bool``.
    """
    start = time.perf_counter()
    _check_common(max_iter, tol, mu_update, feasibility_tol)
    work = with_dtype(problem, compute_dtype or problem.H.dtype)
    B, _K, N, _M, L = work.shape
    real = work.H.real.dtype
    w = initial_beamformers(work, None if w0 is None else w0.to(work.H.dtype))
    h_own = own_channels(work)
    mu = warm_multiplier(mu0, (B, L), real, w.device, "mu0")
    eta = warm_multiplier(eta0, (B, N), real, w.device, "eta0")
    i_max = work.i_max_per_au()

    u, v, alpha = wmmse_auxiliaries(metrics.associated_gains(work.H, w, work.serving))
    rate = torch.log2(1.0 + u).sum(-1)
    # Active set: instances that have converged leave the batch (their beams, multipliers and
    # iteration count are written out), so each iteration costs what the unconverged need.
    # Per instance the arithmetic does not depend on the others (the w-step's searches stop
    # per instance), so the results are those of solving each instance alone.
    done = ActiveSet(max_iter, w=w, mu=mu, eta=eta)
    rate_out = rate.clone()  # the trace keeps a finished instance's final rate
    active_work, active_h, active_i_max = work, h_own, i_max
    trace = []
    iterations = 0
    for iterations in range(1, max_iter + 1):
        step = solve_w_step(
            active_work,
            bs_covariances(active_work.H, alpha),
            (torch.sqrt(1.0 + u) * v)[..., None] * active_h,  # b_k of line 5
            shared_by_bs=True,
            mu=mu,
            eta=eta,
            mu_update=mu_update,
            mu_step=mu_step,
        )
        w, mu, eta = step.w, step.mu, step.eta
        u, v, alpha = wmmse_auxiliaries(
            metrics.associated_gains(active_work.H, w, active_work.serving)
        )
        new_rate = torch.log2(1.0 + u).sum(-1)  # (2a) of the new beams
        settled = (new_rate - rate).abs() <= tol * rate.abs().clamp_min(1e-12)
        if mu_update == "subgradient" and L > 0:  # the primal-dual pair must also be feasible
            excess = torch.where(
                torch.isfinite(active_i_max),
                (step.au_interference - active_i_max) / active_i_max,
                -1.0,
            )
            settled = settled & (excess.amax(-1) <= feasibility_tol)
        rate = new_rate
        rate_out[done.index] = rate
        trace.append(rate_out.clone())
        if bool(settled.any()):
            keep = done.retire(settled, iterations, w=w, mu=mu, eta=eta)
            if keep.numel() == 0:
                break
            active_work = active_work.subset(keep)
            active_h, active_i_max = active_h[keep], active_i_max[keep]
            w, mu, eta, u, v, alpha, rate = (x[keep] for x in (w, mu, eta, u, v, alpha, rate))
    done.close(w=w, mu=mu, eta=eta)  # these ran max_iter iterations without converging

    return finish_safeguarded(
        problem,
        work,
        done.out["w"],
        trace,
        iterations,
        done.converged,
        start,
        feasibility_tol,
        done.out["mu"],
        done.out["eta"],
        instance_iterations=done.iterations,
    )
