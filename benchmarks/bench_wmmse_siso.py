"""Batched SISO WMMSE (``skyshare.solvers.wmmse_siso``) vs the per-sample numpy loop.

Setting (the "learning to optimise" standard of Sun et al., IEEE TSP 2018): K-pair SISO
interference channel, Rayleigh h_kj ~ CN(0, 1) i.i.d., P_max = 1 for every pair, sigma^2 = 1,
start at full power, stop when the sum rate gains at most 1e-3 bit/s/Hz in an iteration, at
most 100 iterations. The channels are drawn once per K (seeded) and every solver gets the same
ones.

Peers, written here from the published scalar updates (Shi et al., IEEE TSP 2011; Sun et al.
2018, Fig. 1), one sample at a time in a plain Python loop:

* ``numpy loop``: the form the L2O papers time, a Python loop over the users inside each
  update (u_k, w_k, v_k one user at a time, numpy for the sums over j). The issue's peer.
* ``numpy vectorised``: the same iterations with each update one numpy expression over all
  users (a stronger per-sample peer, for reference).

Timing: one torch thread; the solvers of one row group run interleaved in the same process
(drift on this machine is large, so only ratios measured side by side are meaningful).
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
import torch

from benchmarks.common import Section, fmt
from benchmarks.opcount import count_ops
from skyshare.solvers.problem import BeamformingProblem
from skyshare.solvers.wmmse import wmmse
from skyshare.solvers.wmmse_siso import wmmse_siso

KS = (10, 20, 30)
BATCH = 1000
SINGLE = 100  # B = 1 rows: this many samples, solved one at a time by every solver
ROUNDS = 3  # interleaved rounds of the B = 1000 comparison (median per-sample time)
GENERAL_SUBSET = 100  # the general wmmse (seed 000 machinery) is timed on this many samples
MAX_ITER, TOL, P_MAX, NOISE = 100, 1e-3, 1.0, 1.0


def rayleigh_amplitudes(batch: int, K: int, seed: int) -> torch.Tensor:
    """(batch, K, K) float64 |h_kj| with h_kj ~ CN(0, 1), receiver k, transmitter j."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, K, K, 2, generator=g, dtype=torch.float64) / math.sqrt(2.0)
    return torch.view_as_complex(h).abs()


def numpy_loop(
    h: np.ndarray,
    p_max: float = P_MAX,
    noise: float = NOISE,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
) -> tuple[np.ndarray, float, int]:
    """One sample, user by user: (powers (K,), sum rate, iterations). h: (K, K) amplitudes."""
    K = h.shape[0]
    v = np.full(K, math.sqrt(p_max))
    u = np.zeros(K)
    w = np.zeros(K)
    rate = 0.0
    for k in range(K):  # u, w and the sum rate at the start
        u[k] = h[k, k] * v[k] / (np.square(h[k, :]) @ np.square(v) + noise)
        w[k] = 1.0 / (1.0 - u[k] * h[k, k] * v[k])
        rate += math.log2(w[k])
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        old = rate
        for k in range(K):
            t = w[k] * u[k] * h[k, k] / np.sum(w * np.square(u) * np.square(h[:, k]))
            v[k] = min(max(t, 0.0), math.sqrt(p_max))
        rate = 0.0
        for k in range(K):
            u[k] = h[k, k] * v[k] / (np.square(h[k, :]) @ np.square(v) + noise)
            w[k] = 1.0 / (1.0 - u[k] * h[k, k] * v[k])
            rate += math.log2(w[k])
        if rate - old <= tol:
            break
    return np.square(v), rate, it


def numpy_vectorised(
    h: np.ndarray,
    p_max: float = P_MAX,
    noise: float = NOISE,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
) -> tuple[np.ndarray, float, int]:
    """One sample, each update one expression over all users."""
    g = np.square(h)
    hd = np.diag(h).copy()
    v = np.full(h.shape[0], math.sqrt(p_max))
    u = hd * v / (g @ np.square(v) + noise)
    w = 1.0 / (1.0 - u * hd * v)
    rate = float(np.log2(w).sum())
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        old = rate
        v = np.clip(w * u * hd / (g.T @ (w * np.square(u))), 0.0, math.sqrt(p_max))
        u = hd * v / (g @ np.square(v) + noise)
        w = 1.0 / (1.0 - u * hd * v)
        rate = float(np.log2(w).sum())
        if rate - old <= tol:
            break
    return np.square(v), rate, it


def _rel(x: float, ref: float) -> str:
    """Relative difference in percent, small values in scientific notation."""
    d = (x / ref - 1.0) * 100.0
    return f"{d:+.3f} %" if abs(d) >= 1e-3 else f"{d:+.1e} %"


def _per_sample(solve, samples: np.ndarray):
    """Solve each sample alone: seconds per sample, sum rates, iterations."""
    start = time.perf_counter()
    out = [solve(h) for h in samples]
    seconds = (time.perf_counter() - start) / len(samples)
    return seconds, np.array([o[1] for o in out]), np.array([o[2] for o in out])


def _torch(H: torch.Tensor):
    start = time.perf_counter()
    result = wmmse_siso(H, p_max=P_MAX, noise=NOISE, max_iter=MAX_ITER, tol=TOL)
    return time.perf_counter() - start, result


def _general(H: torch.Tensor) -> tuple[float, float, float, float]:
    """Seed 000's wmmse on the same channels (M = 1, N = K BSs, no AUs), default tolerances."""
    B = H.shape[0]
    problem = _general_problem(H)
    start = time.perf_counter()
    result = wmmse(problem)
    seconds = (time.perf_counter() - start) / B
    mean_iters = float(result.instance_iterations.float().mean())
    return seconds, float(result.sum_rate.mean()), mean_iters, float(result.iterations)


def _general_problem(H: torch.Tensor) -> BeamformingProblem:
    B, K, _ = H.shape
    return BeamformingProblem(
        H=H.to(torch.complex128)[..., None],
        G=torch.zeros(B, 0, K, 1, dtype=torch.complex128),
        serving=torch.arange(K).expand(B, K).clone(),
        p_max=P_MAX,
        i_max=math.inf,
    )


OPS_FROM, OPS_TO = 2, 12  # ops per iteration: (count at OPS_TO - count at OPS_FROM) / 10


def ops_per_iteration(H: torch.Tensor) -> dict[str, tuple[float, float]]:
    """ATen calls per iteration (all, kernels) of wmmse_siso and of the general wmmse on the
    same SISO problems: the difference between OPS_TO and OPS_FROM iterations with tol = 0
    (no instance stops early), divided by the iterations between; setup and output excluded."""
    problem = _general_problem(H)
    solvers = {
        "wmmse_siso": lambda n: wmmse_siso(H, p_max=P_MAX, noise=NOISE, max_iter=n, tol=0.0),
        "wmmse": lambda n: wmmse(problem, max_iter=n, tol=0.0),
    }
    out = {}
    for name, solve in solvers.items():
        low, high = (count_ops(lambda n=n, solve=solve: solve(n)) for n in (OPS_FROM, OPS_TO))
        steps = OPS_TO - OPS_FROM
        out[name] = ((high.total - low.total) / steps, (high.kernels - low.kernels) / steps)
    return out


def run() -> Section:
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    section = Section(
        key="wmmse_siso",
        title="SISO WMMSE: batched active-set solver vs the per-sample numpy loop",
        description=(
            "K-pair SISO interference channel, h_kj ~ CN(0, 1), P = 1, sigma^2 = 1 (Sun et al. "
            "2018's setup), full-power start, stop at a sum-rate gain <= 1e-3 bit/s/Hz or 100 "
            "iterations, for every solver. `wmmse_siso` (float64, one torch thread) solves the "
            "batch at once with an active set; the numpy peers solve one sample at a time "
            "(`numpy loop`: users looped inside each update, the form L2O papers time; `numpy "
            "vectorised`: each update one numpy expression). Same channels for all solvers. "
            "Ratio = peer time / wmmse_siso time per sample (measured interleaved, median of "
            f"{ROUNDS} rounds at B = {BATCH}; B = 1: {SINGLE} samples solved one at a time, "
            "interleaved). Iterations: mean per instance; for wmmse_siso also the iterations "
            "the batch loop ran (what a frozen batch would run for every instance)."
        ),
        columns=[
            "K",
            "B",
            "solver",
            "ms / sample",
            "loop / this",
            "mean sum rate",
            "vs loop",
            "iterations (mean / batch)",
        ],
    )
    for K in KS:
        H = rayleigh_amplitudes(BATCH, K, seed=K)
        samples = H.numpy()
        times = {"torch": [], "loop": [], "vec": []}
        for _ in range(ROUNDS):  # interleaved
            seconds, result = _torch(H)
            times["torch"].append(seconds / BATCH)
            seconds, loop_rate, loop_iters = _per_sample(numpy_loop, samples)
            times["loop"].append(seconds)
            seconds, vec_rate, vec_iters = _per_sample(numpy_vectorised, samples)
            times["vec"].append(seconds)
        t = {key: statistics.median(value) for key, value in times.items()}
        ref = float(loop_rate.mean())
        rate = float(result.sum_rate.mean())
        section.rows.append(
            [
                str(K),
                str(BATCH),
                "wmmse_siso",
                fmt(t["torch"] * 1e3),
                f"{t['loop'] / t['torch']:.1f}x",
                fmt(rate, 5),
                _rel(rate, ref),
                f"{float(result.iterations.float().mean()):.1f} / {result.batch_iterations}",
            ]
        )
        section.rows.append(
            [
                str(K),
                str(BATCH),
                "numpy loop",
                fmt(t["loop"] * 1e3),
                "1x",
                fmt(ref, 5),
                "",
                f"{loop_iters.mean():.1f}",
            ]
        )
        section.rows.append(
            [
                str(K),
                str(BATCH),
                "numpy vectorised",
                fmt(t["vec"] * 1e3),
                f"{t['loop'] / t['vec']:.1f}x",
                fmt(float(vec_rate.mean()), 5),
                _rel(float(vec_rate.mean()), ref),
                f"{vec_iters.mean():.1f}",
            ]
        )
        seconds, general_rate, general_mean_iters, general_iters = _general(H[:GENERAL_SUBSET])
        section.rows.append(
            [
                str(K),
                f"{GENERAL_SUBSET} (subset)",
                "wmmse (seed 000, M=1, N=K)",
                fmt(seconds * 1e3),
                f"{t['loop'] / seconds:.2f}x",
                fmt(general_rate, 5),
                _rel(general_rate, float(loop_rate[:GENERAL_SUBSET].mean())) + " (same subset)",
                f"{general_mean_iters:.1f} / {general_iters:.0f}",
            ]
        )

        # B = 1: each solver on the same SINGLE samples, one call per sample, interleaved.
        single = {"torch": 0.0, "loop": 0.0, "vec": 0.0}
        rates = {"torch": [], "loop": [], "vec": []}
        iters = {"torch": [], "loop": [], "vec": []}
        for b in range(SINGLE):
            seconds, r = _torch(H[b : b + 1])
            single["torch"] += seconds
            rates["torch"].append(float(r.sum_rate[0]))
            iters["torch"].append(int(r.iterations[0]))
            for key, solve in (("loop", numpy_loop), ("vec", numpy_vectorised)):
                start = time.perf_counter()
                _, sample_rate, sample_iters = solve(samples[b])
                single[key] += time.perf_counter() - start
                rates[key].append(sample_rate)
                iters[key].append(sample_iters)
        ref = statistics.mean(rates["loop"])
        for key, name in (
            ("torch", "wmmse_siso"),
            ("loop", "numpy loop"),
            ("vec", "numpy vectorised"),
        ):
            mean_rate = statistics.mean(rates[key])
            section.rows.append(
                [
                    str(K),
                    "1",
                    name,
                    fmt(single[key] / SINGLE * 1e3),
                    f"{single['loop'] / single[key]:.1f}x",
                    fmt(mean_rate, 5),
                    "" if key == "loop" else _rel(mean_rate, ref),
                    f"{statistics.mean(iters[key]):.1f}",
                ]
            )
    for K in KS:
        H = rayleigh_amplitudes(BATCH, K, seed=K)
        counts = {batch: ops_per_iteration(H[:batch]) for batch in (1, BATCH)}
        section.notes.append(
            f"ATen ops per iteration, K = {K} (all / kernels without views; "
            "benchmarks/opcount.py, iterations 3-12 with tol = 0): "
            + "; ".join(
                f"{name} B = {batch}: {counts[batch][name][0]:.1f} / {counts[batch][name][1]:.1f}"
                for name in ("wmmse_siso", "wmmse")
                for batch in (1, BATCH)
            )
            + "."
        )
    section.notes.append(
        "The B = 1 rows are the first "
        f"{SINGLE} samples of the same draw; 'loop / this' > 1 means faster than the numpy loop."
    )
    section.notes.append(
        "wmmse (seed 000) rows: the general solver (eigendecomposition w-step, eta search) on "
        f"the first {GENERAL_SUBSET} samples as (B, K, N=K, M=1) complex channels, its own "
        "default stopping rule (relative change 1e-5), so its iterations and sum rate are not "
        "on the same stopping rule; shown for the cost of the general path (which now also runs an "
        "active set; iterations: mean per instance / the batch's)."
    )
    return section
