"""The SINR kernel and everything derived from it.

One kernel serves every system in skyshare. Channels ``H`` and beamformers ``W`` give the
effective gain matrix

    A[b, k, j] = sum_t h_{t,k}^H w_{t,j}                                    (docs/concepts.md)

(receiver k, stream j, transmitters t), from which the desired power ``|A_kk|^2``, the
interference ``sum_{j != k} |A_kj|^2``, the SINR and the rate follow. The special cases:

- single-BS association (seed 000): ``w_{t,j} = 0`` unless t serves j. :func:`associated_gains`
  builds A from per-user beamformers ``w (B, K, M)`` and the serving index without materialising
  the zeros;
- cell-free coherent joint transmission (seed 003): every ``w_{t,j}`` non-zero;
- per-cell zero-forcing (seed 004): one subchannel axis F, ZF columns per cell;
- scalar OFDM subchannels (seed 001): M = 1 and a subchannel axis F, ``w = sqrt(p)``.

Axis order everywhere: batch, receiver, transmitter, subchannel, antenna. Shapes:

    H: (B, K, T, M) or (B, K, T, F, M) complex     channel from transmitter t to receiver k
    W: (B, T, J, M) or (B, T, J, F, M) complex     beamformer of transmitter t for stream j
    A: (B, K, J)    or (B, K, J, F)    complex     effective gains

Quantities are whatever units the caller uses; skyshare's scenarios hand out noise-normalised
channels (noise power 1), so ``|A|^2`` with W in sqrt(watts) is directly an SNR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare.errors import ShapeError

__all__ = [
    "GAIN_METHODS",
    "OfdmLinks",
    "SinrResult",
    "associated_gains",
    "channel_strength",
    "effective_gains",
    "gather_pays",
    "handover_count",
    "jain_fairness",
    "lpei",
    "ofdm_link_sinr",
    "ofdm_served_link_sinr",
    "ofdm_user_rates",
    "per_transmitter_gains",
    "primary_interference",
    "proportional_fair_utility",
    "received_power",
    "served_channels",
    "sinr",
    "split_by_transmitter",
    "strongest_transmitter",
    "sum_rate",
]


def _check_complex(name: str, x: torch.Tensor, ndims: tuple[int, ...]) -> None:
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in ndims:
        raise ShapeError(f"{name} must have {' or '.join(map(str, ndims))} dims, got {x.ndim}")


def effective_gains(H: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Effective gain matrix ``A[b,k,j(,f)] = sum_t h_{t,k(,f)}^H w_{t,j(,f)}``.

    Args:
        H: (B, K, T, M) or (B, K, T, F, M) complex channels.
        W: (B, T, J, M) or (B, T, J, F, M) complex beamformers (zero where t does not serve j).

    Returns:
        A: (B, K, J) or (B, K, J, F) complex.
    """
    _check_complex("H", H, (4, 5))
    _check_complex("W", W, (4, 5))
    if H.ndim != W.ndim:
        raise ShapeError(
            f"H and W must both have a subchannel axis or neither: {H.shape} vs {W.shape}"
        )
    if H.shape[2] != W.shape[1] or H.shape[-1] != W.shape[-1]:
        raise ShapeError(
            f"H (B,K,T,..,M) and W (B,T,J,..,M) disagree on T or M: "
            f"{tuple(H.shape)} vs {tuple(W.shape)}"
        )
    if H.ndim == 4:
        return torch.einsum("bktm,btjm->bkj", H.conj(), W)
    if H.shape[3] != W.shape[3]:
        raise ShapeError(f"H and W disagree on the subchannel axis F: {H.shape[3]} vs {W.shape[3]}")
    return torch.einsum("bktfm,btjfm->bkjf", H.conj(), W)


GAIN_METHODS = ("auto", "gather", "all_bs")


def gather_pays(n_bs: int, n_antennas: int, *, reused: bool = False) -> bool:
    """Whether gathering the serving channels beats the all-BS GEMM for N BSs, M antennas.

    The all-BS GEMM does ``N R J M`` work but streams only H (``R N M``) and writes ``R N J``
    products with BLAS; the gather does only the ``R J M`` needed multiply-adds but first copies
    ``R J M`` channel entries (memory bound). Measured on the CPU (``benchmarks/bench_kernels.py``,
    docs/concepts.md) the gather wins for single-antenna BSs at every N (the GEMM's inner
    dimension 1 is pure overhead) and otherwise once ``N^2 >= 6 M`` (seed-000 network N = 7,
    M = 16: the GEMM, ~3x faster at B = 1024 and equal at B = 64; N = 13, M = 16 or N = 61,
    M = 256: the gather).

    ``reused=True``: the served channels are gathered once and contracted with many beams (an
    iterative solver with fixed H and association), so only the contraction counts: the
    batched matrix-vector products beat the GEMM from N = 4 on (1.3-1.9x at N = 7, M = 16;
    0.5-0.7x at N = 2-3).
    """
    if reused:
        return n_antennas == 1 or n_bs >= 4
    return n_antennas == 1 or n_bs * n_bs >= 6 * n_antennas


def served_channels(H: torch.Tensor, serving: torch.Tensor) -> torch.Tensor:
    """The channel of each stream's serving BS to every receiver, stream-major.

    ``Hs[b, j, r, :] = H[b, r, serving[b, j], :]``: one ``index_select`` of ``B J R`` rows of
    M entries (``R J M`` copied per instance, independent of N).

    Args:
        H: (B, R, N, M) complex channels BS n -> receiver r.
        serving: (B, J) long, serving BS of stream j, in [0, N).

    Returns:
        (B, J, R, M), same dtype as H, contiguous.
    """
    B, R, N, M = H.shape
    J = serving.shape[1]
    device = H.device
    rows = (
        torch.arange(B, device=device).view(B, 1, 1) * (R * N)
        + torch.arange(R, device=device).view(1, 1, R) * N
        + serving.view(B, J, 1)
    )  # (B, J, R): flat row (b, r, serving_j) of H viewed as (B R N, M)
    return H.reshape(B * R * N, M).index_select(0, rows.reshape(-1)).view(B, J, R, M)


def _gains_all_bs(H: torch.Tensor, w: torch.Tensor, serving: torch.Tensor) -> torch.Tensor:
    """(B, R, N, M), (B, J, M), (B, J) -> (B, R, J): GEMM over every BS, then keep
    n = serving_j. ``N R J M`` multiply-adds. The GEMM is ``w (B, J, M) @ H^H (B, M, R N)``:
    BLAS applies the conjugate transpose of H itself (the form ``conj(H) @ w^T`` first copies
    the conjugated H)."""
    B, R, N, M = H.shape
    J = w.shape[1]
    every_bs = torch.matmul(w, H.reshape(B, R * N, M).mH).view(B, J, R, N)
    own = torch.gather(every_bs, 3, serving[:, :, None, None].expand(B, J, R, 1))
    return own.view(B, J, R).transpose(1, 2).contiguous()


def _gains_gathered(H: torch.Tensor, w: torch.Tensor, serving: torch.Tensor) -> torch.Tensor:
    """(B, R, N, M), (B, J, M), (B, J) -> (B, R, J) from the served channels only: ``R J M``
    multiply-adds. M = 1: gather (B, R, J) and multiply; else one batched matrix-vector product
    per (instance, stream), ``Hs[b, j] (R, M) @ conj(w[b, j])``, conjugated (conjugating the
    small output, not the gathered channels)."""
    B, R, _, M = H.shape
    J = w.shape[1]
    if M == 1:
        own = torch.gather(H[..., 0], 2, serving[:, None, :].expand(B, R, J))  # (B, R, J)
        return own.conj() * w[:, None, :, 0]
    rows = served_channels(H, serving).view(B * J, R, M)
    out = torch.bmm(rows, w.conj().reshape(B * J, M, 1)).view(B, J, R)
    return torch.conj_physical(out).transpose(1, 2).contiguous()


def associated_gains(
    H: torch.Tensor, w: torch.Tensor, serving: torch.Tensor, *, method: str = "auto"
) -> torch.Tensor:
    """Effective gains for single-BS association: ``A[b,k,j] = h_{serving_j, k}^H w_j``.

    Two contractions give the same numbers (up to float rounding); ``method`` picks one:

    - ``"gather"``: copy each stream's serving channel ``(B, J, R, M)`` (:func:`served_channels`)
      and contract over M: ``R J M`` work per instance, independent of the number of BSs N;
    - ``"all_bs"``: one batched GEMM of every BS's channel with every beam, ``(B, R N, J)``, then
      keep ``n = serving_j``: ``N R J M`` work, but BLAS and no (B, R, J, M) copy;
    - ``"auto"`` (default): ``"gather"`` when :func:`gather_pays` (M = 1, or N^2 >= 6 M),
      else ``"all_bs"`` (the seed-000 network, N = 7 and M = 16).

    Args:
        H: (B, R, N, M) complex channels from the N BSs to R receivers (users, or primary
            receivers such as aerial users).
        w: (B, J, M) complex beamformer of each stream j (transmitted by BS ``serving[b, j]``).
        serving: (B, J) long, index of the BS serving stream j, in [0, N).
        method: ``"auto"``, ``"gather"`` or ``"all_bs"``.

    Returns:
        A: (B, R, J) complex, contiguous. Equals :func:`effective_gains` with W zero outside the
        serving BS.
    """
    _check_complex("H", H, (4,))
    _check_complex("w", w, (3,))
    B, _, N, M = H.shape
    if w.shape[-1] != M or serving.shape != w.shape[:2]:
        raise ShapeError(
            f"expected w (B, J, M={M}) and serving (B, J); got w {tuple(w.shape)}, "
            f"serving {tuple(serving.shape)}"
        )
    if method not in GAIN_METHODS:
        raise ValueError(f"method must be one of {GAIN_METHODS}, got {method!r}")
    if method == "gather" or (method == "auto" and gather_pays(N, M)):
        if w.shape[0] != B:  # a batch of one beam set broadcast over the channels
            w, serving = w.expand(B, -1, -1), serving.expand(B, -1)
        return _gains_gathered(H, w, serving)
    return _gains_all_bs(H, w, serving)


def per_transmitter_gains(H: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Gains split by transmitter, ``A_t[b,k,t,j] = h_{t,k}^H w_{t,j}`` (no sum over t).

    Args:
        H: (B, K, T, M) complex. W: (B, T, J, M) complex.

    Returns:
        (B, K, T, J) complex.
    """
    _check_complex("H", H, (4,))
    _check_complex("W", W, (4,))
    return torch.einsum("bktm,btjm->bktj", H.conj(), W)


@dataclass(frozen=True)
class SinrResult:
    """Output of :func:`sinr`. Shapes use (B, K) or (B, K, F) with a subchannel axis.

    Attributes:
        gain_power: (B, K, J[, F]) ``|A_kj|^2``, power of stream j at receiver k.
        signal: (B, K[, F]) desired power ``|A_kk|^2``.
        interference: (B, K[, F]) ``sum_{j != k} |A_kj|^2`` (without noise).
        noise: noise power broadcastable to ``signal``.
        sinr: (B, K[, F]) ``signal / (interference + noise)``.
        rate: (B, K[, F]) ``log2(1 + sinr)`` in bit/s/Hz.
    """

    gain_power: torch.Tensor
    signal: torch.Tensor
    interference: torch.Tensor
    noise: torch.Tensor
    sinr: torch.Tensor
    rate: torch.Tensor


def sinr(A: torch.Tensor, noise: float | torch.Tensor = 1.0) -> SinrResult:
    """SINR and rate of every receiver from the effective gain matrix (seed 000 eq. (1)).

    Receiver k decodes stream k, so A must be square in (K, J).

    Args:
        A: (B, K, K) or (B, K, K, F) complex effective gains.
        noise: noise power, a float or a tensor broadcastable to (B, K[, F]).
    """
    if A.ndim not in (3, 4) or A.shape[1] != A.shape[2]:
        raise ShapeError(f"A must be (B, K, K) or (B, K, K, F), got {tuple(A.shape)}")
    gain_power = A.real**2 + A.imag**2
    signal = torch.diagonal(gain_power, dim1=1, dim2=2)  # (B, [F,] K)
    if A.ndim == 4:
        signal = signal.transpose(1, 2)  # (B, K, F)
    # Sum the off-diagonal terms directly: "total - signal" loses the interference to rounding
    # in float32 when the signal is 60 dB stronger.
    off_diagonal = ~torch.eye(A.shape[1], dtype=torch.bool, device=A.device)
    if A.ndim == 4:
        off_diagonal = off_diagonal[..., None]
    interference = (gain_power * off_diagonal).sum(2)
    noise_t = torch.as_tensor(noise, dtype=signal.dtype, device=signal.device)
    if bool((noise_t < 0).any()):
        raise ValueError("noise power must be >= 0")
    ratio = signal / (interference + noise_t)
    return SinrResult(
        gain_power=gain_power,
        signal=signal,
        interference=interference,
        noise=noise_t,
        sinr=ratio,
        rate=torch.log2(1.0 + ratio),
    )


@dataclass(frozen=True)
class OfdmLinks:
    """The served link of every (BS, subchannel) of a scalar OFDM schedule (seed 001 eq. (3)).

    Attributes:
        slot: (B, N, F) long, the receiver (user slot) BS n serves on subchannel f; 0 where off.
        on: (B, N, F) bool, subchannel f of BS n carries a user.
        signal: (B, N, F) received power of the served user, ``|h_{p,n,f}|^2 p_{n,f}``.
        interference: (B, N, F) ``g = sum_{l != n} |h_{p,l,f}|^2 p_{l,f}`` at that user.
        sinr: (B, N, F) ``signal / (interference + noise)``, 0 where off.
    """

    slot: torch.Tensor
    on: torch.Tensor
    signal: torch.Tensor
    interference: torch.Tensor
    sinr: torch.Tensor


def ofdm_link_sinr(
    gain: torch.Tensor,
    assignment: torch.Tensor,
    power: torch.Tensor,
    k_max: int,
    noise: float = 1.0,
) -> OfdmLinks:
    """SINR of the served link of every (BS, subchannel): the SINR kernel's scalar-OFDM case
    (M = 1, at most one user per subchannel of a BS, eq. (1)) without materialising the
    (B, P, P, F) gain matrix: gather the served user's row first, then reduce over BSs.
    Cost B N^2 F instead of B P^2 F.

    Args:
        gain: (B, P, N, F) real, ``|h_{p,n,f}|^2`` (noise-normalised when noise = 1); user slot
            ``p = n k_max + k`` is user k of BS n (P = N k_max).
        assignment: (B, N, F) long, user 0..k_max-1 of BS n on subchannel f, -1 off.
        power: (B, N, F) real >= 0, transmit power of BS n on f (counted only where on).
        k_max: user slots per BS.
        noise: noise power in the units of ``gain * power``.

    Returns:
        :class:`OfdmLinks`.
    """
    if gain.ndim != 4 or assignment.ndim != 3 or power.shape != assignment.shape:
        raise ShapeError(
            f"need gain (B, P, N, F), assignment and power (B, N, F); got {tuple(gain.shape)}, "
            f"{tuple(assignment.shape)}, {tuple(power.shape)}"
        )
    B, P, N, F = gain.shape
    if tuple(assignment.shape) != (B, N, F) or P != N * k_max:
        raise ShapeError(
            f"assignment must be (B, N, F) = {(B, N, F)} and P = N k_max = {N * k_max}, "
            f"got {tuple(assignment.shape)} and P = {P}"
        )
    on = assignment >= 0
    slot = torch.arange(N, device=gain.device)[:, None] * k_max + assignment.clamp_min(0)
    rows = torch.gather(gain, 1, slot[:, :, None, :].expand(B, N, N, F))  # [b, n, l, f]
    return ofdm_served_link_sinr(rows, slot, on, power, noise)


def ofdm_served_link_sinr(
    rows: torch.Tensor,
    slot: torch.Tensor,
    on: torch.Tensor,
    power: torch.Tensor,
    noise: float = 1.0,
) -> OfdmLinks:
    """:func:`ofdm_link_sinr` from the gains of the served users, gathered by the caller.

    Args:
        rows: (B, N, N, F) real, ``[b, n, l, f]``: ``|h|^2`` from BS l to the user BS n serves
            on subchannel f.
        slot: (B, N, F) long, that user (any slot where off).
        on: (B, N, F) bool, subchannel f of BS n carries a user.
        power: (B, N, F) real >= 0, transmit power of BS n on f (counted only where on).
        noise: noise power in the units of ``gain * power``.
    """
    N = rows.shape[1]
    received = rows * (power * on).to(rows.dtype)[:, None]  # BS l's power at n's served user
    signal = torch.diagonal(received, dim1=1, dim2=2).permute(0, 2, 1)  # (B, N, F)
    off_diagonal = ~torch.eye(N, dtype=torch.bool, device=rows.device)[:, :, None]
    interference = (received * off_diagonal).sum(2)  # direct sum, as in :func:`sinr`
    ratio = torch.where(on, signal / (interference + noise), torch.zeros_like(signal))
    return OfdmLinks(slot, on, signal, interference, ratio)


def ofdm_user_rates(
    links: OfdmLinks, n_users: int, active: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-user spectral efficiency ``sum_f log2(1 + SINR)`` (bit/s/Hz summed over the user's
    subchannels; times W gives eq. (3) summed): (B, N, F) links -> (B, P). A slot that is not
    ``active`` (B, P) bool gets 0: a subchannel given to an empty slot carries no data."""
    rate = torch.log2(1.0 + links.sinr) * links.on
    out = rate.new_zeros(rate.shape[0], n_users)
    out.scatter_add_(1, links.slot.flatten(1), rate.flatten(1))
    return out if active is None else out * active


def received_power(A: torch.Tensor) -> torch.Tensor:
    """Total received power ``sum_j |A_rj|^2`` at each receiver r.

    Args:
        A: (B, R, J[, F]) effective gains to receivers that decode none of the streams
            (primary/aerial users).

    Returns:
        (B, R[, F]) real.
    """
    return (A.real**2 + A.imag**2).sum(2)


def primary_interference(
    G: torch.Tensor, w: torch.Tensor, serving: torch.Tensor | None = None
) -> torch.Tensor:
    """Interference power at primary receivers, seed 000 eq. (2c): ``rho_l = sum_k |g^H w_k|^2``.

    Args:
        G: (B, L, N, M) complex channels from the N transmitters to the L primary receivers.
        w: (B, K, M) per-user beamformers with ``serving`` (B, K), or (B, N, K, M) full W when
            ``serving`` is None.

    Returns:
        (B, L) real.
    """
    A = associated_gains(G, w, serving) if serving is not None else effective_gains(G, w)
    return received_power(A)


def split_by_transmitter(
    power: torch.Tensor, serving: torch.Tensor, n_tx: int, *, exclude_own: bool = False
) -> torch.Tensor:
    """Split received stream powers by the transmitter that sends them.

    ``out[b, n, r] = sum_{j : serving_j = n, (j != r if exclude_own)} power[b, r, j]``.

    With ``power = |associated_gains(H, w, serving)|^2`` and ``exclude_own=True`` this is the
    per-interferer split ``beta_{n,k}`` of seed 000 §V-C-2 (interference from BS n at TU k, its
    own stream excluded; ``sum_n beta_{n,k} + sigma^2 = beta_k``). With primary channels and
    ``exclude_own=False`` it is ``rho_{n,l}``, BS n's share of the interference at AU l.

    Args:
        power: (B, R, J) real, power of stream j at receiver r.
        serving: (B, J) long, transmitter of stream j.
        n_tx: number of transmitters N.

    Returns:
        (B, N, R) real.
    """
    if power.ndim != 3 or serving.shape != (power.shape[0], power.shape[2]):
        raise ShapeError(
            f"expected power (B, R, J) and serving (B, J); got {tuple(power.shape)}, "
            f"{tuple(serving.shape)}"
        )
    if exclude_own:
        if power.shape[1] != power.shape[2]:
            raise ShapeError("exclude_own needs receivers == streams (R == J)")
        eye = torch.eye(power.shape[1], dtype=torch.bool, device=power.device)
        power = power.masked_fill(eye, 0.0)
    owner = torch.nn.functional.one_hot(serving, n_tx).to(power.dtype)  # (B, J, N)
    return torch.einsum("brj,bjn->bnr", power, owner)


def sum_rate(rate: torch.Tensor, *, bandwidth_hz: float | None = None) -> torch.Tensor:
    """Sum over users (and subchannels) of ``rate`` (B, K[, F]) -> (B,).

    In bit/s/Hz, or bit/s when ``bandwidth_hz`` (per subchannel, if F is present) is given.
    """
    total = rate.flatten(1).sum(1)
    return total * bandwidth_hz if bandwidth_hz is not None else total


def proportional_fair_utility(rate: torch.Tensor, *, floor: float = 1e-9) -> torch.Tensor:
    """Proportional-fair utility ``sum_k log(R_k)`` of per-user rates (B, K) -> (B,).

    Rates are floored at ``floor`` so that a starved user gives a large finite penalty.
    """
    return torch.log(rate.clamp_min(floor)).sum(-1)


def jain_fairness(x: torch.Tensor) -> torch.Tensor:
    """Jain's index ``(sum x)^2 / (K sum x^2)`` over the last axis: (B, K) -> (B,), in [1/K, 1]."""
    K = x.shape[-1]
    denominator = K * (x**2).sum(-1)
    return torch.where(denominator > 0, x.sum(-1) ** 2 / denominator, torch.ones_like(denominator))


def lpei(objective: float, computation: float, signaling: float) -> float:
    """Logarithmic performance-efficiency index (seed 003 eq. (43), reconstructed).

    The seed defines the LPEI to weigh "the objective function value, computational cost, and
    the signaling overhead" jointly, with a "logarithmic normalization" because the costs of
    the two algorithms differ by orders of magnitude; the formula itself was lost. This is the
    form its prose describes (choice):

        LPEI = F / (log10(1 + C) + log10(1 + S))

    with F the PF objective ``sum_k ln SE_k`` (> 0 when every SE exceeds 1 bit/s/Hz), C the
    computational cost and S the signaling overhead, both >= 0. The experiments use C = the
    measured wall time per realization in microseconds and S = the real scalars exchanged per
    realization summed over the BSs (measured by the ledger for the distributed algorithm,
    counted the same way for the centralized one); the relative LPEI of Fig. 5 is
    ``LPEI_distributed / LPEI_centralized`` on the same realization (> 1: more efficient).
    The units of C and S shift both LPEIs, so they are fixed here and in the docs.
    """
    for name, value in (("computation", computation), ("signaling", signaling)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite cost >= 0, got {value}")
    denominator = math.log10(1.0 + computation) + math.log10(1.0 + signaling)
    if denominator <= 0:
        raise ValueError("lpei needs a positive computational or signaling cost")
    return objective / denominator


def handover_count(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Number of users whose serving BS changed: (B, K) long, (B, K) long -> (B,) long."""
    if previous.shape != current.shape:
        raise ShapeError(
            f"association shapes differ: {tuple(previous.shape)} vs {tuple(current.shape)}"
        )
    return (previous != current).sum(-1)


def channel_strength(H: torch.Tensor) -> torch.Tensor:
    """Channel strength ``||h_{n,k}||^2``: (B, K, N, M) complex -> (B, K, N) real."""
    return H.real.square().sum(-1) + H.imag.square().sum(-1)


def strongest_transmitter(H: torch.Tensor) -> torch.Tensor:
    """Index of the transmitter with the largest ``||h_{n,k}||^2`` per receiver: (B, K) long.

    This is the strongest-channel (SC) association of seed 000 §VI.
    """
    return channel_strength(H).argmax(-1)
