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

from skyshare.experiments.catn_schemes import scenario_sweep_experiment

__all__ = ["EXPERIMENT", "SCHEMES", "Preset", "jobs"]

SCHEMES = ("D3QN-CUP",)

Preset, jobs, EXPERIMENT = scenario_sweep_experiment(
    "catn-fig7",
    "seed 000 Fig. 7: D3QN-CUP for several BS power limits P_max",
    "p_max_values_w",
    "p_max_w",
    "D3QN-CUP, P_max={:g} W",
    "fig7.png",
)
