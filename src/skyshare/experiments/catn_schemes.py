"""One seed-000 scheme as an experiment job: build, train (resumably), save, summarise.

Shared by ``catn-fig4`` to ``catn-fig8`` and ``catn-table1``. A scheme is an association x
beamforming pair of seed 000 §VI (:data:`SCHEMES`); a job's parameters (a preset's dict,
possibly with a swept value) decide the network, the learners and the run length:

* ``n_slots``: training slots; ``dfp_slots``: slots on which DCD-DFP is solved (equally spaced);
* ``hidden_sizes``: the BS actor and critics (§VI: 512, 128, 64); the TU D3QN keeps §VI's
  (64, 32) and the other :class:`~skyshare.rl.D3QNConfig` defaults;
* ``scenario``: overrides of the ``paper`` :class:`~skyshare.scenarios.catn.CatnConfig`
  (``n_tu``, ``i_max_mw``, ``p_max_w``, ...); ``env`` (optional): overrides of
  :class:`~skyshare.envs.catn.CatnEnvConfig` (e.g. ``reward_loss_weight``);
  ``ppo_penalty``: zeta of D3QN-PPO;
* ``checkpoint_every`` (optional): slots between checkpoints (default: a tenth of the run).

Every job folder receives ``config.json`` (the resolved scenario, env and learner configs),
``series.csv`` (per slot), ``checkpoint.pt`` (the full state of the online loop: an
interrupted job resumes from it, see :func:`~skyshare.schemes.catn_online.run_online`)
and, for learned schemes, ``networks.pt`` (the trained agents' ``state_dict``s).

The schemes themselves (names, components, the online loop) live in :mod:`skyshare.schemes`;
this module turns one into a resumable job. Solver beamformers run cold-started in every slot
here (``warm_start`` false, the setting the published curves were measured with), unless a
job's parameters say ``"warm_start": true``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field, create_model

from skyshare.checks import check_memory
from skyshare.envs.catn import CatnEnv
from skyshare.errors import SkyshareError
from skyshare.experiments.jobs import Experiment, ExperimentPreset, Job
from skyshare.plots import TrainingCurve, plot_training_curves
from skyshare.rl.common.onpolicy import OnPolicyAgents
from skyshare.scenarios.catn import CatnScenario
from skyshare.schemes.catn import (
    SCHEMES,
    CatnScheme,
    build_catn_env,
    build_scheme,
    split_scheme,
)
from skyshare.schemes.catn_online import VIOLATION_TOL, OnlineLog, run_online

__all__ = [
    "SCHEMES",
    "VIOLATION_TOL",
    "CatnPreset",
    "SchemeRun",
    "build_env",
    "build_job_scheme",
    "evaluate_scheme",
    "read_series",
    "save_networks",
    "scenario_sweep_experiment",
    "scenario_sweep_jobs",
    "scheme_job",
    "scheme_jobs",
    "summarize_log",
    "train_scheme",
    "training_curves",
    "training_curves_experiment",
    "training_curves_table",
    "write_config",
    "write_series",
]


@dataclass
class SchemeRun:
    """A scheme after :func:`train_scheme` (or :func:`evaluate_scheme`).

    Attributes:
        scheme: the built :class:`~skyshare.schemes.catn.CatnScheme` (its learners trained).
        env: the game it ran on. log: its per-slot log.
    """

    scheme: CatnScheme
    env: CatnEnv
    log: OnlineLog


def build_env(
    scheme: str,
    params: dict[str, Any],
    seed: int,
    n_slots: int,
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
) -> CatnEnv:
    """The CATN game of ``scheme`` on ``device``: the ``params["scenario_preset"]`` (``paper``
    when absent) scenario with ``params["scenario"]`` overrides, a horizon of ``n_slots`` (+2:
    slot 0 of the reset and one spare), ``params["env"]`` overrides and the signaling of the
    scheme (Table I)."""
    scenario = CatnScenario.config_from(
        params.get("scenario_preset", "paper"),
        overrides={**params.get("scenario", {}), "n_slots": n_slots + 2, "seed": seed},
    )
    return build_catn_env(
        scheme, scenario, params.get("env", {}), batch_size=batch_size, device=device
    )


def check_job(job: Job) -> None:
    """Build the job's game at B = 1 (a few ms): a bad scenario or env override, or an unknown
    scenario preset, fails before the run writes anything (``Experiment.check_job``)."""
    beamforming = split_scheme(job.scheme)[1]
    n_slots = job.params["dfp_slots" if beamforming == "fp" else "n_slots"]
    env = build_env(job.scheme, job.params, job.seed, int(n_slots))
    if beamforming in ("cup", "ppo"):  # the BS networks of a learned scheme fit in memory
        dims = (env.bs_obs_dim, env.action_dim, env.N, env.L)
        hidden = job.params["hidden_sizes"]
        check_memory(
            OnPolicyAgents.memory_estimate(*dims, hidden),
            f"job {job.job_id} (BS agents, hidden_sizes {list(hidden)})",
        )


def build_job_scheme(env: CatnEnv, scheme: str, params: dict[str, Any], seed: int) -> CatnScheme:
    """Fresh (untrained) components of ``scheme`` on ``env``: learners seeded by ``seed`` with
    ``params["hidden_sizes"]`` (BS actor and critics) and ``params["ppo_penalty"]`` (zeta);
    solvers cold-started unless ``params["warm_start"]``; CUP's step-2 rule from
    ``params["skip_unconstrained_projection"]`` (absent: skip)."""
    options = {
        "seed": seed,
        "hidden_sizes": tuple(params["hidden_sizes"]),
        "ppo_penalty": params.get("ppo_penalty", 10.0),
        "warm_start": params.get("warm_start", False),
        "skip_unconstrained_projection": params.get("skip_unconstrained_projection", True),
    }
    return build_scheme(scheme, env, options)


def _learner_config(component: Any) -> dict[str, Any] | None:
    agents = getattr(component, "agents", None)
    if agents is None:
        return None
    config = agents.config
    data = asdict(config) if is_dataclass(config) else config.model_dump()
    return {"type": type(agents).__name__, **data}


def write_config(path: Path, scheme: CatnScheme, env: CatnEnv, **extra: Any) -> None:
    """``config.json``: the scheme, its options, the resolved scenario and env configs
    (``model_dump``), the learner configs and ``extra`` (run length, seed, ...)."""
    association, beamforming = scheme.pair
    config = {
        "scheme": scheme.name,
        "association": association,
        "beamforming": beamforming,
        **extra,
        "batch_size": env.B,
        # both change floating-point results: a rerun with the same values is bit-identical
        "execution": {"device": str(env.device), "threads": torch.get_num_threads()},
        "scheme_options": scheme.options.model_dump(),
        "scenario": env.scenario.config.model_dump(),
        "env": env.config.model_dump(),
        "tu_agents": _learner_config(scheme.association),
        "bs_agents": _learner_config(scheme.beamforming),
    }
    path.write_text(json.dumps(config, indent=2, default=str))


POLICY_KEYS = ("config", "dims", "actor", "normalizer", "nu", "online")


def save_networks(path: Path, scheme: CatnScheme) -> None:
    """``networks.pt``: what the trained agents need to act (no optimiser, critic or replay
    memory: those are for training, which the checkpoint resumes): the D3QN ``online``
    network, the BS ``actor``, its observation ``normalizer`` and ``nu``, with ``config`` and
    ``dims``. Load with e.g. ``agents.actor.load_state_dict(torch.load(path,
    weights_only=True)["bs_agents"]["actor"])``. About 60 MB for the paper's networks."""
    states = {}
    for key, component in (("tu_agents", scheme.association), ("bs_agents", scheme.beamforming)):
        agents = getattr(component, "agents", None)
        if agents is None:
            states[key] = None
            continue
        full = (
            agents.state_dict(include_memory=False) if key == "tu_agents" else agents.state_dict()
        )
        states[key] = {name: value for name, value in full.items() if name in POLICY_KEYS}
    torch.save({"scheme": scheme.name, **states}, path)


SERIES_COLUMNS = ("slot", "sum_rate", "effective_sum_rate", "handover_fraction", "decision_time_s")


def write_series(path: Path, log: OnlineLog, n_au: int, n_tu: int) -> None:
    """Per logged slot: sum rate and effective sum rate (16) in bit/s/Hz, rho_l / I_max per AU,
    the share of TUs that changed BS and the decision time in s."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "slot",
                "sum_rate",
                "effective_sum_rate",
                *[f"au{l_}_rho_over_imax" for l_ in range(n_au)],
                "handover_fraction",
                "decision_time_s",
            ]
        )
        sum_rate, effective = log.mean("sum_rate"), log.mean("effective_sum_rate")
        times = log.decision_time_s()
        for i, slot in enumerate(log.slots):
            writer.writerow(
                [
                    slot,
                    sum_rate[i],
                    effective[i],
                    *log.au_interference_ratio[i].mean(0).tolist(),
                    float(log.handovers[i].float().mean()) / n_tu,
                    times[i],
                ]
            )


def read_series(path: Path) -> dict[str, list[float]]:
    """``{column: values}`` of a :func:`write_series` file (``au*`` columns included); a
    clear error naming the file (and what to do) when it is missing or corrupt."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return {key: [float(row[key]) for row in rows] for key in rows[0]} if rows else {}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error) as exc:
        raise _corrupt(path, exc) from None


def _corrupt(path: Path, exc: Exception) -> SkyshareError:
    return SkyshareError(
        f"{path} is unreadable ({type(exc).__name__}: {exc}); delete the job folder "
        f"{path.parent} and rerun the same command: that job runs again, the others are kept"
    )


def summarize_log(scheme: str, log: OnlineLog) -> dict[str, Any]:
    """Summary of a training log: means over the last sixth of the logged slots (after
    convergence, as the paper reads its curves), the share of those slots in which some AU
    received more than (1 + VIOLATION_TOL) I_max, and the mean decision time over all slots."""
    tail = max(1, len(log.slots) // 6)
    ratio = torch.tensor(
        [x.mean(0).tolist() for x in log.au_interference_ratio], dtype=torch.float64
    )
    return {
        "scheme": scheme,
        "slots": len(log.slots),
        "mean_sum_rate_last": float(torch.tensor(log.mean("sum_rate")[-tail:]).mean()),
        "mean_rho_over_imax_last": ratio[-tail:].mean(0).tolist(),
        "max_rho_over_imax_last": ratio[-tail:].max(0).values.tolist(),
        "violation_share_last": float(
            (ratio[-tail:] > 1.0 + VIOLATION_TOL).any(-1).double().mean()
        ),
        "mean_decision_time_s": float(torch.tensor(log.decision_time_s()).mean()),
        "bs_updates": log.updates,
    }


def _slot_progress() -> bool:
    """Slot progress bars inside jobs when a person watches (stderr is a terminal)."""
    return sys.stderr.isatty()


def train_scheme(
    scheme: str,
    params: dict[str, Any],
    seed: int,
    folder: Path,
    *,
    progress: bool | None = None,
    device: str | torch.device = "cpu",
) -> SchemeRun:
    """Build ``scheme`` on ``device``, run it online for ``params["n_slots"]`` slots (training
    its learners), resuming from ``folder/checkpoint.pt`` if present; write ``config.json``,
    ``series.csv`` and ``networks.pt`` into ``folder``."""
    _, beamforming = split_scheme(scheme)
    n_slots = int(params["n_slots"])
    env = build_env(scheme, params, seed, n_slots, device=device)
    built = build_job_scheme(env, scheme, params, seed)
    every = max(1, n_slots // int(params["dfp_slots"])) if beamforming == "fp" else 1
    write_config(
        folder / "config.json", built, env,
        n_slots=n_slots, seed=seed, evaluate_every=every, params=params,
    )  # fmt: skip
    log = run_online(
        env,
        built,
        n_slots,
        seed=seed,
        evaluate_every=every,
        progress=_slot_progress() if progress is None else progress,
        checkpoint_path=folder / "checkpoint.pt",
        checkpoint_every=int(params.get("checkpoint_every", max(1, n_slots // 10))),
    )
    write_series(folder / "series.csv", log, env.L, env.K)
    if built.learns:
        save_networks(folder / "networks.pt", built)
    return SchemeRun(built, env, log)


def evaluate_scheme(
    trained: SchemeRun,
    params: dict[str, Any],
    seed: int,
    n_slots: int,
    checkpoint_path: Path,
    *,
    progress: bool | None = None,
) -> SchemeRun:
    """Test ``trained`` for ``n_slots`` slots with frozen policies (greedy D3QN, mean Beta
    actions) on a fresh game of the same scenario seeded with ``seed``; resumable from
    ``checkpoint_path``."""
    name = trained.scheme.name
    env = build_env(name, params, seed, n_slots, device=trained.env.device)
    log = run_online(
        env,
        trained.scheme,
        n_slots,
        train=False,
        seed=seed,
        progress=_slot_progress() if progress is None else progress,
        checkpoint_path=checkpoint_path,
        checkpoint_every=max(1, n_slots // 10),
    )
    return SchemeRun(trained.scheme, env, log)


def scheme_job(job: Job, folder: Path) -> dict[str, Any]:
    """Job function: train ``job.scheme`` with ``job.params`` and return its summary
    (:func:`summarize_log` plus the job's swept ``label``, if any), on ``job.threads``."""
    torch.set_num_threads(job.threads)
    result = train_scheme(job.scheme, job.params, job.seed, folder, device=job.device)
    summary = summarize_log(job.scheme, result.log)
    if "label" in job.params:
        summary["label"] = job.params["label"]
    return summary


def _job_i_max_mw(run_dir: Path, job: Job) -> float:
    path = run_dir / "jobs" / job.job_id / "config.json"
    try:
        return float(json.loads(path.read_text())["scenario"]["i_max_mw"])
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise _corrupt(path, exc) from None


def training_curves(run_dir: str | Path, jobs: list[Job]) -> list[TrainingCurve]:
    """The curves of finished jobs (their ``series.csv`` and I_max), labelled by
    ``job.params["label"]`` (the scheme otherwise) and the seed when the jobs have several."""
    run_dir = Path(run_dir)
    several_seeds = len({job.seed for job in jobs}) > 1
    curves = []
    for job in jobs:
        series = read_series(run_dir / "jobs" / job.job_id / "series.csv")
        group = job.params.get("label", job.scheme)
        label = group + (f", seed {job.seed}" if several_seeds else "")
        curves.append(
            TrainingCurve(
                label=label,
                slots=series["slot"],
                sum_rate=series["sum_rate"],
                au_ratio=[series[k] for k in series if k.startswith("au")],
                i_max_mw=_job_i_max_mw(run_dir, job),
                group=group,
            )
        )
    return curves


def with_seed(summary: dict[str, Any], job_id: str, label: str) -> str:
    """``label`` of a table row, with ", seed N" when the summary holds several seeds (its
    ``seeds``: job id -> seed; summaries of older versions have none)."""
    seeds = summary.get("seeds", {})
    return label + (f", seed {seeds[job_id]}" if len(set(seeds.values())) > 1 else "")


def training_curves_table(
    experiment: str, summary: dict[str, Any]
) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows) of a training-curves experiment: per curve (its ``label``), the
    means over the last sixth of the training slots and the share of slots over I_max."""
    columns = ["curve", "sum rate (bit/s/Hz)", "rho / I_max per AU", "slots over I_max (%)"]
    rows = [
        [
            with_seed(summary, key, r.get("label", r["scheme"])),
            f"{r['mean_sum_rate_last']:.4g}",
            ", ".join(f"{x:.3g}" for x in r["mean_rho_over_imax_last"]),
            f"{100 * r['violation_share_last']:.3g}",
        ]
        for key, r in summary["results"].items()
    ]
    return f"{experiment} ({summary['preset']}): last sixth of the training slots", columns, rows


# -------------------------------------------------------------------------------------------
# Presets and jobs
# -------------------------------------------------------------------------------------------


class CatnPreset(ExperimentPreset):
    """The parameters every seed-000 experiment shares (YAML under
    ``skyshare/configs/experiments/catn-*/``).

    Options left unset (None) take the experiment's default and are not part of a job's
    identity, so a new option never orphans the finished jobs of an earlier run.
    """

    n_slots: int = Field(..., ge=1, le=10_000_000, description="training slots")
    dfp_slots: int = Field(..., ge=1, description="slots on which DCD-DFP is solved")
    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        ..., min_length=1, description="BS actor and critics (§VI: 512, 128, 64)"
    )
    scenario: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the scenario preset"
    )
    scenario_preset: str | None = Field(None, description="catn scenario preset (None: paper)")
    env: dict[str, Any] | None = Field(None, description="overrides of CatnEnvConfig")
    ppo_penalty: float = Field(10.0, ge=0, description="zeta of D3QN-PPO")
    warm_start: bool | None = Field(
        None, description="warm-start solver beamformers slot to slot (None: false)"
    )
    checkpoint_every: int | None = Field(
        None, ge=1, description="slots between checkpoints (None: a tenth of the run)"
    )
    skip_unconstrained_projection: bool | None = Field(
        None,
        description=(
            "CUP: no step-2 epochs for agents whose nu is all 0 (None: true; false: the "
            "literal loop of Algorithm 3; docs/rl/cup.md)"
        ),
    )

    def job_params(self, preset_name: str, *, exclude: set[str] = frozenset()) -> dict[str, Any]:
        """The JSON parameters of a job: every set field (minus ``exclude``, e.g. a sweep
        list) and the preset's name."""
        data = self.model_dump(mode="json", exclude_none=True, exclude=set(exclude))
        return {**data, "preset": preset_name}


def scheme_jobs(
    experiment: str,
    preset: CatnPreset,
    preset_name: str,
    schemes: Sequence[str],
) -> list[Job]:
    """One job per scheme and seed with the preset's parameters."""
    params = preset.job_params(preset_name)
    return [Job(experiment, name, seed, params) for name in schemes for seed in preset.seeds]


def scenario_sweep_jobs(
    experiment: str,
    preset: CatnPreset,
    preset_name: str,
    sweep_key: str,
    field: str,
    label: str,
    scheme: str = "D3QN-CUP",
) -> list[Job]:
    """One ``scheme`` job per seed and per value of the preset's ``sweep_key`` list, each with
    the scenario override ``field = value`` and the curve label ``label.format(value)``; the
    sweep list itself is left out of the job parameters (adding a value keeps the ids of the
    other jobs)."""
    base = preset.job_params(preset_name, exclude={sweep_key})
    return [
        Job(
            experiment,
            scheme,
            seed,
            {
                **base,
                "scenario": {**base.get("scenario", {}), field: float(value)},
                "label": label.format(value),
            },
        )
        for seed in preset.seeds
        for value in getattr(preset, sweep_key)
    ]


def training_curves_experiment(
    name: str,
    description: str,
    Preset: type[CatnPreset],
    schemes: Collection[str],
    jobs: Callable[[Any, str, Sequence[str] | None], list[Job]],
    figure: str,
    table: Callable[[dict[str, Any]], tuple[str, list[str], list[list[str]]]] | None = None,
) -> Experiment:
    """The :class:`Experiment` of a training-curves figure (seed 000 Figs. 4-7): jobs run by
    :func:`scheme_job`; the figure (:func:`skyshare.plots.plot_training_curves`) is saved as
    ``figure``; ``table`` defaults to :func:`training_curves_table`."""
    number = figure.removesuffix(".png").removeprefix("fig")
    title = f"{name} (seed 000 Fig. {number})"

    def finish(run_dir: Path, selected: list[Job], summary: dict[str, Any]) -> Path:
        return plot_training_curves(training_curves(run_dir, selected), run_dir / figure, title)

    def curves_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
        """(title, columns, rows): per curve, means over the last sixth of the training slots."""
        return training_curves_table(name, summary)

    return Experiment(
        name,
        description,
        Preset,
        jobs,
        scheme_job,
        finish,
        table or curves_table,
        schemes,
        check_job=check_job,
    )


def scenario_sweep_experiment(
    name: str,
    description: str,
    sweep_key: str,
    field: str,
    label: str,
    figure: str,
) -> tuple[type[CatnPreset], Callable[..., list[Job]], Experiment]:
    """(Preset, jobs, EXPERIMENT) of a D3QN-CUP curve per value of one scenario field (seed
    000 Figs. 6-7): the preset model adds the list ``sweep_key`` (values > 0) to
    :class:`CatnPreset`; one job per value and seed with the scenario override ``field``
    (:func:`scenario_sweep_jobs`)."""
    Preset = create_model(
        "Preset",
        __base__=CatnPreset,
        __doc__=f"{name}: the shared parameters and the values of ``{field}`` to sweep.",
        **{sweep_key: (list[Annotated[float, Field(gt=0)]], Field(..., min_length=1))},
    )

    def jobs(preset: CatnPreset, preset_name: str, schemes: Sequence[str] | None = None):
        """D3QN-CUP once per value of the sweep and seed."""
        if schemes is not None and "D3QN-CUP" not in schemes:
            return []
        return scenario_sweep_jobs(name, preset, preset_name, sweep_key, field, label)

    return (
        Preset,
        jobs,
        training_curves_experiment(name, description, Preset, ("D3QN-CUP",), jobs, figure),
    )
