"""``catn-fig4``: sum rate and per-AU interference over training slots, all schemes (seed 000).

Every scheme of seed 000 §VI is one job per seed, run with the online loop of Algorithm 4
(:func:`skyshare.experiments.catn_training.run_online`). DCD-DFP is computed on equally spaced
slots only, as in the paper (100 slots out of 6000). The figure plots moving averages with a
span of 41 slots (§VI), like Fig. 4(a)-(b).

Presets: ``paper`` (6000 slots, the paper's networks) and ``quick`` (a few hundred slots, smaller
networks: minutes on a laptop CPU).
"""

from __future__ import annotations

from typing import Any

from skyshare.experiments.catn_schemes import SCHEMES, training_curves_experiment
from skyshare.experiments.jobs import Job

__all__ = [
    "EXPERIMENT",
    "PRESETS",
    "SCHEMES",
    "catn_fig4_jobs",
    "run",
    "summary_table",
]

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


EXPERIMENT = training_curves_experiment(
    "catn-fig4",
    "seed 000 Fig. 4: sum rate and AU interference over training slots, all schemes",
    PRESETS,
    tuple(SCHEMES),
    catn_fig4_jobs,
    "fig4.png",
    table=summary_table,
)
run = EXPERIMENT.run
