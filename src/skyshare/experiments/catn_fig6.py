"""``catn-fig6``: D3QN-CUP for several interference limits I_max (seed 000 Fig. 6).

Fig. 6 shows D3QN-CUP for different interference temperature limits I_max (P_max = 20 W): as
I_max decreases, the sum rate decreases (a stricter constraint), and the interference at both
AUs is driven to near each I_max. Each value is one training job of Algorithm 4
(:func:`~skyshare.experiments.catn_schemes.scheme_job`) with the scenario override
``i_max_mw``; the figure has Fig. 6's two panels: (a) TU sum rate and (b) received interference
power of the two AUs over training slots, each curve's I_max dotted.

The seed's text does not list the I_max values of Fig. 6 (its legend is lost with the
figure): the ``paper`` preset sweeps factors of 2 around the nominal 1.6e-10 mW (0.4e-10 to
6.4e-10 mW, P_max = 20 W); the ``quick`` preset keeps factors of 4 (0.4e-10, 1.6e-10,
6.4e-10 mW).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skyshare.errors import UnknownNameError
from skyshare.experiments import catn_fig4
from skyshare.experiments.catn_schemes import (
    plot_training_curves,
    run_training_curves,
    scenario_sweep_jobs,
    training_curves_table,
)
from skyshare.experiments.jobs import Execution, Experiment, Job

__all__ = [
    "EXPERIMENT",
    "PRESETS",
    "SCHEMES",
    "catn_fig6_jobs",
    "plot_catn_fig6",
    "run",
    "summary_table",
]

SCHEMES = ("D3QN-CUP",)

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        **catn_fig4.PRESETS["paper"],
        "i_max_values_mw": [0.4e-10, 0.8e-10, 1.6e-10, 3.2e-10, 6.4e-10],
    },
    "quick": {**catn_fig4.PRESETS["quick"], "i_max_values_mw": [0.4e-10, 1.6e-10, 6.4e-10]},
}


def catn_fig6_jobs(preset: str = "quick", schemes: list[str] | None = None) -> list[Job]:
    """D3QN-CUP once per value of ``i_max_values_mw`` and seed."""
    if preset not in PRESETS:
        raise UnknownNameError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    if schemes is not None and "D3QN-CUP" not in schemes:
        return []
    return scenario_sweep_jobs(
        "catn-fig6",
        preset,
        PRESETS[preset],
        "i_max_values_mw",
        "i_max_mw",
        "D3QN-CUP, I_max={:.2g} mW",
    )


def plot_catn_fig6(run_dir: str | Path, jobs: list[Job]) -> Path:
    """Fig. 6(a) sum rate and 6(b) AU interference over slots, one colour per value."""
    return plot_training_curves(run_dir, jobs, "fig6.png", "catn-fig6 (seed 000 Fig. 6)")


def run(
    run_dir: str | Path,
    preset: str = "quick",
    *,
    schemes: list[str] | None = None,
    execution: Execution | None = None,
) -> dict[str, Any]:
    """All jobs (resuming finished ones), ``fig6.png`` and ``summary.json`` in ``run_dir``."""
    return run_training_curves(
        "catn-fig6", catn_fig6_jobs(preset, schemes), run_dir, preset, PRESETS[preset],
        "fig6.png", "catn-fig6 (seed 000 Fig. 6)",
        execution=execution,
    )  # fmt: skip


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows): per curve, means over the last sixth of the training slots."""
    return training_curves_table("catn-fig6", summary)


EXPERIMENT = Experiment(
    name="catn-fig6",
    description="seed 000 Fig. 6: D3QN-CUP for several interference limits I_max",
    presets=PRESETS,
    schemes=SCHEMES,
    run=run,
    table=summary_table,
)
