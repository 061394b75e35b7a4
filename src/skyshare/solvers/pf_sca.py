"""Centralized proportional-fair beamforming by SCA with a conic solver: seed 003's upper bound.

Seed 003 §III solves the PFBWD problem of :mod:`skyshare.solvers.cellfree_problem` centrally with
slacks r, s, t (the paper: CVX + MOSEK; here CVXPY + Clarabel by default). Its equations were
lost; ``docs/solvers/pfbwd.md`` ("Reformulation", steps 1-4) restores them; the seed's numbers
are in brackets. Noise-normalised channels, so sigma^2 = 1:

    maximize  sum_k ln r_k                                          (step 1: objective)
    s.t.      r_k <= log2(1 + s_k)                                  (step 1, seed (9))
              s_k t_k <= |a_k|^2,  a_k = sum_t u_{t,k},  u_{t,k} = h_{t,k}^H w_{t,k}
                                                                    (steps 2, 4, seed (10a), (13a))
              t_k >= sum_{j != k} |sum_t h_{t,k}^H w_{t,j}|^2 + 1   ("exact": step 2, seed (10b))
                or t_k >= T sum_t iota_{t,k} + 1,  iota_{t,k} >= sum_{j != k} |h_{t,k}^H w_{t,j}|^2
                                                                    ("jensen": step 3, (11)-(13a))
              s_k >= gamma_min,   sum_k ||w_{t,k}||^2 <= P_t

Every inequality is active at an optimum (seed App. A): s_k is the SINR (or its Jensen bound)
and r_k the SE (the iota slacks are tight, so they are eliminated). The non-convex
``s_k <= |a_k|^2 / t_k`` (a convex quad-over-lin on the right) is replaced at each SCA step by
its tangent at the last point (a^n, t^n), an inner approximation exact there:

    s_k <= 2 Re(conj(a^n_k) a_k) / t^n_k - |a^n_k|^2 t_k / (t^n_k)^2.

Each step is thus a convex conic program whose feasible set contains the last point: the PF
objective never decreases and the iterates approach a KKT point (the seed's [30]).

Scaling (SINRs of 30-70 dB, noise-normalised ``|h|^2`` up to 1e6, budgets 10-40 W): the conic
program is written in variables of order 1 around the last point.

* Beams ``w_{t,k} = sqrt(P_t) Phi_t c_{t,k}``, ``Phi_t`` an orthonormal basis of the span of BS
  t's channels (exact: other directions only spend power), stacked over the BSs
  (:class:`~skyshare.solvers.pf_wmmse.StackedChannels`, N = sum_t min(M_t, K) coordinates), so
  every budget reads ``sum_k ||c_{t,k}||^2 <= 1``; real variables ``X = [Re C; Im C]: (2N, K)``.
* Per UE: ``s_k = sigma_k s^_k``, ``t_k = t^n_k t^_k`` with ``sigma_k = |a^n_k|^2 / t^n_k`` the
  last SINR: the tangent reads ``s^_k <= 2 Re(a_k / a^n_k) - t^_k`` (last point: s^ = t^ = 1),
  the interference uses the channels over ``sqrt(t^n_k)`` and noise ``1 / t^n_k``, and
  (9) reads ``ln2 r_k - ln sigma_k <= ln(s^_k + 1 / sigma_k)``.

Channels and those per-UE numbers are ``cp.Parameter`` entering affinely (DPP): each CVXPY
problem is built and compiled once, then re-solved at every SCA step for every instance (that
loop over instances is the only Python loop; the rest is batched torch).

``log_form="soc"``: the seed's (16a) (lost) replaces the exponential cone by second-order cones
after its [39] (Yadav, Dobre, Ansari, IEEE Access 2017), i.e. the construction of Ben-Tal and
Nemirovski (Lectures on Modern Convex Optimization, SIAM 2001, §3.3): ``e^x = (e^{x/2^n})^{2^n}``,
the inner exponential by its degree-4 Taylor polynomial
``p(u) = 1 + u + u^2/2 + u^3/6 + u^4/24 = ((u^2 + 2u + 4)^2 + 8u + 8) / 24`` (two SOCs), then n
squarings (:func:`soc_exp_constraints`). Its error is at most ``2^n |u|^5 e^|u| / (120 (1 - q))``,
``u = x / 2^n``, ``q = |u|^5 / 120`` (:func:`soc_log_error_bound`); with the scaling above x is
near 0 at convergence (unscaled, the squarings span 1..1 + SINR; at 1 + SINR = 1e6 Clarabel
says "optimal_inaccurate" and misses x by ~1, measured). ``ln r_k`` in the objective uses the
same approximation, so the step is an SOCP.

Initial point: coherent MRT (each BS ``P_t / K`` per UE) unless ``W0``. If it misses gamma_min,
phase 1 runs the same SCA on ``max eta s.t. s_k >= eta gamma_min`` (eta capped at 2) until
``min_k SINR_k / gamma_min >= 1``; if it stalls below, the instance is flagged ``infeasible`` and
its best effort (the max-min point) is returned. Phase 1 is local too: the flag says that none
was found, not that none exists.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from skyshare.checks import check_memory, positive_int
from skyshare.errors import ConfigError
from skyshare.solvers.cellfree_problem import CellFreeProblem, CellFreeResult
from skyshare.solvers.pf_wmmse import (
    StackedChannels,
    coherent_mrt,
    model_sinr,
    pf_of_sinr,
    project_power,
    stack_channels,
    stacked_beamformers,
    unstack_beamformers,
)

__all__ = [
    "INTERFERENCE_MODELS",
    "LOG_FORMS",
    "SubproblemModel",
    "build_subproblems",
    "check_model_memory",
    "model_memory_bytes",
    "sca_centralized",
    "soc_exp_constraints",
    "soc_log_error_bound",
    "taylor_exp",
]

INTERFERENCE_MODELS = ("exact", "jensen")
LOG_FORMS = ("exp_cone", "soc")
_CONIC = ("CLARABEL", "MOSEK", "ECOS", "SCS")  # solvers that take SOC (+ exp) cones
_PHASE1_CAP = 2.0  # phase 1 stops pushing min SINR / gamma_min beyond this
_RATIO_CAP = 1e4  # sigma / gamma_min clipped (a restriction: only tightens phase 1)
_SIGMA_FLOOR = 1e-12  # SINR floor of a linearisation point (a UE with no signal)
_ACCEPT_RTOL = 1e-7  # a step may lose this much (solver accuracy) and still be accepted
_OK = ("optimal", "optimal_inaccurate")
_DEFAULT_OPTIONS = {"CLARABEL": {"max_threads": 1}}


def model_memory_bytes(K: int, n_coordinates: int) -> float:
    """Peak memory of building and solving the SCA model for K UEs and N complex beam
    coordinates (all BSs' antennas, ``T M_max``): an estimate fitted to measurements.

    CVXPY's DPP compilation of ``Y = P X`` (parameter ``P: (K, 2N)`` times variable ``X: (2N,
    K)``) and of the K interference cones over ``Y`` grows about as K^3 (measured peak RSS
    above the interpreter's, one instance, ``max_iter=1``, CVXPY 1.x + Clarabel, 2026-12-07):

    | K | N = 80 (T = 5, M = 16) | N = 20 (T = 5, M = 4) |
    |---|---|---|
    | 16 | 163 MB | |
    | 32 | 300 MB | |
    | 64 | 1.36 GB | 0.80 GB |
    | 128 | 8.4 GB | 5.1 GB |

    Fit: 100 MB + 2.36e-3 MB K^3 + 2.25e-3 MB K^2 N (within 14 % at K = 64, 128; 21 % at
    K = 32). The model
    is built once and reused for every instance of the batch, so B does not enter. At K =
    1024 (N = 80) this is about 2.7 TB: such networks are for the distributed PFBWD or
    PF-WMMSE.
    """
    megabytes = 100.0 + 2.36e-3 * K**3 + 2.25e-3 * K**2 * n_coordinates
    return megabytes * 1e6


def check_model_memory(K: int, n_tx: int, m_max: int) -> None:
    """A :class:`ConfigError` when the model for K UEs and ``n_tx`` BSs of up to ``m_max``
    antennas would need more than the memory limit (:func:`model_memory_bytes`)."""
    check_memory(
        model_memory_bytes(K, n_tx * m_max),
        f"the centralized SCA's CVXPY model for K = {K} UEs and {n_tx} x {m_max} antenna "
        "coordinates (grows as K^3; the distributed PFBWD and PF-WMMSE do not build it)",
    )


@functools.cache
def _check_model_memory_once(K: int, n_tx: int, m_max: int) -> None:
    """:func:`check_model_memory` once per process and size: a model that fitted when its job
    started is not refused hours later because the free memory (the default limit) dropped."""
    check_model_memory(K, n_tx, m_max)


def taylor_exp(x: np.ndarray | float, squarings: int) -> np.ndarray:
    """``p(x / 2^n)^(2^n)``, the SOC-representable approximation of ``e^x`` (n = squarings)."""
    u = np.asarray(x, dtype=np.float64) / 2.0**squarings
    p = 1.0 + u + u**2 / 2 + u**3 / 6 + u**4 / 24
    return p ** (2.0**squarings)


def soc_log_error_bound(x: np.ndarray | float, squarings: int) -> np.ndarray:
    """Bound on ``|ln taylor_exp(x, n) - x| = 2^n |ln p(u) - u|``, ``u = x / 2^n``.

    Lagrange remainder: ``|e^u - p(u)| <= |u|^5 e^{max(u, 0)} / 120``, hence
    ``|ln p(u) - u| <= q e^{|u|} / (1 - q)`` with ``q = |u|^5 / 120`` (for ``q < 1``).
    """
    u = np.abs(np.asarray(x, dtype=np.float64)) / 2.0**squarings
    q = u**5 / 120.0
    return 2.0**squarings * q * np.exp(u) / (1.0 - q)


def soc_exp_constraints(x, z, squarings: int) -> list:
    """CVXPY constraints for ``taylor_exp(x, n) <= z`` (elementwise; x, z affine, shape (K,)).

    ``p(u) = ((u^2 + 2u + 4)^2 + 8u + 8) / 24`` with ``u = x / 2^n``: ``a >= (u + 1)^2 + 3``,
    ``b >= a^2``, ``y_0 >= ((b + 8u + 8) / 24)^2``, ``y_i >= y_{i-1}^2``, ``y_{n-1} <= z``.
    Exact representation of the approximation (a >= 3 > 0 makes every squaring monotone).
    """
    import cvxpy as cp

    K = x.shape[0]
    u = x / 2.0**squarings
    a = cp.Variable(K)
    b = cp.Variable(K)
    y = cp.Variable((squarings, K))
    constraints = [cp.square(u + 1) + 3 <= a, cp.square(a) <= b]
    constraints.append(cp.square((b + 8 * u + 8) / 24) <= y[0])
    if squarings > 1:
        constraints.append(cp.square(y[:-1]) <= y[1:])
    constraints.append(y[-1] <= z)
    return constraints


@dataclass
class SubproblemModel:
    """The SCA step (``main``) and phase-1 (``phase1``) conic programs of one problem size.

    Attributes:
        main, phase1: ``cvxpy.Problem`` (DPP), re-solved with new parameter values.
        params: ``g_int_<i>: (2K, 2 n_i)`` the real rows of the scaled channels of coordinate
            group i (all BSs for ``"exact"``, BS i for ``"jensen"``); ``c_re``, ``c_im``,
            ``noise``, ``gamma``, ``inv_sigma``, ``log_sigma``, ``ratio``: (K,) each.
        groups: the coordinate indices (into N) of each group.
        var: ``X`` (2N, K) real beams ``[Re V; Im V]``; ``s``, ``t``, ``r`` (K,) scaled slacks.
    """

    main: object
    phase1: object
    params: dict
    groups: list
    var: dict


def _scalar_params(K: int) -> dict:
    import cvxpy as cp

    nonneg = ("noise", "gamma", "inv_sigma", "ratio")
    names = ("c_re", "c_im", "noise", "gamma", "inv_sigma", "log_sigma", "ratio")
    return {name: cp.Parameter(K, name=name, nonneg=name in nonneg) for name in names}


def _interference_cone(Y: list, t, noise, factor: float):
    """``t_k >= factor sum_{i, part, j != k} Y_i[part K + k, j]^2 + noise_k`` as K rotated
    cones ``||[2 z_k, w_k - 1]|| <= w_k + 1``, ``w = (t - noise) / factor``."""
    import cvxpy as cp

    K = Y[0].shape[1]
    rows = cp.vstack(Y)  # (2 G K, K): row (i, part, k), column j
    width = rows.shape[0] // K  # 2 G
    Z = cp.reshape(rows, (K, width * K), order="F")  # Z[k, ip + 2G j] = rows[ip K + k, j]
    column_ue = np.repeat(np.arange(K), width)  # j of each column of Z
    off_diagonal = (column_ue[None, :] != np.arange(K)[:, None]).astype(float)
    w = (t - noise) / factor
    stacked = cp.hstack([2 * cp.multiply(Z, off_diagonal), cp.reshape(w - 1, (K, 1), order="F")])
    return cp.SOC(w + 1, stacked, axis=1)


def _budget_cone(X, select: np.ndarray):
    """Every BS's ``||[Re V_t; Im V_t]||_F <= 1`` as one vectorised cone (rows padded)."""
    import cvxpy as cp

    T, N = select.shape
    K = X.shape[1]
    members = [np.flatnonzero(row) for row in select]
    width = 2 * K * max(len(idx) for idx in members)
    rows, cols = [], []
    for t, idx in enumerate(members):  # build time only: a constant selection matrix
        entries = (np.concatenate([idx, idx + N])[:, None] + 2 * N * np.arange(K)).ravel()
        rows.append(t + T * np.arange(entries.size))  # F order of the (T, width) matrix
        cols.append(entries)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    gather = sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(T * width, 2 * N * K))
    blocks = cp.reshape(gather @ cp.vec(X, order="F"), (T, width), order="F")
    return cp.SOC(np.ones(T), blocks, axis=1)


def _rate_constraints(r, s, par: dict, log_form: str, soc_squarings: int):
    """``r_k <= log2(1 + sigma_k s^_k)`` and the objective ``sum_k ln r_k``."""
    import cvxpy as cp

    x = math.log(2.0) * r - par["log_sigma"]  # ln2 r - ln sigma <= ln(s^ + 1/sigma)
    if log_form == "exp_cone":
        return [x <= cp.log(s + par["inv_sigma"])], cp.sum(cp.log(r))
    q = cp.Variable(r.shape[0], name="log_r")  # q_k <= ln r_k, the same approximation
    constraints = soc_exp_constraints(
        cp.hstack([x, q]), cp.hstack([s + par["inv_sigma"], r]), soc_squarings
    )
    return constraints, cp.sum(q)


def build_subproblems(
    K: int,
    select: np.ndarray,
    *,
    interference: str = "exact",
    log_form: str = "exp_cone",
    soc_squarings: int = 6,
) -> SubproblemModel:
    """The two DPP problems for K UEs and the coordinate-to-BS map ``select: (T, N)``.

    The scaled gains ``Y_i = [P_i; P_i J] X_i`` are auxiliary variables (one equality per
    group; ``P_i = [Re g^, Im g^]`` is the only channel parameter and ``J`` the constant that
    turns it into the imaginary rows), and every cone is one vectorised constraint: both keep
    CVXPY's one-off DPP compilation short (its cost grows with variables x parameters x cone
    constraints).
    """
    import cvxpy as cp

    T, N = select.shape
    jensen = interference == "jensen"
    groups = [np.flatnonzero(row) for row in select] if jensen else [np.arange(N)]
    par = _scalar_params(K)
    X = cp.Variable((2 * N, K), name="v")
    s = cp.Variable(K, name="s_hat")
    t = cp.Variable(K, name="t_hat")
    common, Y = [], []
    for i, idx in enumerate(groups):  # build time only: T groups at most
        n = len(idx)
        P = par[f"g_int_{i}"] = cp.Parameter((K, 2 * n), name=f"g_int_{i}")
        J = np.block([[np.zeros((n, n)), np.eye(n)], [-np.eye(n), np.zeros((n, n))]])
        X_i = X[np.concatenate([idx, idx + N])]
        Y.append(cp.Variable((2 * K, K), name=f"y_{i}"))
        common.append(Y[i] == cp.vstack([P @ X_i, (P @ J) @ X_i]))
    re_y = sum(cp.diag(y[:K]) for y in Y)  # Re(g^_k^H v_k), g^ = g / sqrt(t^n)
    im_y = sum(cp.diag(y[K:]) for y in Y)
    desired = cp.multiply(par["c_re"], re_y) - cp.multiply(par["c_im"], im_y)  # Re(a / a^n)
    common += [
        s <= 2 * desired - t,
        _interference_cone(Y, t, par["noise"], float(T if jensen else 1)),
        _budget_cone(X, select),
    ]
    r = cp.Variable(K, name="r")
    rate, objective = _rate_constraints(r, s, par, log_form, soc_squarings)
    main = cp.Problem(cp.Maximize(objective), [*common, s >= par["gamma"], *rate])
    eta = cp.Variable(name="eta")
    phase1_constraints = [*common, cp.multiply(par["ratio"], s) >= eta, eta <= _PHASE1_CAP]
    phase1 = cp.Problem(cp.Maximize(eta), phase1_constraints)
    return SubproblemModel(main, phase1, par, groups, {"X": X, "s": s, "t": t, "r": r})


@dataclass
class _Run:
    st: StackedChannels
    model: SubproblemModel
    solver: str
    interference: str
    gamma_min: float
    options: dict = field(default_factory=dict)
    statuses: list = field(default_factory=list)
    phase1_statuses: list = field(default_factory=list)
    solve_time_s: float = 0.0


def _linearise(run: _Run, V: torch.Tensor) -> dict[str, np.ndarray]:
    """Parameter values at the point ``V: (B, K, N)`` (module docstring): (B, ...) arrays."""
    st = run.st
    a, t, sinr = model_sinr(st, V, run.interference)
    sigma = sinr.clamp_min(_SIGMA_FLOOR)
    phase = torch.where(a.abs() > 0, a / a.abs().clamp_min(1e-300), 1.0)
    a_eff = (sigma * t).sqrt() * phase  # = a^n unless the UE had no signal
    c = t.sqrt() / a_eff  # Re(a / a^n) = Re(c (g / sqrt(t^n))^H v)
    scaled = st.G / t.sqrt()[..., None]
    ratio = (sigma / max(run.gamma_min, 1e-300)).clamp_max(_RATIO_CAP)
    values = {
        "c_re": c.real,
        "c_im": c.imag,
        "noise": 1.0 / t,
        "gamma": run.gamma_min / sigma,
        "inv_sigma": 1.0 / sigma,
        "log_sigma": sigma.log(),
        "ratio": ratio if run.gamma_min > 0 else torch.zeros_like(sigma),
        "t_scale": t,
        "sigma": sigma,
    }
    for i, idx in enumerate(run.model.groups):  # rows [Re g^, Im g^] give Re(g^_k^H v)
        part = scaled[:, :, torch.as_tensor(idx)]
        values[f"g_int_{i}"] = torch.cat([part.real, part.imag], -1)
    return {name: value.cpu().numpy() for name, value in values.items()}


def _solve_one(run: _Run, problem, lin: dict, b: int):
    """Solve ``problem`` at instance b's parameters: (V (K, N) complex, s, t, r) or None."""
    import cvxpy as cp

    for name, param in run.model.params.items():
        param.value = lin[name][b]
    start = time.perf_counter()
    try:
        problem.solve(solver=run.solver, **run.options)
        status = str(problem.status)
    except cp.error.SolverError as exc:
        status = f"solver_error: {exc}".splitlines()[0]
    run.solve_time_s += time.perf_counter() - start
    var = run.model.var
    X = var["X"].value
    if status not in _OK or X is None or not np.all(np.isfinite(X)):
        return status, None
    N = X.shape[0] // 2
    s = var["s"].value * lin["sigma"][b]
    r = var["r"].value if problem is run.model.main else np.zeros_like(s)
    return status, ((X[:N] + 1j * X[N:]).T, s, var["t"].value * lin["t_scale"][b], r)


def _solve_batch(run: _Run, which: str, V: torch.Tensor, active: torch.Tensor):
    """Solve the ``which`` subproblem for every active instance at the point V.

    Returns the candidate V (old V where not solved), the (B, 3, K) slacks s, t, r and a (B,)
    bool "solved" mask.
    """
    lin = _linearise(run, V)
    problem = run.model.main if which == "main" else run.model.phase1
    log = run.statuses if which == "main" else run.phase1_statuses
    V_new = V.clone()
    slacks = torch.full((V.shape[0], 3, V.shape[1]), torch.nan, dtype=torch.float64)
    solved = torch.zeros(V.shape[0], dtype=torch.bool)
    for b in torch.nonzero(active).flatten().tolist():  # the one loop: CVXPY solves
        status, solution = _solve_one(run, problem, lin, b)
        log[b].append(status)
        if solution is not None:
            V_new[b] = torch.as_tensor(solution[0], dtype=V.dtype)
            slacks[b] = torch.as_tensor(np.stack(solution[1:]), dtype=torch.float64)
            solved[b] = True
    return project_power(V_new, run.st.select), slacks, solved


def _model_pf(run: _Run, V: torch.Tensor) -> torch.Tensor:
    return pf_of_sinr(model_sinr(run.st, V, run.interference)[2])


def _min_ratio(run: _Run, V: torch.Tensor) -> torch.Tensor:
    return model_sinr(run.st, V, run.interference)[2].min(-1).values / run.gamma_min


def _phase1(run: _Run, V: torch.Tensor, max_iter: int, tol: float, bar):
    """Max-min SCA until ``min_k SINR_k / gamma_min >= 1`` (only where V misses it).

    Returns V, the (B,) bool "phase 1 failed", (B,) iterations and the (B, I) ratio trace.
    """
    B = V.shape[0]
    iterations = torch.zeros(B, dtype=torch.long)
    trace: list[torch.Tensor] = []
    if run.gamma_min <= 0:
        return V, torch.zeros(B, dtype=torch.bool), iterations, trace
    ratio = _min_ratio(run, V)
    active = ratio < 1.0
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        V_new, _, solved = _solve_batch(run, "phase1", V, active)
        ratio_new = _min_ratio(run, V_new)
        accept = solved & active & (ratio_new >= ratio * (1 - _ACCEPT_RTOL))
        V = torch.where(accept[:, None, None], V_new, V)
        iterations += active.long()
        trace.append(torch.where(active, ratio_new, torch.nan))
        stalled = ratio_new - ratio <= tol * ratio.abs().clamp_min(1e-12)
        active &= accept & (ratio_new < 1.0) & ~stalled
        ratio = torch.where(accept, ratio_new, ratio)
        bar.update(1)
    return V, ratio < 1.0, iterations, trace


@dataclass
class _MainOutcome:
    V: torch.Tensor
    trace: list
    model_trace: list
    iterations: torch.Tensor
    converged: torch.Tensor
    rejected: torch.Tensor
    slacks: torch.Tensor


def _main_phase(run: _Run, V: torch.Tensor, active: torch.Tensor, max_iter: int, tol, bar):
    """PF SCA from feasible points (``active``); stops on ``tol`` or a failed/worse step."""
    B, K = V.shape[:2]
    no = torch.zeros(B, dtype=torch.bool)
    nan = torch.full((B, 3, K), torch.nan, dtype=torch.float64)
    out = _MainOutcome(V, [], [], torch.zeros(B, dtype=torch.long), no, no.clone(), nan)
    f = _model_pf(run, V)
    active = active.clone()
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        V_new, slacks, solved = _solve_batch(run, "main", out.V, active)
        f_new = _model_pf(run, V_new)
        scale = f.abs().clamp_min(1.0)
        accept = solved & active & (f_new >= f - _ACCEPT_RTOL * scale)
        out.V = torch.where(accept[:, None, None], V_new, out.V)
        out.slacks = torch.where(accept[:, None, None], slacks, out.slacks)
        out.iterations += active.long()
        out.model_trace.append(torch.where(active & solved, f_new, torch.nan))
        out.trace.append(torch.where(active, pf_of_sinr(model_sinr(run.st, out.V)[2]), torch.nan))
        done = solved & (f_new - f <= tol * scale)
        out.converged |= active & done
        out.rejected |= active & ~accept
        active &= accept & ~done
        f = torch.where(accept, f_new, f)
        bar.update(1)
    return out


def _check_solver(solver: str) -> str:
    import cvxpy as cp

    installed = [name for name in cp.installed_solvers() if name in _CONIC]
    name = solver.upper() if isinstance(solver, str) else solver
    if name not in installed:
        raise ConfigError(
            f"solver must be an installed conic solver, got {solver!r}; installed: {installed}"
        )
    return name


def _check_arguments(max_iter, tol, interference, log_form, soc_squarings) -> None:
    positive_int(max_iter, "max_iter")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < 1:
        raise ConfigError(f"tol must be a number in [0, 1), got {tol!r}")
    if interference not in INTERFERENCE_MODELS:
        raise ConfigError(
            f"interference must be one of {INTERFERENCE_MODELS}, got {interference!r}"
        )
    if log_form not in LOG_FORMS:
        raise ConfigError(f"log_form must be one of {LOG_FORMS}, got {log_form!r}")
    if positive_int(soc_squarings, "soc_squarings") > 30:
        raise ConfigError(f"soc_squarings must be <= 30, got {soc_squarings}")


def _instance_messages(out: _MainOutcome, failed, infeasible, run: _Run) -> list[str]:
    messages = []
    for b in range(len(failed)):  # strings for the user, after the solve
        if bool(infeasible[b]):
            messages.append("infeasible: phase 1 found no beams with SINR >= gamma_min")
        elif bool(failed[b]):
            messages.append("phase 1 stalled under the Jensen bound; its beams meet gamma_min")
        elif bool(out.converged[b]):
            messages.append("converged")
        elif bool(out.rejected[b]):
            last = run.statuses[b][-1] if run.statuses[b] else "?"
            messages.append(f"stopped: step not accepted (solver status {last})")
        else:
            messages.append("iteration cap reached")
    return messages


def _stack_trace(trace: list, B: int) -> torch.Tensor:  # (B, I), I = 0 without steps
    return torch.stack(trace, 1) if trace else torch.empty(B, 0, dtype=torch.float64)


def sca_centralized(
    problem: CellFreeProblem,
    *,
    max_iter: int = 30,
    tol: float = 1e-4,
    interference: str = "exact",
    log_form: str = "exp_cone",
    solver: str = "CLARABEL",
    W0: torch.Tensor | None = None,
    progress: bool = False,
    soc_squarings: int = 6,
    solver_options: dict | None = None,
) -> CellFreeResult:
    """Seed 003's centralized PF beamforming by SCA (module docstring), per instance.

    Args:
        problem: B instances, channels ``H: (B, K, T, M_max)``, budgets ``p_max: (T,)``.
        max_iter: SCA steps at most, per phase (>= 1).
        tol: stop when the PF objective's relative improvement
            ``(f_i - f_{i-1}) / max(|f_{i-1}|, 1)`` is below it.
        interference: ``"exact"`` (default) or ``"jensen"`` (the per-BS bound, note step 3).
        log_form: ``"exp_cone"`` (native) or ``"soc"`` (seed eq. (16a), module docstring).
        solver: an installed CVXPY conic solver (``"CLARABEL"``; ``"MOSEK"`` if installed).
        W0: (B, T, K, M_max) complex initial beams (their part in each BS's channel span,
            scaled into the budgets); coherent MRT with ``P_t / K`` per UE when omitted.
        progress: show a progress bar over SCA steps.
        soc_squarings: n of the SOC approximation (``log_form="soc"`` only; choice: 6).
        solver_options: keyword arguments for ``cvxpy.Problem.solve``; Clarabel defaults to
            ``{"max_threads": 1}`` (these programs are small; measured 3-4x faster than its
            default threading on a busy 2-core machine).

    Returns:
        :class:`CellFreeResult`, solver ``"sca-<solver>"``. ``objective_trace`` (B, I): the
        true PF objective after each SCA step; ``traces["model_objective"]`` (B, I): the PF
        objective of each step's solution under the interference model (NaN where the solve
        failed); ``traces["phase1_min_ratio"]``: ``min_k SINR_k / gamma_min`` per phase-1 step.
        ``info``: ``statuses`` / ``phase1_statuses`` (per instance, per solve),
        ``phase1_iterations`` (B,), ``initial_objective`` (B,), ``s``, ``t``, ``r`` (B, K) the
        slacks of the last accepted step (unscaled; for instances without one, the model values
        at the returned beams), ``messages`` (per instance), ``solve_time_s`` (with CVXPY's
        one-off compilation in the first solve), ``build_time_s``.
    """
    _check_arguments(max_iter, tol, interference, log_form, soc_squarings)
    solver_name = _check_solver(solver)
    _check_model_memory_once(*problem.H.shape[1:])
    start = time.perf_counter()
    st = stack_channels(_on_cpu(problem))  # the conic solver runs on the CPU
    B, K = problem.shape[:2]
    if W0 is None:
        V = coherent_mrt(st)
    else:
        problem.check_beamformers(W0)
        V = project_power(stacked_beamformers(_on_cpu(problem), st, W0.cpu()), st.select)
    initial = pf_of_sinr(model_sinr(st, V)[2])
    model = build_subproblems(
        K,
        st.select.cpu().numpy(),
        interference=interference,
        log_form=log_form,
        soc_squarings=soc_squarings,
    )
    build_time = time.perf_counter() - start
    options = dict(_DEFAULT_OPTIONS.get(solver_name, {}), **(solver_options or {}))
    run = _Run(st, model, solver_name, interference, float(problem.gamma_min), options)
    run.statuses = [[] for _ in range(B)]
    run.phase1_statuses = [[] for _ in range(B)]
    from tqdm.auto import tqdm

    bar = tqdm(total=2 * max_iter, desc="sca", disable=not progress)
    V, failed, phase1_iterations, phase1_trace = _phase1(run, V, max_iter, tol, bar)
    out = _main_phase(run, V, ~failed, max_iter, tol, bar)
    bar.close()
    return _result(
        problem, run, out, failed, start, build_time, initial, phase1_iterations, phase1_trace
    )


def _on_cpu(problem: CellFreeProblem) -> CellFreeProblem:
    if problem.H.device.type == "cpu":
        return problem
    return CellFreeProblem(
        problem.H.cpu(), problem.antenna_mask.cpu(), problem.p_max.cpu(), problem.gamma_min
    )


def _result(problem, run, out, failed, start, build_time, initial, phase1_iterations, phase1_trace):
    B = problem.shape[0]
    W = unstack_beamformers(_on_cpu(problem), run.st, out.V).to(problem.H.device)
    evaluation = problem.evaluate(W)
    _, t, sinr = model_sinr(run.st, out.V, run.interference)
    model_slacks = torch.stack([sinr, t, torch.log2(1.0 + sinr)], 1)
    slacks = torch.where(torch.isfinite(out.slacks), out.slacks, model_slacks)
    infeasible = failed & ~evaluation.meets_gamma_min().all(-1).cpu()
    return CellFreeResult(
        W=W,
        evaluation=evaluation,
        objective_trace=_stack_trace(out.trace, B).to(problem.p_max.dtype),
        iterations=out.iterations,
        converged=out.converged,
        infeasible=infeasible,
        wall_time_s=time.perf_counter() - start,
        solver=f"sca-{run.solver.lower()}",
        traces={
            "model_objective": _stack_trace(out.model_trace, B),
            "phase1_min_ratio": _stack_trace(phase1_trace, B),
        },
        info={
            "statuses": run.statuses,
            "phase1_statuses": run.phase1_statuses,
            "phase1_iterations": phase1_iterations,
            "initial_objective": initial,
            "s": slacks[:, 0],
            "t": slacks[:, 1],
            "r": slacks[:, 2],
            "messages": _instance_messages(out, failed, infeasible, run),
            "solve_time_s": run.solve_time_s,
            "build_time_s": build_time,
        },
    )
