"""``catn-table1``: measured signaling and decision time per scheme next to seed 000 Table I.

For each scheme of Table I (DCD-DFP, DCD-CUP, D3QN-CUP, SC-CUP, D3QN-PPO, D3QN-WMMSE) one job
runs the online loop of Algorithm 4 with untrained agents in evaluation mode (greedy D3QN, mean
Beta actions, no updates) for a few slots of the paper's network (L = 2, N = 7, K = 21, M = 16)
and measures

* the signaling per agent and slot from the env's :class:`~skyshare.signaling.SignalingLedger`
  (the real scalars actually delivered): what each TU receives for association, what each BS
  receives from other BSs for beamforming (Table I columns 2 and 3);
* the decision time per slot (association of all TUs + beamformers of all BSs, Table I column
  4), mean over the slots; inference cost does not depend on training, so untrained networks
  of the trained size measure it.

Next to them: Table I's closed forms evaluated at the run's sizes, and the paper's numbers
(3610 / 4416 scalars per BS; 78.78 s, 326.80 ms, 82.64 ms, 63.48 ms, 78.72 ms, 1.257 s on an
i7-11700K + RTX 2080 Ti, DCD-DFP in MATLAB, the others in Python). Writes ``table1.csv`` and
``table1.md``.
"""

from __future__ import annotations

import csv
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from skyshare.envs.catn import CatnEnv
from skyshare.experiments.catn_schemes import (
    CatnPreset,
    build_env,
    build_job_scheme,
    check_job,
    scheme_jobs,
    with_seed,
)
from skyshare.experiments.jobs import Experiment, Job, load_result
from skyshare.schemes.catn import split_scheme
from skyshare.schemes.catn_online import run_online

__all__ = [
    "EXPERIMENT",
    "PAPER_TABLE1",
    "SCHEMES",
    "Preset",
    "catn_table1_job",
    "closed_forms",
    "jobs",
    "summary_table",
    "write_table1",
]

SCHEMES = ("DCD-DFP", "DCD-CUP", "D3QN-CUP", "SC-CUP", "D3QN-PPO", "D3QN-WMMSE")

# seed 000 Table I (L = 2, N = 7, K = 21, M = 16; N_c = 4, B_in = 4, B~_in = 5, K_in = 3,
# K_out = 3): scalars each TU obtains for association, scalars each BS obtains from other BSs
# for beamforming, average computation time per slot in seconds.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "DCD-DFP": {"tu": 140, "bs": 4416, "time_s": 78.78},
    "DCD-CUP": {"tu": 140, "bs": 3610, "time_s": 0.32680},
    "D3QN-CUP": {"tu": 7, "bs": 3610, "time_s": 0.08264},
    "SC-CUP": {"tu": 0, "bs": 3610, "time_s": 0.06348},
    "D3QN-PPO": {"tu": 7, "bs": 3610, "time_s": 0.07872},
    "D3QN-WMMSE": {"tu": 7, "bs": 4416, "time_s": 1.257},
}


def closed_forms(env: CatnEnv, scheme: str) -> dict[str, float]:
    """Table I's formulas at ``env``'s sizes: TU column N (D3QN), N(K-1) (DCD), 0 (SC); BS column
    (3N_cK + K + 2) B_in K_in + (K + 6) B~_in L + 3 K_out B_in + 2L (observation exchange) or
    2M(N-1)K + 2M(N-1)L (global CSI)."""
    association, beamforming = split_scheme(scheme)
    c, N, K, L, M = env.config, env.N, env.K, env.L, env.M
    tu = {"d3qn": N, "dcd": N * (K - 1), "sc": 0}[association]
    if beamforming in ("cup", "ppo"):
        bs = (3 * c.n_compress * K + K + 2) * c.b_in * c.k_in + (K + 6) * c.b_in_pri * L
        bs += 3 * c.k_out * c.b_in + 2 * L
    else:
        bs = 2 * M * (N - 1) * K + 2 * M * (N - 1) * L
    return {"tu": float(tu), "bs": float(bs)}


class Preset(CatnPreset):
    """catn-table1: evaluation slots (``n_slots``; DCD-DFP ``dfp_slots``) of untrained agents
    of the trained size."""


def jobs(preset: Preset, preset_name: str, schemes: Sequence[str] | None = None) -> list[Job]:
    """One measurement job per scheme and seed."""
    return scheme_jobs("catn-table1", preset, preset_name, schemes or SCHEMES)


def catn_table1_job(job: Job, folder: Path) -> dict[str, Any]:
    """Run ``job.scheme`` untrained in evaluation mode for ``n_slots`` slots (DCD-DFP:
    ``dfp_slots``); return the measured signaling per agent and slot, the decision times,
    Table I's closed forms at these sizes and the paper's numbers."""
    torch.set_num_threads(job.threads)
    p = job.params
    _, beamforming = split_scheme(job.scheme)
    n_slots = int(p["dfp_slots"] if beamforming == "fp" else p["n_slots"])
    env = build_env(job.scheme, p, job.seed, n_slots, device=job.device)
    scheme = build_job_scheme(env, job.scheme, p, job.seed)
    log = run_online(env, scheme, n_slots, train=False, seed=job.seed)
    measured = env.ledger.per_kind_per_slot()
    times = torch.tensor(log.decision_time_s(), dtype=torch.float64)
    return {
        "scheme": job.scheme,
        "slots": len(log.slots),
        "signaling_tu": measured.get("tu", 0.0),
        "signaling_bs": measured.get("bs", 0.0),
        "signaling_by_category": {
            f"{kind}/{category}": value
            for (kind, category), value in env.ledger.per_agent_per_slot().items()
        },
        "closed_form": closed_forms(env, job.scheme),
        "paper": PAPER_TABLE1[job.scheme],
        "decision_time_s": float(times.mean()),
        "decision_time_std_s": float(times.std()) if times.numel() > 1 else 0.0,
        "sizes": {"L": env.L, "N": env.N, "K": env.K, "M": env.M},
        "machine": f"{platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {job.device}",
    }


def _rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = [
        "scheme",
        "TU info measured",
        "TU info Table I",
        "BS info measured",
        "BS info Table I",
        "decision time measured (ms)",
        "decision time paper (ms)",
    ]
    rows = [
        [
            r["scheme"],
            f"{r['signaling_tu']:g}",
            f"{r['paper']['tu']:g}",
            f"{r['signaling_bs']:g}",
            f"{r['paper']['bs']:g}",
            f"{r['decision_time_s'] * 1e3:.4g}",
            f"{r['paper']['time_s'] * 1e3:.6g}",
        ]
        for r in results
    ]
    return columns, rows


def write_table1(
    run_dir: str | Path, selected: list[Job], summary: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """``table1.csv`` and ``table1.md`` from the finished jobs."""
    run_dir = Path(run_dir)
    results = [load_result(run_dir, job) for job in selected]
    several = len({job.seed for job in selected}) > 1  # rows named by seed, as the CLI's
    columns, rows = _rows(
        [
            {**r, "scheme": f"{r['scheme']}, seed {job.seed}" if several else r["scheme"]}
            for job, r in zip(selected, results, strict=True)
        ]
    )
    with open(run_dir / "table1.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    lines = [
        "# catn-table1: signaling per agent and slot, decision time per slot (seed 000 Table I)",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    if results:
        r = results[0]
        lines += [
            f"Measured on {r['machine']} with L={r['sizes']['L']}, N={r['sizes']['N']}, "
            f"K={r['sizes']['K']}, M={r['sizes']['M']}; the paper used an i7-11700K and an RTX "
            "2080 Ti, DCD-DFP in MATLAB, the other schemes in Python.",
            "",
        ]
    (run_dir / "table1.md").write_text("\n".join(lines))
    return run_dir / "table1.csv", run_dir / "table1.md"


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows): Table I measured next to the paper."""
    results = summary["results"]
    columns, rows = _rows(
        [{**r, "scheme": with_seed(summary, key, r["scheme"])} for key, r in results.items()]
    )
    return f"catn-table1 ({summary['preset']}): per agent and slot", columns, rows


EXPERIMENT = Experiment(
    "catn-table1",
    "seed 000 Table I: measured signaling and decision time per scheme vs the paper",
    Preset,
    jobs,
    catn_table1_job,
    write_table1,
    summary_table,
    SCHEMES,
    check_job=check_job,
)
