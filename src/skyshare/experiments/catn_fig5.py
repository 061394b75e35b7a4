"""``catn-fig5``: D3QN-PPO with a sweep of penalty weights zeta against D3QN-CUP (seed 000 Fig. 5).

PPO's BS reward is ``r~_n = r_n - zeta sum_l max(c_{n,l}, 0)`` (§VI); the paper shows that a
small zeta violates the AU interference constraint (with a higher sum rate than CUP) and a
large zeta is conservative (a lower sum rate, slow convergence), while CUP needs no weight.
Every (scheme, zeta) is one training job of Algorithm 4
(:func:`~skyshare.experiments.catn_schemes.scheme_job`); the figure has Fig. 5's two panels:
(a) TU sum rate and (b) received interference power of the two AUs over training slots.

The seed's text does not list the zeta values of Fig. 5 (its legend is lost with the figure):
the ``paper`` preset sweeps five decades, 0.01 to 100, around the scale of the costs
(``c = rho/I_max - 1`` is O(1) to O(10) before training, the BS reward O(10) bit/s/Hz); the
``quick`` preset keeps three of them.
"""

from __future__ import annotations

from typing import Any

from skyshare.errors import UnknownNameError
from skyshare.experiments import catn_fig4
from skyshare.experiments.catn_schemes import training_curves_experiment
from skyshare.experiments.jobs import Job

__all__ = [
    "EXPERIMENT",
    "PRESETS",
    "SCHEMES",
    "catn_fig5_jobs",
    "run",
    "summary_table",
]

SCHEMES = ("D3QN-PPO", "D3QN-CUP")

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {**catn_fig4.PRESETS["paper"], "zetas": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "quick": {**catn_fig4.PRESETS["quick"], "zetas": [0.01, 1.0, 100.0]},
}


def catn_fig5_jobs(preset: str = "quick", schemes: list[str] | None = None) -> list[Job]:
    """D3QN-PPO once per zeta of the preset and D3QN-CUP once, per seed."""
    if preset not in PRESETS:
        raise UnknownNameError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    params = {k: v for k, v in PRESETS[preset].items() if k != "zetas"}
    params["preset"] = preset
    names = schemes or list(SCHEMES)
    jobs = []
    for seed in params["seeds"]:
        if "D3QN-PPO" in names:
            jobs += [
                Job(
                    "catn-fig5",
                    "D3QN-PPO",
                    seed,
                    {**params, "ppo_penalty": float(z), "label": f"D3QN-PPO, zeta={z:g}"},
                )
                for z in PRESETS[preset]["zetas"]
            ]
        if "D3QN-CUP" in names:
            jobs.append(Job("catn-fig5", "D3QN-CUP", seed, {**params, "label": "D3QN-CUP"}))
    return jobs


EXPERIMENT = training_curves_experiment(
    "catn-fig5",
    "seed 000 Fig. 5: D3QN-PPO for a sweep of penalty weights zeta vs D3QN-CUP",
    PRESETS,
    tuple(SCHEMES),
    catn_fig5_jobs,
    "fig5.png",
)
run = EXPERIMENT.run
summary_table = EXPERIMENT.table
