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

from typing import Any

from skyshare.errors import UnknownNameError
from skyshare.experiments import catn_fig4
from skyshare.experiments.catn_schemes import scenario_sweep_jobs, training_curves_experiment
from skyshare.experiments.jobs import Job

__all__ = [
    "EXPERIMENT",
    "PRESETS",
    "SCHEMES",
    "catn_fig6_jobs",
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


EXPERIMENT = training_curves_experiment(
    "catn-fig6",
    "seed 000 Fig. 6: D3QN-CUP for several interference limits I_max",
    PRESETS,
    tuple(SCHEMES),
    catn_fig6_jobs,
    "fig6.png",
)
run = EXPERIMENT.run
summary_table = EXPERIMENT.table
