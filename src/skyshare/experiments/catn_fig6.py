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

from skyshare.experiments.catn_schemes import scenario_sweep_experiment

__all__ = ["EXPERIMENT", "SCHEMES", "Preset", "jobs"]

SCHEMES = ("D3QN-CUP",)

Preset, jobs, EXPERIMENT = scenario_sweep_experiment(
    "catn-fig6",
    "seed 000 Fig. 6: D3QN-CUP for several interference limits I_max",
    "i_max_values_mw",
    "i_max_mw",
    "D3QN-CUP, I_max={:.2g} mW",
    "fig6.png",
)
