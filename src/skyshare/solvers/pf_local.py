"""PFBWD ADMM block 2: the per-BS convex subproblem (seed 003 §IV-B2), two solvers.

Every BS t solves, with only its own channels, the projection of the coordinator's targets onto
its local set (normalised units, see :mod:`skyshare.solvers.pfbwd`)::

    minimize_{v, iota}  sum_k |g_k^H v_k - c_k|^2 + sum_k (iota_k - d_k)^2
    s.t.                sum_{j != k} |g_k^H v_j|^2 <= s_k iota_k        for all k   (interference)
                        sum_k ||v_k||^2 <= 1                                        (power)

``g_k = sqrt(P_t) h_{t,k} / U_k`` is BS t's channel to UE k scaled by its budget and by the
UE's amplitude unit ``U_k``, ``v_k = w_{t,k} / sqrt(P_t)`` (the budget is the unit ball),
``u_k = g_k^H v_k = h_{t,k}^H w_{t,k} / U_k`` and ``iota_k`` is the interference bound in
multiples of the UE's unit ``I_k`` (noise = 1): with ``s_k = I_k / U_k^2`` (``iota_scale``) the
constraint is ``sum_{j != k} |h_{t,k}^H w_{t,j}|^2 <= I_k iota_k``. The targets ``(c, d)`` are
the coordinator's ``ubar - z - y/rho`` (3K real scalars); the answer ``(u, iota)`` is 3K real
scalars: nothing else leaves the BS.

Reduced form. Objective and constraints see v only through ``g_k^H v_j`` and ``||v_j||``, so an
optimal v_j lies in span(g_1..g_K) (its component outside only adds power). With the thin QR
``[g_1 .. g_K] = Q R`` (Q: M x r orthonormal, R: r x K, r = min(M, K)), ``v_j = Q q_j`` gives
``g_k^H v_j = l_k^H q_j`` (``l_k = R[:, k]``) and ``||v_j|| = ||q_j||``: the same problem with r
"antennas". A 64-antenna HAPS and a 16-antenna MBS both become K x K problems that batch
together over (realizations x BSs).

Fast solver (:func:`local_step`): projected Newton on the Lagrange dual. With multipliers
``mu_k >= 0`` (interference, g units) and ``nu >= 0`` (power) the Lagrangian separates::

    iota_k(mu) = d_k + s_k mu_k / 2
    q_j(mu, nu) = M_j^{-1} l_j c_j,   M_j = l_j l_j^H + sum_{k != j} mu_k l_k l_k^H + (nu + eps) I
    g(mu, nu)  = sum_j |c_j|^2 (1 - l_j^H M_j^{-1} l_j) - sum_k (s_k^2 mu_k^2/4 + s_k mu_k d_k) - nu

g is concave. Its gradient is ``(I_k(q) - s_k iota_k(mu), ||q||^2 - 1)`` and its Hessian follows
from ``d q_j / d mu_m = -M_j^{-1} l_m l_m^H q_j`` and ``d q_j / d nu = -M_j^{-1} q_j``: a
(K+1) x (K+1) system per problem (Jacobi-equilibrated, since mu spans many decades), solved on
the variables off their bounds (active set), with an Armijo search on g along the projection
arc. It stops on the Newton decrement (``g* - g ~ decrement / 2``, invariant to the units of mu).
``eps`` (default 1e-12) keeps every M_j positive definite when the power constraint is slack and
some mu_k = 0: ``eps max(1, max diag M_j) I`` is added to M_j (relative, as mu spans many decades),
i.e. a Tikhonov term of at least ``eps ||v||^2`` in the objective. A trial point whose
factorisation fails numerically counts as ``g = -inf`` (the line search backs off).
The primal answer is then made exactly feasible (q scaled into the unit ball,
``iota = max(d + s mu / 2, I(q) / s)``). Multipliers warm-start the next ADMM round.

Reference solver (:func:`local_step_cvxpy`): the same problem on the full (unreduced) channel in
CVXPY with DPP parameters (one compiled problem per size), solved by Clarabel; used by the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = [
    "LocalChannel",
    "LocalStepResult",
    "local_objective",
    "local_step",
    "local_step_cvxpy",
    "reduce_channel",
    "slack_step",
]

_ARMIJO = 1e-4


@dataclass(frozen=True)
class LocalChannel:
    """A BS's scaled channels in reduced form (module docstring).

    Attributes:
        basis: (N, M, r) complex, orthonormal columns Q (``v_j = Q q_j``); None for problems
            given directly in reduced form (then only q is returned).
        gains: (N, r, K) complex, R: column k is the reduced channel ``l_k``.
        iota_scale: (N, K) float > 0, ``s_k``: the interference constraint is
            ``sum_{j != k} |l_k^H q_j|^2 <= s_k iota_k``.
    """

    basis: torch.Tensor | None
    gains: torch.Tensor
    iota_scale: torch.Tensor

    @property
    def rank(self) -> int:
        """r, the reduced dimension."""
        return int(self.gains.shape[-2])

    def padded(self, r: int) -> LocalChannel:
        """The reduced problem with its dimension zero-padded to ``r`` (basis dropped). Exact: a
        padded direction meets no channel, so its optimal component is zero."""
        N, r0, K = self.gains.shape
        if r < r0:
            raise ShapeError(f"cannot pad the reduced dimension {r0} down to {r}")
        gains = torch.cat([self.gains, self.gains.new_zeros(N, r - r0, K)], -2)
        return LocalChannel(None, gains, self.iota_scale)

    def index(self, rows: torch.Tensor | slice) -> LocalChannel:
        """The problems selected on the first axis."""
        basis = None if self.basis is None else self.basis[rows]
        return LocalChannel(basis, self.gains[rows], self.iota_scale[rows])

    def beamformers(self, q: torch.Tensor) -> torch.Tensor:
        """Full beamformers ``v_j = Q q_j``: q (N, K, r) -> (N, K, M) complex."""
        if self.basis is None:
            raise ShapeError("this LocalChannel has no basis (reduced form only)")
        return torch.einsum("nmr,njr->njm", self.basis, q[..., : self.rank])


@dataclass
class LocalStepResult:
    """Solution of N block-2 subproblems.

    Attributes:
        q: (N, K, r) complex reduced beamformers. V: (N, K, M) complex beamformers ``v_k`` in
            row k (None when the channel came without a basis).
        u: (N, K) complex ``g_k^H v_k``. iota: (N, K) real interference bounds (noise units).
        objective: (N,) ``sum |u - c|^2 + sum (iota - d)^2``.
        mu: (N, K) interference multipliers (g units). nu: (N,) power multiplier.
        iterations: (N,) Newton iterations (0 for CVXPY). converged: (N,) bool.
    """

    q: torch.Tensor | None
    V: torch.Tensor | None
    u: torch.Tensor
    iota: torch.Tensor
    objective: torch.Tensor
    mu: torch.Tensor
    nu: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor


def reduce_channel(G: torch.Tensor, iota_scale: torch.Tensor | None = None) -> LocalChannel:
    """Thin QR of the channel rows (complex128): G (N, K, M) complex, row k = ``g_k``;
    iota_scale (N, K) > 0 (default 1) -> :class:`LocalChannel` with ``r = min(M, K)``."""
    if not torch.is_tensor(G) or not G.is_complex() or G.ndim != 3:
        raise ShapeError(f"G must be a complex (N, K, M) tensor, got {getattr(G, 'shape', G)}")
    N, K, _ = G.shape
    if iota_scale is None:
        iota_scale = torch.ones(N, K, dtype=torch.float64)
    if tuple(iota_scale.shape) != (N, K) or not bool((iota_scale > 0).all()):
        raise ShapeError(f"iota_scale must be a positive (N, K) = {(N, K)} tensor")
    basis, gains = torch.linalg.qr(G.to(torch.complex128).transpose(-2, -1))  # (N,M,r), (N,r,K)
    return LocalChannel(basis, gains, iota_scale.to(torch.float64))


def local_objective(
    u: torch.Tensor, iota: torch.Tensor, target_u: torch.Tensor, target_iota: torch.Tensor
) -> torch.Tensor:
    """``sum_k |u_k - c_k|^2 + sum_k (iota_k - d_k)^2``: (N, K) each -> (N,)."""
    return (u - target_u).abs().square().sum(-1) + (iota - target_iota).square().sum(-1)


def slack_step(
    lam: torch.Tensor, y: torch.Tensor, gap: torch.Tensor, beta: torch.Tensor, rho: torch.Tensor
) -> torch.Tensor:
    """ADMM block 3 in closed form: ``argmin_z <lam + y, z> + beta/2 |z|^2 + rho/2 |gap + z|^2``
    with ``gap = A x + B xbar`` (here ``u - ubar``, per real component):
    ``z = -(lam + y + rho gap) / (beta + rho)``. beta, rho broadcast against the rest."""
    return -(lam + y + rho * gap) / (beta + rho)


# ----------------------------------------------------------------------------------------------
# Fast solver: projected Newton on the dual
# ----------------------------------------------------------------------------------------------


@dataclass
class _Dual:
    """Dual function pieces at x = (mu, nu) for n problems."""

    value: torch.Tensor  # (n,)
    grad: torch.Tensor  # (n, K+1)
    q: torch.Tensor  # (n, K, r) primal minimiser of the Lagrangian
    hess: torch.Tensor | None = None  # (n, K+1, K+1), negative semidefinite

    def rows(self, index: torch.Tensor) -> _Dual:
        hess = None if self.hess is None else self.hess[index]
        return _Dual(self.value[index], self.grad[index], self.q[index], hess)

    def assign(self, index: torch.Tensor, other: _Dual) -> None:
        for name in ("value", "grad", "q", "hess"):
            getattr(self, name)[index] = getattr(other, name)


def _gram_solves(R: torch.Tensor, mu: torch.Tensor, nu: torch.Tensor, eps: float):
    """Cholesky factors of every M_j, ``Y_j = M_j^{-1} L``: (n, K, r, r), (n, K, r, K), and
    whether every factorisation succeeded (n,) (it can only fail numerically, at extreme x)."""
    n, r, K = R.shape
    weights = mu[:, None, :].expand(n, K, K).clone()  # row j: mu with entry j replaced by 1
    weights.diagonal(dim1=1, dim2=2).fill_(1.0)
    M = torch.einsum("nrk,njk,nsk->njrs", R, weights.to(R.dtype), R.conj())
    eye = torch.eye(r, dtype=R.dtype, device=R.device)
    size = M.diagonal(dim1=-2, dim2=-1).real.amax(-1).clamp_min(1.0)  # (n, K); padding-blind
    M = M + (nu[:, None] + eps * size)[..., None, None].to(R.dtype) * eye
    chol, info = torch.linalg.cholesky_ex(M)
    Y = torch.cholesky_solve(R[:, None].expand(n, K, r, K), chol)
    return chol, Y, (info == 0).all(-1)


def _own_columns(Y: torch.Tensor) -> torch.Tensor:
    """``M_j^{-1} l_j`` for every j: Y (n, K, r, K) -> (n, K, r)."""
    K = Y.shape[1]
    diag = torch.arange(K, device=Y.device)
    return Y[:, diag, :, diag].transpose(0, 1)


def _dual(R, s, c, d, x, eps: float, hessian: bool) -> _Dual:
    """Dual value, gradient (and Hessian) at x = (mu, nu): R (n, r, K), s, c, d (n, K)."""
    K = R.shape[-1]
    mu, nu = x[:, :K], x[:, K]
    chol, Y, ok = _gram_solves(R, mu, nu, eps)
    own = _own_columns(Y)  # (n, K, r)
    q = own * c[:, :, None]
    E = torch.einsum("nrk,njr->nkj", R.conj(), q)  # E[k, j] = l_k^H q_j
    off = E * (1.0 - torch.eye(K, dtype=R.real.dtype, device=R.device))
    interference = off.abs().square().sum(-1)  # (n, K), g units
    power = q.abs().square().sum((-2, -1))  # (n,)
    gain = torch.einsum("nrj,njr->nj", R.conj(), own).real  # l_j^H M_j^{-1} l_j
    sm = s * mu
    value = (c.abs().square() * (1.0 - gain)).sum(-1) - (sm.square() / 4 + sm * d).sum(-1) - nu
    value = torch.where(ok & torch.isfinite(value), value, torch.full_like(value, -math.inf))
    grad = torch.cat([interference - s * (d + sm / 2), (power - 1.0)[:, None]], -1)
    out = _Dual(value, grad, q)
    if hessian:
        out.hess = _dual_hessian(R, s, chol, Y, q, off)
    return out


def _dual_hessian(R, s, chol, Y, q, off) -> torch.Tensor:
    """(n, K+1, K+1) Hessian of the dual (module docstring)."""
    n, _, K = R.shape
    Z = torch.einsum("nrk,njrm->njkm", R.conj(), Y)  # Z[j, k, m] = l_k^H M_j^{-1} l_m
    Wq = torch.cholesky_solve(q[..., None], chol)[..., 0]  # (n, K, r): M_j^{-1} q_j
    F = torch.einsum("nrk,njr->nkj", R.conj(), Wq)  # F[k, j] = l_k^H M_j^{-1} q_j
    h_mm = -2 * torch.einsum("nkj,njkm,nmj->nkm", off.conj(), Z, off).real
    h_mm = h_mm - torch.diag_embed(s.square() / 2)
    h_mn = -2 * (off.conj() * F).sum(-1).real  # (n, K)
    h_nn = -2 * (q.conj() * Wq).sum((-2, -1)).real  # (n,)
    hess = h_mm.new_zeros(n, K + 1, K + 1)
    hess[:, :K, :K] = h_mm
    hess[:, :K, K] = h_mn
    hess[:, K, :K] = h_mn
    hess[:, K, K] = h_nn
    return hess


def _newton_direction(x: torch.Tensor, dual: _Dual) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascent direction (Newton on the free variables, zero on the active bounds) and the
    Newton decrement ``grad_F . d_F``."""
    grad, hess = dual.grad, dual.hess
    free = ~((x <= 0) & (grad <= 0))
    f = free.to(x.dtype)
    A = -hess * f[:, :, None] * f[:, None, :]
    m = x.shape[-1]
    eye = torch.eye(m, dtype=x.dtype, device=x.device)
    A = A + torch.diag_embed(1.0 - f)
    scale = A.diagonal(dim1=1, dim2=2).clamp_min(1e-300).rsqrt()  # Jacobi equilibration
    A = A * scale[:, :, None] * scale[:, None, :] + 1e-14 * eye
    rhs = grad * f * scale
    direction = torch.linalg.solve(A, rhs[..., None])[..., 0] * scale * f
    return direction, (grad * direction).sum(-1)


def _line_search(R, s, c, d, x, dual: _Dual, direction, eps, max_halvings=30):
    """Armijo search along the projection arc ``max(x + alpha d, 0)``; returns the new point and
    its dual (with Hessian). A step whose predicted gain is below the rounding of g is taken
    whole (Newton's quadratic phase; g could not tell it from noise)."""
    noise = 1e-12 * (1.0 + dual.value.abs())
    trial = (x + direction).clamp_min(0.0)
    new = _dual(R, s, c, d, trial, eps, hessian=True)
    gain = (dual.grad * (trial - x)).sum(-1)
    ok = (gain <= noise) | (new.value >= dual.value + _ARMIJO * gain - 0.1 * noise)
    pending = (~ok).nonzero().flatten()
    if pending.numel() == 0:
        return trial, new
    alpha = torch.full((pending.numel(),), 0.5, dtype=x.dtype)
    for _ in range(max_halvings):
        step = (x[pending] + alpha[:, None] * direction[pending]).clamp_min(0.0)
        rows = (R[pending], s[pending], c[pending], d[pending])
        value = _dual(*rows, step, eps, hessian=False).value
        gain = (dual.grad[pending] * (step - x[pending])).sum(-1)
        accepted = value >= dual.value[pending] + _ARMIJO * gain - 0.1 * noise[pending]
        trial[pending[accepted]] = step[accepted]
        pending, alpha = pending[~accepted], alpha[~accepted] * 0.5
        if pending.numel() == 0:
            break
    trial[pending] = x[pending]  # no ascent found: stay (the decrement test ends it)
    redo = (~ok).nonzero().flatten()
    new.assign(redo, _dual(R[redo], s[redo], c[redo], d[redo], trial[redo], eps, hessian=True))
    return trial, new


def _check_targets(N: int, K: int, target_u: torch.Tensor, target_iota: torch.Tensor):
    if not target_u.is_complex() or tuple(target_u.shape) != (N, K):
        raise ShapeError(f"target_u must be complex (N, K) = {(N, K)}, got {target_u.shape}")
    if target_iota.is_complex() or tuple(target_iota.shape) != (N, K):
        raise ShapeError(f"target_iota must be real (N, K) = {(N, K)}, got {target_iota.shape}")


def local_step(
    channel: LocalChannel | torch.Tensor,
    target_u: torch.Tensor,
    target_iota: torch.Tensor,
    *,
    mu0: torch.Tensor | None = None,
    nu0: torch.Tensor | None = None,
    tol: float = 1e-15,
    max_iter: int = 100,
    eps: float = 1e-12,
) -> LocalStepResult:
    """Solve N block-2 subproblems by projected Newton on the dual (module docstring).

    Args:
        channel: :class:`LocalChannel` (precomputed reduction) or the channel rows
            G (N, K, M) complex (reduced here, ``iota_scale = 1``).
        target_u: (N, K) complex targets c. target_iota: (N, K) real targets d.
        mu0: (N, K) >= 0 and nu0: (N,) >= 0 warm start (default: mu = 0, nu = 1).
        tol: stop a problem when its Newton decrement is below ``tol (1 + |g|)``.
        max_iter: Newton iterations at most. eps: Tikhonov floor of every M_j.

    Returns:
        :class:`LocalStepResult` (complex128 / float64).
    """
    if not isinstance(channel, LocalChannel):
        channel = reduce_channel(channel)
    R, s = channel.gains, channel.iota_scale
    N, _, K = R.shape
    _check_targets(N, K, target_u, target_iota)
    if max_iter < 1 or tol <= 0 or eps <= 0:
        raise ConfigError("local_step needs max_iter >= 1, tol > 0 and eps > 0")
    c, d = target_u.to(R.dtype), target_iota.to(torch.float64)
    mu = torch.zeros(N, K, dtype=d.dtype) if mu0 is None else mu0.to(d.dtype).clamp_min(0.0)
    nu = torch.ones(N, dtype=d.dtype) if nu0 is None else nu0.to(d.dtype).clamp_min(0.0)
    x = torch.cat([mu, nu[:, None]], -1)
    dual = _dual(R, s, c, d, x, eps, hessian=True)
    iterations = torch.zeros(N, dtype=torch.long)
    converged = torch.zeros(N, dtype=torch.bool)
    active = torch.arange(N)
    for _ in range(max_iter + 1):
        sub = dual.rows(active)
        step, decrement = _newton_direction(x[active], sub)
        done = decrement <= tol * (1.0 + sub.value.abs())
        converged[active[done]] = True
        keep = ~done
        active, step, sub = active[keep], step[keep], sub.rows(keep)
        if active.numel() == 0 or int(iterations.max()) >= max_iter:
            break
        rows = (R[active], s[active], c[active], d[active])
        x_new, new = _line_search(*rows, x[active], sub, step, eps)
        stalled = (x_new == x[active]).all(-1)  # no ascent found: stop there
        near = decrement[keep] <= 1e-9 * (1.0 + sub.value.abs())  # rounding, not failure
        converged[active[stalled & near]] = True
        x[active] = x_new
        dual.assign(active, new)
        iterations[active] += 1
        active = active[~stalled]
    return _primal(channel, c, d, x, dual, iterations, converged)


def _primal(channel: LocalChannel, c, d, x, dual: _Dual, iterations, converged) -> LocalStepResult:
    """Feasible primal point from the dual solution."""
    K = c.shape[-1]
    s = channel.iota_scale
    q = dual.q
    power = q.abs().square().sum((-2, -1))
    q = q / power.clamp_min(1.0).sqrt()[:, None, None].to(q.dtype)
    E = torch.einsum("nrk,njr->nkj", channel.gains.conj(), q)
    u = E.diagonal(dim1=1, dim2=2)
    off = E * (1.0 - torch.eye(K, dtype=d.dtype))
    iota = torch.maximum(d + s * x[:, :K] / 2, off.abs().square().sum(-1) / s)
    return LocalStepResult(
        q=q,
        V=None if channel.basis is None else channel.beamformers(q),
        u=u,
        iota=iota,
        objective=local_objective(u, iota, c, d),
        mu=x[:, :K].clone(),
        nu=x[:, K].clone(),
        iterations=iterations,
        converged=converged,
    )


# ----------------------------------------------------------------------------------------------
# Reference solver: CVXPY + Clarabel
# ----------------------------------------------------------------------------------------------

_CVXPY_CACHE: dict[tuple[int, int], tuple] = {}


def _cvxpy_problem(K: int, M: int):
    """One DPP-compiled block-2 problem per (K, M). The interference rows are divided by
    ``sqrt(s_k)`` (``Gi = conj(g) / sqrt(s)``) so that the constraint reads in iota units: with
    ``s_k`` ~ 1e-7 (UEs nulled to the noise floor) the unscaled rows fall below the solver's
    feasibility tolerance and come back violated many times over."""
    import cvxpy as cp
    import numpy as np

    if (K, M) in _CVXPY_CACHE:
        return _CVXPY_CACHE[(K, M)]
    Gc = cp.Parameter((K, M), complex=True)  # conj of the channel rows: E = conj(G) V^T
    Gi = cp.Parameter((K, M), complex=True)  # the same rows divided by sqrt(s_k)
    c_re, c_im, d = cp.Parameter(K), cp.Parameter(K), cp.Parameter(K)
    V = cp.Variable((K, M), complex=True)
    iota = cp.Variable(K)
    own = cp.diag(Gc @ V.T)  # g_k^H v_k
    off = cp.multiply(1.0 - np.eye(K), Gi @ V.T)  # g_k^H v_j / sqrt(s_k), j != k
    interference = cp.sum(cp.square(cp.real(off)) + cp.square(cp.imag(off)), axis=1)
    objective = (
        cp.sum_squares(cp.real(own) - c_re)
        + cp.sum_squares(cp.imag(own) - c_im)
        + cp.sum_squares(iota - d)
    )
    power = cp.sum(cp.square(cp.real(V)) + cp.square(cp.imag(V)))
    constraints = [interference <= iota, power <= 1.0]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    _CVXPY_CACHE[(K, M)] = (problem, (Gc, Gi, c_re, c_im, d), (V, iota), constraints)
    return _CVXPY_CACHE[(K, M)]


def local_step_cvxpy(
    G: torch.Tensor,
    target_u: torch.Tensor,
    target_iota: torch.Tensor,
    *,
    iota_scale: torch.Tensor | None = None,
    solver: str = "CLARABEL",
    **solver_options,
) -> LocalStepResult:
    """The block-2 subproblems solved one by one by CVXPY (the reference; slow).

    The interference multipliers are returned in the units of :func:`local_step` (g units).

    Args:
        G: (N, K, M) complex channel rows ``g_k`` (unreduced).
        target_u: (N, K) complex. target_iota: (N, K) real.
        iota_scale: (N, K) > 0, ``s_k`` (default 1).
        solver: CVXPY solver name (default Clarabel); ``solver_options`` go to ``solve``.

    Returns:
        :class:`LocalStepResult` with the solver's duals as mu and nu; ``converged`` is False
        (and the point the targets) where the solver did not report an optimum.
    """
    import cvxpy as cp
    import numpy as np

    if not torch.is_tensor(G) or not G.is_complex() or G.ndim != 3:
        raise ShapeError(f"G must be complex (N, K, M), got {getattr(G, 'shape', G)}")
    N, K, M = G.shape
    _check_targets(N, K, target_u, target_iota)
    scale = torch.ones(N, K) if iota_scale is None else iota_scale
    problem, (Gc, Gi, c_re, c_im, d), (V, iota), cons = _cvxpy_problem(K, M)
    Gn = G.detach().cpu().to(torch.complex128).numpy()
    tu = target_u.detach().cpu().to(torch.complex128).numpy()
    ti = target_iota.detach().cpu().to(torch.float64).numpy()
    sn = scale.detach().cpu().to(torch.float64).numpy()
    out: dict[str, list] = {name: [] for name in ("V", "iota", "mu", "nu", "ok")}
    for n in range(N):
        Gc.value, Gi.value = Gn[n].conj(), Gn[n].conj() / np.sqrt(sn[n])[:, None]
        c_re.value, c_im.value, d.value = tu[n].real, tu[n].imag, ti[n]
        problem.solve(solver=solver, **solver_options)
        ok = problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
        out["ok"].append(ok)
        out["V"].append(torch.as_tensor(V.value if ok else 0 * Gn[n]))
        out["iota"].append(torch.as_tensor(iota.value if ok else ti[n]))
        out["mu"].append(torch.as_tensor(cons[0].dual_value / sn[n] if ok else 0 * ti[n]))
        out["nu"].append(torch.as_tensor(float(cons[1].dual_value) if ok else 0.0))
    Vt = torch.stack(out["V"]).to(torch.complex128)
    iota_t = torch.stack(out["iota"]).to(torch.float64)
    u = torch.einsum("nkm,nkm->nk", G.to(torch.complex128).conj(), Vt)
    return LocalStepResult(
        q=None,
        V=Vt,
        u=u,
        iota=iota_t,
        objective=local_objective(u, iota_t, target_u.to(u.dtype), target_iota.to(iota_t.dtype)),
        mu=torch.stack(out["mu"]).to(torch.float64),
        nu=torch.stack(out["nu"]).to(torch.float64),
        iterations=torch.zeros(N, dtype=torch.long),
        converged=torch.tensor(out["ok"]),
    )
