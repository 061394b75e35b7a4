"""Closed-form reference beamformers: maximum ratio and per-cell zero forcing.

These are building blocks (link budgets, initialisation, the ZF stage of seed 004), not
optimisers; the optimisation algorithms live in ``skyshare.solvers``.
"""

from __future__ import annotations

import torch

from skyshare.errors import ShapeError

__all__ = ["mrt_equal_power", "per_cell_zero_forcing"]


def mrt_equal_power(H: torch.Tensor, serving: torch.Tensor, p_total: float) -> torch.Tensor:
    """Maximum-ratio beamformers, each BS splitting ``p_total`` equally over its users.

    ``w_k = sqrt(p_total / |K_n|) h_{n,k} / ||h_{n,k}||`` with n = serving[k].

    Args:
        H: (B, K, N, M) complex. serving: (B, K) long. p_total: power per BS.

    Returns:
        w: (B, K, M) complex with ``sum_{k in K_n} ||w_k||^2 = p_total`` for every loaded BS.
    """
    if H.ndim != 4 or serving.shape != H.shape[:2]:
        raise ShapeError(
            f"expected H (B, K, N, M) and serving (B, K); got {tuple(H.shape)}, "
            f"{tuple(serving.shape)}"
        )
    B, K, N, M = H.shape
    h = torch.gather(H, 2, serving[:, :, None, None].expand(B, K, 1, M)).squeeze(2)
    load = torch.nn.functional.one_hot(serving, N).sum(1)  # (B, N)
    users_of_my_bs = torch.gather(load, 1, serving).to(H.real.dtype)  # (B, K)
    norm = torch.linalg.vector_norm(h, dim=-1).clamp_min(torch.finfo(H.real.dtype).tiny)
    scale = torch.sqrt(p_total / users_of_my_bs) / norm
    return h * scale[..., None]


def per_cell_zero_forcing(H: torch.Tensor, users_per_cell: int) -> torch.Tensor:
    """Per-cell ZF with unit-norm columns, seed 004 eqs. (3)-(4).

    Cell c serves users ``c*U .. c*U+U-1`` with ``[w_{c,1} .. w_{c,U}] = H_c (H_c^H H_c)^{-1}``,
    ``H_c = [h_{c,(c,1)} .. h_{c,(c,U)}]``, each column scaled to unit norm; intra-cell
    interference is nulled whenever U <= M.

    Args:
        H: (B, C*U, C, F, M) complex, transmitter axis = cell, receiver axis = cell*U + user.
        users_per_cell: U.

    Returns:
        W: (B, C, C*U, F, M) complex in the kernel's layout (zero outside the serving cell),
        ready for :func:`skyshare.metrics.effective_gains`.
    """
    if H.ndim != 5:
        raise ShapeError(f"H must be (B, C*U, C, F, M), got {tuple(H.shape)}")
    B, K, C, F, M = H.shape
    U = users_per_cell
    if U < 1 or K != C * U:
        raise ShapeError(f"receivers ({K}) must equal cells ({C}) x users_per_cell ({U})")
    if U > M:
        raise ShapeError(
            f"zero forcing needs users_per_cell <= antennas: U = {U} > M = {M} "
            "(seed 004 assumes M >= U_b)"
        )
    # Own-cell channels: (B, C, U, F, M) -> matrices (B, C, F, M, U) with users as columns.
    own = torch.diagonal(H.view(B, C, U, C, F, M), dim1=1, dim2=3)  # (B, U, F, M, C)
    Hc = own.permute(0, 4, 2, 3, 1)
    gram = Hc.mH @ Hc  # (B, C, F, U, U)
    Wc = Hc @ torch.linalg.inv(gram)  # (B, C, F, M, U)
    Wc = Wc / torch.linalg.vector_norm(Wc, dim=-2, keepdim=True)
    W = torch.zeros(B, C, C, U, F, M, dtype=H.dtype, device=H.device)
    cells = torch.arange(C, device=H.device)
    W[:, cells, cells] = Wc.permute(0, 1, 4, 2, 3)  # (B, C, U, F, M) into the diagonal
    return W.reshape(B, C, C * U, F, M)
