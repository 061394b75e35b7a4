"""Action mapping of the CATN game: BS policy outputs (9) to beamformers (seed 000 §V-C-3).

A documented, configurable choice (the seed only says the policy outputs are sigmoid-normalised
to [0, 1] "before scaling to the actual action values"); for BS n and policy output ``x`` in
[0, 1], laid out as ``[q_total, q_0 .. q_{K-1}, alpha_0 .. alpha_{K-1}, eta, mu_0 .. mu_{L-1}]``
(length 2K + L + 2):

* ``q_total = max(x_0, q_total_min)`` in (0, 1];
* ``q_{n,k} = x_{1+k}`` over the BS's own users, normalised to sum to 1 (uniform if all zero);
* ``alpha_{n,k} = (1 + alpha_max)^{x} - 1`` in [0, alpha_max], likewise ``mu_{n,l}`` in
  [0, mu_max] (exponential scaling, 0 at x = 0);
* ``eta_n = eta_min (eta_max / eta_min)^{x}`` (log-uniform);
* ``D~_n = sum_i alpha_{n,i} h^_{n,i} h^_{n,i}^H + sum_l mu_{n,l} g^_{n,l} g^_{n,l}^H + eta_n I``
  with unit-norm directions ``h^ = h / ||h||`` (the weights absorb the channel strengths, a
  reparametrisation of the seed's D~_n that makes the action scale-free), then
  ``w~_k = D~^{-1} h / ||D~^{-1} h||`` and ``p_k = P_max q_total q_{n,k}``.

:class:`skyshare.envs.catn.CatnEnv` calls these functions with its configuration and state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from skyshare.envs.catn import CatnEnvConfig

__all__ = ["action_field", "action_parameters", "beamformers"]

GRAM_CHUNK = 64
"""Batch entries per chunk when building D~ (:func:`_weighted_gram`): the chunk's stacked
channels (~1.3 MB in complex64 on the paper network) stay in cache between the passes."""
GROUPED_SOLVE_MIN_USERS = 2048
"""From this many users (B K) on, :func:`_solve_own` solves each BS's users together instead of
gathering the LU factors per user (the crossover measured on the paper network, 1 thread)."""


def action_field(i: int, n_tu: int, n_au: int) -> str:
    """Name of entry ``i`` of a BS action (9) with K = ``n_tu`` users and L = ``n_au`` AUs."""
    K, L = n_tu, n_au
    if i == 0:
        return "q_total"
    if i <= K:
        return f"q_{i - 1}"
    if i <= 2 * K:
        return f"alpha_{i - 1 - K}"
    if i == 2 * K + 1:
        return "eta"
    return f"mu_{i - 2 - 2 * K}" if i < 2 * K + 2 + L else "?"


def action_parameters(
    actions: torch.Tensor, serving: torch.Tensor, config: CatnEnvConfig, *, n_bs: int, n_au: int
) -> dict[str, torch.Tensor]:
    """Map policy outputs (B, N, 2K+L+2) in [0, 1] to q_total, q, alpha, eta, mu.

    Args:
        actions: (B, N, 2K+L+2) policy outputs in [0, 1].
        serving: (B, K) long, serving BS of every TU.
        config: the env configuration (``q_total_min``, ``alpha_max``, ``eta_min``,
            ``eta_max``, ``mu_max``).
        n_bs, n_au: N and L.

    Returns:
        ``q_total (B, N)``, ``q (B, N, K)`` (zero outside the BS's own users), ``alpha (B, N, K)``,
        ``eta (B, N)`` and ``mu (B, N, L)``.
    """
    cfg, N, K, L = config, n_bs, serving.shape[-1], n_au
    owner = torch.nn.functional.one_hot(serving, N).transpose(1, 2)  # (B, N, K)
    owner = owner.to(actions.dtype)
    q_total = actions[..., 0].clamp_min(cfg.q_total_min)
    share = actions[..., 1 : K + 1] * owner
    total = share.sum(-1, keepdim=True)
    uniform = owner / owner.sum(-1, keepdim=True).clamp_min(1.0)
    q = torch.where(total > 0, share / total.clamp_min(1e-30), uniform)
    alpha = torch.pow(1.0 + cfg.alpha_max, actions[..., K + 1 : 2 * K + 1]) - 1.0
    eta = cfg.eta_min * (cfg.eta_max / cfg.eta_min) ** actions[..., 2 * K + 1]
    mu = torch.pow(1.0 + cfg.mu_max, actions[..., 2 * K + 2 : 2 * K + 2 + L]) - 1.0
    return {"q_total": q_total, "q": q, "alpha": alpha, "eta": eta, "mu": mu}


def beamformers(
    parameters: dict[str, torch.Tensor],
    H: torch.Tensor,
    G: torch.Tensor,
    serving: torch.Tensor,
    p_max: float,
    *,
    cdtype: torch.dtype,
    strength: torch.Tensor | None = None,
) -> torch.Tensor:
    """w_k = sqrt(p_k) D~^{-1} h / ||D~^{-1} h||: (B, K, M) complex.

    ``D~_n = sum_i alpha_{n,i} h^ h^^H + sum_l mu_{n,l} g^ g^^H + eta_n I`` is built as the
    product ``Y^T diag(c) Y^*`` of the stacked channels ``Y = [h_{n,1} .. h_{n,K}, g_{n,1} ..]``
    with ``c = [alpha / ||h||^2, mu / ||g||^2]`` (the unit directions without dividing the
    channels; :func:`_weighted_gram`), LU-factored once per BS and solved only for the BS's
    own users' channels (:func:`_solve_own`).

    Args:
        parameters: :func:`action_parameters` of the BS actions.
        H: (B, K, N, M) complex TU channels; G: (B, L, N, M) complex AU channels.
        serving: (B, K) long, serving BS of every TU.
        p_max: P_max of a BS in W.
        cdtype: complex dtype of the beamformers (that of ``H``).
        strength: (B, K, N) ||h_{n,k}||^2 when the caller has it.
    """
    par = parameters
    B, K = serving.shape
    N, M = H.shape[2], H.shape[-1]
    if strength is None:
        strength = torch.view_as_real(H).square().sum((-2, -1))
    norms = torch.cat([strength, torch.view_as_real(G).square().sum((-2, -1))], 1)
    tiny = torch.finfo(norms.dtype).tiny
    weights = torch.cat([par["alpha"], par["mu"]], -1) / norms.transpose(1, 2).clamp_min(tiny)
    D = _weighted_gram(H, G, weights)  # (B, N, M, M)
    D.diagonal(dim1=-2, dim2=-1).add_(par["eta"][..., None])
    # each user's system: its serving BS's D~ and its own channel h_{serving_k,k}
    system = (torch.arange(B, device=H.device)[:, None] * N + serving).flatten()  # (B K,)
    own = torch.arange(B * K, device=H.device) * N + serving.flatten()
    h_own = H.reshape(B * K * N, M).index_select(0, own)  # (B K, M)
    w_dir = _solve_own(D.view(B * N, M, M), system, h_own).view(B, K, M)
    norm_sq = torch.view_as_real(w_dir).square().sum((-2, -1))
    q_total = torch.gather(par["q_total"], 1, serving)  # (B, K)
    q = torch.gather(par["q"], 1, serving[:, None, :]).squeeze(1)  # (B, K)
    scale = torch.sqrt(p_max * q_total * q / norm_sq.clamp_min(tiny))
    return w_dir * scale[..., None]


def _weighted_gram(H: torch.Tensor, G: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Y^T diag(c) Y^*`` per BS: (B, N, M, M) complex, for ``H (B, K, N, M)``,
    ``G (B, L, N, M)`` and real weights ``c = weights (B, N, K + L)``.

    Per chunk of :data:`GRAM_CHUNK` batch entries (so that the operands stay in cache), the
    stacked channels ``Y (chunk, N, K + L, M)`` are written once from the channels' transposed
    views, ``c Y^*`` once from them (the product, then the conjugate in place), and one batched
    GEMM reads ``Y`` transposed and writes into the output; no operand is copied again (a
    conjugated operand would be: ``bmm`` resolves the conjugate bit)."""
    B, N, M = H.shape[0], H.shape[2], H.shape[-1]
    D = H.new_empty(B, N, M, M)
    for start in range(0, B, GRAM_CHUNK):
        rows = slice(start, start + GRAM_CHUNK)
        Y = torch.cat([H[rows].transpose(1, 2), G[rows].transpose(1, 2)], 2)
        weighted = torch.conj_physical_(Y * weights[rows, ..., None])  # c Y^*
        torch.matmul(Y.mT, weighted, out=D[rows])
    return D


def _solve_own(D: torch.Tensor, system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``D[system_u]^{-1} rhs_u`` for every right-hand side u: (U, M).

    Args:
        D: (S, M, M) Hermitian positive definite systems (one per BS and batch entry).
        system: (U,) long, the system of each right-hand side (a user's serving BS).
        rhs: (U, M) complex right-hand sides (a user's own channel).

    Each system is LU-factored once. From :data:`GROUPED_SOLVE_MIN_USERS` right-hand sides on,
    only the systems with users are factored, ordered by their number of users r, and the
    systems with the same r are solved as one batch with an (M, r) right-hand side: no factor
    is copied per user and no padding column is solved. Below it (small batches, where the
    per-call overhead of one ``lu_solve`` per r would dominate), the factors are gathered per
    user and solved in one call. With eta_min far below alpha_max or mu_max, D~ can be singular
    to working precision in complex64 (``info != 0``); the users of those systems (only) are
    solved again in complex128, where eta I keeps them invertible.
    """
    if system.numel() >= GROUPED_SOLVE_MIN_USERS:
        solution, order, info = _solve_grouped(D, system, rhs)
    else:
        LU, pivots, info = torch.linalg.lu_factor_ex(D)
        # the factors are column-major: gather them as rows of their transpose
        LU_own = LU.mT.index_select(0, system).mT
        solution = torch.linalg.lu_solve(LU_own, pivots.index_select(0, system), rhs[..., None])
        solution, order = solution[..., 0], None
    if bool(info.any()):
        singular = info != 0
        if order is not None:  # info of the ordered systems -> of every system
            singular = torch.zeros(D.shape[0], dtype=torch.bool, device=D.device)
            singular[order] = info != 0
        failed = singular[system]
        wide = torch.linalg.solve(
            D[system[failed]].to(torch.complex128), rhs[failed, :, None].to(torch.complex128)
        )
        solution[failed] = wide[..., 0].to(solution.dtype)
    return solution


def _solve_grouped(
    D: torch.Tensor, system: torch.Tensor, rhs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The grouped solve of :func:`_solve_own`: returns the solutions (U, M), the systems
    factored (S', long: those with users, by increasing number of users) and their LU
    ``info`` (S',)."""
    S, M = D.shape[0], D.shape[-1]
    load = torch.bincount(system, minlength=S)  # (S,) users of each system
    systems_by_load = torch.bincount(load).tolist()  # host: number of systems per load r
    # systems with users, by increasing load; their users in the same order, one run each
    order = torch.argsort(load, stable=True)[systems_by_load[0] :]
    user_order = torch.argsort(load[system] * S + system, stable=True)
    LU, pivots, info = torch.linalg.lu_factor_ex(D.index_select(0, order))
    ordered_rhs = rhs.index_select(0, user_order)
    X = torch.empty_like(ordered_rhs)  # solutions in user_order
    first_system = first_user = 0
    for r, count in enumerate(systems_by_load):
        if r == 0 or count == 0:
            continue
        systems = slice(first_system, first_system + count)
        users = slice(first_user, first_user + count * r)
        # (count, M, r): the r own channels of each system as columns
        columns = ordered_rhs[users].view(count, r, M).mT
        solved = torch.linalg.lu_solve(LU[systems], pivots[systems], columns)
        X[users] = solved.mT.reshape(count * r, M)
        first_system, first_user = first_system + count, first_user + count * r
    return torch.empty_like(X).index_copy_(0, user_order, X), order, info
