"""``vhetnet-*``: seed 003's figures and tables (HAPS vHetNet, proportional-fair beamforming).

Every experiment is a list of jobs (scheme x sweep point x seed); a job plays its scheme on
``realizations`` independent network realizations of the ``vhetnet`` scenario (the paper
preset plus the preset's and the point's overrides, seeded with the job's seed) with the one
loop :func:`skyshare.schemes.vhetnet.run_vhetnet`. All schemes of a seed and point see the
same realizations. The number of realizations was lost from the seed text: the paper presets
use 100 per point (choice), and every table gives the 95 % confidence half-width
(1.96 s / sqrt(n)) of its means.

* ``vhetnet-fig3``: average residual over the inner ADMM iterations and the PF objective over
  the outer ALM iterations (distributed);
* ``vhetnet-table2``: inner iterations for rho/beta = 0.5, 1, 2;
* ``vhetnet-fig4``: CDFs of the SE per UE and of the PF objective, centralized vs distributed;
* ``vhetnet-fig5``: CDF of the relative LPEI (distributed / centralized, :func:`lpei`);
* ``vhetnet-fig6``: average SE per UE and PF objective vs the number of UEs;
* ``vhetnet-fig7``: vHetNet vs standalone terrestrial network vs the number of MBSs;
* ``vhetnet-fig8``: average SE per UE vs the HAPS array size;
* ``vhetnet-fig9``: minimum SE per UE vs the HAPS power;
* ``vhetnet-table3``: signaling (measured by the ledger) and computation, both algorithms.

Outputs: ``jobs/<job_id>/result.json`` (per realization: SE per UE, PF objective, its share
of its solver call's wall time, iterations, flags, signaling; the wall time and size of every
solver call, ``call_time_s`` and ``call_sizes``; the mean traces), ``<figure>.png`` and
``summary.json``. The solvers handle ``batch`` realizations per call, so time is measured once
per call: the tables report it per realization as the calls' total time over the realizations,
without a confidence interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from skyshare.config import StrictModel
from skyshare.errors import ConfigError
from skyshare.experiments.jobs import Experiment, ExperimentPreset, Job
from skyshare.experiments.sweeps import check_sweep_points, check_swept_fields
from skyshare.experiments.vhetnet_report import (
    FINISH,
    SWEEP_FIGURES,
    TABLES,
    aggregate,
    sweep_fields,
)
from skyshare.schemes.vhetnet import (
    VHETNET_SCHEMES,
    OptionError,
    VhetnetRealizations,
    check_preset_options,
    run_vhetnet,
)

__all__ = ["EXPERIMENTS", "Point", "Preset", "aggregate", "realizations_job"]

SCHEMES = VHETNET_SCHEMES


class Point(StrictModel):
    """One point of a sweep: scenario overrides and per-scheme solver options."""

    label: str | None = Field(None, description="legend / table text (default: the overrides)")
    scenario: dict[str, Any] = Field(default_factory=dict, description="VhetnetConfig fields")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="solver keyword arguments per scheme name"
    )


class Preset(ExperimentPreset):
    """A vHetNet experiment: fixed overrides, schemes, realizations and sweep points."""

    scenario: dict[str, Any] = Field(
        default_factory=dict, description="fixed overrides of the vhetnet paper scenario"
    )
    schemes: list[str] = Field(..., min_length=1, description="registered vhetnet schemes")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="solver keyword arguments per scheme name"
    )
    realizations: int = Field(100, ge=1, le=100_000, description="realizations per job")
    batch: int = Field(10, ge=1, le=4096, description="realizations per solver call")
    sweep: str | None = Field(None, description="the figure's x axis (a scenario field)")
    points: list[Point] = Field(default_factory=lambda: [Point()], min_length=1)


def _jobs(experiment: str):
    def jobs(preset: Preset, preset_name: str, schemes: Sequence[str] | None = None) -> list[Job]:
        """One job per (point, scheme, seed); ``job.params`` holds the scenario overrides,
        the scheme's solver options, the realization count and the point's label."""
        names = list(schemes) if schemes else list(preset.schemes)
        for name in names:
            VHETNET_SCHEMES.entry(name)  # an unknown name fails before any job runs
        out = []
        for where, options in [("options", preset.options)] + [
            (f"points[{i}].options", point.options) for i, point in enumerate(preset.points)
        ]:
            unknown = sorted(set(options) - set(VHETNET_SCHEMES.names()))
            if unknown:
                raise ConfigError(
                    f"{where}: unknown scheme(s) {', '.join(unknown)}; options are keyed by "
                    f"scheme name: {', '.join(VHETNET_SCHEMES.names())}"
                )
        _check_swept_fields(preset)
        _check_sweep(experiment, preset)
        for i, point in enumerate(preset.points):
            scenario = {**preset.scenario, **point.scenario}
            _check_scenario(scenario)
            for name in dict.fromkeys([*names, *preset.options, *point.options]):
                _check_options(preset, i, name)  # also of schemes --schemes leaves out
            for name in names:
                options = {**preset.options.get(name, {}), **point.options.get(name, {})}
                params = {
                    "scenario": scenario,
                    "options": options,
                    "realizations": preset.realizations,
                    "batch": preset.batch,
                    "label": point.label or _label(point.scenario, point.options),
                    "seeds": list(preset.seeds),
                }
                out.extend(Job(experiment, name, seed, params) for seed in preset.seeds)
        return out

    return jobs


def _check_options(preset: Preset, i: int, name: str) -> None:
    """Build scheme ``name`` with its options at point ``i``: an unknown option name, a
    Python-object option (``agents``, ``ledger``, ``W0``) or a bad value (``executor=bogus``,
    ``solver=MOSEK`` when not installed, ``progress=abc``...) is refused before any job runs,
    the message naming the option's full path (``options.distributed.executor``, or
    ``points[i].options...`` when the point sets it)."""
    point = preset.points[i].options.get(name, {})
    options = {**preset.options.get(name, {}), **point}
    try:
        check_preset_options(name, options)
        VHETNET_SCHEMES.build(name, options)
    except OptionError as exc:
        where = f"points[{i}].options" if exc.option in point else "options"
        raise exc.at(f"{where}.{name}.{exc.option}") from None


def _check_swept_fields(preset: Preset) -> None:
    """Refuse a fixed field (``scenario.<name>``, ``options.<scheme>.<name>``) that every
    point sets too: the points' values win, so the fixed one (e.g. ``--set scenario.n_ue=0``
    on ``vhetnet-fig6``, whose points sweep ``n_ue``) would be silently ignored
    (:func:`~skyshare.experiments.sweeps.check_swept_fields`)."""
    check_swept_fields(
        "scenario", preset.scenario, "points[].scenario", [p.scenario for p in preset.points]
    )
    for scheme, values in preset.options.items():
        check_swept_fields(
            f"options.{scheme}",
            values,
            f"points[].options.{scheme}",
            [point.options.get(scheme, {}) for point in preset.points],
        )


def _check_sweep(experiment: str, preset: Preset) -> None:
    """A figure drawn against ``sweep`` needs it named and set by every point (its x value):
    refused here, before any job runs, rather than when the figure is drawn."""
    if experiment not in SWEEP_FIGURES:
        return
    check_sweep_points(
        experiment,
        preset.sweep,
        sweep_fields(preset.sweep),
        "points[].scenario",
        [{**preset.scenario, **point.scenario} for point in preset.points],
        example="e.g. sweep=n_ue, or haps_array for the HAPS antennas N_h x N_v",
    )


def _check_scenario(overrides: dict[str, Any]) -> None:
    """A clear error naming the field before any job runs when an override is invalid."""
    from skyshare.scenarios.vhetnet import VhetnetScenario

    VhetnetScenario.config_from("paper", overrides=overrides)


def _check_job(job: Job) -> None:
    """Before anything is written (``Experiment.check_job``): a scheme that builds the
    centralized SCA's CVXPY model (about K^3 in memory) checks its estimate against the limit."""
    from skyshare.scenarios.vhetnet import VhetnetScenario
    from skyshare.solvers.pf_sca import check_model_memory, sca_centralized

    scheme = VHETNET_SCHEMES.build(job.scheme, job.params["options"])
    if getattr(scheme, "solve", None) is sca_centralized:
        config = VhetnetScenario.config_from("paper", overrides=job.params["scenario"])
        check_model_memory(config.n_ue, config.n_tx, config.m_max)


def _label(scenario: dict[str, Any], options: dict[str, dict[str, Any]]) -> str:
    parts = [f"{key}={value}" for key, value in scenario.items()]
    parts += [f"{key}={value}" for scheme in options.values() for key, value in scheme.items()]
    return ", ".join(parts) or "default"


def _centralized_signaling(scenario: Any) -> list[float]:
    """Real scalars per BS of the centralized scheme for one realization, counted by the
    signaling ledger like the distributed messages (:func:`centralized_signaling`: every BS
    sends its channel and receives its beamformers)."""
    from skyshare.solvers.pf_agents import centralized_signaling

    totals = centralized_signaling(scenario.state.problem()).state_dict()["totals"]
    return torch.stack(list(totals.values())).sum(0).mean(0).tolist()  # (T,)


def _mean_trace(chunks: list[torch.Tensor], *, hold_last: bool = False) -> list[float]:
    """Mean over realizations of (R_chunk, I) traces (NaN after a realization stopped).

    ``hold_last``: a stopped realization keeps its last value (an objective: the mean stays
    over all realizations); otherwise it leaves the mean (a residual)."""
    longest = max(chunk.shape[-1] for chunk in chunks)
    rows = torch.cat(
        [
            torch.nn.functional.pad(chunk.double(), (0, longest - chunk.shape[-1]), value=math.nan)
            for chunk in chunks
        ]
    )
    if hold_last:
        for i in range(1, longest):  # forward fill along the (short) iteration axis
            rows[:, i] = torch.where(torch.isnan(rows[:, i]), rows[:, i - 1], rows[:, i])
    return rows.nanmean(0).tolist()


def _signaling_per_bs(run: VhetnetRealizations) -> list[float] | None:
    """Mean real scalars per BS per realization from the solver's ledger, if it kept one."""
    rows = [info["signaling_per_bs"] for info in run.info if "signaling_per_bs" in info]
    if not rows:
        return None
    return torch.as_tensor(rows, dtype=torch.float64).reshape(len(rows), -1).mean(0).tolist()


def _solver_calls(run: VhetnetRealizations, batch: int) -> tuple[list[float], list[int]]:
    """(wall time of every solver call, realizations it solved): :func:`run_vhetnet` solves
    the realizations in calls of ``batch`` (the last one cut) and splits a call's time equally
    over its realizations, so a call's time is the sum of its realizations' shares."""
    total = int(run.time_s.numel())
    sizes = [min(batch, total - start) for start in range(0, total, batch)]
    times, start = [], 0
    for size in sizes:
        times.append(float(run.time_s[start : start + size].sum()))
        start += size
    if len(sizes) != len(run.info):  # run_vhetnet's chunking changed: fix this reading of it
        raise RuntimeError(f"{len(run.info)} solver calls, {len(sizes)} expected")
    return times, sizes


def realizations_job(job: Job, folder: Path) -> dict[str, Any]:
    """Play ``job.scheme`` on the job's realizations; the result (also ``result.json``)."""
    from skyshare.scenarios.vhetnet import VhetnetScenario

    # --threads (default 1): the per-realization tensors are tiny, and intra-op threads on
    # them cost more than they give (PFBWD measured 7x slower with 2 threads on 2 busy cores)
    torch.set_num_threads(job.threads)
    params = job.params
    config = VhetnetScenario.config_from(
        "paper", overrides={**params["scenario"], "seed": int(job.seed)}
    )
    batch = min(params["batch"], params["realizations"])
    scenario = VhetnetScenario(config, batch_size=batch, device=job.device)
    scheme = VHETNET_SCHEMES.build(job.scheme, params["options"])
    run = run_vhetnet(scenario, scheme, params["realizations"], seed=int(job.seed))
    call_time_s, call_sizes = _solver_calls(run, batch)
    traces = {
        name: _mean_trace(chunks, hold_last="objective" in name)
        for name, chunks in run.traces.items()
    }
    # per realization, the iterations a trace ran (its finite entries): e.g. inner iterations
    trace_lengths = {
        name: torch.cat([torch.isfinite(c.double()).sum(-1) for c in chunks]).tolist()
        for name, chunks in run.traces.items()
    }
    signaling = _signaling_per_bs(run)
    if signaling is None and not VHETNET_SCHEMES.entry(job.scheme).tags.get("distributed"):
        signaling = _centralized_signaling(scenario)
    return {
        "scheme": job.scheme,
        "seed": job.seed,
        "label": params["label"],
        "scenario": params["scenario"],
        "options": params["options"],
        "se": run.se.tolist(),
        "pf_objective": run.pf_objective.tolist(),
        # per realization, its share of its solver call's time (not a measurement of its own:
        # the realizations of a call are solved together); the calls' times are below
        "time_s": run.time_s.tolist(),
        "call_time_s": call_time_s,
        "call_sizes": call_sizes,
        "iterations": run.iterations.tolist(),
        "converged": run.converged.tolist(),
        "infeasible": run.infeasible.tolist(),
        "signaling_per_bs": signaling,
        "traces": traces,
        "trace_lengths": trace_lengths,
        "mean_se": float(run.se.mean()),
        "mean_pf_objective": float(run.pf_objective.mean()),
        "mean_min_se": float(run.se.min(-1).values.mean()),
        "mean_time_s": float(run.time_s.mean()),
        "infeasible_share": float(run.infeasible.double().mean()),
    }


def _experiment(name: str, description: str) -> Experiment:
    return Experiment(
        name,
        description,
        Preset,
        _jobs(name),
        realizations_job,
        FINISH[name],
        TABLES[name],
        SCHEMES,
        check_job=_check_job,
    )


DESCRIPTIONS = {
    "vhetnet-fig3": "seed 003 Fig. 3: ADMM residuals and ALM objective of the distributed PFBWD",
    "vhetnet-table2": "seed 003 Table II: inner ADMM iterations for rho/beta = 0.5, 1, 2",
    "vhetnet-fig4": "seed 003 Fig. 4: CDFs of SE per UE and PF objective, centralized vs "
    "distributed",
    "vhetnet-fig5": "seed 003 Fig. 5: CDF of the relative LPEI (distributed / centralized)",
    "vhetnet-fig6": "seed 003 Fig. 6: average SE per UE and PF objective vs number of UEs",
    "vhetnet-fig7": "seed 003 Fig. 7: vHetNet vs standalone terrestrial vs number of MBSs",
    "vhetnet-fig8": "seed 003 Fig. 8: average SE per UE vs HAPS array size",
    "vhetnet-fig9": "seed 003 Fig. 9: minimum SE per UE vs HAPS power",
    "vhetnet-table3": "seed 003 Table III: signaling and computation, measured",
}
EXPERIMENTS = {name: _experiment(name, text) for name, text in DESCRIPTIONS.items()}
