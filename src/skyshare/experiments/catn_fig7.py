"""``catn-fig7``: D3QN-CUP for several BS power limits P_max (seed 000 Fig. 7).

Fig. 7 shows D3QN-CUP for different maximum transmit powers P_max of the BSs (I_max =
1.6e-10 mW): as P_max increases, the scheme needs more training slots to converge (a wider
action range to explore, more conservative agents). Each value is one training job of
Algorithm 4 (:func:`~skyshare.experiments.catn_schemes.scheme_job`) with the scenario override
``p_max_w``; the figure has Fig. 7's two panels: (a) TU sum rate and (b) received interference
power of the two AUs over training slots, each curve's I_max dotted.

The seed's text does not list the P_max values of Fig. 7 (its legend is lost with the
figure): the ``paper`` preset sweeps factors of 2 around the nominal 20 W (5, 10, 20, 40 W,
I_max = 1.6e-10 mW); the ``quick`` preset keeps 5, 20 and 40 W.
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
    "catn_fig7_jobs",
    "run",
    "summary_table",
]

SCHEMES = ("D3QN-CUP",)

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {**catn_fig4.PRESETS["paper"], "p_max_values_w": [5.0, 10.0, 20.0, 40.0]},
    "quick": {**catn_fig4.PRESETS["quick"], "p_max_values_w": [5.0, 20.0, 40.0]},
}


def catn_fig7_jobs(preset: str = "quick", schemes: list[str] | None = None) -> list[Job]:
    """D3QN-CUP once per value of ``p_max_values_w`` and seed."""
    if preset not in PRESETS:
        raise UnknownNameError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    if schemes is not None and "D3QN-CUP" not in schemes:
        return []
    return scenario_sweep_jobs(
        "catn-fig7", preset, PRESETS[preset], "p_max_values_w", "p_max_w", "D3QN-CUP, P_max={:g} W"
    )


EXPERIMENT = training_curves_experiment(
    "catn-fig7",
    "seed 000 Fig. 7: D3QN-CUP for several BS power limits P_max",
    PRESETS,
    tuple(SCHEMES),
    catn_fig7_jobs,
    "fig7.png",
)
run = EXPERIMENT.run
summary_table = EXPERIMENT.table
