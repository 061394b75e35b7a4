"""Proportional-fair WMMSE for cell-free coherent joint transmission with per-BS budgets (seed 003).

The PFBWD problem of :mod:`skyshare.solvers.cellfree_problem` (``docs/scenarios/vhetnet.md``,
"Received signal, SINR and PF objective") solved as a sequence of weighted-sum-rate problems by
WMMSE (Shi, Razaviyayn, Luo, He, "An iteratively weighted MMSE approach to distributed sum-utility
maximization for a MIMO interfering broadcast channel", IEEE TSP 59(9), 2011, Algorithm 1 with the
utility ``sum_k ln SE_k``: UE k's weight is the utility's derivative ``1 / SE_k`` at the current
point, updated every round, so a fixed point is a KKT point of the PF problem without gamma_min).

Layout and scaling (shared with :mod:`skyshare.solvers.pf_sca`): UE k's beam over all BSs is one
vector of N = sum_t min(M_t, K) coordinates, ``w_{t,k} = sqrt(P_t) Phi_t v_{t,k}`` with
``Phi_t`` an orthonormal basis of the span of BS t's channels (no optimum is lost: other
directions only spend power) and the channels ``g_{t,k} = Phi_t^H sqrt(P_t) h_{t,k}``, so
``g_k^H v_j = sum_t h_{t,k}^H w_{t,j}`` and every budget reads ``sum_k ||v_{t,k}||^2 <= 1``.
Shapes: ``G, V: (B, K, N)`` complex (row k = UE k), ``select: (T, N)`` coordinate-to-BS map.

One round (A_kj = g_k^H v_j, T_k = sum_j |A_kj|^2 + 1, noise = 1):

    alpha_k = 1 / SE_k                                  PF weights (normalised to mean 1)
    u_k     = A_kk / T_k                                MMSE receiver
    omega_k = T_k / (T_k - |A_kk|^2) = 1 + SINR_k       MSE weight
    v_k     = (C + eps I + Lambda)^{-1} (b_k + eps v_k^prev),   b_k = alpha_k omega_k u_k g_k,
              C = sum_i alpha_i omega_i |u_i|^2 g_i g_i^H,  Lambda = diag(mu_t on BS t's block)
    V       = the better of two power fills of V (:func:`fill_budgets`, never worse)

(eps: a 1e-8 proximal term, :func:`wmmse_round` says why.)

The per-BS multipliers mu (B, T) couple through C (joint transmission), so the w-step (a convex
QCQP with T budgets) is solved by its dual: a batched projected Newton method on
``psi_t(mu) = p_t(mu)^{-1/2} - 1`` (p_t: BS t's power; the More-Sorensen secular transform,
nearly linear in mu) with the Jacobian ``dp_t/dmu_s = -2 Re sum_{n in t, m in s}
[(C + Lambda)^{-1}]_{nm} [V V^H]_{mn}`` in closed form and mu_t = 0 where BS t's budget is
slack. Everything is batched over the B realizations, float64 inside.

Why the power fills (measured, not in Shi et al.): for fixed receivers the w-step only needs
the power that minimises the MSEs, so a BS whose budget is slack gains power additively per
round (SNR +2 per round from a low start: K = 1 from random beams stalled at 99 % of the
closed-form SE after 3000 rounds). Scaling all beams by one factor up to the first full budget
multiplies signal and interference alike and never lowers an SINR; scaling each BS to its full
budget, or first dropping the part of the beams that reaches no UE, is kept only where it raises
the PF objective. With them K = 1 reaches the closed form in 2 rounds.

Known limitation (measured on 1 HAPS 2x2 + 2 MBS 2x2, seeds 0-2, 8 drops each): at these SINRs
(30-70 dB) the rounds creep near a stationary point and a UE that starts starved recovers over
hundreds to thousands of rounds, so with the default 100 rounds the PF objective is below the
SCA solution by a median 0.05 %, at most 1.3 % for K = 3-4, but up to 16 % for K = 6 (one UE
still starved; 2000 rounds bring that drop within 1.2 %). SCA started from these beams climbs to
its own solution, so WMMSE's end point is not stationary.

``gamma_min`` is not part of the optimisation: ``infeasible`` flags the instances whose returned
beams miss ``SINR_k >= gamma_min`` (``evaluation.meets_gamma_min``), not a proof that none exists.

Per-instance stopping. The multiplier search stops per instance (one that meets ``_NEWTON_TOL``
is written out and leaves the search), and the rounds run on an active set (an instance that
converges writes out its best beams and multipliers and every per-instance tensor is
compacted); ``iterations`` (B,) holds each instance's rounds. Nothing couples the instances, so
each gets what it gets alone: bit-identical on the small drops of the tests; to float rounding
(~1e-10 relative in W, same round counts) on the paper network, where MKL's matrix kernels
round with the memory alignment of their operands. Three choices serve this: ``lstsq`` with
the gelsd driver on CPU (gelsy's rounding depends on alignment), ``p^{-3/2}`` as
``rsqrt(p) / p`` (pow's vectorised and scalar kernels round differently) and contiguous w-step
operands (a transposed operand takes another kernel at B = 1).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch

from skyshare.checks import positive_int
from skyshare.errors import ConfigError
from skyshare.solvers.cellfree_problem import CellFreeProblem, CellFreeResult
from skyshare.solvers.problem import ActiveSet

__all__ = [
    "StackedChannels",
    "coherent_mrt",
    "model_sinr",
    "pf_wmmse",
    "project_power",
    "stack_channels",
    "unstack_beamformers",
]

_NEWTON_MAX = 40  # projected-Newton steps per w-step (warm-started: usually 1-4)
_NEWTON_TOL = 1e-7  # |p_t - 1| on BSs whose budget is active (float64 limit: 1e-8)
_PROX = 1e-8  # proximal weight of the w-step, relative to the mean diagonal of C
_SE_FLOOR = 1e-6  # PF weight 1/SE floor on SE (bit/s/Hz)


# --------------------------------------------------------------------------------------------
# Stacked, budget-scaled layout (shared with the SCA solver)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackedChannels:
    """Channels of a :class:`CellFreeProblem` in the stacked, budget-scaled, reduced layout.

    Beams outside the span of a BS's own channels only spend its power, so BS t's beams are
    written ``w_{t,k} = sqrt(P_t) Phi_t c_{t,k}`` with ``Phi_t: (M_t, r_t)`` an orthonormal
    basis of ``span{h_{t,1..K}}``, ``r_t = min(M_t, K)`` (exact: no optimum is lost; the
    coordinates of all BSs are stacked, N = sum_t r_t). float64/complex128.

    Attributes:
        G: (B, K, N) complex, ``G[b, k] = [Phi_t^H sqrt(P_t) h_{t,k}]_t``, so that
            ``G[b, k]^H V[b, j] = sum_t h_{t,k}^H w_{t,j}``.
        select: (T, N) float, ``select[t, n] = 1`` if coordinate n belongs to BS t.
        basis: (B, T, M_max, R) complex, ``Phi_t`` zero-padded (R = min(M_max, K)).
        coords: (T, R) bool, the used columns of ``basis`` (``c < r_t``).
        sqrt_p: (T,) float, ``sqrt(P_t)``.
    """

    G: torch.Tensor
    select: torch.Tensor
    basis: torch.Tensor
    coords: torch.Tensor
    sqrt_p: torch.Tensor

    @property
    def n_tx(self) -> int:
        """T, transmitters."""
        return int(self.select.shape[0])


def stack_channels(problem: CellFreeProblem) -> StackedChannels:
    """The stacked layout of ``problem`` (bases by a batched SVD of each BS's channels)."""
    K, T = problem.shape[1:3]
    sqrt_p = problem.p_max.to(torch.float64).sqrt().to(problem.H.device)
    H = problem.H.to(torch.complex128) * problem.antenna_mask  # (B, K, T, M)
    U, S, _ = torch.linalg.svd(H.permute(0, 2, 3, 1), full_matrices=False)  # (B, T, M, R)
    R = U.shape[-1]
    ranks = problem.antenna_mask.sum(-1).clamp_max(K)  # r_t
    coords = torch.arange(R, device=H.device)[None, :] < ranks[:, None]  # (T, R)
    # a (degenerate) zero singular value: drop its column (a dead coordinate), so that every
    # kept column lies on the BS's real antennas
    alive = coords & (S > 1e-12 * S.amax(-1, keepdim=True).clamp_min(1e-300))
    basis = U * alive[:, :, None, :]
    G = torch.einsum("btmc,bktm->bktc", basis.conj(), H) * sqrt_p[:, None]
    bs_of_coord = torch.arange(T, device=H.device)[:, None].expand(T, R)[coords]
    select = torch.nn.functional.one_hot(bs_of_coord, T).T.to(torch.float64)
    return StackedChannels(G[:, :, coords], select, basis, coords, sqrt_p)


def unstack_beamformers(problem: CellFreeProblem, st: StackedChannels, V: torch.Tensor):
    """Kernel-layout beamformers ``W: (B, T, K, M_max)`` (problem dtype) from ``V: (B, K, N)``."""
    B, K, T, _ = problem.shape
    padded = V.new_zeros(B, K, T, st.coords.shape[-1])
    padded[:, :, st.coords] = V
    W = torch.einsum("btmc,bktc->btkm", st.basis, padded) * st.sqrt_p[:, None, None]
    return W.to(problem.H.dtype)


def stacked_beamformers(problem: CellFreeProblem, st: StackedChannels, W: torch.Tensor):
    """``V: (B, K, N)`` of kernel-layout beamformers ``W: (B, T, K, M_max)`` (the part of each
    BS's beams inside the span of its channels: the rest only spends power)."""
    problem.check_beamformers(W)
    W = W.to(torch.complex128) * problem.antenna_mask[:, None, :] / st.sqrt_p[:, None, None]
    return torch.einsum("btmc,btkm->bktc", st.basis.conj(), W)[:, :, st.coords]


def bs_power(V: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """Per-BS scaled power ``sum_k ||v_{t,k}||^2``: (B, T) from ``V: (B, K, N)``."""
    return (V.real.square() + V.imag.square()).sum(1) @ select.T


def project_power(V: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """Scale each BS's block of ``V: (B, K, N)`` down into its budget (``<= 1``)."""
    factor = bs_power(V, select).clamp_min(1.0).rsqrt()  # (B, T)
    return V * (factor @ select)[:, None, :]


def _common_fill(V: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    load = bs_power(V, select).amax(-1).clamp_min(1e-300)  # (B,)
    return V * load.rsqrt()[:, None, None]


def _each_fill(V: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    power = bs_power(V, select)
    return V * (torch.where(power > 0, power.clamp_min(1e-300).rsqrt(), 1.0) @ select)[:, None, :]


def _received_part(G: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Each beam projected on ``span{g_1..g_K}`` (the rest reaches no UE): (B, K, N)."""
    gram = torch.einsum("bin,bjn->bij", G.conj(), G)  # g_i^H g_j
    # gelsd (SVD) on CPU: MKL's default gelsy rounds differently with the memory alignment of
    # the matrix, so an instance's answer would depend on its position in the batch
    driver = "gelsd" if G.device.type == "cpu" else None
    coeff = torch.linalg.lstsq(gram, gains(G, V), driver=driver).solution  # (B, K, K)
    return torch.einsum("bik,bin->bkn", coeff, G)


def fill_budgets(st: StackedChannels, V: torch.Tensor) -> torch.Tensor:
    """The best (PF objective) of three power fills of ``V: (B, K, N)``, never worse than V.

    * common: all beams times one factor so that the most loaded BS is at its budget. Signal
      and interference powers scale by beta^2 while the noise stays, so
      ``SINR_k = beta^2 S_k / (beta^2 I_k + 1)`` never decreases for beta >= 1;
    * per BS: each BS's beams scaled to its full budget;
    * received part: beams without their component that reaches no UE (cross-BS cancelling
      power), then per BS to full budget.

    The last two may help or hurt and are kept only where they raise the PF objective. A KKT
    point of the PF problem has an active budget, so the common fill leaves it unchanged.
    """
    candidates = torch.stack(
        [
            _common_fill(V, st.select),
            _each_fill(V, st.select),
            _each_fill(_received_part(st.G, V), st.select),
        ],
        1,
    )  # (B, 3, K, N)
    B, C, K, N = candidates.shape
    A = gains(st.G.repeat_interleave(C, 0), candidates.reshape(B * C, K, N))
    power = A.real.square() + A.imag.square()
    sinr = torch.diagonal(power, dim1=1, dim2=2) / (_off_diagonal_sum(power) + 1.0)
    best = pf_of_sinr(sinr).reshape(B, C).argmax(-1)  # ties: the first (common) fill
    return candidates[torch.arange(B, device=V.device), best]


def coherent_mrt(st: StackedChannels) -> torch.Tensor:
    """MRT joint transmission, every BS giving ``P_t / K`` to each UE: ``V: (B, K, N)``.

    ``v_{t,k} = g_{t,k} / (sqrt(K) ||g_{t,k}||)``: the desired terms are real and positive and
    add coherently at UE k; each BS uses its whole budget.
    """
    G, select = st.G, st.select
    K = G.shape[1]
    norms = ((G.real.square() + G.imag.square()) @ select.T).sqrt()  # (B, K, T)
    inv = torch.where(norms > 0, 1.0 / norms.clamp_min(1e-300), 0.0)
    return G * (inv @ select) / math.sqrt(K)


def gains(G: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Effective gains ``A[b, k, j] = g_k^H v_j``: (B, K, K)."""
    return torch.einsum("bkn,bjn->bkj", G.conj(), V)


def per_bs_interference(G: torch.Tensor, V: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """``iota_{t,k} = sum_{j != k} |g_{t,k}^H v_{t,j}|^2``: (B, T, K) (seed 003 step 3)."""
    A_t = torch.einsum("bkn,bjn,tn->btkj", G.conj(), V, select.to(G.dtype))
    return _off_diagonal_sum(A_t.real.square() + A_t.imag.square())


def model_sinr(
    st: StackedChannels, V: torch.Tensor, interference: str = "exact"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Desired amplitude, interference-plus-noise and SINR of ``V`` under an interference model.

    ``"exact"``: ``t_k = sum_{j != k} |g_k^H v_j|^2 + 1``; ``"jensen"``: the per-BS bound
    ``t_k = T sum_t iota_{t,k} + 1 >= exact`` (seed 003 step 3,
    ``|sum_t x_t|^2 <= T sum_t |x_t|^2``).

    Returns:
        a: (B, K) complex ``g_k^H v_k``. t: (B, K) float ``t_k``. sinr: (B, K) ``|a_k|^2 / t_k``.
    """
    A = gains(st.G, V)
    a = torch.diagonal(A, dim1=1, dim2=2)
    signal = a.real.square() + a.imag.square()
    if interference == "jensen":
        t = st.n_tx * per_bs_interference(st.G, V, st.select).sum(1) + 1.0
    else:
        t = _off_diagonal_sum(A.real.square() + A.imag.square()) + 1.0
    return a, t, signal / t


def _off_diagonal_sum(power: torch.Tensor) -> torch.Tensor:
    """``sum_{j != k} power[..., k, j]``: summed directly, not as total minus signal."""
    K = power.shape[-1]
    off = ~torch.eye(K, dtype=torch.bool, device=power.device)
    return (power * off).sum(-1)


def pf_of_sinr(sinr: torch.Tensor) -> torch.Tensor:
    """``sum_k ln log2(1 + SINR_k)``: (B,) (SE floored at 1e-9 as the evaluation does)."""
    return torch.log2(1.0 + sinr).clamp_min(1e-9).log().sum(-1)


# --------------------------------------------------------------------------------------------
# The w-step: per-BS budgets through a batched projected Newton method on the dual
# --------------------------------------------------------------------------------------------


def _solve(C: torch.Tensor, Bm: torch.Tensor, mu_coord: torch.Tensor):
    """``(C + diag(mu_coord))^{-1} [Bm, I]`` by Cholesky: V (B, N, K) and the inverse (B, N, N)."""
    L = torch.linalg.cholesky(C + torch.diag_embed(mu_coord.to(C.dtype)))
    return torch.cholesky_solve(Bm, L), torch.cholesky_inverse(L)


def _power_jacobian(Minv: torch.Tensor, Vc: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """``J[b, t, s] = dp_t / dmu_s = -2 Re sum_{n in t, m in s} Minv_nm (Vc Vc^H)_mn``: (B, T, T).

    ``Vc: (B, N, K)`` are the beams as columns (``Vc = Minv Bm``).
    """
    Q = Vc @ Vc.conj().transpose(-2, -1)  # (B, N, N)
    X = (Minv * Q.transpose(-2, -1)).real
    return -2.0 * select @ X @ select.T


def solve_w_step(
    C: torch.Tensor, Bm: torch.Tensor, select: torch.Tensor, mu0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``min_V sum_k v_k^H C v_k - 2 Re(b_k^H v_k)`` s.t. ``sum_k ||v_{t,k}||^2 <= 1`` for all t.

    Each instance stops on its own: once its budgets hold to ``_NEWTON_TOL`` (or after
    ``_NEWTON_MAX`` steps) its beams and multipliers are written out and it leaves the batch,
    so an instance gets the same answer, to the bit, whatever else is in the batch.

    Args:
        C: (B, N, N) complex Hermitian positive definite.
        Bm: (B, N, K) complex, column k = b_k.
        select: (T, N) float 0/1 coordinate-to-BS map.
        mu0: (B, T) warm start of the per-BS multipliers (zeros when omitted).

    Returns:
        Vc: (B, N, K) complex optimal beams (columns), mu: (B, T) multipliers (>= 0; 0 where
        the budget is slack). Budgets hold to ``_NEWTON_TOL``.
    """
    B, T = C.shape[0], select.shape[0]
    mu = (select.new_zeros(B, T) if mu0 is None else mu0).clamp_min(0.0)
    eye = torch.eye(T, dtype=select.dtype, device=select.device)
    # contiguous, as the compacted rows will be: the kernels round with the memory layout
    C, Bm = C.contiguous(), Bm.contiguous()
    Vc_out, mu_out = None, mu  # written out as instances finish (mu_out copied on first write)
    index = None  # the rows of the unfinished instances (None: all of them)
    for _ in range(_NEWTON_MAX):
        Vc, Minv = _solve(C, Bm, mu @ select)
        p = ((Vc.real.square() + Vc.imag.square()).sum(-1) @ select.T).clamp_min(1e-300)
        free = ((mu > 0) | (p > 1.0)) & (p > 1e-12)
        done = ((p - 1.0).abs() <= _NEWTON_TOL).logical_or(~free).all(-1)  # (n,)
        if bool(done.all()):
            break
        # Newton on psi(mu) = p^{-1/2} - 1 over the free BSs; the others stay at mu = 0
        # p^{-3/2} as rsqrt / p (correctly rounded, as 1/sqrt and /): pow's vectorised and
        # scalar kernels round differently, so the value would depend on the batch position
        dpsi = -0.5 * (p.rsqrt() / p)[..., None] * _power_jacobian(Minv, Vc, select)
        both = free[..., :, None] & free[..., None, :]
        step_mu = torch.linalg.solve(
            torch.where(both, dpsi, eye), torch.where(free, 1.0 - p.rsqrt(), 0.0)
        )
        mu_next = torch.where(free, mu + step_mu, 0.0).clamp_min(0.0)
        if bool(done.any()):  # these stop here: write them out, compact the rest
            if Vc_out is None:
                Vc_out, mu_out = Bm.new_empty(Bm.shape), mu_out.clone()
                index = torch.arange(B, device=C.device)
            Vc_out[index[done]], mu_out[index[done]] = Vc[done], mu[done]
            keep = (~done).nonzero()[:, 0]
            index, C, Bm, Vc = index[keep], C[keep], Bm[keep], Vc[keep]
            mu = mu_next[keep]
        else:
            mu = mu_next
    # the last instances met the tolerance together, or ran _NEWTON_MAX steps (then, as
    # before, Vc is the last solve and mu one Newton step further: the next warm start)
    if Vc_out is None:
        return Vc, mu
    Vc_out[index], mu_out[index] = Vc, mu
    return Vc_out, mu_out


def wmmse_round(
    G: torch.Tensor,
    V: torch.Tensor,
    alpha: torch.Tensor,
    select: torch.Tensor,
    mu: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One WMMSE round for the weighted sum rate ``sum_k alpha_k log2(1 + SINR_k)``.

    The w-step carries a proximal term ``eps ||v - v_prev||^2`` (eps = 1e-8 of C's mean
    diagonal): C has rank K < N, so without it the minimiser is not unique where budgets are
    slack (power can move along directions that every UE's channel cancels) and a ridge
    towards 0 instead measurably starved the weak HAPS; with it the step is unique and stays
    a descent step of the WMMSE objective (so the weighted sum rate still never decreases).

    Args:
        G: (B, K, N) complex stacked scaled channels. V: (B, K, N) complex current beams.
        alpha: (B, K) > 0 weights. select: (T, N). mu: (B, T) multiplier warm start.

    Returns:
        V: (B, K, N) the new beams, mu: (B, T).
    """
    A = gains(G, V)
    gain_power = A.real.square() + A.imag.square()
    signal = torch.diagonal(gain_power, dim1=1, dim2=2)
    rest = _off_diagonal_sum(gain_power) + 1.0  # interference + noise
    total = signal + rest  # T_k
    u = torch.diagonal(A, dim1=1, dim2=2) / total  # MMSE receiver
    omega = total / rest  # 1 + SINR_k
    c = alpha * omega * (u.real.square() + u.imag.square())  # (B, K)
    C = torch.einsum("bk,bkn,bkm->bnm", c.to(G.dtype), G, G.conj())  # sum_k c_k g_k g_k^H
    eps = _PROX * torch.diagonal(C, dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-300)  # (B,)
    C = C + eps[:, None, None] * torch.eye(C.shape[-1], dtype=C.dtype, device=C.device)
    Bm = ((alpha * omega).to(G.dtype) * u)[:, :, None] * G + eps[:, None, None] * V
    Vc, mu = solve_w_step(C, Bm.transpose(1, 2), select, mu)  # Bm rows: (b_k + eps v_k)^T
    # contiguous: einsum on a transposed operand takes another (matrix-product) path at B = 1
    # than in a batch, and rounds differently
    return Vc.transpose(1, 2).contiguous(), mu


def _check_arguments(max_iter: int, tol: float) -> None:
    positive_int(max_iter, "max_iter")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < 1:
        raise ConfigError(f"tol must be a number in [0, 1), got {tol!r}")


def _initial(problem: CellFreeProblem, st: StackedChannels, W0: torch.Tensor | None):
    if W0 is None:
        return coherent_mrt(st)
    return project_power(stacked_beamformers(problem, st, W0), st.select)


def pf_wmmse(
    problem: CellFreeProblem,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    W0: torch.Tensor | None = None,
) -> CellFreeResult:
    """Proportional-fair WMMSE with per-BS budgets (module docstring), batched over instances.

    Args:
        problem: B instances of the PFBWD problem.
        max_iter: WMMSE rounds at most (>= 1).
        tol: stop an instance when the relative PF-objective change
            ``|f_i - f_{i-1}| / max(|f_{i-1}|, 1)`` falls below it.
        W0: (B, T, K, M_max) complex initial beams (scaled into the budgets); coherent MRT with
            ``P_t / K`` per UE when omitted.

    Returns:
        :class:`CellFreeResult` (solver ``"pf-wmmse"``): the iterate with the best PF objective
        of each instance, power-feasible; ``objective_trace`` (B, I) the PF objective after each
        round (NaN once stopped); ``infeasible`` = some ``SINR_k < gamma_min`` (not optimised);
        ``info["initial_objective"]`` (B,), ``info["mu"]`` (B, T) final multipliers (scaled).
    """
    _check_arguments(max_iter, tol)
    start = time.perf_counter()
    st = stack_channels(problem)
    B, T = problem.shape[0], st.n_tx
    V = _initial(problem, st, W0)
    sinr = model_sinr(st, V)[2]
    f = pf_of_sinr(sinr)
    initial = f.clone()
    # Active set: an instance that converges writes out its best beams, best objective and
    # multipliers and leaves the batch (every per-instance tensor is compacted), so a round
    # costs what the unconverged instances need. Nothing couples the instances (the w-step's
    # Newton search stops per instance too), so each gets what it gets alone.
    active = ActiveSet(max_iter, best_V=V, best_f=f, mu=st.select.new_zeros(B, T))
    act, best_V, best_f, mu = st, V.clone(), f.clone(), None
    trace = []
    for i in range(1, max_iter + 1):
        se = torch.log2(1.0 + sinr)  # the SINRs of V, computed at the end of the last round
        alpha = 1.0 / se.clamp_min(_SE_FLOOR)
        alpha = alpha / alpha.mean(-1, keepdim=True)
        V_new, mu = wmmse_round(act.G, V, alpha, act.select, mu)
        V = fill_budgets(act, V_new)
        sinr = model_sinr(act, V)[2]
        f_new = pf_of_sinr(sinr)
        row = f_new.new_full((B,), torch.nan)
        row[active.index] = f_new
        trace.append(row)
        better = f_new > best_f
        best_V = torch.where(better[:, None, None], V, best_V)
        best_f = torch.where(better, f_new, best_f)
        done = (f_new - f).abs() <= tol * f.abs().clamp_min(1.0)
        f = f_new
        if bool(done.any()):
            keep = active.retire(done, i, best_V=best_V, best_f=best_f, mu=mu)
            if keep.numel() == 0:
                break
            act = dataclasses.replace(act, G=act.G[keep], basis=act.basis[keep])
            V, mu, f, sinr, best_V, best_f = (x[keep] for x in (V, mu, f, sinr, best_V, best_f))
    active.close(best_V=best_V, best_f=best_f, mu=mu)  # these ran max_iter rounds
    best_V, best_f, mu = active.out["best_V"], active.out["best_f"], active.out["mu"]
    V = project_power(best_V, st.select)
    W = unstack_beamformers(problem, st, V)
    evaluation = problem.evaluate(W)
    return CellFreeResult(
        W=W,
        evaluation=evaluation,
        objective_trace=torch.stack(trace, 1).to(problem.p_max.dtype),
        iterations=active.iterations,
        converged=active.converged,
        infeasible=~evaluation.meets_gamma_min().all(-1),
        wall_time_s=time.perf_counter() - start,
        solver="pf-wmmse",
        traces={},
        info={"initial_objective": initial, "mu": mu, "best_objective": best_f},
    )
