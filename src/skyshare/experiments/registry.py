"""Every experiment id that ``skyshare run`` knows, by name.

Each experiment module defines one module-level :class:`~skyshare.experiments.jobs.Experiment`
(``EXPERIMENT``); this registry sits above them and is what the CLI reads.
"""

from __future__ import annotations

from skyshare.errors import UnknownNameError
from skyshare.experiments import (
    catn_fig4,
    catn_fig5,
    catn_fig6,
    catn_fig7,
    catn_fig8,
    catn_table1,
    multiband_capacity,
    tn_ntn,
    vhetnet_pf,
)
from skyshare.experiments.jobs import Experiment

__all__ = ["EXPERIMENTS", "get_experiment"]

EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        catn_fig4.EXPERIMENT,
        catn_fig5.EXPERIMENT,
        catn_fig6.EXPERIMENT,
        catn_fig7.EXPERIMENT,
        catn_fig8.EXPERIMENT,
        catn_table1.EXPERIMENT,
        multiband_capacity.FIG5,
        multiband_capacity.FIG6,
        multiband_capacity.FIG7,
        *vhetnet_pf.EXPERIMENTS.values(),
        *tn_ntn.EXPERIMENTS.values(),
    )
}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; a clear error listing the ids otherwise."""
    if name not in EXPERIMENTS:
        raise UnknownNameError(
            f"unknown experiment {name!r}; available: {', '.join(sorted(EXPERIMENTS))}"
        )
    return EXPERIMENTS[name]
