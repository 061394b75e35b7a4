"""Gain kernels doing only the needed work: ``associated_gains`` old (all-BS GEMM) vs gather.

``A[b, r, j] = h_{serving_j, r}^H w_j`` either from one GEMM of every BS's channel with every
beam (``N R J M`` work, then a gather of n = serving_j) or from the served channels gathered
first (``R J M``, independent of N). Rows: the SISO interference channel (N = K BSs, one user
each, M = 1), the seed-000 paper network, then scaling sweeps with fitted log-log exponents, and
the CATN channel process step (the catn env's channel generation) against N K M.

Every old/new pair is timed interleaved in one process (median of alternating repeats), so the
ratios hold even where absolute times drift. One thread, complex64, CPU.
"""

from __future__ import annotations

import math
import statistics

import torch

from benchmarks.common import Section, fmt, time_call
from skyshare import metrics
from skyshare.beamforming import mrt_equal_power
from skyshare.scenarios import CatnScenario

SISO_B = 1000
SWEEP_B = 32


def _random(B, R, N, M, J, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(B, R, N, M, dtype=torch.complex64, generator=g)
    w = torch.randn(B, J, M, dtype=torch.complex64, generator=g)
    serving = torch.randint(0, N, (B, J), generator=g)
    return H, w, serving


def _paired(H, w, serving, *, rounds: int = 3, min_time_s: float = 0.06) -> tuple[float, float]:
    """Median seconds per call of the all-BS and the gather kernel, timed alternately."""
    old, new = [], []
    for _ in range(rounds):
        old.append(
            time_call(
                lambda: metrics.associated_gains(H, w, serving, method="all_bs"),
                repeats=3,
                min_time_s=min_time_s,
            )
        )
        new.append(
            time_call(
                lambda: metrics.associated_gains(H, w, serving, method="gather"),
                repeats=3,
                min_time_s=min_time_s,
            )
        )
    return statistics.median(old), statistics.median(new)


def _slope(xs, ys) -> float:
    """Least-squares exponent p of y ~ x^p."""
    fit = statistics.linear_regression([math.log(x) for x in xs], [math.log(y) for y in ys])
    return fit.slope


def _row(section, case, shape, old, new):
    B, R, N, M, J = shape
    picks = "gather" if metrics.gather_pays(N, M) else "all-BS"
    section.rows.append(
        [case, f"({B}, {R}, {N}, {M}, {J})", fmt(old * 1e3), fmt(new * 1e3), fmt(old / new), picks]
    )


def _sweep(section, label, values, make_shape):
    olds, news = [], []
    for v in values:
        shape = make_shape(v)
        old, new = _paired(*_random(*shape), rounds=2, min_time_s=0.04)
        olds.append(old)
        news.append(new)
        _row(section, f"sweep {label} = {v}", shape, old, new)
    return _slope(values, olds), _slope(values, news)


def _channel_step_fn(scenario: CatnScenario):
    def step() -> None:
        if scenario.t + 1 >= scenario.config.n_slots:
            scenario.reset()
        scenario.step()

    return step


def run() -> Section:
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    section = Section(
        key="kernels",
        title="Gain kernel: all-BS GEMM vs gathered serving channels (associated_gains)",
        description=(
            "Time of `metrics.associated_gains` (B, R, N, M) x (B, J, M) -> (B, R, J), complex64, "
            "1 thread: old = `method='all_bs'` (GEMM over every BS, N R J M work, then gather), "
            "new = `method='gather'` (copy the serving channel of each beam, then contract: "
            "R J M work). Pairs timed interleaved; `auto` = what `method='auto'` uses "
            "(gather when M = 1 or N^2 >= 6 M). SISO = N = K single-antenna BSs, one user each."
        ),
        columns=["case", "(B, R, N, M, J)", "all-BS (ms)", "gather (ms)", "ratio", "auto"],
    )
    for K in (10, 20, 30):
        shape = (SISO_B, K, K, 1, K)
        old, new = _paired(*_random(*shape))
        _row(section, f"SISO K = {K}", shape, old, new)

    for batch in (64, 1024):
        scenario = CatnScenario.from_preset("paper", batch_size=batch)
        state = scenario.reset(seed=0)
        serving = metrics.strongest_transmitter(state.H)
        w = mrt_equal_power(state.H, serving, scenario.config.p_max_w)
        old, new = _paired(state.H, w, serving)
        B, R, N, M = state.H.shape
        _row(section, "seed-000 paper network", (B, R, N, M, w.shape[1]), old, new)

    k_old, k_new = _sweep(section, "K", [16, 32, 64, 128], lambda k: (SWEEP_B, k, 7, 4, k))
    m_old, m_new = _sweep(section, "M", [16, 32, 64, 128, 256], lambda m: (SWEEP_B, 21, 7, m, 21))
    n_old, n_new = _sweep(section, "N", [7, 13, 19, 37, 61], lambda n: (SWEEP_B, 21, n, 16, 21))
    section.notes.append(
        f"Fitted log-log exponents, old / new: time vs K (R = J = K, N = 7, M = 4) "
        f"{k_old:.2f} / {k_new:.2f} (K^2 expected for both); vs M (K = 21, N = 7) "
        f"{m_old:.2f} / {m_new:.2f} (1 expected); vs N (K = 21, M = 16) "
        f"{n_old:.2f} / {n_new:.2f} (old 1, new 0 expected)."
    )

    # The CATN channel process step (the catn env's channel generation) vs N K M.
    sizes, times, labels = [], [], []
    for n_bs, n_tu, side in [(7, 21, 4), (19, 57, 4), (37, 111, 4), (61, 183, 4), (7, 21, 16)]:
        overrides = {"n_bs": n_bs, "n_tu": n_tu, "ura_rows": side, "ura_cols": side}
        overrides["n_slots"] = 2000
        scenario = CatnScenario.from_preset("paper", overrides=overrides, batch_size=16)
        scenario.reset(seed=0)
        seconds = time_call(_channel_step_fn(scenario), repeats=3, min_time_s=0.15)
        sizes.append(n_bs * (n_tu + scenario.config.n_au) * side * side)
        times.append(seconds)
        labels.append(f"({n_bs}, {n_tu}, {side * side})")
    slope = _slope(sizes, times)
    section.notes.append(
        "CATN channel step, B = 16, ms per slot for (N, K, M): "
        + ", ".join(f"{lab} {fmt(t * 1e3)}" for lab, t in zip(labels, times, strict=True))
        + f"; fitted exponent vs N (K + L) M: {slope:.2f} (linear expected; not optimised here)."
    )
    return section
