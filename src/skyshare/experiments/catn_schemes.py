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
interrupted job resumes from it, see :func:`~skyshare.experiments.catn_training.run_online`)
and, for learned schemes, ``networks.pt`` (the trained agents' ``state_dict``s).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from skyshare.envs.catn import CatnEnv, CatnEnvConfig
from skyshare.errors import UnknownNameError
from skyshare.experiments.catn_training import TrainingLog, run_online
from skyshare.experiments.jobs import Execution, Experiment, Job, run_jobs, with_seeds
from skyshare.rl.cup import CupAgents, CupConfig
from skyshare.rl.d3qn import D3QNAgents
from skyshare.rl.ppo_penalty import PpoPenaltyAgents, PpoPenaltyConfig
from skyshare.scenarios.catn import CatnScenario

__all__ = [
    "SCHEMES",
    "VIOLATION_TOL",
    "SchemeRun",
    "build_agents",
    "build_env",
    "evaluate_scheme",
    "moving_average",
    "plot_training_curves",
    "read_series",
    "run_scheme_jobs",
    "save_networks",
    "scenario_sweep_jobs",
    "scheme_experiment",
    "scheme_job",
    "summarize_log",
    "train_scheme",
    "training_curves_experiment",
    "training_curves_table",
    "write_config",
    "write_series",
]

# scheme -> (association, beamforming); the paper's WMMSE benchmark is its low-complexity
# variant (§VI), DFP is the direct FP upper bound.
SCHEMES: dict[str, tuple[str, str]] = {
    "D3QN-CUP": ("d3qn", "cup"),
    "DCD-CUP": ("dcd", "cup"),
    "SC-CUP": ("sc", "cup"),
    "D3QN-PPO": ("d3qn", "ppo"),
    "D3QN-WMMSE": ("d3qn", "wmmse-lite"),
    "SC-WMMSE": ("sc", "wmmse-lite"),
    "DCD-WMMSE": ("dcd", "wmmse-lite"),
    "DCD-DFP": ("dcd", "fp"),
}


@dataclass
class SchemeRun:
    """A scheme after :func:`train_scheme` (or :func:`evaluate_scheme`).

    Attributes:
        scheme: name in :data:`SCHEMES`. env: the game it ran on. log: its per-slot log.
        tu_agents, bs_agents: the (trained) learners, None for decision rules and solvers.
    """

    scheme: str
    env: CatnEnv
    log: TrainingLog
    tu_agents: D3QNAgents | None
    bs_agents: CupAgents | PpoPenaltyAgents | None


def _scheme(scheme: str) -> tuple[str, str]:
    if scheme not in SCHEMES:
        raise UnknownNameError(f"unknown scheme {scheme!r}; available: {', '.join(SCHEMES)}")
    return SCHEMES[scheme]


def build_env(
    scheme: str,
    params: dict[str, Any],
    seed: int,
    n_slots: int,
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
) -> CatnEnv:
    """The CATN game of ``scheme`` on ``device``: the ``paper`` scenario with
    ``params["scenario"]`` overrides, a horizon of ``n_slots`` (+2: slot 0 of the reset and one
    spare) and the signaling of the scheme (what its TUs and BSs receive, Table I)."""
    association, beamforming = _scheme(scheme)
    scenario = CatnScenario.config_from(
        "paper", overrides={**params.get("scenario", {}), "n_slots": n_slots + 2, "seed": seed}
    )
    bs_info = "exchange" if beamforming in ("cup", "ppo") else "global_csi"
    return CatnEnv(
        scenario,
        CatnEnvConfig(**params.get("env", {}), tu_information=association, bs_information=bs_info),
        batch_size=batch_size,
        device=device,
    )


def build_agents(
    env: CatnEnv, scheme: str, params: dict[str, Any], seed: int
) -> tuple[D3QNAgents | None, CupAgents | PpoPenaltyAgents | None]:
    """Fresh (untrained) learners of ``scheme`` on ``env`` (and its device): D3QN TU agents
    (§VI defaults, seeded by ``seed``) and CUP or PPO-penalty BS agents with
    ``params["hidden_sizes"]`` (and ``params["ppo_penalty"]`` = zeta); None where the scheme
    uses a rule or a solver."""
    association, beamforming = _scheme(scheme)
    hidden = tuple(params["hidden_sizes"])
    tu_agents = bs_agents = None
    if association == "d3qn":
        tu_agents = D3QNAgents(
            env.tu_obs_dim,
            env.N,
            env.K,
            generator=torch.Generator().manual_seed(seed),
            device=env.device,
        )
    dims = (env.bs_obs_dim, env.action_dim, env.N, env.L)
    if beamforming == "cup":
        bs_agents = CupAgents(*dims, CupConfig(hidden_sizes=hidden, seed=seed), env.device)
    elif beamforming == "ppo":
        config = PpoPenaltyConfig(hidden_sizes=hidden, penalty=params["ppo_penalty"], seed=seed)
        bs_agents = PpoPenaltyAgents(*dims, config, env.device)
    return tu_agents, bs_agents


def write_config(
    path: Path,
    scheme: str,
    env: CatnEnv,
    tu_agents: D3QNAgents | None,
    bs_agents: CupAgents | PpoPenaltyAgents | None,
    **extra: Any,
) -> None:
    """``config.json``: the scheme, the resolved scenario and env configs (``model_dump``), the
    learner configs and ``extra`` (run length, seed, ...)."""
    association, beamforming = _scheme(scheme)
    config = {
        "scheme": scheme,
        "association": association,
        "beamforming": beamforming,
        **extra,
        "batch_size": env.B,
        "scenario": env.scenario.config.model_dump(),
        "env": env.config.model_dump(),
        "tu_agents": None if tu_agents is None else asdict(tu_agents.config),
        "bs_agents": None
        if bs_agents is None
        else {"type": type(bs_agents).__name__, **asdict(bs_agents.config)},
    }
    path.write_text(json.dumps(config, indent=2, default=str))


def save_networks(
    path: Path,
    scheme: str,
    tu_agents: D3QNAgents | None,
    bs_agents: CupAgents | PpoPenaltyAgents | None,
) -> None:
    """``networks.pt``: the agents' ``state_dict`` (networks, optimisers, nu; no replay memory)
    for reuse, e.g. ``CupAgents(...).load_state_dict(torch.load(path)["bs_agents"])``."""
    torch.save(
        {
            "scheme": scheme,
            "tu_agents": None if tu_agents is None else tu_agents.state_dict(include_memory=False),
            "bs_agents": None if bs_agents is None else bs_agents.state_dict(),
        },
        path,
    )


SERIES_COLUMNS = ("slot", "sum_rate", "effective_sum_rate", "handover_fraction", "decision_time_s")


def write_series(path: Path, log: TrainingLog, n_au: int) -> None:
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
        for i, slot in enumerate(log.slots):
            writer.writerow(
                [
                    slot,
                    log.sum_rate[i],
                    log.effective_sum_rate[i],
                    *log.au_interference_ratio[i],
                    log.handover_fraction[i],
                    log.decision_time_s[i],
                ]
            )


def read_series(path: Path) -> dict[str, list[float]]:
    """``{column: values}`` of a :func:`write_series` file (``au*`` columns included)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


VIOLATION_TOL = 1e-3  # relative; the solvers' feasibility_tol (float32 rounding sits at 1e-7)


def summarize_log(scheme: str, log: TrainingLog) -> dict[str, Any]:
    """Summary of a training log: means over the last sixth of the logged slots (after
    convergence, as the paper reads its curves), the share of those slots in which some AU
    received more than (1 + VIOLATION_TOL) I_max, and the mean decision time over all slots."""
    tail = max(1, len(log.slots) // 6)
    ratio = torch.tensor(log.au_interference_ratio, dtype=torch.float64)
    return {
        "scheme": scheme,
        "slots": len(log.slots),
        "mean_sum_rate_last": float(torch.tensor(log.sum_rate[-tail:]).mean()),
        "mean_rho_over_imax_last": ratio[-tail:].mean(0).tolist(),
        "max_rho_over_imax_last": ratio[-tail:].max(0).values.tolist(),
        "violation_share_last": float(
            (ratio[-tail:] > 1.0 + VIOLATION_TOL).any(-1).double().mean()
        ),
        "mean_decision_time_s": float(torch.tensor(log.decision_time_s).mean()),
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
    association, beamforming = _scheme(scheme)
    n_slots = int(params["n_slots"])
    env = build_env(scheme, params, seed, n_slots, device=device)
    tu_agents, bs_agents = build_agents(env, scheme, params, seed)
    every = max(1, n_slots // int(params["dfp_slots"])) if beamforming == "fp" else 1
    write_config(
        folder / "config.json", scheme, env, tu_agents, bs_agents,
        n_slots=n_slots, seed=seed, evaluate_every=every, params=params,
    )  # fmt: skip
    log = run_online(
        env,
        association,
        beamforming,
        n_slots,
        tu_agents=tu_agents,
        bs_agents=bs_agents,
        seed=seed,
        evaluate_every=every,
        progress=_slot_progress() if progress is None else progress,
        checkpoint_path=folder / "checkpoint.pt",
        checkpoint_every=int(params.get("checkpoint_every", max(1, n_slots // 10))),
    )
    write_series(folder / "series.csv", log, env.L)
    if tu_agents is not None or bs_agents is not None:
        save_networks(folder / "networks.pt", scheme, tu_agents, bs_agents)
    return SchemeRun(scheme, env, log, tu_agents, bs_agents)


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
    association, beamforming = _scheme(trained.scheme)
    env = build_env(trained.scheme, params, seed, n_slots, device=trained.env.device)
    log = run_online(
        env,
        association,
        beamforming,
        n_slots,
        tu_agents=trained.tu_agents,
        bs_agents=trained.bs_agents,
        train=False,
        seed=seed,
        progress=_slot_progress() if progress is None else progress,
        checkpoint_path=checkpoint_path,
        checkpoint_every=max(1, n_slots // 10),
    )
    return SchemeRun(trained.scheme, env, log, trained.tu_agents, trained.bs_agents)


def scheme_job(job: Job, folder: Path) -> dict[str, Any]:
    """Job function: train ``job.scheme`` with ``job.params`` and return its summary
    (:func:`summarize_log` plus the job's swept ``label``, if any), on ``job.threads``."""
    torch.set_num_threads(job.threads)
    result = train_scheme(job.scheme, job.params, job.seed, folder, device=job.device)
    summary = summarize_log(job.scheme, result.log)
    if "label" in job.params:
        summary["label"] = job.params["label"]
    return summary


def moving_average(values: list[float], span: int = 41) -> list[float]:
    """Centred moving average over ``span`` slots (seed 000 §VI: "each value is a moving
    average with a span of 41 time slots"), edges padded with the end values."""
    x = torch.tensor(values, dtype=torch.float64)
    k = max(1, min(span, x.numel()))
    padded = torch.nn.functional.pad(x[None, None], (k // 2, k - 1 - k // 2), "replicate")
    return torch.nn.functional.conv1d(padded, torch.ones(1, 1, k, dtype=x.dtype) / k)[0, 0].tolist()


def run_scheme_jobs(
    experiment: str,
    jobs: list[Job],
    run_dir: str | Path,
    preset: str,
    params: dict[str, Any],
    job_fn: Any = None,
    *,
    execution: Execution | None = None,
) -> dict[str, Any]:
    """Run the unfinished ``jobs`` with ``job_fn`` (default :func:`scheme_job`) as
    ``execution`` says, write and return ``summary.json`` (experiment, preset, parameters,
    results by job id)."""
    results = run_jobs(jobs, job_fn or scheme_job, run_dir, execution)
    summary = {
        "experiment": experiment,
        "preset": preset,
        "params": params,
        "results": {job.job_id: results[job.job_id] for job in jobs},
    }
    (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _job_i_max_mw(run_dir: Path, job: Job) -> float:
    config = json.loads((run_dir / "jobs" / job.job_id / "config.json").read_text())
    return float(config["scenario"]["i_max_mw"])


def plot_training_curves(run_dir: str | Path, jobs: list[Job], name: str, title: str) -> Path:
    """Two panels like seed 000 Figs. 4-7: (a) TU sum rate and (b) received interference
    power of each AU in dBm (solid AU 1, dashed AU 2, ...) over training slots, moving
    averages over 41 slots, with each curve's I_max as a dotted line; one colour per job,
    labelled by ``job.params["label"]`` (the scheme otherwise) and its seed when the jobs have
    several. A job logged on spaced slots (DCD-DFP on 100 of 6000) is drawn unsmoothed with
    markers. Saved as ``run_dir/name``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    styles = ("-", "--", "-.", ":")
    limits_drawn: set[float] = set()
    several_seeds = len({job.seed for job in jobs}) > 1
    for i, job in enumerate(jobs):
        colour = f"C{i % 10}"
        label = job.params.get("label", job.scheme) + (
            f", seed {job.seed}" if several_seeds else ""
        )
        series = read_series(run_dir / "jobs" / job.job_id / "series.csv")
        slots = series["slot"]
        sparse = len(slots) > 1 and slots[1] - slots[0] > 1
        smooth = (lambda x: x) if sparse else moving_average
        marker = "." if sparse else None
        top.plot(slots, smooth(series["sum_rate"]), color=colour, marker=marker, label=label)
        i_max_mw = _job_i_max_mw(run_dir, job)
        i_max_dbm = 10 * torch.log10(torch.tensor(i_max_mw)).item()
        for l_, key in enumerate(k for k in series if k.startswith("au")):
            dbm = (10 * torch.log10(torch.tensor(series[key])) + i_max_dbm).tolist()
            bottom.plot(
                slots,
                smooth(dbm),
                styles[l_ % len(styles)],
                color=colour,
                marker=marker,
                lw=0.9,
                label=f"{label}, AU {l_ + 1}",
            )
        if round(i_max_dbm, 3) not in limits_drawn:
            limits_drawn.add(round(i_max_dbm, 3))
            bottom.axhline(i_max_dbm, color=colour, lw=1, ls=":")
    top.set(ylabel="TU sum rate (bit/s/Hz)", title=f"{title}, moving average over 41 slots")
    bottom.set(
        xlabel="training slot",
        ylabel="received interference power (dBm)",
        title="dotted: I_max",
    )
    top.legend(fontsize=7, ncol=2)
    bottom.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = run_dir / name
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def training_curves_table(
    experiment: str, summary: dict[str, Any]
) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows) of a training-curves experiment: per curve (its ``label``), the
    means over the last sixth of the training slots and the share of slots over I_max."""
    columns = ["curve", "sum rate (bit/s/Hz)", "rho / I_max per AU", "slots over I_max (%)"]
    rows = [
        [
            r.get("label", r["scheme"]),
            f"{r['mean_sum_rate_last']:.4g}",
            ", ".join(f"{x:.3g}" for x in r["mean_rho_over_imax_last"]),
            f"{100 * r['violation_share_last']:.3g}",
        ]
        for r in summary["results"].values()
    ]
    return f"{experiment} ({summary['preset']}): last sixth of the training slots", columns, rows


def scheme_experiment(
    name: str,
    description: str,
    presets: dict[str, dict[str, Any]],
    schemes: tuple[str, ...],
    jobs: Callable[[str, list[str] | None], list[Job]],
    finish: Callable[[Path, list[Job]], Any],
    table: Callable[[dict[str, Any]], tuple[str, list[str], list[list[str]]]],
    job_fn: Callable[[Job, Path], dict[str, Any]] = scheme_job,
) -> Experiment:
    """The :class:`Experiment` of a seed-000 figure or table: ``run`` builds
    ``jobs(preset, schemes)``, runs the unfinished ones with ``job_fn``
    (:func:`run_scheme_jobs`, which writes ``summary.json``), then calls
    ``finish(run_dir, jobs)`` to draw the figure or write the table files."""

    def run(
        run_dir: str | Path,
        preset: str = "quick",
        *,
        schemes: list[str] | None = None,
        seeds: list[int] | None = None,
        execution: Execution | None = None,
    ) -> dict[str, Any]:
        """All jobs (resuming finished ones), the figure or table and ``summary.json``."""
        selected = jobs(preset, schemes)
        if seeds is not None:
            selected = with_seeds(selected, seeds)
        summary = run_scheme_jobs(
            name, selected, run_dir, preset, presets[preset], job_fn, execution=execution
        )
        if selected:
            finish(Path(run_dir), selected)
        return summary

    return Experiment(name, description, presets, schemes, run, table)


def training_curves_experiment(
    name: str,
    description: str,
    presets: dict[str, dict[str, Any]],
    schemes: tuple[str, ...],
    jobs: Callable[[str, list[str] | None], list[Job]],
    figure: str,
    table: Callable[[dict[str, Any]], tuple[str, list[str], list[list[str]]]] | None = None,
) -> Experiment:
    """A :func:`scheme_experiment` whose result is a training-curves figure (seed 000 Figs.
    4-7) saved as ``figure`` (e.g. ``"fig6.png"``, :func:`plot_training_curves`); ``table``
    defaults to :func:`training_curves_table`."""
    number = figure.removesuffix(".png").removeprefix("fig")
    title = f"{name} (seed 000 Fig. {number})"

    def curves_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
        """(title, columns, rows): per curve, means over the last sixth of the training slots."""
        return training_curves_table(name, summary)

    def plot(run_dir: Path, selected: list[Job]) -> Path:
        return plot_training_curves(run_dir, selected, figure, title)

    return scheme_experiment(name, description, presets, schemes, jobs, plot, table or curves_table)


def scenario_sweep_jobs(
    experiment: str,
    preset: str,
    params: dict[str, Any],
    sweep_key: str,
    field: str,
    label: str,
    scheme: str = "D3QN-CUP",
) -> list[Job]:
    """One ``scheme`` job per seed and per value of ``params[sweep_key]``, each with the
    scenario override ``field = value`` and the curve label ``label.format(value)``; the
    sweep list itself is left out of the job parameters (adding a value keeps the ids of the
    other jobs)."""
    base = {k: v for k, v in params.items() if k != sweep_key}
    base["preset"] = preset
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
        for seed in params["seeds"]
        for value in params[sweep_key]
    ]
