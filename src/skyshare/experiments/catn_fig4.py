"""``catn-fig4``: sum rate and per-AU interference over training slots, all schemes (seed 000).

Every scheme of seed 000 §VI is one job per seed, run with the online loop of Algorithm 4
(:func:`skyshare.schemes.catn_online.run_online`). DCD-DFP is computed on equally spaced
slots only, as in the paper (100 slots out of 6000). The figure plots moving averages with a
span of 41 slots (§VI), like Fig. 4(a)-(b).

Presets (``skyshare/configs/experiments/catn-fig4/``): ``paper`` (6000 slots, the paper's
networks) and ``quick`` (a few hundred slots, smaller networks: minutes on a laptop CPU).
``--schemes`` may name any registered CATN scheme (:data:`skyshare.schemes.catn.SCHEMES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skyshare.experiments.catn_schemes import (
    CatnPreset,
    scheme_jobs,
    training_curves_experiment,
    with_seed,
)
from skyshare.experiments.jobs import Job
from skyshare.schemes.catn import SCHEMES

__all__ = ["EXPERIMENT", "FIG4_SCHEMES", "Preset", "jobs", "summary_table"]

# the eight schemes of Fig. 4 (seed 000 §VI)
FIG4_SCHEMES = (
    "D3QN-CUP",
    "DCD-CUP",
    "SC-CUP",
    "D3QN-PPO",
    "D3QN-WMMSE",
    "SC-WMMSE",
    "DCD-WMMSE",
    "DCD-DFP",
)


class Preset(CatnPreset):
    """catn-fig4: the shared seed-000 parameters (:class:`CatnPreset`)."""


def jobs(preset: Preset, preset_name: str, schemes: Sequence[str] | None = None) -> list[Job]:
    """One job per (scheme, seed); ``schemes`` defaults to Fig. 4's eight."""
    return scheme_jobs("catn-fig4", preset, preset_name, schemes or FIG4_SCHEMES)


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows) of the CLI's table: last sixth of the slots per scheme."""
    columns = ["scheme", "sum rate (bit/s/Hz)", "rho / I_max per AU", "decision time (ms)"]
    rows = [
        [
            with_seed(summary, key, result["scheme"]),
            f"{result['mean_sum_rate_last']:.4g}",
            ", ".join(f"{x:.3g}" for x in result["mean_rho_over_imax_last"]),
            f"{result['mean_decision_time_s'] * 1e3:.3g}",
        ]
        for key, result in summary["results"].items()
    ]
    return f"catn-fig4 ({summary['preset']}): last sixth of the slots", columns, rows


EXPERIMENT = training_curves_experiment(
    "catn-fig4",
    "seed 000 Fig. 4: sum rate and AU interference over training slots, all schemes",
    Preset,
    SCHEMES,  # the registry itself: a scheme registered later can be run too
    jobs,
    "fig4.png",
    table=summary_table,
)
