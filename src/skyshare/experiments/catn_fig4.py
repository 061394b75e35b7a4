"""``catn-fig4``: sum rate and per-AU interference over training slots, all schemes (seed 000).

Every scheme of seed 000 §VI is one job per seed, run with the online loop of Algorithm 4
(:func:`skyshare.experiments.catn_training.run_online`). DCD-DFP is computed on equally spaced
slots only, as in the paper (100 slots out of 6000). The figure plots moving averages with a
span of 41 slots (§VI), like Fig. 4(a)-(b).

Presets: ``paper`` (6000 slots, the paper's networks) and ``quick`` (a few hundred slots, smaller
networks: minutes on a laptop CPU).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch

from skyshare.experiments.jobs import Experiment, Job, run_jobs

__all__ = [
    "EXPERIMENT",
    "PRESETS",
    "SCHEMES",
    "catn_fig4_job",
    "catn_fig4_jobs",
    "plot_catn_fig4",
    "run",
    "summary_table",
]

# scheme -> (association, beamforming); the paper's WMMSE benchmark is its low-complexity
# variant (§VI), DFP is the direct FP upper bound.
SCHEMES: dict[str, tuple[str, str]] = {
    "D3QN-CUP": ("d3qn", "cup"),
    "DCD-CUP": ("dcd", "cup"),
    "SC-CUP": ("sc", "cup"),
    "D3QN-PPO": ("d3qn", "ppo"),
    "D3QN-WMMSE": ("d3qn", "wmmse-lite"),
    "SC-WMMSE": ("sc", "wmmse-lite"),
    "DCD-WMMSE": ("dcd", "wmmse-lite"),
    "DCD-DFP": ("dcd", "fp"),
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "n_slots": 6000,
        "dfp_slots": 100,
        "seeds": [0],
        "hidden_sizes": [512, 128, 64],
        "scenario": {},
        "ppo_penalty": 10.0,
    },
    "quick": {
        "n_slots": 300,
        "dfp_slots": 6,
        "seeds": [0],
        "hidden_sizes": [64, 32, 16],
        "scenario": {"n_tu": 14},
        "ppo_penalty": 10.0,
    },
}


def catn_fig4_jobs(preset: str = "quick", schemes: list[str] | None = None) -> list[Job]:
    """One job per (scheme, seed) with the preset's parameters."""
    if preset not in PRESETS:
        from skyshare.errors import UnknownNameError

        raise UnknownNameError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    params = PRESETS[preset]
    names = schemes or list(SCHEMES)
    return [
        Job("catn-fig4", name, seed, {**params, "preset": preset})
        for name in names
        for seed in params["seeds"]
    ]


def catn_fig4_job(job: Job, folder: Path) -> dict[str, Any]:
    """Run one scheme; write ``series.csv`` (per slot) and return the summary."""
    from skyshare.envs import CatnEnv, CatnEnvConfig
    from skyshare.experiments.catn_training import run_online
    from skyshare.rl import CupAgents, CupConfig, D3QNAgents, PpoPenaltyAgents
    from skyshare.rl.ppo_penalty import PpoPenaltyConfig
    from skyshare.scenarios import CatnScenario

    torch.set_num_threads(1)
    p = job.params
    association, beamforming = SCHEMES[job.scheme]
    n_slots = int(p["n_slots"])
    scenario = CatnScenario.config_from(
        "paper", overrides={**p["scenario"], "n_slots": n_slots + 2, "seed": job.seed}
    )
    tu_info = {"d3qn": "d3qn", "dcd": "dcd", "sc": "sc"}[association]
    bs_info = "exchange" if beamforming in ("cup", "ppo") else "global_csi"
    env = CatnEnv(scenario, CatnEnvConfig(tu_information=tu_info, bs_information=bs_info))
    hidden = tuple(p["hidden_sizes"])
    tu_agents = bs_agents = None
    if association == "d3qn":
        tu_agents = D3QNAgents(
            env.tu_obs_dim, env.N, env.K, generator=torch.Generator().manual_seed(job.seed)
        )
    if beamforming == "cup":
        bs_agents = CupAgents(
            env.bs_obs_dim,
            env.action_dim,
            env.N,
            env.L,
            CupConfig(hidden_sizes=hidden, seed=job.seed),
        )
    elif beamforming == "ppo":
        bs_agents = PpoPenaltyAgents(
            env.bs_obs_dim,
            env.action_dim,
            env.N,
            env.L,
            PpoPenaltyConfig(hidden_sizes=hidden, penalty=p["ppo_penalty"], seed=job.seed),
        )
    every = max(1, n_slots // int(p["dfp_slots"])) if beamforming == "fp" else 1
    log = run_online(
        env,
        association,
        beamforming,
        n_slots,
        tu_agents=tu_agents,
        bs_agents=bs_agents,
        seed=job.seed,
        evaluate_every=every,
    )
    slots = log.slots
    with open(folder / "series.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "slot",
                "sum_rate",
                *[f"au{l_}_rho_over_imax" for l_ in range(env.L)],
                "handover_fraction",
                "decision_time_s",
            ]
        )
        for i, slot in enumerate(slots):
            writer.writerow(
                [
                    slot,
                    log.sum_rate[i],
                    *log.au_interference_ratio[i],
                    log.handover_fraction[i],
                    log.decision_time_s[i],
                ]
            )
    tail = max(1, len(slots) // 6)
    ratio = torch.tensor(log.au_interference_ratio)
    return {
        "scheme": job.scheme,
        "slots": len(slots),
        "mean_sum_rate_last": float(torch.tensor(log.sum_rate[-tail:]).mean()),
        "mean_rho_over_imax_last": ratio[-tail:].mean(0).tolist(),
        "mean_decision_time_s": float(torch.tensor(log.decision_time_s).mean()),
        "bs_updates": log.updates,
    }


def _moving_average(values: list[float], span: int = 41) -> list[float]:
    x = torch.tensor(values, dtype=torch.float64)
    k = max(1, min(span, x.numel()))
    padded = torch.nn.functional.pad(x[None, None], (k // 2, k - 1 - k // 2), "replicate")
    return torch.nn.functional.conv1d(padded, torch.ones(1, 1, k, dtype=x.dtype) / k)[0, 0].tolist()


def plot_catn_fig4(run_dir: str | Path, jobs: list[Job]) -> Path:
    """Fig. 4(a) sum rate and 4(b) per-AU interference (dB re I_max) over slots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    for job in jobs:
        rows = list(csv.DictReader(open(run_dir / "jobs" / job.job_id / "series.csv")))
        slots = [int(r["slot"]) for r in rows]
        style = "--" if job.scheme == "DCD-DFP" else "-"
        rate = [float(r["sum_rate"]) for r in rows]
        top.plot(slots, rate if style == "--" else _moving_average(rate), style, label=job.scheme)
        for key in (k for k in rows[0] if k.startswith("au")):
            series = [10 * torch.log10(torch.tensor(float(r[key]))).item() for r in rows]
            smooth = series if style == "--" else _moving_average(series)
            bottom.plot(slots, smooth, style, lw=0.8, label=f"{job.scheme} {key[:3]}")
    bottom.axhline(0.0, color="k", lw=1, ls=":", label="I_max")
    top.set(ylabel="TU sum rate (bit/s/Hz)", title="catn-fig4 (seed 000 Fig. 4), moving average 41")
    bottom.set(xlabel="training slot", ylabel="AU interference / I_max (dB)")
    top.legend(fontsize=7, ncol=2)
    bottom.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    path = run_dir / "fig4.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(
    run_dir: str | Path,
    preset: str = "quick",
    *,
    executor: str = "local",
    address: str | None = None,
    schemes: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """All jobs (resuming finished ones), the figure and ``summary.json`` in ``run_dir``."""
    jobs = catn_fig4_jobs(preset, schemes)
    results = run_jobs(
        jobs, catn_fig4_job, run_dir, executor=executor, address=address, progress=progress
    )
    plot_catn_fig4(run_dir, jobs)
    summary = {
        "experiment": "catn-fig4",
        "preset": preset,
        "params": PRESETS[preset],
        "results": {job.job_id: results[job.job_id] for job in jobs},
    }
    (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows) of the CLI's table: last sixth of the slots per scheme."""
    columns = ["scheme", "sum rate (bit/s/Hz)", "rho / I_max per AU", "decision time (ms)"]
    rows = [
        [
            result["scheme"],
            f"{result['mean_sum_rate_last']:.4g}",
            ", ".join(f"{x:.3g}" for x in result["mean_rho_over_imax_last"]),
            f"{result['mean_decision_time_s'] * 1e3:.3g}",
        ]
        for result in summary["results"].values()
    ]
    return f"catn-fig4 ({summary['preset']}): last sixth of the slots", columns, rows


EXPERIMENT = Experiment(
    name="catn-fig4",
    description="seed 000 Fig. 4: sum rate and AU interference over training slots, all schemes",
    presets=PRESETS,
    schemes=tuple(SCHEMES),
    run=run,
    table=summary_table,
)
