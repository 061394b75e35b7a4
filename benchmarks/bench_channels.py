"""Channel generation + SINR kernel throughput on the CATN scenario (seed 000).

One "slot" = advance the channel process one slot (AR(1) fading of every BS-TU and BS-AU link,
motion, path loss, steering vectors) and evaluate the SINR kernel on it (strongest-channel
association, MRT beams at equal power, SINR and rate of every TU, interference at every AU).
"""

from __future__ import annotations

import torch

from benchmarks.common import Section, fmt, time_call
from skyshare import metrics
from skyshare.beamforming import mrt_equal_power
from skyshare.scenarios import CatnScenario


def _slot_fn(scenario: CatnScenario, *, with_kernel: bool = True):
    p_max = scenario.config.p_max_w

    def slot() -> None:
        if scenario.t + 1 >= scenario.config.n_slots:
            scenario.reset()
        state = scenario.step()
        if with_kernel:
            serving = metrics.strongest_transmitter(state.H)
            w = mrt_equal_power(state.H, serving, p_max)
            metrics.sinr(metrics.associated_gains(state.H, w, serving))
            metrics.primary_interference(state.G, w, serving)

    return slot


def _kernel_fn(scenario: CatnScenario):
    state = scenario.state
    serving = metrics.strongest_transmitter(state.H)
    w = mrt_equal_power(state.H, serving, scenario.config.p_max_w)

    def kernel() -> None:
        metrics.sinr(metrics.associated_gains(state.H, w, serving))
        metrics.primary_interference(state.G, w, serving)

    return kernel


def run() -> Section:
    torch.set_grad_enabled(False)
    section = Section(
        key="channels",
        title="Channel generation + SINR kernel (catn, seed 000 network)",
        description=(
            "Time per batched slot: channel process step (AR(1) fading on all 21x7 BS-TU and "
            "2x7 BS-AU 16-antenna links, motion, UMa/FSPL path loss, URA steering) plus the SINR "
            "kernel (SC association, MRT at equal power, TU SINR/rate, AU interference). "
            "Throughput = realizations x slots per second. float32/complex64 on the CPU."
        ),
        columns=[
            "network (N, K, M, L)",
            "B",
            "step + kernel (ms/slot)",
            "kernel only (ms)",
            "realization-slots/s",
            "us per realization-slot",
        ],
    )
    cases = [((7, 21, 4, 4, 2), b) for b in (1, 64, 1024)]
    cases += [
        ((19, 57, 4, 4, 2), 64),
        ((37, 111, 4, 4, 2), 64),
        ((7, 63, 4, 4, 2), 64),
        ((7, 21, 8, 8, 2), 64),
        ((7, 21, 16, 16, 2), 64),
    ]
    for (n_bs, n_tu, rows, cols, n_au), batch in cases:
        overrides = {
            "n_bs": n_bs,
            "n_tu": n_tu,
            "ura_rows": rows,
            "ura_cols": cols,
            "n_au": n_au,
            "n_slots": 2000,
        }
        scenario = CatnScenario.from_preset("paper", overrides=overrides, batch_size=batch)
        scenario.reset(seed=0)
        per_slot = time_call(_slot_fn(scenario), repeats=5, min_time_s=1.0)
        kernel = time_call(_kernel_fn(scenario), repeats=5, min_time_s=0.5)
        section.rows.append(
            [
                f"({n_bs}, {n_tu}, {rows * cols}, {n_au})",
                str(batch),
                fmt(per_slot * 1e3),
                fmt(kernel * 1e3),
                fmt(batch / per_slot),
                fmt(per_slot / batch * 1e6),
            ]
        )
    section.notes.append(
        "Cost grows linearly in B (beyond B ~ 64, where per-call overhead is amortised), in N*K*M "
        "for the channel step, and in K^2*M for the kernel's gathered gain matrix."
    )
    return section
