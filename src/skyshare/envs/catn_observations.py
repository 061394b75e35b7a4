"""Observations of the CATN game: the TU observation's normalisation (14) and the BS
observation (8) blocks (seed 000 §V-B, Table I).

The BS observation of slot t is the concatenation, per BS n, of six blocks (sizes in
:func:`bs_obs_blocks`): its local view ``o_loc`` and ``o_loc_pri``, the messages ``o_in`` and
``o_in_pri`` received from the BSs that interfere its users and the AUs most, and the feedback
``o_out`` and ``o_out_pri`` from the users and AUs it interferes most. Every block is built from
the record of slot t-1 (:class:`skyshare.envs.catn.CatnEnv`'s ``previous``); every message that
crosses an agent boundary goes through ``send(category, delivered)``, which the env counts in
its :class:`~skyshare.signaling.SignalingLedger`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from skyshare.errors import ShapeError

if TYPE_CHECKING:
    from skyshare.envs.catn import CatnEnvConfig, _SlotRecord

TWO_STAGE_TOPK_MIN_ELEMENTS = 1 << 16
"""Entries of the codebook score from which :func:`compressed_serving_channels` selects the
N_c strongest codewords in two stages (B K C >= 65536, i.e. B >= 25 on the paper network)."""

Send = Callable[[str, torch.Tensor], None]
"""``send(category, delivered)``: count a message of the observation exchange."""

__all__ = [
    "bs_obs_blocks",
    "compressed_serving_channels",
    "normalized_tu_observation",
    "outer_block",
    "outer_primary_block",
    "write_inner_block",
    "write_inner_primary_block",
    "write_local_block",
]


def normalized_tu_observation(
    obs: torch.Tensor, n_bs: int, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Fixed input normalisation of the CATN TU observation (14), length 3N + 4 (a choice:
    the seed does not say how the TU networks see their inputs; every field is brought to
    O(1) so that one learning rate fits all of them). ``CatnEnvConfig(tu_observation=
    "normalized")`` applies it to every TU observation the env returns.

    ==============  =============================  ==========================================
    indices          field                          transform
    ==============  =============================  ==========================================
    [0, N)           |K_n(t-1)| (BS loads)          ``N |K_n| / sum_n |K_n|`` (1 = average load)
    [N, 2N)          chi_k(t-1) (one-hot)           unchanged
    [2N, 3N)         ||h_{n,k}(t)||^2 / sigma^2     ``log10(1 + x)``
    3N               p_k(t-1) in W                  ``log10(1 + x / 1 mW)``
    3N + 1           R_k(t-1) in bit/s/Hz           unchanged
    3N + 2           p^r_k(t-1) / sigma^2           ``log10(1 + x)``
    3N + 3           beta_k(t-1) / sigma^2          ``log10(1 + x)``
    ==============  =============================  ==========================================

    Args:
        obs: (..., 3N + 4) raw observations (14).
        n_bs: N.
        out: optional tensor of ``obs``'s shape to write the result into (not ``obs``).

    Returns:
        (..., 3N + 4) normalised observations (``out``, or a new tensor).
    """
    N = int(n_bs)
    if obs.shape[-1] != 3 * N + 4:
        raise ShapeError(
            f"CATN TU observations have 3N + 4 = {3 * N + 4} entries, got {obs.shape[-1]}"
        )
    load = obs[..., :N]
    relative_load = N * load / load.sum(dim=-1, keepdim=True).clamp_min(1.0)
    one_hot = obs[..., N : 2 * N]
    strength = torch.log10(1.0 + obs[..., 2 * N : 3 * N].clamp_min(0.0))
    power = torch.log10(1.0 + obs[..., 3 * N : 3 * N + 1].clamp_min(0.0) / 1e-3)
    rate = obs[..., 3 * N + 1 : 3 * N + 2]
    received_and_beta = torch.log10(1.0 + obs[..., 3 * N + 2 :].clamp_min(0.0))
    parts = [relative_load, one_hot, strength, power, rate, received_and_beta]
    if out is None:
        return torch.cat(parts, dim=-1)
    return torch.cat(parts, dim=-1, out=out)


def bs_obs_blocks(config: CatnEnvConfig, n_tu: int, n_au: int) -> dict[str, int]:
    """Sizes of the blocks of the BS observation (8) with K = ``n_tu`` and L = ``n_au``."""
    cfg, K, L, Nc = config, n_tu, n_au, config.n_compress
    return {
        "o_loc": K + 3 * Nc * K + 4 * K,
        "o_loc_pri": 5 * L,
        "o_in": ((1 + 3 * Nc * K + K + 1) * cfg.b_in + 1) * cfg.k_in,
        "o_in_pri": (1 + 4 + K + 1) * cfg.b_in_pri * L,
        "o_out": 4 * cfg.k_out * cfg.b_in,
        "o_out_pri": 4 * L,
    }


def compressed_serving_channels(
    h: torch.Tensor, codebook_conj: torch.Tensor, tie_offset: torch.Tensor, n_compress: int
) -> torch.Tensor:
    """:func:`skyshare.channels.arrays.compress_channel` and :func:`compressed_features` of the
    serving channels, with the env's checked, per-episode constants (the conjugated codebook
    ``F^*`` (M, C) and the tie-breaking offsets ``index * tiny`` (C,)): the same operations
    without the per-call argument checks.

    The N_c strongest codewords are found in two stages when the C codewords split into four
    interleaved groups of at least N_c (C = 128: columns i, i + 32, i + 64, i + 96): the top N_c
    columns by their largest power, then the top N_c of those columns' 4 N_c candidates. The
    selected values and their order are those of one ``topk`` over all C (the N_c strongest
    codewords lie in the N_c strongest columns), 1.7x faster on the CPU (``topk`` pays per row
    and per element); only between codewords of exactly equal power may the index differ.

    Returns:
        (B, K, 3 N_c) ``[c_1, Re d_1, Im d_1, ...]`` with 1-based codeword indices.
    """
    projections = h @ codebook_conj  # (B, K, C): d_c = f_c^H h
    power = projections.real.square() + projections.imag.square()
    kept = _top_codewords(power - tie_offset, int(n_compress))
    coefficients = torch.gather(projections, -1, kept)
    triples = torch.stack(
        ((kept + 1).to(power.dtype), coefficients.real, coefficients.imag), dim=-1
    )  # (B, K, N_c, 3)
    return triples.flatten(-2)


def _top_codewords(score: torch.Tensor, count: int, groups: int = 4) -> torch.Tensor:
    """Indices of the ``count`` largest entries of ``score`` (..., C) along the last dimension,
    in descending order (``topk(count, sorted=True).indices``), in two stages when C splits
    into ``groups`` interleaved groups of at least ``count`` columns and ``score`` has at least
    :data:`TWO_STAGE_TOPK_MIN_ELEMENTS` entries (below, the extra dispatches cost more than
    they save)."""
    C = score.shape[-1]
    width = C // groups
    if C % groups or width < count or score.numel() < TWO_STAGE_TOPK_MIN_ELEMENTS:
        return score.topk(count, dim=-1, sorted=True).indices
    parts = score.unflatten(-1, (groups, width))  # [..., g, i] = score[..., g * width + i]
    column_max = parts[..., 0, :]
    for g in range(1, groups):
        column_max = torch.maximum(column_max, parts[..., g, :])
    columns = column_max.topk(count, dim=-1, sorted=False).indices  # (..., count)
    offsets = torch.arange(0, C, width, device=score.device)[:, None]  # (groups, 1)
    candidates = (columns[..., None, :] + offsets).flatten(-2)  # (..., groups * count)
    best = torch.gather(score, -1, candidates).topk(count, dim=-1, sorted=True).indices
    return torch.gather(candidates, -1, best)


def write_local_block(
    out: torch.Tensor,
    prev: _SlotRecord,
    chi_now: torch.Tensor,
    chi_prev: torch.Tensor,
    compressed: torch.Tensor,
) -> None:
    """``o_loc``: the association chi_n(t), the compressed channels h^c of the own users and
    p_n, R_n, p^r_n and beta_n = [beta_{n,1} .. beta_{n,K}] of t-1, masked by chi_n(t-1).

    Args:
        out: (B, N, K + 3 N_c K + 4 K) view of the observation, written in place.
        prev: the record of slot t-1.
        chi_now, chi_prev: (B, N, K) one-hot association of slots t and t-1.
        compressed: (B, N, K, 3 N_c) compressed channels of slot t of the serving links,
            already zero outside chi_now.
    """
    K = chi_now.shape[-1]
    width = compressed.shape[2] * compressed.shape[3]
    out[..., :K] = chi_now
    out[..., K : K + width] = compressed.flatten(2)
    local_prev = out[..., K + width :].unflatten(-1, (4, K))  # (B, N, 4, K)
    scalars = torch.stack([prev.power, prev.rate, prev.received], 1)  # (B, 3, K)
    torch.mul(scalars[:, None], chi_prev[:, :, None], out=local_prev[:, :, :3])
    torch.mul(prev.beta_split, chi_prev, out=local_prev[:, :, 3])


def write_inner_block(
    out: torch.Tensor, prev: _SlotRecord, chi_prev: torch.Tensor, config: CatnEnvConfig, send: Send
) -> None:
    """``o_in``: for the K_in most interfered own TUs of t-1, the B_in strongest interferers'
    index, compressed channels, powers and interference beta_{j,k} (one message each; all
    zero for a TU slot the BS does not fill).

    The messages of BS j differ across the TUs k only in beta_{j,k}: its index, compressed
    channels and powers are put in one table row per BS (plus a zero row for empty slots),
    and each of the K_in B_in message slots is filled by one row ``index_select`` straight into
    ``out`` (a copy of contiguous rows; ``gather`` over the expanded table computed an index per
    element and was 4x slower), so the 87 % of the observation that o_in holds is written once.

    Args:
        out: (B, N, ((1 + 3 N_c K + K + 1) B_in + 1) K_in) view of the observation, written
            in place; its (B, N) rows must be collapsible to one stride (a slice of the last
            dimension of a contiguous (B, N, D) tensor is).
    """
    B, N, K = chi_prev.shape
    k_in, b_in = config.k_in, config.b_in
    own_score = torch.where(chi_prev > 0, prev.beta[:, None, :], -1.0)
    top_k = own_score.topk(k_in, dim=-1)  # (B, N, K_in)
    valid_k = top_k.values > 0
    k_idx = top_k.indices
    interferers = prev.beta_split.topk(b_in, dim=1).indices.transpose(1, 2)  # (B, K, B_in)
    k_rows = k_idx.view(B, N * k_in, 1).expand(B, N * k_in, b_in)
    j_idx = torch.gather(interferers, 1, k_rows).view(B, N, k_in, b_in)  # interferer BSs
    beta_jk = torch.gather(
        prev.beta_split.view(B, N * K), 1, (j_idx * K + k_idx[..., None]).view(B, -1)
    ).view(B, N, k_in, b_in)
    # table[b, j] = [j + 1, h^c of BS j's users (3 N_c K), p of BS j's users (K)]; row N: 0
    compressed = prev.compressed.flatten(2)  # (B, N, 3 N_c K), zero outside chi_prev
    width = 1 + compressed.shape[-1] + K
    table = chi_prev.new_zeros(B, N + 1, width)
    table[:, :N, 0] = torch.arange(1, N + 1, dtype=chi_prev.dtype, device=chi_prev.device)
    table[:, :N, 1 : width - K] = compressed
    torch.mul(prev.power[:, None, :], chi_prev, out=table[:, :N, width - K :])
    # row of the (B (N + 1), width) table for each message slot: (B N, K_in B_in)
    first_row = torch.arange(0, B * (N + 1), N + 1, device=chi_prev.device)[:, None, None, None]
    rows = torch.where(valid_k[..., None], j_idx, N).add_(first_row).view(B * N, k_in * b_in)
    table = table.view(B * (N + 1), width)
    o_in = out.unflatten(-1, (k_in, 1 + b_in * (width + 1)))  # (B, N, K_in, ...)
    torch.mul(k_idx + 1, valid_k, out=o_in[..., 0])
    # one row per (env, BS) (view() refuses a copy), split as [k, (message, beta) x B_in] x K_in
    pieces = out.view(B * N, out.shape[-1]).split(([1] + [width, 1] * b_in) * k_in, dim=1)
    per_k = 1 + 2 * b_in  # pieces per K_in slot; its messages are the odd ones
    messages = [piece for i, piece in enumerate(pieces) if i % per_k % 2]  # (B N, width) each
    for destination, index in zip(messages, rows.t(), strict=True):
        torch.index_select(table, 0, index, out=destination)
    message = o_in[..., 1:].unflatten(-1, (b_in, width + 1))  # (B, N, K_in, B_in, width + 1)
    torch.mul(beta_jk, valid_k[..., None], out=message[..., width])
    send("o_in", message)


def write_inner_primary_block(
    out: torch.Tensor, prev: _SlotRecord, chi_prev: torch.Tensor, b_in_pri: int, send: Send
) -> None:
    """``o_in_pri``: per AU, the B~_in BSs whose inferred interference is largest, with their
    index, statistical AU channel, powers and inferred share rho_{j,l} (identical for every BS).

    Args:
        out: (B, N, (1 + 4 + K + 1) B~_in L) view of the observation, written in place
            (nothing without AUs).
    """
    B, N, K = chi_prev.shape
    L = prev.rho.shape[-1]
    if not L:
        return
    top = prev.rho_split.topk(b_in_pri, dim=1)  # over the BSs: (B, B~_in, L)
    flat = top.indices.transpose(1, 2).reshape(B, L * b_in_pri)  # (B, L*Bp): BS j
    values = top.values.transpose(1, 2).reshape(B, L * b_in_pri)  # rho_{j,l}
    l_idx = torch.arange(L, device=chi_prev.device).repeat_interleave(b_in_pri)
    pri = out.view(B, N, L * b_in_pri, K + 6)  # identical for every BS
    pri[..., 0] = (flat + 1).to(chi_prev.dtype)[:, None]
    pri[..., 1:5] = prev.g_stat[torch.arange(B, device=chi_prev.device)[:, None], flat, l_idx][
        :, None
    ]
    p_prev = prev.power[:, None, :] * chi_prev  # (B, N, K)
    pri[..., 5 : 5 + K] = torch.gather(p_prev, 1, flat[..., None].expand(-1, -1, K))[:, None]
    pri[..., 5 + K] = values[:, None]
    send("o_in_pri", pri)


def outer_block(
    prev: _SlotRecord, out_prev: torch.Tensor, size: int, dtype: torch.dtype, send: Send
) -> torch.Tensor:
    """``o_out``: the K_out B_in TUs BS n interfered most in t-1 (``out_prev``, (B, N, K) bool,
    ``size`` = K_out B_in of them), with their rate, beta_{n,i} and beta_i.

    Returns:
        (B, N, 4 K_out B_in).
    """
    B, N, K = out_prev.shape
    users = torch.arange(K, device=out_prev.device)
    i_idx = torch.where(out_prev, users, K).sort(-1).values[..., :size]  # (B, N, size)
    gathered = lambda x: torch.gather(x[:, None].expand(B, N, K), 2, i_idx)  # noqa: E731
    beta_ni = torch.gather(prev.beta_split, 2, i_idx)
    received_out = torch.stack([gathered(prev.rate), beta_ni, gathered(prev.beta)], -1)
    send("o_out", received_out)
    return torch.stack(
        [
            (i_idx + 1).to(dtype),
            gathered(prev.rate),
            beta_ni,
            beta_ni / gathered(prev.beta),
        ],
        -1,
    ).flatten(2)


def outer_primary_block(
    prev: _SlotRecord, n_bs: int, i_max: float, dtype: torch.dtype, send: Send
) -> torch.Tensor:
    """``o_out_pri``: from the BSs serving the AUs (e.g. ATG BSs), rho_l(t-1) and the share
    rho_{n,l}(t-1) they measured from BS n.

    Returns:
        (B, N, 4 L); (B, N, 0) without AUs.
    """
    B, N, L = prev.rho.shape[0], n_bs, prev.rho.shape[-1]
    if not L:
        return torch.zeros(B, N, 0, dtype=dtype, device=prev.rho.device)
    rho = prev.rho[:, None].expand(B, N, L)
    received_pri = torch.stack([rho, prev.rho_split_measured], -1)
    send("o_out_pri", received_pri)
    l_column = torch.arange(1, L + 1, device=prev.rho.device, dtype=dtype).expand(B, N, L)
    o_out_pri = torch.stack(
        [
            l_column,
            rho / i_max,
            prev.rho_split_measured,
            prev.rho_split_measured / rho.clamp_min(1e-30),
        ],
        -1,
    )
    return o_out_pri.flatten(2)
