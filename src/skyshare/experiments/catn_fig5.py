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

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from skyshare.experiments.catn_schemes import CatnPreset, training_curves_experiment
from skyshare.experiments.jobs import Job

__all__ = ["EXPERIMENT", "SCHEMES", "Preset", "jobs"]

SCHEMES = ("D3QN-PPO", "D3QN-CUP")


class Preset(CatnPreset):
    """catn-fig5: the shared parameters and the penalty weights of the D3QN-PPO curves."""

    zetas: list[Annotated[float, Field(ge=0)]] = Field(..., min_length=1)


def jobs(preset: Preset, preset_name: str, schemes: Sequence[str] | None = None) -> list[Job]:
    """D3QN-PPO once per zeta of the preset and D3QN-CUP once, per seed."""
    params = preset.job_params(preset_name, exclude={"zetas"})
    names = schemes or SCHEMES
    selected = []
    for seed in preset.seeds:
        if "D3QN-PPO" in names:
            selected += [
                Job(
                    "catn-fig5",
                    "D3QN-PPO",
                    seed,
                    {**params, "ppo_penalty": float(z), "label": f"D3QN-PPO, zeta={z:g}"},
                )
                for z in preset.zetas
            ]
        if "D3QN-CUP" in names:
            selected.append(Job("catn-fig5", "D3QN-CUP", seed, {**params, "label": "D3QN-CUP"}))
    return selected


EXPERIMENT = training_curves_experiment(
    "catn-fig5",
    "seed 000 Fig. 5: D3QN-PPO for a sweep of penalty weights zeta vs D3QN-CUP",
    Preset,
    SCHEMES,
    jobs,
    "fig5.png",
)
