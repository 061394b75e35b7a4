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

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from skyshare.experiments.catn_schemes import (
    CatnPreset,
    scenario_sweep_jobs,
    training_curves_experiment,
)
from skyshare.experiments.jobs import Job

__all__ = ["EXPERIMENT", "SCHEMES", "Preset", "jobs"]

SCHEMES = ("D3QN-CUP",)


class Preset(CatnPreset):
    """catn-fig7: the shared parameters and the BS power budgets P_max of the D3QN-CUP curves, W."""

    p_max_values_w: list[Annotated[float, Field(gt=0)]] = Field(..., min_length=1)


def jobs(preset: Preset, preset_name: str, schemes: Sequence[str] | None = None) -> list[Job]:
    """D3QN-CUP once per value of ``p_max_values_w`` and seed."""
    if schemes is not None and "D3QN-CUP" not in schemes:
        return []
    return scenario_sweep_jobs(
        "catn-fig7", preset, preset_name, "p_max_values_w", "p_max_w", "D3QN-CUP, P_max={:g} W"
    )


EXPERIMENT = training_curves_experiment(
    "catn-fig7",
    "seed 000 Fig. 7: D3QN-CUP for several BS power limits P_max",
    Preset,
    SCHEMES,
    jobs,
    "fig7.png",
)
