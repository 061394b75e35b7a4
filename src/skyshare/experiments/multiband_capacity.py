"""``multiband-fig5/6/7``: average capacity per cell of every seed-004 scheme (seed 004 §V).

One experiment along three axes (seed 004 Figs. 5-7, 3 cells, SNR 20 dB, T = 10):

* ``multiband-fig5``: versus (M, U) in {(8, 4), (16, 8), (32, 16)}, SIR 0 dB, N_f = 6;
* ``multiband-fig6``: versus N_f for (M, U) = (8, 4) and (32, 16), SIR 0 dB;
* ``multiband-fig7``: versus the channel SIR (eq. (23)) at (M, U) = (32, 16), N_f = 6.

The schemes are the five of §V: ``random`` (Dirichlet(1) split of each user's budget),
``SSWF`` (selfish single-user water-filling), ``FLWF`` (the forward-looking game to convergence
from random initializations, reported as the **mean over the starts**, 100 in the paper
preset), ``TD3-MIX`` (the trained actor's allocation, no FLWF) and ``TD3-MIX+FLWF`` (the trained
actor's allocation starts FLWF, which runs to convergence, §IV-C).

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
realization, and per start for FLWF), for the learned schemes ``checkpoint.pt``
(:meth:`TD3Mix.save`), ``train.json`` (steps done, training time) and ``train.csv`` (training
curve), and ``result.json``; ``<figure>.png`` and ``summary.json`` at the top.

Interrupted learned jobs resume from their last checkpoint (written every
``checkpoint_every`` training steps): the networks, optimisers and counters are restored and
only the remaining steps are trained (the replay buffer is not checkpointed; it refills).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from skyshare.errors import UnknownNameError
from skyshare.experiments.jobs import Execution, Experiment, Job, run_jobs, with_seeds

__all__ = [
    "FIG5",
    "FIG6",
    "FIG7",
    "LEARNED_SCHEMES",
    "PRESETS",
    "SCHEMES",
    "capacity_job",
    "capacity_jobs",
    "plot_capacity",
    "run",
    "run_fig5",
    "run_fig6",
    "run_fig7",
    "summary_table",
]

# scheme -> TD3MixConfig.scheme for the learned ones, None for the others
SCHEMES: dict[str, str | None] = {
    "random": None,
    "SSWF": None,
    "FLWF": None,
    "TD3-MIX": "td3_mix",
    "TD3-MIX+FLWF": "td3_mix_flwf",
}
LEARNED_SCHEMES = tuple(name for name, learner in SCHEMES.items() if learner is not None)

CHECKPOINT_FILE = "checkpoint.pt"
TRAIN_STATE_FILE = "train.json"

# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------

# Paper: the seed's settings where it gives them (§V: 3 cells, SNR 20 dB, T = 10, 100 FLWF
# initializations, networks 2 x 128, Adam 1e-3, gamma 0.99, batch 16) and choices where it is
# silent (training length, test realizations, sweep values of Figs. 6-7, FLWF stopping rule).
_PAPER_COMMON: dict[str, Any] = {
    "seeds": [0],
    "scenario": {"n_cells": 3, "snr_db": 20.0, "n_blocks": 10},
    "env": {},  # the full observation (17), simplex action mapping
    "td3": {},  # TD3MixConfig defaults = the paper's values
    "train_batch": 16,  # B parallel training environments: 16 transitions per step
    "train_steps": 2000,  # choice: 32000 transitions, 2000 critic updates
    "checkpoint_every": 100,
    "test_batch": 10,  # 10 environments x T = 10 blocks = 100 test realizations
    "test_seed": 1_000_000,
    "flwf_starts": 100,  # §V: "mean performance of FLWF over 100 random initializations"
    "flwf_max_iter": 3000,
    "flwf_tol": 1e-4,  # every start of the paper network converges (docs/solvers/flwf.md)
}

# Quick: the same schemes and observation, far shorter training (the learned schemes are
# barely trained: a smoke test of the pipeline, not of the learning), 20 test realizations,
# smaller networks' mixers (they read only the interference features), smaller sweeps.
_QUICK_COMMON: dict[str, Any] = {
    **_PAPER_COMMON,
    "td3": {"mixer_state": "interference", "buffer_size": 1024, "learning_starts": 64},
    "train_batch": 8,
    "train_steps": 60,
    "checkpoint_every": 30,
    "test_batch": 2,
    "flwf_max_iter": 200,
    "flwf_tol": 1e-4,
}


def _mu(m: int, u: int) -> dict[str, int]:
    return {"n_antennas": m, "users_per_cell": u}


FIG5_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        **_PAPER_COMMON,
        "sweep": "(M, U)",
        "scenario": {**_PAPER_COMMON["scenario"], "n_freq": 6, "sir_db": 0.0},
        "points": [_mu(8, 4), _mu(16, 8), _mu(32, 16)],
    },
    "quick": {
        **_QUICK_COMMON,
        "sweep": "(M, U)",
        "scenario": {**_QUICK_COMMON["scenario"], "n_freq": 6, "sir_db": 0.0},
        "points": [_mu(8, 4), _mu(16, 8), _mu(32, 16)],
    },
}

FIG6_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        **_PAPER_COMMON,
        "sweep": "n_freq",
        "scenario": {**_PAPER_COMMON["scenario"], "sir_db": 0.0},
        "points": [
            {**_mu(m, u), "n_freq": f} for m, u in ((8, 4), (32, 16)) for f in (3, 6, 9, 12)
        ],
    },
    "quick": {
        **_QUICK_COMMON,
        "sweep": "n_freq",
        "scenario": {**_QUICK_COMMON["scenario"], "sir_db": 0.0},
        "points": [{**_mu(m, u), "n_freq": f} for m, u in ((8, 4), (32, 16)) for f in (3, 6, 12)],
    },
}

FIG7_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        **_PAPER_COMMON,
        "sweep": "sir_db",
        "scenario": {**_PAPER_COMMON["scenario"], **_mu(32, 16), "n_freq": 6},
        "points": [{"sir_db": s} for s in (0.0, 3.0, 6.0, 9.0, 12.0)],
    },
    "quick": {
        **_QUICK_COMMON,
        "sweep": "sir_db",
        "scenario": {**_QUICK_COMMON["scenario"], **_mu(32, 16), "n_freq": 6},
        "points": [{"sir_db": s} for s in (0.0, 6.0, 12.0)],
    },
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "multiband-fig5": FIG5_PRESETS,
    "multiband-fig6": FIG6_PRESETS,
    "multiband-fig7": FIG7_PRESETS,
}
_FIGURE_FILE = {
    "multiband-fig5": "fig5.png",
    "multiband-fig6": "fig6.png",
    "multiband-fig7": "fig7.png",
}


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------


def _preset(experiment: str, preset: str) -> dict[str, Any]:
    if experiment not in PRESETS:
        raise UnknownNameError(
            f"unknown experiment {experiment!r}; available: {', '.join(PRESETS)}"
        )
    presets = PRESETS[experiment]
    if preset not in presets:
        raise UnknownNameError(
            f"unknown preset {preset!r} for {experiment}; available: {', '.join(presets)}"
        )
    return presets[preset]


def capacity_jobs(
    experiment: str, preset: str = "quick", schemes: list[str] | None = None
) -> list[Job]:
    """One job per (scheme, seed, sweep point) of ``experiment`` with the preset's settings.

    ``job.params``: ``point`` (the sweep point's scenario overrides), ``scenario`` (the
    preset's fixed overrides) and the training/evaluation settings (everything of the preset
    but ``points``), plus ``preset``.
    """
    params = _preset(experiment, preset)
    names = list(schemes) if schemes else list(SCHEMES)
    unknown = [name for name in names if name not in SCHEMES]
    if unknown:
        raise UnknownNameError(
            f"unknown scheme(s) {', '.join(unknown)}; available: {', '.join(SCHEMES)}"
        )
    settings = {key: value for key, value in params.items() if key != "points"}
    return [
        Job(experiment, name, seed, {**settings, "point": dict(point), "preset": preset})
        for point in params["points"]
        for name in names
        for seed in params["seeds"]
    ]


def _scenario_config(params: dict[str, Any], seed: int):
    from skyshare.scenarios.multiband import MultibandScenario

    overrides = {**params["scenario"], **params["point"], "seed": int(seed)}
    return MultibandScenario.config_from("paper", overrides=overrides)


def _learner_config(scheme: str, params: dict[str, Any]):
    from skyshare.rl.td3_mix import TD3MixConfig

    return TD3MixConfig(scheme=SCHEMES[scheme], **params["td3"])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(path)


def _train_or_resume(job: Job, folder: Path, scenario_config, env_config) -> tuple[Any, dict]:
    """The trained learner of a learned scheme: trains ``train_steps`` steps of Algorithm 1,
    checkpointing every ``checkpoint_every`` steps; a checkpoint in ``folder`` is loaded and
    only the remaining steps are trained. Returns (learner, training info)."""
    from tqdm.auto import tqdm

    from skyshare.envs.multiband import MultibandEnv
    from skyshare.rl.td3_mix import TD3Mix

    p = job.params
    env = MultibandEnv(
        scenario_config, env_config, batch_size=int(p["train_batch"]), device=job.device
    )
    generator = torch.Generator(device=env.device).manual_seed(job.seed)
    learner = TD3Mix(env, _learner_config(job.scheme, p), generator=generator)
    checkpoint, state_file = folder / CHECKPOINT_FILE, folder / TRAIN_STATE_FILE
    state = {"steps_done": 0, "train_time_s": 0.0, "resumed": 0}
    if checkpoint.exists() and state_file.exists():
        learner.load(checkpoint)
        state = json.loads(state_file.read_text())
        state["resumed"] = int(state.get("resumed", 0)) + 1
        _write_json(state_file, state)
    total = int(p["train_steps"])
    every = max(1, int(p["checkpoint_every"]))
    remaining = total - int(state["steps_done"])
    new_file = not (folder / "train.csv").exists() or state["steps_done"] == 0
    with (
        open(folder / "train.csv", "w" if new_file else "a", newline="") as handle,
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
            learner.save(checkpoint)
            _write_json(state_file, state)  # after the checkpoint: never ahead of it
    return learner, state


def _evaluate(job: Job, learner: Any, scenario_config, env_config) -> tuple[list[list], dict]:
    """Play the held-out test episode with ``job.scheme``; (CSV rows, summary numbers)."""
    from tqdm.auto import tqdm

    from skyshare.envs.multiband import MultibandEnv
    from skyshare.solvers.flwf import flwf_random_starts
    from skyshare.solvers.waterfilling import random_power, sswf

    p = job.params
    test_seed = int(p["test_seed"]) + job.seed
    env = MultibandEnv(
        scenario_config.replace(seed=test_seed),
        env_config,
        batch_size=int(p["test_batch"]),
        device=job.device,
    )
    scheme_rng = torch.Generator(device=env.device).manual_seed(job.seed)  # not the env's
    max_iter, tol = int(p["flwf_max_iter"]), float(p["flwf_tol"])
    n_cells = env.n_agents
    rows: list[list] = []
    per_realization: list[torch.Tensor] = []  # (B,) per block, mean over starts for FLWF
    start_std: list[torch.Tensor] = []
    start_best: list[torch.Tensor] = []
    decision_s: list[float] = []
    iterations: list[torch.Tensor] = []
    converged: list[torch.Tensor] = []
    worst_power_ratio = 0.0
    env.reset(seed=test_seed)
    with (
        torch.no_grad(),
        tqdm(total=env.horizon, desc=job.scheme, disable=None, leave=False) as bar,
    ):
        while not env.done:
            state, block = env.state, env.t
            start = time.perf_counter()
            starts_capacity = None
            block_iterations = block_converged = None
            if job.scheme == "random":
                power = random_power(env.scenario, state, scheme_rng)
            elif job.scheme == "SSWF":
                power = sswf(env.scenario, state).power
            elif job.scheme == "FLWF":
                starts = flwf_random_starts(
                    env.scenario,
                    state,
                    int(p["flwf_starts"]),
                    scheme_rng,
                    max_iter=max_iter,
                    tol=tol,
                )
                S = starts.n_starts
                power = starts.result.power.reshape(env.B, S, *starts.result.power.shape[1:])
                power = power[:, 0]  # the first start is played to move on to the next block
                starts_capacity = starts.capacity  # (B, S)
                block_iterations = starts.result.instance_iterations.reshape(env.B, S)
                block_converged = starts.result.converged.reshape(env.B, S)
            else:
                decision = learner.decide(env, max_iter=max_iter, tol=tol)
                power = decision.power
                if decision.flwf is not None:
                    block_iterations = decision.flwf.instance_iterations[:, None]
                    block_converged = decision.flwf.converged[:, None]
            decision_s.append(time.perf_counter() - start)
            out = env.step_power(power)
            played = out.reward.mean(-1)  # (B,) average capacity per cell, bit/s/Hz
            power_ratio = env.scenario.bs_power(out.power) / out.budget  # (B, C)
            worst_power_ratio = max(worst_power_ratio, float(power_ratio.max()))
            if starts_capacity is None:
                capacity = played[:, None]  # (B, 1)
            else:
                capacity = starts_capacity
            per_realization.append(capacity.mean(-1))
            if capacity.shape[1] > 1:
                start_std.append(capacity.std(-1, correction=1))
                start_best.append(capacity.amax(-1))
            if block_iterations is not None:
                iterations.append(block_iterations.double().flatten())
                converged.append(block_converged.flatten())
            for b in range(env.B):
                for s in range(capacity.shape[1]):
                    rows.append(
                        [
                            block,
                            b,
                            s,
                            float(capacity[b, s]),
                            float(power_ratio[b].max()),
                            "" if block_iterations is None else int(block_iterations[b, s]),
                            "" if block_converged is None else int(block_converged[b, s]),
                        ]
                    )
            bar.update(1)
    values = torch.cat(per_realization).double()  # (T B,)
    summary = {
        "capacity_per_cell": float(values.mean()),
        "capacity_std": float(values.std(correction=1)) if values.numel() > 1 else 0.0,
        "n_realizations": int(values.numel()),
        "n_cells": n_cells,
        "decision_time_per_block_s": sum(decision_s) / len(decision_s),
        "decision_time_per_realization_s": sum(decision_s) / len(decision_s) / env.B,
        "max_power_over_budget": worst_power_ratio,
    }
    if start_std:
        summary["capacity_std_over_starts"] = float(torch.cat(start_std).double().mean())
        summary["capacity_best_start"] = float(torch.cat(start_best).double().mean())
        summary["n_starts"] = int(p["flwf_starts"])
    if iterations:
        all_iterations = torch.cat(iterations)
        summary["flwf_iterations_mean"] = float(all_iterations.mean())
        summary["flwf_iterations_max"] = int(all_iterations.max())
        summary["flwf_converged_fraction"] = float(torch.cat(converged).double().mean())
    return rows, summary


def capacity_job(job: Job, folder: Path) -> dict[str, Any]:
    """One (scheme, seed, sweep point): train if learned (or resume from the checkpoint),
    evaluate on the held-out test realizations, write ``config.json`` and ``eval.csv``;
    return the JSON summary (average capacity per cell in bit/s/Hz and its standard deviation
    over test realizations, training and decision times, FLWF iterations)."""
    from skyshare.envs.multiband import MultibandEnvConfig

    torch.set_num_threads(job.threads)
    p = job.params
    scenario_config = _scenario_config(p, job.seed)
    env_config = MultibandEnvConfig(**p["env"])
    learned = SCHEMES[job.scheme] is not None
    config = {
        "experiment": job.experiment,
        "scheme": job.scheme,
        "seed": job.seed,
        "scenario": scenario_config.model_dump(),
        "test_scenario_seed": int(p["test_seed"]) + job.seed,
        "env": env_config.model_dump(),
        "settings": {key: value for key, value in p.items() if key not in ("point", "scenario")},
        "point": p["point"],
    }
    if learned:
        config["td3_mix"] = asdict(_learner_config(job.scheme, p))
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


def _x_value(sweep: str, point: dict[str, Any]) -> float:
    return {"(M, U)": point.get("n_antennas"), "n_freq": point.get("n_freq")}.get(
        sweep, point.get("sir_db")
    )


def _point_label(point: dict[str, Any]) -> str:
    parts = []
    if "n_antennas" in point:
        parts.append(f"({point['n_antennas']},{point['users_per_cell']})")
    if "n_freq" in point:
        parts.append(f"Nf {point['n_freq']}")
    if "sir_db" in point:
        parts.append(f"SIR {point['sir_db']:g} dB")
    return " ".join(parts)


def _aggregate(summary: dict[str, Any]) -> list[dict[str, Any]]:
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


def plot_capacity(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Capacity per cell versus the sweep variable, one line per scheme (and per (M, U) for
    Fig. 6), like seed 004 Figs. 5-7; FLWF with its spread over starts (+- 1 std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experiment, sweep = summary["experiment"], summary["params"]["sweep"]
    rows = _aggregate(summary)
    colors = dict(
        zip(SCHEMES, ("tab:gray", "tab:orange", "tab:blue", "tab:green", "tab:red"), strict=True)
    )
    markers = dict(zip(SCHEMES, ("x", "s", "o", "^", "*"), strict=True))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    series: dict[tuple[str, str], list[tuple[float, float, float | None]]] = {}
    for row in rows:
        point = row["point"]
        group = (
            f"(M,U)=({point['n_antennas']},{point['users_per_cell']})" if sweep == "n_freq" else ""
        )
        series.setdefault((row["scheme"], group), []).append(
            (_x_value(sweep, point), row["capacity_per_cell"], row["capacity_std_over_starts"])
        )
    styles = ["-", "--", ":", "-."]
    groups = sorted({group for _, group in series})
    for (scheme, group), values in sorted(
        series.items(), key=lambda item: (list(SCHEMES).index(item[0][0]), item[0][1])
    ):
        values.sort()
        xs = [v[0] for v in values]
        ys = [v[1] for v in values]
        label = f"{scheme} {group}".strip()
        ax.plot(
            xs,
            ys,
            styles[groups.index(group) % len(styles)],
            color=colors[scheme],
            marker=markers[scheme],
            label=label + (" (mean over starts)" if scheme == "FLWF" else ""),
        )
        if scheme == "FLWF" and all(v[2] is not None for v in values):
            low = [y - v[2] for y, v in zip(ys, values, strict=True)]
            high = [y + v[2] for y, v in zip(ys, values, strict=True)]
            ax.fill_between(xs, low, high, color=colors[scheme], alpha=0.2, lw=0)
    if sweep == "(M, U)":
        points = sorted({(r["point"]["n_antennas"], r["point"]["users_per_cell"]) for r in rows})
        ax.set_xscale("log", base=2)
        ax.set_xticks([m for m, _ in points], [f"({m}, {u})" for m, u in points])
        ax.minorticks_off()
        xlabel = "(M, U)"
    else:
        ax.set_xticks(sorted({_x_value(sweep, row["point"]) for row in rows}))
        xlabel = (
            "number of frequency channels $N_f$"
            if sweep == "n_freq"
            else "channel SIR (dB), eq. (23)"
        )
    fixed = summary["params"]["scenario"]
    fixed_text = ", ".join(
        f"{name}={fixed[name]:g}" for name in ("sir_db", "n_freq", "n_blocks") if name in fixed
    )
    ax.set(
        xlabel=xlabel,
        ylabel="average capacity per cell (bit/s/Hz)",
        title=f"{experiment} ({summary['preset']}): seed 004 Fig. {experiment[-1]}, {fixed_text}",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(series) > 6 else 1)
    fig.tight_layout()
    path = Path(run_dir) / _FIGURE_FILE[experiment]
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(
    experiment: str,
    run_dir: str | Path,
    preset: str = "quick",
    *,
    schemes: list[str] | None = None,
    seeds: list[int] | None = None,
    execution: Execution | None = None,
) -> dict[str, Any]:
    """All jobs of ``experiment`` (resuming finished ones), the figure and ``summary.json``;
    ``seeds`` replaces the preset's seeds (:func:`~skyshare.experiments.jobs.with_seeds`)."""
    jobs = capacity_jobs(experiment, preset, schemes)
    if seeds is not None:
        jobs = with_seeds(jobs, seeds)
    results = run_jobs(jobs, capacity_job, run_dir, execution)
    summary = {
        "experiment": experiment,
        "preset": preset,
        "params": PRESETS[experiment][preset],
        "results": {job.job_id: results[job.job_id] for job in jobs},
    }
    summary["table"] = _aggregate(summary)
    plot_capacity(run_dir, summary)
    (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


# run_figN(run_dir, preset="quick", *, schemes, seeds, execution): one experiment each
run_fig5 = functools.partial(run, "multiband-fig5")  # capacity per cell versus (M, U)
run_fig6 = functools.partial(run, "multiband-fig6")  # capacity per cell versus N_f
run_fig7 = functools.partial(run, "multiband-fig7")  # capacity per cell versus the channel SIR


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (format(value, spec))
    )


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows): one row per (sweep point, scheme), means over seeds; the ratio
    columns compare with FLWF's mean over starts and with TD3-MIX at the same point."""
    rows = summary.get("table") or _aggregate(summary)
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
                _fmt(capacity),
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
    return title, columns, table


def _experiment(name: str, description: str, runner) -> Experiment:
    return Experiment(
        name=name,
        description=description,
        presets=PRESETS[name],
        schemes=tuple(SCHEMES),
        run=runner,
        table=summary_table,
    )


FIG5 = _experiment(
    "multiband-fig5",
    "seed 004 Fig. 5: capacity per cell vs (M, U), SIR 0 dB, N_f 6, all five schemes",
    run_fig5,
)
FIG6 = _experiment(
    "multiband-fig6",
    "seed 004 Fig. 6: capacity per cell vs N_f for (8, 4) and (32, 16), all five schemes",
    run_fig6,
)
FIG7 = _experiment(
    "multiband-fig7",
    "seed 004 Fig. 7: capacity per cell vs SIR at (32, 16), N_f 6, all five schemes",
    run_fig7,
)
