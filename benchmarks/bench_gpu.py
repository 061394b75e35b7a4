"""Seed-000 learners on a CUDA GPU: decision time vs Table I and the full training run.

The same measurements as ``bench_rl`` (a) and (c), on ``cuda`` instead of the CPU; every timed
call ends with ``torch.cuda.synchronize``. Table I was measured with an RTX 2080 Ti, so this
is the like-for-like comparison for the GPU. Skipped (the previous figures kept) on a machine
without CUDA; ``SKYSHARE_BENCH_RL_SLOTS`` shortens the full run (reported as an extrapolation).
"""

from __future__ import annotations

import os

import torch

from benchmarks.bench_rl import FULL_RUN_SLOTS, _decision_rows, full_training_run
from benchmarks.common import Section, SectionSkipped, fmt


def run() -> Section:
    if not torch.cuda.is_available():
        raise SectionSkipped("no CUDA device")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    name = torch.cuda.get_device_name()
    section = Section(
        key="gpu",
        title="Seed-000 learners on a GPU: decision time and the full training run (Table I)",
        description=(
            f"As the rl section (a) and (c), on {name} (float32, one CPU thread driving it). "
            "Per-slot decision time of all 28 agents (association + BS policy + beamformers "
            "(9)) amortised over B, and the wall time of the 6000-slot D3QN-CUP training run "
            "through run_online (B = 1)."
        ),
        columns=["part", "what", "B", "ms (per env-slot where amortised)", "Table I ms", "x"],
    )
    try:
        for batch in (1, 64):
            _decision_rows(section, batch, device="cuda")
        n_slots = int(os.environ.get("SKYSHARE_BENCH_RL_SLOTS", 0) or FULL_RUN_SLOTS)
        seconds, updates = full_training_run(n_slots, device="cuda")
        scale = FULL_RUN_SLOTS / n_slots
        value = f"{fmt(seconds)} s = {seconds / 60:.1f} min measured ({updates} CUP updates)"
        if n_slots != FULL_RUN_SLOTS:
            value = (
                f"EXTRAPOLATED x{scale:g} from a measured {n_slots}-slot run ({fmt(seconds)} s):"
                f" {fmt(seconds * scale)} s = {seconds * scale / 60:.1f} min"
            )
        section.rows.append(
            [
                "(c) full run on the GPU",
                f"D3QN-CUP training, {FULL_RUN_SLOTS} slots (run_online)",
                "1",
                value,
                "-",
                "target < 300 s",
            ]
        )
    finally:
        torch.set_num_threads(threads)
    section.notes.append(
        "Also measured (through the CLI, not this script): the 15 paper-preset jobs of "
        "catn-fig5/6/7 (6000 training slots each, 11 of them D3QN-CUP) ran at once on an H100 "
        "with CUDA MPS, one process each (`skyshare run ... --workers N --device cuda`): "
        "164-282 s per job, all 15 in 5.3 min (docs/experiments/catn.md)."
    )
    section.notes.append(
        f"GPU: {name}. Table I: i7-11700K + RTX 2080 Ti (seed 000 §VI). At B = 1 every step "
        "is a chain of small kernels, so the time is launch latency, not arithmetic."
    )
    return section
