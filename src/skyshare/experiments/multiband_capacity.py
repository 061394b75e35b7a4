"""``multiband-fig5/6/7``: average capacity per cell of every seed-004 scheme (seed 004 §V).

One experiment along three axes (seed 004 Figs. 5-7, 3 cells, SNR 20 dB, T = 10):

* ``multiband-fig5``: versus (M, U) in {(8, 4), (16, 8), (32, 16)}, SIR 0 dB, N_f = 6;
* ``multiband-fig6``: versus N_f for (M, U) = (8, 4) and (32, 16), SIR 0 dB;
* ``multiband-fig7``: versus the channel SIR (eq. (23)) at (M, U) = (32, 16), N_f = 6.

The schemes are the five of §V: ``random`` (Dirichlet(1) split of each user's budget),
``SSWF`` (selfish single-user water-filling), ``FLWF`` (the forward-looking game to convergence
from random initializations, reported as the **mean over the starts**, 100 in the paper
preset), ``TD3-MIX`` (the trained actor's allocation, no FLWF) and ``TD3-MIX+FLWF`` (the trained
actor's allocation starts FLWF, which runs to convergence, §IV-C). They are the entries of
the multiband scheme registry (:data:`skyshare.schemes.multiband.MULTIBAND_SCHEMES`): a scheme
registered there is a valid ``--schemes`` choice, and every scheme is played by the one online
loop :func:`skyshare.schemes.multiband.run_multiband`.

Each (scheme, seed, sweep point) is one :class:`~skyshare.experiments.jobs.Job`. The job
function :func:`capacity_job` builds the scenario of its sweep point, trains the learned
schemes (TD3-MIX, TD3-MIX+FLWF, Algorithm 1) on channels of the training seed, and then plays
the same held-out test realizations for every scheme: ``test_batch`` parallel environments for
one episode of T blocks, seeded with ``test_seed + seed`` (so all schemes of a seed and sweep
point see identical channels, block by block; the schemes' own randomness comes from separate
generators). Every scheme spends the whole budget ``P_b(t)`` in every block, so
``P_b(t) = P_bar / T`` throughout and each block is an independent realization of the same
problem.

Outputs in the run directory: ``jobs/<job_id>/`` with ``config.json`` (resolved scenario,
environment, training and evaluation settings), ``eval.csv`` (one row per test block and
realization, and per start for FLWF), for the learned schemes ``networks.pt`` (the trained
agents, :meth:`TD3MixAgents.save`), ``checkpoint.pt`` while training (removed once the job
has finished), ``train.json`` (steps done, training time) and ``train.csv`` (training
curve), and ``result.json``; ``<figure>.png`` and ``summary.json`` at the top.

Interrupted learned jobs resume from their last checkpoint (written every
``checkpoint_every`` training steps): the networks, optimisers and counters are restored and
only the remaining steps are trained (the replay buffer is not checkpointed; it refills).
What a job resumes from is checked before anything is written: a corrupt ``train.json`` (not
JSON, a missing key, a value of the wrong type or range), a ``checkpoint.pt`` that is corrupt or
not this job's agents, or a ``train.json`` ahead of its checkpoint raises a
:class:`~skyshare.errors.ConfigError` naming the file and saying to delete it (not retried).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from skyshare.checks import check_memory
from skyshare.errors import ConfigError, ShapeError
from skyshare.experiments.jobs import Experiment, ExperimentPreset, Job
from skyshare.experiments.sweeps import check_sweep_points, check_swept_fields
from skyshare.schemes.multiband import MULTIBAND_SCHEMES, td3_mix_config

__all__ = [
    "EXPERIMENTS",
    "FIG5",
    "FIG6",
    "FIG7",
    "SCHEMES",
    "Preset",
    "aggregate",
    "capacity_job",
    "summary_table",
]


# The schemes are the multiband scheme registry (skyshare.schemes.multiband): iterating
# SCHEMES gives the registered names (one registered later included), ``name in SCHEMES``
# tests one, ``SCHEMES.names(learns=True)`` gives the learned ones.
SCHEMES = MULTIBAND_SCHEMES


CHECKPOINT_FILE = "checkpoint.pt"  # removed once the job has finished (Job.keep_checkpoints)
NETWORKS_FILE = "networks.pt"
TRAIN_STATE_FILE = "train.json"
TRAIN_LOG_FILE = "train.csv"

# ---------------------------------------------------------------------------------------------
# Presets (YAML under skyshare/configs/experiments/multiband-fig*/) and jobs
# ---------------------------------------------------------------------------------------------


Sweep = Literal["(M, U)", "n_freq", "sir_db"]  # the x axis of Figs. 5, 6 and 7
SWEEP_FIELDS: dict[str, tuple[str, ...]] = {
    "(M, U)": ("n_antennas", "users_per_cell"),
    "n_freq": ("n_freq",),
    "sir_db": ("sir_db",),
}
"""The scenario fields every point must set for its x value, per sweep."""
MAX_FLWF_STARTS = 10_000  # 100x the paper's 100; the memory estimate (check_job) bounds more


class Preset(ExperimentPreset):
    """A multiband capacity sweep (seed 004 Figs. 5-7). Every field is part of a job's
    parameters, except ``points``, of which each job gets one."""

    scenario: dict[str, Any] = Field(
        default_factory=dict, description="fixed overrides of the multiband paper scenario"
    )
    env: dict[str, Any] = Field(default_factory=dict, description="MultibandEnvConfig fields")
    td3: dict[str, Any] = Field(default_factory=dict, description="TD3MixConfig fields")
    train_batch: int = Field(16, ge=1, le=65536, description="parallel training environments")
    train_steps: int = Field(2000, ge=0, description="steps of Algorithm 1 (B transitions each)")
    checkpoint_every: int = Field(100, ge=1, description="training steps between checkpoints")
    test_batch: int = Field(10, ge=1, le=65536, description="parallel test environments")
    test_seed: int = Field(1_000_000, ge=0, description="seed of the held-out test channels")
    flwf_starts: int = Field(
        100, ge=1, le=MAX_FLWF_STARTS, description="FLWF random initializations (§V: 100)"
    )
    flwf_max_iter: int = Field(3000, ge=1, description="FLWF iterations per start")
    flwf_tol: float = Field(1e-4, gt=0, description="FLWF stopping tolerance")
    sweep: Sweep = Field(..., description="the figure's x axis")
    points: list[dict[str, Any]] = Field(..., min_length=1, description="scenario overrides")


def _jobs(experiment: str) -> Callable[[Preset, str, Sequence[str] | None], list[Job]]:
    def jobs(preset: Preset, preset_name: str, schemes: Sequence[str] | None = None) -> list[Job]:
        """One job per (sweep point, scheme, seed) with the preset's settings: ``job.params``
        holds ``point`` (the sweep point's scenario overrides), the preset's other fields and
        ``preset`` (its name)."""
        names = list(schemes) if schemes else MULTIBAND_SCHEMES.names()
        _check_points(experiment, preset)
        settings = preset.model_dump(mode="json", exclude={"points"})
        return [
            Job(experiment, name, seed, {**settings, "point": dict(point), "preset": preset_name})
            for point in preset.points
            for name in names
            for seed in preset.seeds
        ]

    return jobs


def _check_points(experiment: str, preset: Preset) -> None:
    """Before any job runs: a fixed ``scenario`` field that every point sets too would be
    ignored (refused, :func:`~skyshare.experiments.sweeps.check_swept_fields`), and every
    point must set the field(s) the figure's x axis reads (:data:`SWEEP_FIELDS`)."""
    check_swept_fields("scenario", preset.scenario, "points[]", preset.points)
    check_sweep_points(
        experiment,
        preset.sweep,
        SWEEP_FIELDS[preset.sweep],
        "points[]",
        preset.points,
        example=f"one of {', '.join(SWEEP_FIELDS)}",
    )


def _scenario_config(params: dict[str, Any], seed: int):
    from skyshare.scenarios.multiband import MultibandScenario

    overrides = {**params["scenario"], **params["point"], "seed": int(seed)}
    return MultibandScenario.config_from("paper", overrides=overrides)


def _learner_config(scheme: str, params: dict[str, Any]):
    return td3_mix_config(scheme, params["td3"])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(path)


_RESTART = (
    "delete it and rerun the same command: that job trains again from step 0, the other jobs "
    "are kept"
)


def _corrupt(path: Path, problem: str) -> ConfigError:
    """The error of a file a learned job resumes from that cannot be used (not retried)."""
    return ConfigError(f"{path} is corrupt ({problem}); {_RESTART}")


def _read_train_state(path: Path, total: int) -> dict[str, Any]:
    """``train.json`` of an interrupted learned job, checked: a JSON object with
    ``steps_done`` (an integer in [0, train_steps]), ``train_time_s`` (a finite number >= 0)
    and optionally ``resumed`` (an integer >= 0); a :class:`ConfigError` naming the file and
    the bad field otherwise."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, f"not readable as JSON: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise _corrupt(path, f"holds a JSON {type(data).__name__}, not an object")

    def number(key: str, *, integer: bool, high: float = math.inf, default: Any = None):
        if key not in data and default is None:
            raise _corrupt(path, f"missing key {key!r}")
        value = data.get(key, default)
        kind = "an integer" if integer else "a number"
        if (
            isinstance(value, bool)
            or not isinstance(value, int if integer else (int, float))
            or not 0 <= value <= high
            or not math.isfinite(value)
        ):
            allowed = f"[0, {high:g}]" if math.isfinite(high) else "[0, inf)"
            raise _corrupt(path, f"{key} = {value!r}: must be {kind} in {allowed}")
        return value

    return {
        "steps_done": number("steps_done", integer=True, high=total),
        "train_time_s": float(number("train_time_s", integer=False)),
        "resumed": number("resumed", integer=True, default=0),
    }


def _load_checkpoint(learner: Any, path: Path) -> None:
    """``learner.load(path)`` with a :class:`ConfigError` naming the file when it is not a
    checkpoint of these agents (a corrupt file is refused by ``read_checkpoint`` itself)."""
    try:
        learner.load(path)
    except ConfigError:
        raise  # read_checkpoint's message names the file and says to delete it
    except (ShapeError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise _corrupt(
            path, f"not a TD3-MIX checkpoint of this job: {type(exc).__name__}: {text}"
        ) from None


def _checkpoint_steps(
    learner: Any, checkpoint: Path, state_file: Path, steps_done: int, total: int, batch: int
) -> int:
    """The training steps the loaded checkpoint holds (each step adds ``batch`` transitions).

    ``train.json`` is written right after the checkpoint, so a run stopped between the two
    leaves the checkpoint one chunk ahead: its count wins (``train.csv`` already holds those
    steps' rows). A checkpoint behind ``train.json`` or off the step grid does not belong to
    it: a :class:`ConfigError` naming both files."""
    transitions = int(learner.n_transitions)
    steps, rest = divmod(transitions, batch)
    if rest or not steps_done <= steps <= total:
        raise ConfigError(
            f"{checkpoint} holds {transitions} transitions ({transitions / batch:g} steps of "
            f"{batch}) but {state_file} records steps_done = {steps_done} of {total}: they do "
            "not belong together; delete either and rerun the same command: that job trains "
            "again from step 0, the other jobs are kept"
        )
    return steps


def _trim_train_log(path: Path, steps_done: int) -> None:
    """Keep the header and the first ``steps_done`` rows of ``train.csv``: rows of a chunk
    logged before its checkpoint was written would otherwise appear twice."""
    if not path.exists():
        return
    try:
        lines = path.read_text().splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as exc:  # the training log only: resuming keeps on
        raise ConfigError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); delete it and rerun the same "
            "command: the job resumes from its checkpoint and logs the remaining steps only "
            "(delete the job's folder to train it again with a whole log)"
        ) from None
    if len(lines) > steps_done + 1:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text("".join(lines[: steps_done + 1]))
        tmp.replace(path)


def _train_or_resume(job: Job, folder: Path, scenario_config, env_config) -> tuple[Any, dict]:
    """The trained learner of a learned scheme: trains ``train_steps`` steps of Algorithm 1,
    checkpointing every ``checkpoint_every`` steps; a checkpoint in ``folder`` is loaded and
    only the remaining steps are trained. Returns (learner, training info)."""
    from tqdm.auto import tqdm

    from skyshare.envs.multiband import MultibandEnv
    from skyshare.rl.td3_mix import TD3MixAgents

    p = job.params
    env = MultibandEnv(
        scenario_config, env_config, batch_size=int(p["train_batch"]), device=job.device
    )
    config = _learner_config(job.scheme, p).replace(seed=int(job.seed))
    learner = TD3MixAgents.for_env(env, config)
    checkpoint, state_file = folder / CHECKPOINT_FILE, folder / TRAIN_STATE_FILE
    total = int(p["train_steps"])
    state = {"steps_done": 0, "train_time_s": 0.0, "resumed": 0}
    if checkpoint.exists() and state_file.exists():
        # everything read is checked before anything is written: a corrupt file stops the
        # job with a ConfigError naming it (not retried), and the folder stays as it was
        state = _read_train_state(state_file, total)
        _load_checkpoint(learner, checkpoint)
        state["steps_done"] = _checkpoint_steps(
            learner, checkpoint, state_file, state["steps_done"], total, int(p["train_batch"])
        )
        state["resumed"] += 1
        _trim_train_log(folder / TRAIN_LOG_FILE, state["steps_done"])
        _write_json(state_file, state)
    every = max(1, int(p["checkpoint_every"]))
    remaining = total - int(state["steps_done"])
    new_file = not (folder / TRAIN_LOG_FILE).exists() or state["steps_done"] == 0
    with (
        open(folder / TRAIN_LOG_FILE, "w" if new_file else "a", newline="") as handle,
        tqdm(
            total=total,
            initial=int(state["steps_done"]),
            desc=f"train {job.scheme}",
            disable=None,  # off when not on a terminal
            leave=False,
        ) as bar,
    ):
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["step", "capacity_per_cell", "reward", "flwf_iterations"])
        while remaining > 0:
            chunk = min(every, remaining)
            log = learner.train(env, chunk, callback=lambda step, log: bar.update(1))
            for i, capacity in enumerate(log.capacity_per_cell):
                iterations = log.flwf_iterations[i] if log.flwf_iterations else ""
                writer.writerow([int(state["steps_done"]) + i, capacity, log.reward[i], iterations])
            handle.flush()
            state["steps_done"] = int(state["steps_done"]) + chunk
            state["train_time_s"] = float(state["train_time_s"]) + log.wall_time_s
            remaining -= chunk
            learner.save(checkpoint, include_memory=False)  # refills on resume (size, module doc)
            _write_json(state_file, state)  # after the checkpoint: never ahead of it
    learner.save(folder / NETWORKS_FILE, include_memory=False)  # the trained agents, kept
    return learner, state


def _scheme_options(job: Job, learner: Any) -> Any:
    """The scheme factory's options: the job's seed for the scheme's own generator (not the
    env's), the FLWF settings, and the trained learner for the learned schemes."""
    from skyshare.schemes.multiband import MultibandSchemeOptions

    p = job.params
    return MultibandSchemeOptions(
        seed=job.seed,
        flwf_starts=int(p["flwf_starts"]),
        flwf_max_iter=int(p["flwf_max_iter"]),
        flwf_tol=float(p["flwf_tol"]),
        td3=dict(p["td3"]),
        agents=learner,
    )


def _evaluate(job: Job, learner: Any, scenario_config, env_config) -> tuple[list[list], dict]:
    """Play the held-out test episode with ``job.scheme`` (built from the registry around the
    trained ``learner``) through the online loop; (CSV rows, summary numbers)."""
    from skyshare.envs.multiband import MultibandEnv
    from skyshare.schemes.multiband import run_multiband

    p = job.params
    test_seed = int(p["test_seed"]) + job.seed
    env = MultibandEnv(
        scenario_config.replace(seed=test_seed),
        env_config,
        batch_size=int(p["test_batch"]),
        device=job.device,
    )
    scheme = MULTIBAND_SCHEMES.build(job.scheme, env, _scheme_options(job, learner))
    run = run_multiband(env, scheme, seed=test_seed, progress=None)
    return _eval_rows(run), _eval_summary(run, env.n_agents)


def _start_capacity(block: Any) -> torch.Tensor:
    """(B, S): average capacity per cell of every start (FLWF's random starts), or (B, 1)
    the capacity the block was played with."""
    starts = block.diagnostics.get("start_capacity")
    return block.capacity.mean(-1)[:, None] if starts is None else starts


def _eval_rows(run: Any) -> list[list]:
    """``eval.csv`` rows: one per block, realization and start."""
    rows: list[list] = []
    for block in run.blocks:
        capacity = _start_capacity(block)
        iterations = block.diagnostics.get("iterations")
        converged = block.diagnostics.get("converged")
        worst_bs = block.power_ratio.amax(-1)  # (B,)
        for b, s in itertools.product(range(capacity.shape[0]), range(capacity.shape[1])):
            rows.append(
                [
                    block.t,
                    b,
                    s,
                    float(capacity[b, s]),
                    float(worst_bs[b]),
                    "" if iterations is None else int(iterations[b, s]),
                    "" if converged is None else int(converged[b, s]),
                ]
            )
    return rows


def _starts_summary(run: Any) -> dict[str, Any]:
    """Spread and best of the random starts, averaged over realizations (FLWF only)."""
    blocks = [b for b in run.blocks if _start_capacity(b).shape[1] > 1]
    if not blocks:
        return {}
    std = torch.cat([b.diagnostics["capacity_std"] for b in blocks]).double()
    best = torch.cat([b.diagnostics["capacity_best"] for b in blocks]).double()
    return {
        "capacity_std_over_starts": float(std.mean()),
        "capacity_best_start": float(best.mean()),
        "n_starts": int(_start_capacity(blocks[0]).shape[1]),
    }


def _iterations_summary(run: Any) -> dict[str, Any]:
    """FLWF iterations and converged fraction over every block, realization and start."""
    blocks = [b for b in run.blocks if "iterations" in b.diagnostics]
    if not blocks:
        return {}
    iterations = torch.cat([b.diagnostics["iterations"].double().flatten() for b in blocks])
    converged = torch.cat([b.diagnostics["converged"].flatten() for b in blocks])
    return {
        "flwf_iterations_mean": float(iterations.mean()),
        "flwf_iterations_max": int(iterations.max()),
        "flwf_converged_fraction": float(converged.double().mean()),
    }


def _eval_summary(run: Any, n_cells: int) -> dict[str, Any]:
    """Capacity per cell over the test realizations (mean over starts for FLWF, as the
    paper reports), decision times, the worst power over budget, FLWF statistics."""
    per_realization = [
        block.diagnostics.get("capacity_mean", block.capacity.mean(-1)) for block in run.blocks
    ]  # (B,) per block
    values = torch.cat(per_realization).double()  # (T B,)
    decision_s = run.decision_time_s
    return {
        "capacity_per_cell": float(values.mean()),
        "capacity_std": float(values.std(correction=1)) if values.numel() > 1 else 0.0,
        "n_realizations": int(values.numel()),
        "n_cells": n_cells,
        "decision_time_per_block_s": sum(decision_s) / len(decision_s),
        "decision_time_per_realization_s": sum(decision_s) / len(decision_s) / run.batch_size,
        "max_power_over_budget": max(
            [0.0, *(float(block.power_ratio.max()) for block in run.blocks)]
        ),
        **_starts_summary(run),
        **_iterations_summary(run),
    }


def capacity_job(job: Job, folder: Path) -> dict[str, Any]:
    """One (scheme, seed, sweep point): train if learned (or resume from the checkpoint),
    evaluate on the held-out test realizations, write ``config.json`` and ``eval.csv``;
    return the JSON summary (average capacity per cell in bit/s/Hz and its standard deviation
    over test realizations, training and decision times, FLWF iterations)."""
    from skyshare.envs.multiband import MultibandEnvConfig

    torch.set_num_threads(job.threads)
    p = job.params
    scenario_config = _scenario_config(p, job.seed)
    env_config = MultibandEnvConfig.from_dict(p["env"], what="multiband env")
    learned = bool(MULTIBAND_SCHEMES.entry(job.scheme).tags.get("learns"))
    config = {
        "experiment": job.experiment,
        "scheme": job.scheme,
        "seed": job.seed,
        "scenario": scenario_config.model_dump(),
        "test_scenario_seed": int(p["test_seed"]) + job.seed,
        "execution": {"device": job.device, "threads": torch.get_num_threads()},
        "env": env_config.model_dump(),
        "settings": {key: value for key, value in p.items() if key not in ("point", "scenario")},
        "point": p["point"],
    }
    if learned:
        config["td3_mix"] = _learner_config(job.scheme, p).replace(seed=int(job.seed)).model_dump()
    _write_json(folder / "config.json", config)

    learner, train_state = None, {}
    if learned:
        learner, train_state = _train_or_resume(job, folder, scenario_config, env_config)
    rows, summary = _evaluate(job, learner, scenario_config, env_config)
    with open(folder / "eval.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "block",
                "realization",
                "start",
                "capacity_per_cell",
                "max_bs_power_over_budget",
                "flwf_iterations",
                "flwf_converged",
            ]
        )
        writer.writerows(rows)
    result = {
        "scheme": job.scheme,
        "seed": job.seed,
        "point": p["point"],
        **summary,
    }
    if learned:
        result["train_steps"] = int(train_state["steps_done"])
        result["train_time_s"] = float(train_state["train_time_s"])
        result["resumed_from_checkpoint"] = int(train_state.get("resumed", 0))
    return result


# ---------------------------------------------------------------------------------------------
# Figure, summary, table
# ---------------------------------------------------------------------------------------------


def _point_label(point: dict[str, Any]) -> str:
    parts = []
    if "n_antennas" in point:
        parts.append(f"({point['n_antennas']},{point['users_per_cell']})")
    if "n_freq" in point:
        parts.append(f"Nf {point['n_freq']}")
    if "sir_db" in point:
        parts.append(f"SIR {point['sir_db']:g} dB")
    return " ".join(parts)


def aggregate(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean over seeds of every (point, scheme): list of rows in preset order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in summary["results"].values():
        key = (json.dumps(result["point"], sort_keys=True), result["scheme"])
        groups.setdefault(key, []).append(result)
    rows = []
    for (point_key, scheme), results in groups.items():

        def mean(name: str, results=results) -> float | None:
            values = [r[name] for r in results if name in r]
            return sum(values) / len(values) if values else None

        rows.append(
            {
                "point": json.loads(point_key),
                "scheme": scheme,
                "n_seeds": len(results),
                # seeds whose learned job resumed from a checkpoint (not bit-identical)
                "n_resumed": sum(1 for r in results if r.get("resumed_from_checkpoint", 0)),
                **{
                    name: mean(name)
                    for name in (
                        "capacity_per_cell",
                        "capacity_std",
                        "capacity_std_over_starts",
                        "capacity_best_start",
                        "train_time_s",
                        "decision_time_per_block_s",
                        "flwf_iterations_mean",
                    )
                },
            }
        )
    return rows


def _finish(run_dir: Path, selected: list[Job], summary: dict[str, Any]) -> Path:
    """The figure (capacity per cell versus the sweep variable) and the aggregated table,
    added to ``summary`` (the runner writes ``summary.json`` after the figures)."""
    from skyshare.plots import plot_capacity_sweep

    summary["table"] = aggregate(summary)
    experiment, params = summary["experiment"], summary["params"]
    fixed = params["scenario"]
    fixed_text = ", ".join(
        f"{name}={fixed[name]:g}" for name in ("sir_db", "n_freq", "n_blocks") if name in fixed
    )
    title = f"{experiment} ({summary['preset']}): seed 004 Fig. {experiment[-1]}, {fixed_text}"
    path = Path(run_dir) / f"fig{experiment[-1]}.png"
    return plot_capacity_sweep(summary["table"], params["sweep"], title, path)


RESUMED_MARK = " *"
"""Marks the capacity of a (point, scheme) whose learned job resumed from a checkpoint."""


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (format(value, spec))
    )


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows): one row per (sweep point, scheme), means over seeds; the ratio
    columns compare with FLWF's mean over starts and with TD3-MIX at the same point."""
    rows = summary.get("table") or aggregate(summary)
    resumed = any(row.get("n_resumed") for row in rows)
    reference: dict[str, dict[str, float]] = {}
    for row in rows:
        key = json.dumps(row["point"], sort_keys=True)
        reference.setdefault(key, {})[row["scheme"]] = row["capacity_per_cell"]
    columns = [
        "point",
        "scheme",
        "cap/cell",
        "std",
        "/FLWF",
        "/TD3-MIX",
        "train s",
        "ms/block",
        "iters",
    ]
    table = []
    for row in rows:
        ref = reference[json.dumps(row["point"], sort_keys=True)]
        capacity = row["capacity_per_cell"]
        std = row["capacity_std_over_starts"] or row["capacity_std"]
        flwf_ref, td3_ref = ref.get("FLWF"), ref.get("TD3-MIX")
        table.append(
            [
                _point_label(row["point"]),
                row["scheme"],
                _fmt(capacity) + (RESUMED_MARK if row.get("n_resumed") else ""),
                _fmt(std, ".3g"),
                _fmt(capacity / flwf_ref if flwf_ref else None, ".3f"),
                _fmt(capacity / td3_ref if td3_ref else None, ".2f"),
                _fmt(row["train_time_s"], ".3g"),
                _fmt(
                    None
                    if row["decision_time_per_block_s"] is None
                    else row["decision_time_per_block_s"] * 1e3,
                    ".3g",
                ),
                _fmt(row["flwf_iterations_mean"], ".0f"),
            ]
        )
    title = (
        f"{summary['experiment']} ({summary['preset']}): average capacity per cell (bit/s/Hz) "
        "on held-out test blocks; std over starts (FLWF) or blocks; /FLWF: ratio to FLWF's "
        "mean over starts; ms/block: decision time for the test batch; iters: FLWF iterations"
    )
    if resumed:
        title += (
            f"; {RESUMED_MARK.strip()}: resumed from a checkpoint (in at least one seed), not "
            "bit-identical to an uninterrupted run (docs/experiments/multiband.md)"
        )
    return title, columns, table


def flwf_memory_estimate(job: Job, scenario: Any) -> float:
    """Bytes of the largest FLWF tensors of a job: ``FLWF`` plays ``flwf_starts`` starts of
    each of the ``test_batch`` realizations in one batch, ``TD3-MIX+FLWF`` one start per
    environment (training and test); about a dozen (B, S, K, F) float64 tensors alive at
    once plus the (B, S) capacity trace of every iteration (kept, twice when stacked).
    0 for the schemes that do not run FLWF."""
    p = job.params
    if job.scheme == "FLWF":
        rows = int(p["test_batch"]) * int(p["flwf_starts"])
    elif job.scheme == "TD3-MIX+FLWF":
        rows = max(int(p["train_batch"]), int(p["test_batch"]))
    else:
        return 0.0
    users = scenario.n_cells * scenario.users_per_cell
    per_row = 12 * users * scenario.n_freq + 2 * (int(p["flwf_max_iter"]) + 1)
    return 8.0 * rows * per_row


def check_job(job: Job) -> None:
    """The job's scenario, env and (learned schemes) TD3-MIX configs, built before the run
    writes anything (``Experiment.check_job``), and FLWF's memory
    (:func:`flwf_memory_estimate`) against the limit (:func:`~skyshare.checks.check_memory`)."""
    from skyshare.envs.multiband import MultibandEnvConfig

    scenario = _scenario_config(job.params, job.seed)
    MultibandEnvConfig.from_dict(job.params["env"], what="multiband env")
    check_memory(
        flwf_memory_estimate(job, scenario), f"job {job.job_id} (FLWF, flwf_starts, test_batch)"
    )
    if MULTIBAND_SCHEMES.entry(job.scheme).tags.get("learns"):
        from skyshare.rl.common.networks import check_hidden_layers_memory

        config = _learner_config(job.scheme, job.params)
        check_hidden_layers_memory(config.hidden_sizes, f"job {job.job_id} (TD3-MIX networks)")


def _experiment(name: str, description: str) -> Experiment:
    return Experiment(
        name,
        description,
        Preset,
        _jobs(name),
        capacity_job,
        _finish,
        summary_table,
        SCHEMES,
        check_job=check_job,
    )


FIG5 = _experiment(
    "multiband-fig5",
    "seed 004 Fig. 5: capacity per cell vs (M, U), SIR 0 dB, N_f 6, all five schemes",
)
FIG6 = _experiment(
    "multiband-fig6",
    "seed 004 Fig. 6: capacity per cell vs N_f for (8, 4) and (32, 16), all five schemes",
)
FIG7 = _experiment(
    "multiband-fig7",
    "seed 004 Fig. 7: capacity per cell vs SIR at (32, 16), N_f 6, all five schemes",
)
EXPERIMENTS = {experiment.name: experiment for experiment in (FIG5, FIG6, FIG7)}
