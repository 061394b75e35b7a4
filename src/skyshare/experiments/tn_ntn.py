"""Seed 001 experiments ``tn-ntn-fig3`` (training curves) and ``tn-ntn-fig4`` (dynamic test).

* ``tn-ntn-fig3``: for each setting (F, K_max) of §IV ((80, 10), (160, 20), (320, 30) in the
  paper preset), every learned scheme trains in the training mode (Poisson(0.5 K_max) users per
  BS at fresh positions every episode of 100 frames) and records its per-episode reward (9)
  (the sum of the group rewards (10)), its cost (11) summed over users, throughput and QoS
  misses; every reference rule is played on the same kind of episodes and drawn as a flat line
  (its mean). One job per (setting, scheme, seed).
* ``tn-ntn-fig4``: the learned schemes train at the Fig. 4 setting (160, 20), then every
  scheme is tested on the dynamic scenario (arrivals 1, 3 and 5 per minute per BS, exponential
  holding with mean 3 minutes, random walk at 1 m/s) for ``test_minutes``. **Timing (choice):**
  one decision per second, each on one 10 ms frame (``frame_s = trace_step_s = 1 s`` in the
  test scenario): the population and positions follow the traces at their 1 s resolution, the
  fading of frames 1 s apart is drawn independently (``fading_correlation = 0``: the Jakes
  correlation J0(2 pi f_D 1 s) is -0.12 at 1 m/s and 2 GHz, nearly independent), and 30
  minutes are 1800 decisions instead of 180,000 frames. A learner that trains here is one job
  per (scheme, seed) testing every arrival rate; a rule, or a learner whose policy comes from
  a tn-ntn-fig3 run (``policies_from``), is one job per (scheme, seed, arrival rate), so that
  ``--workers`` runs the tests side by side.

Run directory: ``preset.yaml``, ``jobs/<id>/result.json`` (curves or time series),
``fig3.png`` / ``fig4.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from skyshare.checks import read_checkpoint
from skyshare.config import StrictModel
from skyshare.errors import ConfigError, ShapeError
from skyshare.experiments.jobs import Experiment, ExperimentPreset, Job
from skyshare.schemes.tn_ntn import (
    TN_NTN_SCHEMES,
    TnNtnSchemeOptions,
    check_reference_options,
    run_tn_ntn,
    scheme_formulation,
)

__all__ = ["EXPERIMENTS", "Fig3Preset", "Fig4Preset", "Setting"]


class Setting(StrictModel):
    """One (F, K_max) setting of Fig. 3."""

    n_subchannels: int = Field(..., ge=1, le=4096, description="F per BS")
    k_max: int = Field(..., ge=1, le=1024, description="K_max user slots per BS")


class _Common(ExperimentPreset):
    scenario: dict[str, Any] = Field(
        default_factory=dict, description="fixed overrides of the tn_ntn paper scenario"
    )
    schemes: list[str] = Field(..., min_length=1, description="registered tn-ntn schemes")
    frames: int = Field(
        20_000,
        ge=1,
        le=100_000_000,
        description="training frames per learned job (each frame is played in all B envs)",
    )
    batch: int = Field(8, ge=1, le=4096, description="parallel environments B")
    learner: dict[str, Any] = Field(
        default_factory=dict, description="MappoConfig overrides for every learned scheme"
    )
    reference: dict[str, Any] = Field(
        default_factory=dict, description="greedy_best_response keyword arguments (greedy-BR)"
    )
    play: Literal["sample", "greedy"] = Field(
        "sample",
        description="trained learners play by sampling their policy or by its most probable "
        "choice per subchannel (TnNtnSchemeOptions.play)",
    )


class Fig3Preset(_Common):
    """tn-ntn-fig3: the settings, the training length and the reference episodes."""

    settings: list[Setting] = Field(..., min_length=1)
    reference_frames: int = Field(
        100, ge=1, le=1_000_000, description="frames the reference rules are played for"
    )


class Fig4Preset(_Common):
    """tn-ntn-fig4: the training setting, the test length and the arrival rates."""

    setting: Setting = Field(default_factory=lambda: Setting(n_subchannels=160, k_max=20))
    arrival_rates_per_min: list[float] = Field(
        [1.0, 3.0, 5.0], min_length=1, description="arrivals per BS per minute (Fig. 4)"
    )
    test_minutes: float = Field(30.0, gt=0, le=1440, description="test length (Fig. 4: 30)")
    test_batch: int = Field(1, ge=1, le=256, description="independent test realizations")
    policies_from: str | None = Field(
        None,
        min_length=1,
        description="a tn-ntn-fig3 run directory: its policies trained at this setting (same "
        "scheme and seed) are tested instead of training anew",
    )


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        TN_NTN_SCHEMES.entry(name)  # an unknown name fails before any job runs


def _scenario_config(overrides: dict[str, Any], seed: int):
    from skyshare.scenarios.tn_ntn import TnNtnScenario

    return TnNtnScenario.config_from("paper", overrides={**overrides, "seed": int(seed)})


def _fig3_jobs(preset: Fig3Preset, preset_name: str, schemes: Sequence[str] | None = None):
    names = list(schemes) if schemes else list(preset.schemes)
    _check_names(names)
    jobs = []
    for setting in preset.settings:
        scenario = {**preset.scenario, **setting.model_dump()}
        _scenario_config(scenario, 0)  # a bad override fails here, naming the field
        for name in names:
            params = {
                "scenario": scenario,
                "frames": preset.frames,
                "batch": preset.batch,
                "learner": preset.learner,
                "reference": preset.reference,
                "play": preset.play,
                "reference_frames": preset.reference_frames,
                "label": f"F={setting.n_subchannels}, K_max={setting.k_max}",
            }
            jobs.extend(Job("tn-ntn-fig3", name, seed, params) for seed in preset.seeds)
    return jobs


def _fig4_jobs(preset: Fig4Preset, preset_name: str, schemes: Sequence[str] | None = None):
    names = list(schemes) if schemes else list(preset.schemes)
    _check_names(names)
    scenario = {**preset.scenario, **preset.setting.model_dump()}
    _scenario_config(scenario, 0)
    params = {
        "scenario": scenario,
        "frames": preset.frames,
        "batch": preset.batch,
        "learner": preset.learner,
        "reference": preset.reference,
        "play": preset.play,
        "arrival_rates_per_min": list(preset.arrival_rates_per_min),
        "test_minutes": preset.test_minutes,
        "test_batch": preset.test_batch,
        "policies_from": None,
    }
    for rate in preset.arrival_rates_per_min:
        _scenario_config({**scenario, **_dynamic(rate, preset.test_minutes)}, 0)
    jobs = []
    for name in names:
        job_params = params
        learns = TN_NTN_SCHEMES.entry(name).tags.get("learns")
        if preset.policies_from is not None and learns:
            # only the learned jobs depend on it: the rules' results are kept across runs
            job_params = {
                **params,
                "policies_from": str(Path(preset.policies_from).expanduser().resolve()),
            }
            for seed in preset.seeds:  # a missing policy fails before any job runs
                _trained_policy(job_params["policies_from"], name, seed, preset.setting)
        if learns and job_params["policies_from"] is None:  # trains once, tests every rate
            jobs.extend(Job("tn-ntn-fig4", name, seed, job_params) for seed in preset.seeds)
            continue
        for rate in preset.arrival_rates_per_min:  # nothing to train: one job per test
            one = {**job_params, "arrival_rates_per_min": [rate]}
            jobs.extend(Job("tn-ntn-fig4", name, seed, one) for seed in preset.seeds)
    return jobs


def _dynamic(rate: float, minutes: float) -> dict[str, Any]:
    """Test-scenario overrides of Fig. 4 (module docstring: one decision per second)."""
    return {
        "dynamic_users": True,
        "arrival_rate_per_min": rate,
        "mean_holding_s": 180.0,
        "user_speed_m_s": 1.0,
        "trace_step_s": 1.0,
        "frame_s": 1.0,
        "fading_correlation": 0.0,
        "horizon_slots": max(1, round(minutes * 60)),
    }


POLICY_FILE = "policy.pt"
"""A learned job's trained agents (:meth:`MappoAgents.state_dict`, weights only), kept."""


def _save_policy(folder: Path, scheme: Any) -> None:
    """Write the trained agents atomically (a Ctrl-C never leaves half a file)."""
    partial = Path(folder) / (POLICY_FILE + ".partial")
    torch.save(scheme.state_dict(), partial)
    partial.replace(Path(folder) / POLICY_FILE)


def _trained_policy(run_dir: str, scheme: str, seed: int, setting: Any) -> Path:
    """The ``policy.pt`` of the finished tn-ntn-fig3 job of ``scheme`` and ``seed`` at
    ``setting`` (a :class:`Setting` or its dict) in ``run_dir``; a ConfigError naming
    ``policies_from`` and what the run holds otherwise."""
    if isinstance(setting, dict):  # a job's scenario overrides
        setting = Setting(n_subchannels=setting["n_subchannels"], k_max=setting["k_max"])
    if not Path(run_dir).is_dir():
        raise ConfigError(
            f"policies_from: {run_dir} "
            + ("is not a folder" if Path(run_dir).exists() else "does not exist")
            + " (give the run directory of a finished tn-ntn-fig3 run, e.g. "
            "runs/tn-ntn-fig3-quick)"
        )
    wanted = (scheme, int(seed), setting.n_subchannels, setting.k_max)
    found = []
    for description in sorted(Path(run_dir).glob("jobs/*/job.json")):
        try:
            job = json.loads(description.read_text())
            scenario = job["params"]["scenario"]
            key = (job["scheme"], int(job["seed"]), scenario["n_subchannels"], scenario["k_max"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a tn-ntn-fig3 job
        if job.get("experiment") != "tn-ntn-fig3":
            continue
        policy = description.parent / POLICY_FILE
        if key == wanted and policy.is_file():
            return policy
        if policy.is_file():
            found.append(f"{key[0]} (seed {key[1]}, F={key[2]}, K_max={key[3]})")
    raise ConfigError(
        f"policies_from: {run_dir} holds no finished tn-ntn-fig3 policy of {scheme!r} with seed "
        f"{seed} at F={setting.n_subchannels}, K_max={setting.k_max}; it holds: "
        f"{', '.join(found) or 'none'} (run tn-ntn-fig3 with that setting first, or drop "
        "policies_from to train here)"
    )


def _env(config: Any, batch: int, formulation: str, device: str):
    from skyshare.envs.tn_ntn import TnNtnEnv
    from skyshare.scenarios.tn_ntn import TnNtnScenario

    scenario = TnNtnScenario(config, batch_size=batch, device=device)
    # the schemes use a turn's obs and state before the next observe(), the learners copy
    return TnNtnEnv(scenario, formulation=formulation, reuse_observations=True)


def _train(job: Job, env: Any, scheme: Any) -> dict[str, Any]:
    """Train a learned scheme; its per-episode curves."""
    log = scheme.train(env, int(job.params["frames"]), seed=int(job.seed))
    return {
        "reward": log.reward,
        "cost": log.cost,
        "throughput": log.throughput,
        "qos_miss": log.qos_miss,
        "lambda_mean": log.lambda_mean,
        "lambda_max": log.lambda_max,
        "train_frames": log.frames,
        "train_time_s": log.wall_time_s,
    }


def _means(run: Any) -> dict[str, float]:
    return {
        "mean_reward": float(run.reward.mean()),
        "mean_cost": float(run.cost.mean()),
        "mean_throughput": float(run.throughput.mean()),
        "mean_qos_miss": float(run.qos_miss.mean()),
        "mean_decision_time_s": float(run.decision_time_s.mean()),
    }


def fig3_job(job: Job, folder: Path) -> dict[str, Any]:
    """Train (learned schemes) or play (rules) one scheme at one setting."""
    torch.set_num_threads(job.threads)
    params = job.params
    config = _scenario_config(params["scenario"], job.seed)
    env = _env(config, params["batch"], scheme_formulation(job.scheme), job.device)
    options = _options(job)
    scheme = TN_NTN_SCHEMES.build(job.scheme, env, options)
    out: dict[str, Any] = {"scheme": job.scheme, "seed": job.seed, "label": params["label"]}
    if scheme.learns:
        out.update(_train(job, env, scheme))
        _save_policy(folder, scheme)
        out["mean_reward_last"] = _tail_mean(out["reward"])
        out["mean_cost_last"] = _tail_mean(out["cost"])
    play = run_tn_ntn(env, scheme, int(params["reference_frames"]), seed=10_000 + job.seed)
    out.update(_means(play))
    return out


def fig4_job(job: Job, folder: Path) -> dict[str, Any]:
    """Train a learned scheme at the Fig. 4 setting, then test every scheme on the dynamic
    scenario at every arrival rate (time series per decision, i.e. per second)."""
    torch.set_num_threads(job.threads)
    params = job.params
    formulation = scheme_formulation(job.scheme)
    options = _options(job)
    train_env = _env(_scenario_config(params["scenario"], job.seed), params["batch"], formulation,
                     job.device)  # fmt: skip
    scheme = TN_NTN_SCHEMES.build(job.scheme, train_env, options)
    out: dict[str, Any] = {"scheme": job.scheme, "seed": job.seed, "tests": {}}
    if scheme.learns and params.get("policies_from"):
        policy = _trained_policy(params["policies_from"], job.scheme, job.seed, params["scenario"])
        try:
            scheme.load_state_dict(read_checkpoint(policy, map_location=job.device))
        except (ConfigError, ShapeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"policies_from: the trained policy {policy} cannot be loaded ({exc}); delete "
                f"its job folder {policy.parent} and rerun tn-ntn-fig3 to train it again, or "
                "drop policies_from to train here"
            ) from None
        out["policy_from"] = str(policy)
    elif scheme.learns:
        out.update(_train(job, train_env, scheme))
        _save_policy(folder, scheme)
    for rate in params["arrival_rates_per_min"]:
        overrides = {**params["scenario"], **_dynamic(rate, params["test_minutes"])}
        config = _scenario_config(overrides, 20_000 + job.seed)
        env = _env(config, params["test_batch"], formulation, job.device)
        run = run_tn_ntn(env, scheme, config.horizon_slots, seed=20_000 + job.seed)
        out["tests"][str(rate)] = {
            "active_users": run.active_users.mean(-1).tolist(),
            "qos_miss": run.qos_miss.mean(-1).tolist(),
            "throughput": run.throughput.mean(-1).tolist(),
            **_means(run),
            "mean_active_users": float(run.active_users.mean()),
        }
    return out


def _check_job(job: Job) -> None:
    """The job's scenario and (learned schemes) MAPPO configs, built before the run writes
    anything (``Experiment.check_job``)."""
    from skyshare.rl.mappo import MappoConfig

    _scenario_config(job.params["scenario"], job.seed)
    check_reference_options(job.params["reference"])  # used by greedy-BR, the reference
    if TN_NTN_SCHEMES.entry(job.scheme).tags.get("learns"):
        from skyshare.rl.common.networks import check_hidden_layers_memory

        config = MappoConfig(**{"seed": job.seed, **job.params["learner"]})  # ConfigError if bad
        check_hidden_layers_memory(config.hidden_sizes, f"job {job.job_id} (MAPPO networks)")


def _options(job: Job) -> TnNtnSchemeOptions:
    params = job.params
    return TnNtnSchemeOptions(
        job.seed, params["learner"], params["reference"], params.get("play", "sample")
    )


def _tail_mean(values: list[float], share: float = 0.1) -> float:
    """Mean of the last ``share`` of a curve (at least one point)."""
    if not values:
        return math.nan
    n = max(1, round(len(values) * share))
    return sum(values[-n:]) / n


# ---------------------------------------------------------------------------------------------
# Figures and tables
# ---------------------------------------------------------------------------------------------


def _save(run_dir: Path, summary: dict[str, Any], **extra: Any) -> None:
    """Add ``extra`` to ``summary`` (the runner writes ``summary.json`` after the figures)."""
    summary.update(extra)


def _fig3_finish(run_dir: Path, jobs: list[Job], summary: dict[str, Any]) -> Path:
    from skyshare.plots.tn_ntn import plot_fig3

    panels: dict[str, dict[str, Any]] = {}
    for result in summary["results"].values():
        panel = panels.setdefault(result["label"], {})
        entry = panel.setdefault(result["scheme"], {"curves": [], "flat": []})
        if "reward" in result:
            entry["curves"].append((result["reward"], result["cost"]))
        else:
            entry["flat"].append((result["mean_reward"], result["mean_cost"]))
    _save(run_dir, summary, table=_fig3_rows(summary))
    title = f"tn-ntn-fig3 ({summary['preset']}): reward (9) and cost (11) over training"
    return plot_fig3(panels, Path(run_dir) / "fig3.png", title)


def _fig3_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for result in summary["results"].values():
        learned = "reward" in result
        rows.append(
            [
                result["label"],
                result["scheme"],
                str(result["seed"]),
                f"{result['mean_reward_last']:.3f}" if learned else "-",
                f"{result['mean_cost_last']:.3f}" if learned else "-",
                f"{result['mean_reward']:.3f}",
                f"{result['mean_cost']:.3f}",
                f"{result['mean_throughput'] / 1e6:.1f}",
                f"{result['mean_qos_miss']:.2f}",
            ]
        )
    return rows


def _fig3_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    columns = [
        "setting",
        "scheme",
        "seed",
        "train reward (last 10 %)",
        "train cost (last 10 %)",
        "played reward",
        "played cost",
        "throughput (Mbit/s)",
        "QoS misses",
    ]
    play = summary.get("params", {}).get("play", "sample")
    how = "sampling their policies" if play == "sample" else "their most probable choices"
    title = f"tn-ntn-fig3 ({summary['preset']}): learned policies played after training, {how}"
    return title, columns, _fig3_rows(summary)


def _fig4_finish(run_dir: Path, jobs: list[Job], summary: dict[str, Any]) -> Path:
    from skyshare.plots.tn_ntn import plot_fig4

    series: dict[str, dict[str, dict[str, list[float]]]] = {}
    for result in summary["results"].values():
        for rate, test in result["tests"].items():
            series.setdefault(rate, {})[f"{result['scheme']} (seed {result['seed']})"] = test
    _save(run_dir, summary, table=_fig4_table(summary)[2])
    title = f"tn-ntn-fig4 ({summary['preset']}): dynamic test, one decision per second"
    return plot_fig4(series, Path(run_dir) / "fig4.png", title)


def _fig4_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    columns = ["scheme", "seed", "arrivals / min", "active users", "QoS misses",
               "throughput (Mbit/s)", "decision (ms)"]  # fmt: skip
    rows = []
    for result in summary["results"].values():
        for rate, test in result["tests"].items():
            rows.append(
                [
                    result["scheme"],
                    str(result["seed"]),
                    rate,
                    f"{test['mean_active_users']:.1f}",
                    f"{test['mean_qos_miss']:.2f}",
                    f"{test['mean_throughput'] / 1e6:.1f}",
                    f"{test['mean_decision_time_s'] * 1e3:.2f}",
                ]
            )
    return f"tn-ntn-fig4 ({summary['preset']}): means over the test", columns, rows


EXPERIMENTS = {
    "tn-ntn-fig3": Experiment(
        "tn-ntn-fig3",
        "seed 001 Fig. 3: reward and constraint cost over training, (F, K_max) settings",
        Fig3Preset,
        _fig3_jobs,
        fig3_job,
        _fig3_finish,
        _fig3_table,
        TN_NTN_SCHEMES,
        check_job=_check_job,
    ),
    "tn-ntn-fig4": Experiment(
        "tn-ntn-fig4",
        "seed 001 Fig. 4: dynamic 30-minute test (arrivals 1/3/5 per min), trained policies",
        Fig4Preset,
        _fig4_jobs,
        fig4_job,
        _fig4_finish,
        _fig4_table,
        TN_NTN_SCHEMES,
        check_job=_check_job,
    ),
}
