"""Observations (§III-C-3) and global state (§III-C-4) of the TN-NTN game (seed 001).

Every block is a fixed, documented normalisation of a physical quantity, chosen so that the
same numbers mean the same thing for every numerology F (a choice; the seed does not say how
the networks see their inputs):

* channel gains enter as ``log10(1 + |h|^2 p_max / F)``: the SNR, in decades, of the link at the
  uniform power ``p_max / F``. With noise-normalised channels (``state.H``) ``|h|^2 p`` is an
  SNR, and ``p_max / (F W N_0) = p_max / (B N_0)`` does not depend on F.
* path losses enter as ``(L_ref - PL) / 10`` with ``L_ref = 10 log10(p_max / (F W N_0 NF))`` dB
  (147 dB for the paper's 46 dBm over 20 MHz at -174 dBm/Hz): the large-scale SNR at
  ``p_max / F`` in decades, again independent of F.
* accumulated rates Psi enter divided by eta (1 = the QoS rate reached).
* user slots that are not active (psi = 0) read 0 in the gain and path-loss blocks.

Layouts (row-major flattening, the first index varies slowest):

=================  ======================  =====================================================
observation block  size                    content for agent A_{n,m} (BS n, turn m)
=================  ======================  =====================================================
``gain``           S K_max                 ``[s, k]``: own link of BS n to its slot k on the
                                           s-th subchannel of the agent's block
``pathloss``       P N                     ``[p, l]``: BS l -> user slot p (all BSs, all slots)
``accumulated``    K_max                   ``Psi_{n,m,k} / eta``
``active``         P                       psi of every user slot (1 active, 0 empty)
``srb``            n_turns                 one-hot of the turn m (the agent's SRB)
``bs``             N                       one-hot of the BS n
=================  ======================  =====================================================

=================  ======================  =====================================================
state block        size                    content (turn m)
=================  ======================  =====================================================
``gain``           S P N                   ``[s, p, l]``: BS l -> user slot p on the s-th
                                           subchannel of block m (every link of the block)
``pathloss``       P N                     as in the observation
``accumulated``    N K_max                 ``Psi_{n,m,k} / eta`` of every BS
``active``         P                       psi
``turn``           n_turns                 one-hot of m
=================  ======================  =====================================================

with P = N K_max user slots (slot ``p = n K_max + k``) and S the block (SRB) size.
"""

from __future__ import annotations

import torch

__all__ = [
    "agent_observations",
    "gain_features",
    "global_state",
    "obs_blocks",
    "pathloss_features",
    "state_blocks",
]


def obs_blocks(n_bs: int, k_max: int, block_size: int, n_turns: int) -> dict[str, int]:
    """Sizes of the observation blocks, in order (their sum is ``obs_dim``)."""
    P = n_bs * k_max
    return {
        "gain": block_size * k_max,
        "pathloss": P * n_bs,
        "accumulated": k_max,
        "active": P,
        "srb": n_turns,
        "bs": n_bs,
    }


def state_blocks(n_bs: int, k_max: int, block_size: int, n_turns: int) -> dict[str, int]:
    """Sizes of the global-state blocks, in order (their sum is ``state_dim``)."""
    P = n_bs * k_max
    return {
        "gain": block_size * P * n_bs,
        "pathloss": P * n_bs,
        "accumulated": n_bs * k_max,
        "active": P,
        "turn": n_turns,
    }


def gain_features(
    gain: torch.Tensor,
    p_ref_w: float,
    active: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log10(1 + |h|^2 p_ref)`` with 0 on inactive user slots.

    Args:
        gain: (B, P, N, S) noise-normalised ``|h|^2`` (per watt).
        p_ref_w: reference power ``p_max / F`` in watts.
        active: (B, P) bool.
        out: (B, P, N, S) float32 contiguous tensor to write into, or None.

    Returns:
        (B, P, N, S) float32 (``out`` when given).
    """
    if gain.dtype != torch.float32:  # in the gain's precision, then rounded
        snr = torch.log10(1.0 + gain * p_ref_w).to(torch.float32)
        snr = torch.where(active[:, :, None, None], snr, 0.0)
        return snr if out is None else out.copy_(snr)
    if out is None:
        out = torch.empty(gain.shape, dtype=torch.float32, device=gain.device)  # contiguous
    inactive = (~active).flatten().nonzero().squeeze(1)  # rows of (B P, N S)
    if inactive.numel() == 0:  # in place from here: the same values as above
        return torch.mul(gain, p_ref_w, out=out).add_(1.0).log10_()
    # Only the active rows are computed (log10 is the costly pass; about half the slots are
    # active in training mode): gathered, the same operations in place, written back.
    rows = active.flatten().nonzero().squeeze(1)
    snr = torch.index_select(gain.reshape(active.numel(), -1), 0, rows)  # (A, N S)
    snr.mul_(p_ref_w).add_(1.0).log10_()
    flat = out.view(active.numel(), -1)
    flat.index_copy_(0, rows, snr)
    flat.index_fill_(0, inactive, 0.0)
    return out


def pathloss_features(pathloss_db: torch.Tensor, ref_db: float, active: torch.Tensor):
    """``(ref_db - PL) / 10`` with 0 on inactive user slots: (B, P, N) -> (B, P, N) float32."""
    value = ((ref_db - pathloss_db) / 10.0).to(torch.float32)
    return torch.where(active[:, :, None], value, 0.0)


def agent_observations(
    own_gain: torch.Tensor,
    pathloss: torch.Tensor,
    accumulated: torch.Tensor,
    active: torch.Tensor,
    turn: int,
    n_turns: int,
) -> torch.Tensor:
    """The observations of the N agents A_{n,m} of turn m: (B, N, obs_dim) float32.

    Every block is copied once, straight into its slice of the new tensor.

    Args:
        own_gain: (B, N, S, K_max) gain features of each BS's own links on the block.
        pathloss: (B, P, N) path-loss features.
        accumulated: (B, N, K_max) ``Psi / eta``.
        active: (B, P) bool psi.
        turn: m.
        n_turns: number of turns per frame.
    """
    B, N, S, K = own_gain.shape
    P = active.shape[1]
    out = torch.empty(B, N, sum(obs_blocks(N, K, S, n_turns).values()), device=own_gain.device)
    gain, path, acc, act, srb, bs = _slices(out, obs_blocks(N, K, S, n_turns))
    gain.view(B, N, S, K).copy_(own_gain)
    path.copy_(pathloss.reshape(B, 1, P * N))
    acc.copy_(accumulated)
    act.copy_(active[:, None])
    srb.zero_()[..., turn] = 1.0
    bs.zero_().diagonal(dim1=1, dim2=2).fill_(1.0)
    return out


def global_state(
    block_gain: torch.Tensor,
    pathloss: torch.Tensor,
    accumulated: torch.Tensor,
    active: torch.Tensor,
    turn: int,
    n_turns: int,
) -> torch.Tensor:
    """Global state of turn m: (B, state_dim) float32.

    Every block is copied once, straight into its slice of the new tensor (the gain block
    ``[s, p, l]`` from the ``(B, P, N, S)`` features in one strided copy).

    Args:
        block_gain: (B, P, N, S) gain features of every link on block m.
        pathloss: (B, P, N) path-loss features.
        accumulated: (B, N, K_max) ``Psi / eta`` of every BS.
        active: (B, P) bool psi.
        turn, n_turns: m and the turns per frame.
    """
    B, P, N, S = block_gain.shape
    blocks = state_blocks(N, P // N, S, n_turns)
    out = torch.empty(B, sum(blocks.values()), device=block_gain.device)
    gain, path, acc, act, one_hot = _slices(out, blocks)
    gain.view(B, S, P, N).copy_(block_gain.permute(0, 3, 1, 2))  # [s, p, l]
    path.copy_(pathloss.reshape(B, P * N))
    acc.copy_(accumulated.reshape(B, -1))
    act.copy_(active)
    one_hot.zero_()[:, turn] = 1.0
    return out


def _slices(out: torch.Tensor, blocks: dict[str, int]) -> list[torch.Tensor]:
    """Views of ``out`` (..., sum of sizes) on consecutive blocks of the last axis."""
    views, start = [], 0
    for size in blocks.values():
        views.append(out[..., start : start + size])
        start += size
    return views
