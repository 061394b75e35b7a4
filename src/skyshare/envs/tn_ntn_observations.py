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
``gain``           P N S                   ``[p, l, s]``: BS l -> user slot p on the s-th
                                           subchannel of block m (every link of the block)
``pathloss``       P N                     as in the observation
``accumulated``    N K_max                 ``Psi_{n,m,k} / eta`` of every BS
``active``         P                       psi
``turn``           n_turns                 one-hot of m
=================  ======================  =====================================================

with P = N K_max user slots (slot ``p = n K_max + k``) and S the block (SRB) size.

The state's gain block is ``[p, l, s]``, the order of the env's ``(B, P, N, F)`` gains, so that
each turn copies runs of S values (a ``[s, p, l]`` order, used before December 2026, made every
turn a transposition about five times slower; a critic is an MLP, for which the order of its
inputs is a relabelling). :data:`STATE_GAIN_ORDER` names the order; a MAPPO checkpoint of the
old order is converted on loading (``skyshare.rl.mappo``).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "STATE_GAIN_ORDER",
    "agent_observations",
    "gain_features",
    "global_state",
    "obs_blocks",
    "pathloss_features",
    "state_blocks",
]


STATE_GAIN_ORDER = "p,l,s"  # the global state's gain block: user slot, BS, subchannel


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
        "gain": P * n_bs * block_size,
        "pathloss": P * n_bs,
        "accumulated": n_bs * k_max,
        "active": P,
        "turn": n_turns,
    }


def gain_features(
    active_gain: torch.Tensor,
    rows: torch.Tensor,
    p_ref_w: float,
    out: torch.Tensor,
    clear: bool = True,
    scratch: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log10(1 + |h|^2 p_ref)`` of the active user slots, 0 on the others.

    Args:
        active_gain: (A, N, F) noise-normalised ``|h|^2`` (per watt) of the active slots.
        rows: (A,) long, their rows ``b P + p`` in ``out``.
        p_ref_w: reference power ``p_max / F`` in watts.
        out: (B, P, N, F) float32 contiguous tensor to write into.
        clear: write 0 into the other rows (False: they hold 0 already).
        scratch: a contiguous tensor of ``active_gain``'s dtype with at least A N F values
            for the intermediate (None: a new one; a fresh 10 MB tensor costs more in page
            faults than the arithmetic).

    Returns:
        ``out``.
    """
    if scratch is None:
        snr = torch.empty_like(active_gain)
    else:
        snr = scratch[: active_gain.numel()].view(active_gain.shape)
    # log1p(x) / ln 10: three passes like mul, add, log10, but log1p is the cheaper kernel
    torch.mul(active_gain, p_ref_w, out=snr).log1p_().mul_(1.0 / math.log(10.0))
    flat = out.view(-1, out.shape[-2] * out.shape[-1])  # (B P, N F)
    if clear:
        flat.zero_()
    flat.index_copy_(0, rows, snr.to(torch.float32).view(len(rows), flat.shape[1]))
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
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The observations of the N agents A_{n,m} of turn m: (B, N, obs_dim) float32.

    Every block is copied once, straight into its slice of the new tensor (or of ``out``, a
    contiguous (B, N, obs_dim) float32 tensor).

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
    if out is None:
        dim = sum(obs_blocks(N, K, S, n_turns).values())
        out = torch.empty(B, N, dim, device=own_gain.device)
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
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Global state of turn m: (B, state_dim) float32.

    Every block is copied once, straight into its slice of the new tensor (or of ``out``, a
    contiguous (B, state_dim) float32 tensor; the gain block ``[p, l, s]``: the ``(B, P, N,
    S)`` features in their own order, runs of S values).

    Args:
        block_gain: (B, P, N, S) gain features of every link on block m.
        pathloss: (B, P, N) path-loss features.
        accumulated: (B, N, K_max) ``Psi / eta`` of every BS.
        active: (B, P) bool psi.
        turn, n_turns: m and the turns per frame.
    """
    B, P, N, S = block_gain.shape
    blocks = state_blocks(N, P // N, S, n_turns)
    if out is None:
        out = torch.empty(B, sum(blocks.values()), device=block_gain.device)
    gain, path, acc, act, one_hot = _slices(out, blocks)
    gain.view(B, P, N, S).copy_(block_gain)  # [p, l, s]
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
