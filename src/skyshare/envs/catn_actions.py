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

    ``D~_n = sum_i alpha_{n,i} h^ h^^H + sum_l mu_{n,l} g^ g^^H + eta_n I`` is built as one
    product ``Y^T diag(c) Y^*`` of the stacked channels ``Y = [h_{n,1} .. h_{n,K}, g_{n,1} ..]``
    with ``c = [alpha / ||h||^2, mu / ||g||^2]`` (the unit directions without dividing the
    channels), LU-factored once per BS and solved only for each user's own channel.

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
    Y = torch.cat([H, G], 1).transpose(1, 2)  # (B, N, K + L, M)
    norms = torch.cat([strength, torch.view_as_real(G).square().sum((-2, -1))], 1)
    tiny = torch.finfo(norms.dtype).tiny
    weights = torch.cat([par["alpha"], par["mu"]], -1) / norms.transpose(1, 2).clamp_min(tiny)
    D = torch.matmul((Y * weights[..., None]).transpose(-1, -2), Y.conj())  # (B, N, M, M)
    D.diagonal(dim1=-2, dim2=-1).add_(par["eta"][..., None])
    # each user's system: its serving BS's D~ (factored once per BS) and its own channel
    users = torch.arange(B * K, device=H.device)
    system = (users // K) * N + serving.flatten()  # (B K,) index of (b, serving_k)
    h_own = H.reshape(B * K * N, M)[users * N + serving.flatten()]  # (B K, M) h_{serving_k,k}
    w_dir = _solve(D.view(B * N, M, M), system, h_own[..., None]).view(B, K, M)
    norm_sq = torch.view_as_real(w_dir).square().sum((-2, -1))
    q_total = torch.gather(par["q_total"], 1, serving)  # (B, K)
    q = torch.gather(par["q"], 1, serving[:, None, :]).squeeze(1)  # (B, K)
    scale = torch.sqrt(p_max * q_total * q / norm_sq.clamp_min(tiny))
    return w_dir * scale[..., None]


def _solve(D: torch.Tensor, system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``D[system]^{-1} rhs`` for Hermitian positive definite ``D (S, M, M)``, ``system (R,)``
    long and ``rhs (R, M, 1)``: each D is LU-factored once and the factors are gathered for
    the right-hand sides. With eta_min far below alpha_max or mu_max, D~ can be singular to
    working precision in complex64; those systems (only) are solved again in complex128, where
    eta I keeps them invertible."""
    LU, pivots, info = torch.linalg.lu_factor_ex(D)
    X = torch.linalg.lu_solve(LU[system], pivots[system], rhs)
    failed = info[system] != 0
    if bool(failed.any()):
        wide = torch.linalg.solve(
            D[system[failed]].to(torch.complex128), rhs[failed].to(torch.complex128)
        )
        X[failed] = wide.to(X.dtype)
    return X
