"""Batched WMMSE power control for the SISO interference channel, with an active set.

K single-antenna transmitter-receiver pairs; transmitter k serves only receiver k under its own
budget P_k, every other transmitter interferes (interference treated as noise). This is the
special case M = 1, N = K (one BS per user, no AU constraints) of :mod:`skyshare.solvers.wmmse`,
and the setting in which "learning to optimise" papers time WMMSE (Sun, Chen, Shi, Hong, Fu,
Sidiropoulos, "Learning to optimize: training deep neural networks for interference
management", IEEE TSP 66(20), 2018, whose per-sample numpy loop is the reference peer here).

Problem (noise sigma_k^2, weights alpha_k, default 1)::

    max_{0 <= v_k <= sqrt(P_k)}  sum_k alpha_k log2(1 + SINR_k),
    SINR_k = |h_kk|^2 v_k^2 / (sum_{j != k} |h_kj|^2 v_j^2 + sigma_k^2)

Only the amplitudes |h_kj| enter the sum rate, so the solver works in the real-amplitude form:
complex channels are replaced by ``|H|`` and the transmit "beams" v_k are real, non-negative
amplitudes (powers p_k = v_k^2). The standard complex form (u_k = h_kk v_k / T_k,
w_k = 1 / (1 - u_k^* h_kk v_k), v_k = alpha_k w_k u_k h_kk^* / sum_j alpha_j w_j |u_j|^2
|h_jk|^2, scaled onto |v_k| <= sqrt(P_k)) keeps the phase of each v_k and gives the same |v_k|,
w_k and rates at every iteration, so nothing is lost.

Updates: Shi, Razaviyayn, Luo, He, "An iteratively weighted MMSE approach to distributed
sum-utility maximization for a MIMO interfering broadcast channel", IEEE TSP 59(9), 2011,
specialised to one antenna per node (their Table I with scalar receive filter u_k, MSE weight
w_k and transmit amplitude v_k; the same updates are the pseudo-code of WMMSE in Sun et al. 2018,
Fig. 1)::

    u_k = h_kk v_k / (sum_j h_kj^2 v_j^2 + sigma_k^2)                                 (U)
    w_k = 1 / (1 - u_k h_kk v_k)        = 1 + SINR_k                                     (W)
    v_k = [ alpha_k w_k u_k h_kk / sum_j alpha_j w_j u_j^2 h_jk^2 ]_0^{sqrt(P_k)}     (V)

with h_kj = |h_kj| (receiver k, transmitter j). One iteration is (V) then (U), (W) at the new
amplitudes; the objective it tracks is sum_k alpha_k log2 w_k, which equals the weighted sum
rate of the current amplitudes. Each update is a block-exact minimisation of the weighted
sum-MSE, so the weighted sum rate never decreases.

Start: full power v_k = sqrt(P_k) (or ``p0``), as the peer. Stopping rule (the peer's): instance
b stops after the first iteration whose objective change is at most ``tol`` bit/s/Hz
(``new - old <= tol``, absolute, default 1e-3 as in Sun et al. 2018) or after ``max_iter``
iterations (default 100, also the peer's). ``rtol`` adds a relative rule ``new - old <= rtol
|old|`` (either one stops an instance).

Active set: instances that have stopped are removed from the working tensors (compacted with
``index_select``), so later iterations cost only what the unconverged instances need; the
result reports each instance's own iteration count, and a batch returns, per instance, what
that instance returns when solved alone (the per-instance arithmetic does not depend on the
other instances).

Numerics: the interference-plus-noise I_k = sum_{j != k} h_kj^2 v_j^2 + sigma_k^2 is computed
from the off-diagonal gains, so w_k = 1 + S_k / I_k carries no cancellation (the form
1 / (1 - u h v) loses digits at high SINR).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = ["SisoWmmseResult", "siso_sum_rate", "wmmse_siso"]

_LOG2_E = 1.0 / math.log(2.0)


@dataclass
class SisoWmmseResult:
    """What :func:`wmmse_siso` returns.

    Attributes:
        power: (B, K) transmit powers p_k = v_k^2 (same unit as ``p_max``).
        amplitude: (B, K) real transmit amplitudes v_k >= 0 (the SISO "beams").
        rates: (B, K) bit/s/Hz of each pair at ``power``.
        sum_rate: (B,) bit/s/Hz, sum_k rates (unweighted).
        objective: (B,) sum_k alpha_k rates (equals ``sum_rate`` without weights).
        iterations: (B,) long, iterations each instance ran.
        converged: (B,) bool, the instance met the stopping rule before ``max_iter``.
        objective_trace: (B, T + 1) objective at the start and after each iteration, T = the
            largest ``iterations``; an instance's entries after its last iteration repeat its
            final value. None unless ``trace=True``.
        batch_iterations: iterations the batch loop ran (= max of ``iterations``).
        instance_iterations_run: sum over iterations of the instances still active, i.e. the
            work done (the frozen-batch equivalent would be ``B * batch_iterations``).
        wall_time_s: seconds spent in the solver.
    """

    power: torch.Tensor
    amplitude: torch.Tensor
    rates: torch.Tensor
    sum_rate: torch.Tensor
    objective: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    objective_trace: torch.Tensor | None
    batch_iterations: int
    instance_iterations_run: int
    wall_time_s: float


def _per_pair(
    value: float | torch.Tensor, name: str, B: int, K: int, like: torch.Tensor, *, positive: bool
) -> torch.Tensor:
    """A scalar, (K,) or (B, K) value as a (B, K) tensor of ``like``'s dtype; checks it."""
    bad = f"{name} must be finite and {'> 0' if positive else '>= 0'}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # cheap path
        if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
            raise ConfigError(f"{bad}, got {value!r}")
        return torch.full((B, K), float(value), dtype=like.dtype, device=like.device)
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.is_complex():
        raise ConfigError(f"{name} must be real, got a complex value")
    if (
        t.ndim > 2
        or (t.ndim >= 1 and t.shape[-1] not in (1, K))
        or (t.ndim == 2 and t.shape[0] not in (1, B))
    ):
        raise ShapeError(
            f"{name} must be a scalar, (K,) or (B, K) = ({B}, {K}), got {tuple(t.shape)}"
        )
    ok = torch.isfinite(t) & ((t > 0) if positive else (t >= 0))
    if not bool(ok.all()):
        raise ConfigError(bad)
    return t.expand(B, K)


def _amplitudes(H: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    if not isinstance(H, torch.Tensor) or H.ndim != 3 or H.shape[1] != H.shape[2]:
        shape = tuple(H.shape) if isinstance(H, torch.Tensor) else type(H).__name__
        raise ShapeError(f"H must be (B, K, K) (receiver, transmitter), got {shape}")
    if H.shape[0] < 1 or H.shape[1] < 1:
        raise ShapeError(f"H must have B >= 1 and K >= 1, got {tuple(H.shape)}")
    if not (H.is_floating_point() or H.is_complex()):
        raise ShapeError(f"H must be a real or complex floating tensor, got {H.dtype}")
    amp = H.abs() if H.is_complex() else H
    # Two reductions (cheap at small B): NaN or inf makes the sum non-finite.
    if not math.isfinite(float(amp.sum())) and not bool(torch.isfinite(amp).all()):
        raise ConfigError("H must be finite (NaN or inf channel gains)")
    if float(amp.amin()) < 0:
        raise ConfigError("H must hold amplitudes |h_kj| >= 0 when real (or be complex)")
    if dtype is not None:
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        amp = amp.to(dtype)
    return amp


def _inputs(H, p_max, noise, weights, p0, max_iter, tol, rtol, dtype):
    """Checked inputs of :func:`wmmse_siso`: amplitudes (B, K, K), sqrt(P) (B, K), sigma^2
    (B, K), weights (B, K) or None, starting amplitudes (B, K)."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    for name, value in (("tol", tol), ("rtol", rtol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    amp = _amplitudes(H, dtype)
    B, K, _ = amp.shape
    sqrt_p = _per_pair(p_max, "p_max", B, K, amp, positive=True).sqrt()
    sigma2 = _per_pair(noise, "noise", B, K, amp, positive=True)
    alpha = None
    if weights is not None:
        alpha = _per_pair(weights, "weights", B, K, amp, positive=False)
    if p0 is None:
        return amp, sqrt_p, sigma2, alpha, sqrt_p.clone()
    if not isinstance(p0, torch.Tensor) or p0.shape != (B, K):
        shape = tuple(p0.shape) if isinstance(p0, torch.Tensor) else type(p0).__name__
        raise ShapeError(f"p0 must be (B, K) = ({B}, {K}), got {shape}")
    p0 = p0.to(amp.dtype)
    if not bool(torch.isfinite(p0).all()) or bool((p0 < 0).any()):
        raise ConfigError("p0 must be finite and >= 0")
    if bool((p0 > sqrt_p.square() * (1 + 1e-6)).any()):
        raise ConfigError("p0 must not exceed p_max")
    return amp, sqrt_p, sigma2, alpha, torch.minimum(p0.sqrt(), sqrt_p)


def siso_sum_rate(
    H: torch.Tensor, power: torch.Tensor, noise: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """Per-pair rates (B, K) in bit/s/Hz of powers ``power (B, K)`` on ``H (B, K, K)``
    (amplitudes or complex; receiver k, transmitter j), noise ``sigma^2``."""
    G = H.abs().square() if H.is_complex() else H.square()
    signal = torch.diagonal(G, dim1=1, dim2=2) * power
    total = torch.bmm(G, power.to(G.dtype)[..., None])[..., 0] + noise
    return torch.log2(total / (total - signal))  # total - signal >= noise > 0


def _receivers(v, g_off, g_d, h_d, s2, a):
    """(U), (W) and the objective (nats) at amplitudes v (n, K, 1): u, w, objective (n,).

    g_off: (n, K, K) h_kj^2 with a zero diagonal; g_d, h_d, s2: (n, K, 1) h_kk^2, h_kk,
    sigma_k^2; a: [] (unweighted) or [(n, K, 1) alpha_k].
    """
    power = v * v
    interference = torch.baddbmm(s2, g_off, power)  # I_k = sum_{j != k} h_kj^2 p_j + s^2
    signal = g_d * power  # S_k
    u = h_d * v / (interference + signal)
    w = signal / interference + 1.0  # 1 / (1 - u h v), without the cancellation
    log_w = torch.log(w)
    objective = (a[0] * log_w if a else log_w).sum((1, 2))
    return u, w, objective


def wmmse_siso(
    H: torch.Tensor,
    *,
    p_max: float | torch.Tensor = 1.0,
    noise: float | torch.Tensor = 1.0,
    weights: torch.Tensor | None = None,
    p0: torch.Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-3,
    rtol: float = 0.0,
    dtype: torch.dtype | None = None,
    trace: bool = False,
) -> SisoWmmseResult:
    """WMMSE power control of a SISO interference channel, batched, with an active set.

    Args:
        H: (B, K, K) channel amplitudes |h_kj| >= 0 (real) or complex channels h_kj (only
            |h_kj| is used); receiver k, transmitter j; transmitter k serves receiver k.
        p_max: per-pair power budget P_k > 0: scalar, (K,) or (B, K).
        noise: noise power sigma_k^2 > 0 at each receiver: scalar, (K,) or (B, K).
        weights: (B, K) or (K,) rate weights alpha_k >= 0; all ones when None.
        p0: (B, K) starting powers in [0, P_k]; full power when None (the peer's start).
        max_iter: iteration limit per instance (default 100, as Sun et al. 2018).
        tol: absolute stopping tolerance on the objective change in bit/s/Hz (default 1e-3, as
            Sun et al. 2018's ``vnew - vold <= 1e-3``); 0 disables it.
        rtol: relative stopping tolerance (change <= rtol |objective|); 0 (default) disables
            it. Either rule stops an instance.
        dtype: float32 or float64 for the iterations; None keeps H's real precision.
        trace: also return the (B, T + 1) objective trace.

    Returns:
        :class:`SisoWmmseResult` (powers, amplitudes, rates, per-instance iterations, ...).
    """
    start = time.perf_counter()
    amp, sqrt_p, sigma2, alpha, v = _inputs(
        H, p_max, noise, weights, p0, max_iter, tol, rtol, dtype
    )
    B, K, _ = amp.shape
    device = amp.device
    weighted = alpha is not None

    # Working tensors are columns (n, K, 1) so that every update is one batched op without
    # reshapes (small batches pay per op). h_kj^2 with a zero diagonal, and its transpose.
    gain = amp.square()
    g_diag = torch.diagonal(gain, dim1=1, dim2=2).clone()  # (B, K) h_kk^2
    g_off = gain.diagonal_scatter(torch.zeros_like(g_diag), dim1=1, dim2=2)
    # Per-instance constants, packed so that one index_select compacts them all.
    packed = (g_diag, g_diag.sqrt(), sqrt_p, sigma2) + ((alpha,) if weighted else ())
    const = torch.stack(packed, 1)[..., None]  # (B, 4 or 5, K, 1)
    tiny = torch.finfo(amp.dtype).tiny
    tol_nats = tol * math.log(2.0)  # the objective is tracked in nats inside the loop

    g_d, h_d, s_p, s2, *a = const.unbind(1)
    g_off_t = g_off.transpose(1, 2)
    v = v[..., None]
    u, w, objective = _receivers(v, g_off, g_d, h_d, s2, a)
    out_v = torch.empty(B, K, dtype=amp.dtype, device=device)
    out_w = torch.empty(B, K, dtype=amp.dtype, device=device)
    iterations = torch.full((B,), max_iter, dtype=torch.long, device=device)
    converged = torch.zeros(B, dtype=torch.bool, device=device)
    history = None
    if trace:
        history = torch.empty(B, max_iter + 1, dtype=amp.dtype, device=device)
        history[:, 0] = objective
    index = torch.arange(B, device=device)  # original positions of the working set
    active = B
    work_done = 0
    it = 0
    for it in range(1, max_iter + 1):
        # (V): v_k = alpha_k w_k u_k h_kk / sum_j alpha_j w_j u_j^2 h_jk^2, clipped to [0, sqrt P_k]
        x = a[0] * w * u if a else w * u
        y = x * u
        denominator = torch.baddbmm(y * g_d, g_off_t, y).clamp_min(tiny)
        v = torch.minimum(x * h_d / denominator, s_p)
        u, w, new_objective = _receivers(v, g_off, g_d, h_d, s2, a)
        change = new_objective - objective
        done = change <= tol_nats
        if rtol:
            done = done | (change <= rtol * objective.abs())
        objective = new_objective
        work_done += active
        if history is not None:
            history[index, it] = objective
        if bool(done.any()):
            if active == 1:  # the last instance (B = 1, or the batch's slowest): no compaction
                out_v[index], out_w[index] = v[..., 0], w[..., 0]
                iterations[index] = it
                converged[index] = True
                active = 0
                break
            finished = index[done]
            out_v[finished], out_w[finished] = v[done, :, 0], w[done, :, 0]
            iterations[finished] = it
            converged[finished] = True
            keep = (~done).nonzero()[:, 0]
            active = keep.numel()
            if active == 0:
                break
            index = index[keep]
            g_off = g_off.index_select(0, keep)
            g_off_t = g_off.transpose(1, 2)
            const = const.index_select(0, keep)
            g_d, h_d, s_p, s2, *a = const.unbind(1)
            v, u, w, objective = v[keep], u[keep], w[keep], objective[keep]
    if active:  # these hit max_iter
        out_v[index], out_w[index] = v[..., 0], w[..., 0]

    rates = torch.log2(out_w)  # w_k = 1 + SINR_k at the returned amplitudes
    power = out_v.square()
    sum_rate = rates.sum(-1)
    objective_trace = None
    if history is not None:
        T = int(iterations.max())
        steps = torch.arange(T + 1, device=device).expand(B, T + 1)
        objective_trace = history.gather(1, torch.minimum(steps, iterations[:, None])) * _LOG2_E
    return SisoWmmseResult(
        power=power,
        amplitude=out_v,
        rates=rates,
        sum_rate=sum_rate,
        objective=(alpha * rates).sum(-1) if weighted else sum_rate,
        iterations=iterations,
        converged=converged,
        objective_trace=objective_trace,
        batch_iterations=it,
        instance_iterations_run=work_done,
        wall_time_s=time.perf_counter() - start,
    )
