"""Direct fractional-programming (FP) beamforming, the DFP baseline of seed 000 §VI.

Shen & Yu, "Fractional programming for communication systems - Part I: Power control and
beamforming", IEEE TSP 66(10), 2018 (the seed's ref. [12]), §IV "direct FP": the quadratic
transform (their Theorem 1, multidimensional form Theorem 2) is applied to each SINR *inside*
the logarithm of the sum rate (2a),

    max_{w, y}  sum_k log(1 + q_k(w, y)),
    q_k(w, y) = 2 Re(y_k^* h_{rho_k,k}^H w_k) - |y_k|^2 (sum_{i != k} |h_{rho_i,k}^H w_i|^2 + 1),

subject to (2b)-(2c). For fixed w the optimal y is y_k = A_kk / (I_k + 1) (A_kj = h_{rho_j,k}^H w_j,
I_k the interference), and then q_k = SINR_k; for any y, q_k(w, y) <= SINR_k(w). Alternating the
two blocks is therefore a minorisation-maximisation of the sum rate: (2a) never decreases as long
as every w-update does not decrease Phi_y(w) = sum_k log(1 + q_k(w, y)) and stays feasible.

The w-update max_w Phi_y(w) s.t. (2b)-(2c) is concave but not quadratic; Shen & Yu hand it to a
convex solver (CVX). Here it is solved with closed forms and multiplier searches only, through the
concave conjugate log(1 + q) = min_{lam > 0} lam (1 + q) - log(lam) - 1 (Sion's minimax theorem
makes max_w min_lam = min_lam max_w). Each inner round:

1. lam_k = 1 / (1 + q_k(w)) at the current w (the minimiser over lam; it is also the gradient of
   log(1 + q) at q_k(w)).
2. w_hat = argmax_w sum_k lam_k q_k(w) s.t. (2b)-(2c): the shared weighted w-step of
   :mod:`skyshare.solvers.wstep` with per-user matrices
   Q_i = sum_{k != i} lam_k |y_k|^2 h_{rho_i,k} h_{rho_i,k}^H and b_i = lam_i y_i h_{rho_i,i},
   multipliers mu, eta found exactly (``mu_update="bisection"``).
3. Exact line search on w(tau) = w + tau (w_hat - w), tau in [0, 1]: Phi_y(w(tau)) is concave in
   tau (q_k is a concave quadratic along the segment), maximised by safeguarded Newton.

Step 2 maximises the partial linearisation of Phi (log linearised, q kept exact); because each q_k
is concave, w_hat - w is an ascent direction of Phi unless w is already optimal, and the line
search in step 3 keeps Phi non-decreasing across inner rounds and the iterate feasible (the
feasible set is convex). This is the successive convex approximation of Scutari, Facchinei, Song,
Palomar & Pang, "Decomposition by partial linearization", IEEE TSP 2014, which converges to the
maximiser of the concave inner problem. ``inner_iter`` rounds are run per outer iteration (the
seed does not say how accurately DFP solves its inner problem). One round already gives the MM
property; measured on paper-network instances, more rounds make each outer step closer to Shen &
Yu's exact update but do not reduce the number of outer iterations (same final sum rate, 2-5x
the time), hence the default of one round.

If the current point violates (2c) (the default MRT start does), step 3 takes tau = 1, which lands
on the feasible w_hat; from then on every iterate is feasible and (2a) is non-decreasing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
from skyshare.solvers.wmmse import wmmse
from skyshare.solvers.wstep import (
    own_channels,
    solve_w_step,
    warm_multiplier,
    with_dtype,
)

__all__ = ["INITS", "InnerResult", "fp", "fp_inner_rounds", "fp_line_search"]

INITS = ("mrt", "wmmse")


def _abs2(x: torch.Tensor) -> torch.Tensor:
    return x.real.square() + x.imag.square()


def _surrogate_terms(A: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """q_k(w, y) from the effective gains ``A (B, K, K)`` of w: (B, K)."""
    gain_power = _abs2(A)
    own = torch.diagonal(A, dim1=1, dim2=2)
    interference = gain_power.sum(-1) - _abs2(own)
    return 2.0 * (y.conj() * own).real - _abs2(y) * (interference + 1.0)


def fp_line_search(
    A0: torch.Tensor, A1: torch.Tensor, y: torch.Tensor, *, max_newton: int = 60
) -> torch.Tensor:
    """Exact line search of step 3 (module docstring): argmax over tau in [0, 1].

    Along w + tau d the gains are A0 + tau A1 and q_k(tau) = q_k + tau g_k - tau^2 h_k with

        g_k = 2 Re(y_k^* A1_kk) - 2 |y_k|^2 Re sum_{i != k} conj(A0_ki) A1_ki,
        h_k = |y_k|^2 sum_{i != k} |A1_ki|^2 >= 0,

    so Phi(tau) = sum_k log(1 + q_k(tau)) is concave on the interval where every 1 + q_k > 0.
    Newton's method on Phi'(tau) = 0, safeguarded by bisection of the bracket.

    Args:
        A0: (B, K, K) gains of the current w. A1: (B, K, K) gains of the direction d.
        y: (B, K) quadratic-transform variables.

    Returns:
        tau: (B,) real in [0, 1].
    """
    off = 1.0 - torch.eye(A0.shape[-1], dtype=A0.real.dtype, device=A0.device)
    y2 = _abs2(y)
    q0 = _surrogate_terms(A0, y)
    g = 2.0 * (y.conj() * torch.diagonal(A1, dim1=1, dim2=2)).real - 2.0 * y2 * (
        (A0.conj() * A1).real * off
    ).sum(-1)
    h = y2 * (_abs2(A1) * off).sum(-1)
    slack0 = 1.0 + q0  # > 0 at the current point
    # Largest tau keeping every 1 + q_k(tau) > 0 (root of h t^2 - g t - slack0 = 0).
    disc = torch.sqrt(g.square() + 4.0 * h * slack0)
    tau_max_k = torch.where(
        h > 0,
        2.0 * slack0 / (disc - g).clamp_min(torch.finfo(g.dtype).tiny),
        torch.where(g < 0, slack0 / (-g).clamp_min(torch.finfo(g.dtype).tiny), torch.inf),
    )
    hi = (tau_max_k.amin(-1) * (1.0 - 1e-9)).clamp(max=1.0)  # (B,)
    lo = torch.zeros_like(hi)

    def derivatives(tau):
        t = tau[:, None]
        slack = slack0 + t * g - t.square() * h
        slope = g - 2.0 * t * h
        d1 = (slope / slack).sum(-1)
        d2 = -(2.0 * h / slack + (slope / slack).square()).sum(-1)
        return d1, d2

    d1_lo, _ = derivatives(lo)
    d1_hi, _ = derivatives(hi)
    # Phi' is decreasing: tau = 0 if Phi'(0) <= 0, tau = hi if Phi'(hi) >= 0, else the root of
    # Phi' in (0, hi), by Newton with bisection whenever a step leaves the bracket or fails to
    # halve the step before last (Numerical Recipes' rtsafe). Newton started next to a pole of
    # Phi' (some 1 + q_k -> 0 at tau_max < 1) would crawl, so it starts from 0 then.
    # Start from the end of the segment when Phi' has no pole near it (hi = 1), else from 0.
    tau = torch.where((d1_hi >= 0) | (hi >= 1.0), hi, lo)
    tau = torch.where(d1_lo <= 0, lo, tau)
    done = (d1_lo <= 0) | (d1_hi >= 0)
    last_step = torch.full_like(tau, torch.inf)
    for _ in range(max_newton):
        if bool(done.all()):
            break
        d1, d2 = derivatives(tau)
        lo = torch.where(d1 > 0, tau, lo)
        hi = torch.where(d1 <= 0, tau, hi)
        newton = tau - d1 / d2.clamp_max(-torch.finfo(d2.dtype).tiny)
        useful = (newton > lo) & (newton < hi) & ((newton - tau).abs() <= 0.5 * last_step)
        new_tau = torch.where(useful, newton, 0.5 * (lo + hi))
        last_step = torch.where(useful, (newton - tau).abs(), last_step)
        done = done | ((hi - lo) <= 1e-12) | ((new_tau - tau).abs() <= 1e-13)
        tau = torch.where(done, tau, new_tau)
    return tau.clamp(0.0, 1.0)


def _per_user_quadratics(problem: BeamformingProblem, weight: torch.Tensor) -> torch.Tensor:
    """Q_i = sum_{k != i} weight_k h_{rho_i,k} h_{rho_i,k}^H for every user i: (B, K, M, M)."""
    B, K, _N, M, _ = problem.shape
    # Channels from each user i's BS to every user k: (B, i, k, M).
    from_my_bs = torch.gather(
        problem.H.transpose(1, 2), 1, problem.serving[:, :, None, None].expand(B, K, K, M)
    )
    mask = 1.0 - torch.eye(K, dtype=weight.dtype, device=weight.device)
    scaled = from_my_bs * (weight[:, None, :] * mask).sqrt().to(from_my_bs.dtype)[..., None]
    return scaled.transpose(-1, -2) @ scaled.conj()  # (B, K, M, M)


@dataclass
class InnerResult:
    """Output of :func:`fp_inner_rounds`.

    Attributes:
        w: (B, K, M) beams. mu: (B, L), eta: (B, N) multipliers of the last w-step.
        phi: (B, R + 1) Phi_y(w) before the first and after every round run (R rounds).
    """

    w: torch.Tensor
    mu: torch.Tensor
    eta: torch.Tensor
    phi: torch.Tensor


def fp_inner_rounds(
    problem: BeamformingProblem,
    w: torch.Tensor,
    A: torch.Tensor,
    y: torch.Tensor,
    mu: torch.Tensor,
    eta: torch.Tensor,
    *,
    rounds: int,
    inner_tol: float,
    active: torch.Tensor,
    feasibility_tol: float,
) -> InnerResult:
    """Inner loop of direct FP: maximise Phi_y(w) s.t. (2b)-(2c) (module docstring, steps 1-3).

    Args:
        problem: the instances (in the working dtype). w: (B, K, M) current beams with gains
            ``A = associated_gains(H, w, serving)`` (B, K, K). y: (B, K) fixed transform
            variables. mu: (B, L), eta: (B, N) warm starts of the multipliers.
        rounds: maximum rounds. inner_tol: per-instance early stop on the relative change of
            Phi. active: (B,) bool, instances to update (the others are left unchanged).
        feasibility_tol: above this (2c) violation the line search takes tau = 1.

    Instances that are not active, or that meet ``inner_tol``, leave the batch (active set,
    every per-instance tensor compacted); their entries of the result are those they had
    then, and their ``phi`` stays constant.
    """
    B = w.shape[0]
    phi = torch.log1p(_surrogate_terms(A, y)).sum(-1)
    w_out, mu_out, eta_out, phi_out = w.clone(), mu.clone(), eta.clone(), phi.clone()
    trace = [phi_out.clone()]
    index = active.nonzero()[:, 0]
    if index.numel() == 0:  # nothing to update: one round that changes nothing
        trace.append(phi_out.clone())
        return InnerResult(w=w_out, mu=mu_out, eta=eta_out, phi=torch.stack(trace, 1))
    if index.numel() < B:
        problem = problem.subset(index)
        w, A, y, mu, eta, phi = (x.index_select(0, index) for x in (w, A, y, mu, eta, phi))
    L = problem.G.shape[1]
    i_max = problem.i_max_per_au()
    h_own = own_channels(problem)
    for _ in range(rounds):
        lam = 1.0 / (1.0 + _surrogate_terms(A, y))
        step = solve_w_step(
            problem,
            _per_user_quadratics(problem, lam * _abs2(y)),
            (lam * y)[..., None] * h_own,
            shared_by_bs=False,
            mu=mu,
            eta=eta,
            mu_update="bisection",
        )
        A_hat = metrics.associated_gains(problem.H, step.w, problem.serving)
        tau = fp_line_search(A, A_hat - A, y)
        if L > 0:  # from an infeasible point go all the way to the feasible w_hat
            rho = metrics.primary_interference(problem.G, w, problem.serving)
            excess = torch.where(torch.isfinite(i_max), (rho - i_max) / i_max, -1.0)
            tau = torch.where(excess.amax(-1) > feasibility_tol, torch.ones_like(tau), tau)
        w = w + tau[:, None, None].to(w.dtype) * (step.w - w)
        A = A + tau[:, None, None].to(A.dtype) * (A_hat - A)
        mu, eta = step.mu, step.eta
        new_phi = torch.log1p(_surrogate_terms(A, y)).sum(-1)
        phi_out[index] = new_phi
        trace.append(phi_out.clone())
        small = (new_phi - phi).abs() <= inner_tol * phi.abs().clamp_min(1e-12)
        phi = new_phi
        if bool(small.any()):  # per instance, so a batch matches separate runs
            done = index[small]
            w_out[done], mu_out[done], eta_out[done] = w[small], mu[small], eta[small]
            keep = (~small).nonzero()[:, 0]
            index = index[keep]
            if keep.numel() == 0:
                break
            problem = problem.subset(keep)
            i_max, h_own = i_max.index_select(0, keep), h_own.index_select(0, keep)
            w, A, y, mu, eta, phi = (x.index_select(0, keep) for x in (w, A, y, mu, eta, phi))
    if index.numel():
        w_out[index], mu_out[index], eta_out[index] = w, mu, eta
    return InnerResult(w=w_out, mu=mu_out, eta=eta_out, phi=torch.stack(trace, 1))


def _check_arguments(
    max_iter: int, inner_iter: int, tol: float, inner_tol: float, init: str, feasibility_tol: float
) -> None:
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not isinstance(inner_iter, int) or inner_iter < 1:
        raise ConfigError(f"inner_iter must be an integer >= 1, got {inner_iter!r}")
    for name, value in (
        ("tol", tol),
        ("inner_tol", inner_tol),
        ("feasibility_tol", feasibility_tol),
    ):
        if not 0 <= value < 1:
            raise ConfigError(f"{name} must lie in [0, 1), got {value!r}")
    if init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {init!r}")


def fp(
    problem: BeamformingProblem,
    *,
    w0: torch.Tensor | None = None,
    mu0: torch.Tensor | None = None,
    eta0: torch.Tensor | None = None,
    max_iter: int = 100,
    inner_iter: int = 1,
    tol: float = 1e-5,
    inner_tol: float = 1e-7,
    init: str = "mrt",
    feasibility_tol: float = 1e-3,
    compute_dtype: torch.dtype | None = torch.complex128,
) -> BeamformingResult:
    """Direct FP beamforming under (2b)-(2c) (module docstring).

    Args:
        problem: B instances of (2a)-(2c), noise-normalised.
        w0: (B, K, M) warm start; MRT at full power when None (``init="mrt"``).
        mu0, eta0: (B, L), (B, N) warm starts of the multipliers (the previous slot's
            ``multipliers``); zeros when None.
        max_iter: outer (y-update) iterations.
        inner_iter: inner rounds (lam-update, weighted w-step, line search) per outer iteration.
        tol: stop when the relative change of the sum rate (2a) is below ``tol``.
        inner_tol: an inner loop stops early when Phi_y improves by less than this (relative).
        init: ``"mrt"`` (start from ``w0`` or MRT, like WMMSE) or ``"wmmse"`` (start from the
            WMMSE solution, :func:`skyshare.solvers.wmmse` with its defaults from the same
            start; FP is monotone from a feasible point, so it cannot end below WMMSE: how the
            "upper bound" DFP baseline of seed 000 §VI is produced, see docs/solvers/fp.md).
        feasibility_tol: relative tolerance of (2b)-(2c) for ``feasible``.
        compute_dtype: complex dtype of the iterations (complex128 default); None keeps the
            problem's dtype (complex64 is not recommended, see :func:`skyshare.solvers.wmmse`).

    Returns:
        :class:`BeamformingResult`; ``multipliers`` holds ``mu (B, L)``, ``eta (B, N)`` and
        ``scaled_for_feasibility (B,) bool``. With ``init="wmmse"`` the objective trace covers
        the FP iterations only (the WMMSE iterations are counted in ``multipliers`` as
        ``wmmse_iterations`` (1,) long). ``instance_iterations`` (B,) long: the outer
        iterations each instance ran before its sum rate settled (``max_iter`` otherwise);
        converged instances leave the batch (active set), so a batch costs what its
        unconverged instances need and gives each instance what it would get alone.
    """
    start = time.perf_counter()
    _check_arguments(max_iter, inner_iter, tol, inner_tol, init, feasibility_tol)

    extra: dict[str, torch.Tensor] = {}
    if init == "wmmse":
        warm = wmmse(
            problem,
            w0=w0,
            mu0=mu0,
            eta0=eta0,
            feasibility_tol=feasibility_tol,
            compute_dtype=compute_dtype,
        )
        w0 = warm.w
        extra["wmmse_iterations"] = torch.tensor([warm.iterations])
    work = with_dtype(problem, compute_dtype or problem.H.dtype)
    B, _, N, _, L = work.shape
    real = work.H.real.dtype
    if init == "wmmse":  # the WMMSE point itself (initial_beamformers would rescale to P_max)
        w = w0.to(work.H.dtype)
    else:
        w = initial_beamformers(work, None if w0 is None else w0.to(work.H.dtype))
    mu = warm_multiplier(mu0, (B, L), real, w.device, "mu0")
    eta = warm_multiplier(eta0, (B, N), real, w.device, "eta0")

    A = metrics.associated_gains(work.H, w, work.serving)
    rate = metrics.sinr(A).rate.sum(-1)
    # Active set: an instance whose sum rate has settled leaves the batch (its beams and
    # multipliers are written out, every per-instance tensor is compacted), so an iteration
    # costs what the unconverged instances need; each instance gets what it would get alone.
    done = ActiveSet(max_iter, w=w, mu=mu, eta=eta)
    rate_out = rate.clone()
    active_work = work
    trace = []
    iterations = 0
    for iterations in range(1, max_iter + 1):
        own = torch.diagonal(A, dim1=1, dim2=2)
        y = own / (_abs2(A).sum(-1) - _abs2(own) + 1.0)  # y_k = A_kk / (I_k + 1)
        inner = fp_inner_rounds(
            active_work,
            w,
            A,
            y,
            mu,
            eta,
            rounds=inner_iter,
            inner_tol=inner_tol,
            active=torch.ones(done.index.numel(), dtype=torch.bool, device=w.device),
            feasibility_tol=feasibility_tol,
        )
        w, mu, eta = inner.w, inner.mu, inner.eta
        A = metrics.associated_gains(active_work.H, w, active_work.serving)  # fresh
        new_rate = metrics.sinr(A).rate.sum(-1)
        rate_out[done.index] = new_rate
        trace.append(rate_out.clone())  # a finished instance keeps its final rate
        settled = (new_rate - rate).abs() <= tol * rate.abs().clamp_min(1e-12)
        rate = new_rate
        if bool(settled.any()):
            keep = done.retire(settled, iterations, w=w, mu=mu, eta=eta)
            if keep.numel() == 0:
                break
            active_work = active_work.subset(keep)
            w, mu, eta, A, rate = (x.index_select(0, keep) for x in (w, mu, eta, A, rate))
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
        extra,
        instance_iterations=done.iterations,
    )
