"""The ``skyshare`` command.

    skyshare scenarios                                   list the systems and their presets
    skyshare inspect SCENARIO [--preset NAME] [--config FILE] [--set key=value ...]
                              [--batch B] [--seed S] [--slot T] [--plot FILE] [--json FILE]
    skyshare env catn [--policy {random,heuristic}] [--slots N] [--batch B] [--tu-info ...]
                      [--bs-info ...] [--preset NAME] [--set key=value ...]
    skyshare env tn_ntn [--policy {random,round-robin,greedy-BR}]
                        [--formulation {decomposed,per_bs}] [--slots N] [--batch B]
                        [--preset NAME] [--set key=value ...]
    skyshare run EXPERIMENT [--preset quick|paper] [--config FILE] [--set key=value ...]
                            [--executor local|ray] [--address ADDR]
                            [--workers N] [--device cpu|cuda|cuda:N] [--out DIR]
                            [--threads T] [--schemes NAME ...] [--seeds S ...]
    skyshare solve catn [--association {sc,dcd,...}] [--beamforming {wmmse,wmmse-lite,fp,...}]
                        [--slots N] [--max-iter I] [--cold-start] [--preset NAME]
                        [--set key=value ...] [--batch B] [--plot FILE] [--json FILE]

Bad input (unknown names, invalid values, unreadable files) prints one clear message naming the
field and the allowed range, without a traceback, and exits with status 2. Nothing is written
before the input has been validated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from skyshare import __version__
from skyshare.checks import MAX_SEED
from skyshare.config import preset_names
from skyshare.errors import SkyshareError
from skyshare.runtime import keep_freed_memory

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
HORIZON_FIELDS = ("n_slots", "n_blocks", "horizon_slots")  # a scenario config's horizon
MAX_FREE_SLOT = 10_000  # inspect --slot of a scenario without a horizon
INTERRUPTED = {  # after Ctrl-C: run keeps finished jobs and checkpoints; the others write last
    True: "rerun the same command to resume",
    False: "nothing was written",
}


def _add_config_arguments(parser: argparse.ArgumentParser, *, file: bool = True) -> None:
    """--preset, --config FILE and repeatable --set KEY=VALUE (the scenario config)."""
    parser.add_argument("--preset", default="paper", help="preset name (default: paper)")
    _add_override_arguments(parser, "p_max_w=10", file=file)
    parser.add_argument("--seed", type=int, help="random seed (default: the config's seed)")


def _add_override_arguments(
    parser: argparse.ArgumentParser, example: str, *, file: bool = True
) -> None:
    """--config FILE (a YAML file on top of the preset) and repeatable --set KEY=VALUE."""
    if file:
        parser.add_argument("--config", type=Path, help="YAML file applied on top of the preset")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one value, e.g. --set {example} (repeatable; dotted keys reach "
        "into nested fields)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyshare",
        description="Interference management in integrated aerial/non-terrestrial + "
        "terrestrial networks.",
    )
    parser.add_argument("--version", action="version", version=f"skyshare {__version__}")
    parser.add_argument(
        "--memory-limit",
        type=float,
        metavar="GB",
        help="refuse a scenario, env or job whose largest tensors would need more (default: "
        "half of the available memory; 0: no check)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("scenarios", help="list the scenarios and their presets")

    inspect = sub.add_parser(
        "inspect", help="build a scenario, print its link budget, optionally plot its topology"
    )
    inspect.add_argument("scenario", help="scenario name (see `skyshare scenarios`)")
    _add_config_arguments(inspect)
    inspect.add_argument("--batch", type=int, default=16, help="realizations to average (16)")
    inspect.add_argument("--slot", type=int, default=0, help="advance to this slot first (0)")
    inspect.add_argument("--plot", type=Path, help="write the topology plot to this PNG file")
    inspect.add_argument("--json", type=Path, help="also write the link budget as JSON here")

    env = sub.add_parser("env", help="run the multi-agent environment with a simple policy")
    env.add_argument(
        "scenario",
        choices=["catn", "tn_ntn"],
        help="environment (catn: seed 000 §V; tn_ntn: seed 001 §III)",
    )
    env.add_argument(
        "--policy",
        choices=["random", "heuristic", "round-robin", "greedy-BR"],
        default="random",
        help="catn: random actions, or strongest-channel association + MRT-like beams "
        "(heuristic); tn_ntn: random, round-robin or greedy-BR (the full-CSI reference)",
    )
    env.add_argument(
        "--formulation",
        choices=["decomposed", "per_bs"],
        default=None,
        help="tn_ntn only: SRB agents acting in turn (RL2, the default) or one agent per BS (RL1)",
    )
    env.add_argument("--slots", type=int, default=20, help="slots (frames) to play (20)")
    env.add_argument("--batch", type=int, default=1, help="parallel environments (1)")
    env.add_argument(
        "--tu-info",
        choices=["d3qn", "dcd", "sc"],
        default=None,
        help="catn only: what the TUs receive for association (signaling ledger; d3qn)",
    )
    env.add_argument(
        "--bs-info",
        choices=["exchange", "global_csi"],
        default=None,
        help="catn only: observation exchange (CUP/PPO, the default) or global CSI (WMMSE/FP)",
    )
    _add_config_arguments(env)

    run = sub.add_parser("run", help="reproduce a figure of a seed paper (jobs, plots, summary)")
    from skyshare.experiments.registry import EXPERIMENTS

    run.add_argument(
        "experiment",
        choices=sorted(EXPERIMENTS),
        help="; ".join(f"{name}: {exp.description}" for name, exp in sorted(EXPERIMENTS.items())),
    )
    run.add_argument(
        "--preset",
        default="quick",
        help="quick (a reduced setting: about a minute for catn-fig4 on two cores, up to half "
        "an hour for tn-ntn-fig3) or paper (the paper's settings: hours; docs/experiments); "
        "default: quick",
    )
    _add_override_arguments(run, "n_slots=600 or --set scenario.n_tu=7")
    run.add_argument("--executor", choices=["local", "ray"], default="local")
    run.add_argument("--address", help="Ray cluster address (default: a local Ray instance)")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local executor: jobs at a time, one process each (default: 1, in this process)",
    )
    run.add_argument(
        "--device", default="cpu", help="where the jobs' tensors live: cpu, cuda or cuda:N"
    )
    run.add_argument(
        "--threads",
        type=int,
        help="torch threads per job (default: 1, whatever the executor: the thread count "
        "changes the numbers; a started job resumes only with the count it started with); "
        "up to 1024; with the local executor, more workers x threads than this machine's "
        "CPUs is warned about (the jobs then compete for cores)",
    )
    run.add_argument("--out", help="run directory (default: runs/EXPERIMENT-PRESET)")
    run.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep finished jobs' checkpoints (default: removed once a job has finished)",
    )
    run.add_argument("--schemes", nargs="+", help="subset of the schemes (default: all)")
    run.add_argument(
        "--seeds", nargs="+", type=int, help="run every job once per seed (default: the preset's)"
    )

    from skyshare.schemes.catn import ASSOCIATIONS, BEAMFORMERS

    solve = sub.add_parser(
        "solve",
        help="run association + beamforming rules online on the CATN slots (two-stage baselines)",
    )
    solve.add_argument("scenario", choices=["catn"], help="scenario (catn: seed 000)")
    solve.add_argument("--association", choices=ASSOCIATIONS.names(learns=False), default="sc")
    solve.add_argument("--beamforming", choices=BEAMFORMERS.names(learns=False), default="wmmse")
    solve.add_argument("--slots", type=int, default=20, help="dynamic slots to solve (20)")
    solve.add_argument(
        "--max-iter",
        type=int,
        help="per-slot iteration budget of the beamformer (default: the solver's own)",
    )
    solve.add_argument(
        "--cold-start",
        action="store_true",
        help="solve every slot from scratch (default: warm-start from the previous slot's "
        "beamformers and multipliers, seed 000 §VI's dynamic setting)",
    )
    _add_config_arguments(solve)
    solve.add_argument("--batch", type=int, default=1, help="realizations solved together (1)")
    solve.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: the per-slot problems are small, one thread is fastest)",
    )
    solve.add_argument("--plot", type=Path, help="sum rate and AU interference over slots (PNG)")
    solve.add_argument("--json", type=Path, help="write the summary and per-slot series here")
    return parser


def _cmd_scenarios(console: Console) -> int:
    from skyshare.scenarios import SCENARIOS

    table = Table(title="skyshare scenarios")
    table.add_column("name", style="bold")
    table.add_column("system")
    table.add_column("source")
    table.add_column("presets")
    for name, cls in sorted(SCENARIOS.items()):
        table.add_row(name, cls.title, cls.source, ", ".join(preset_names(name)))
    console.print(table)
    return 0


def _check_output_path(path: Path | None, suffix: str, flag: str) -> None:
    """A clear error unless ``path`` names a ``suffix`` file that can be written: not a
    folder, in an existing folder (not a file) that this user may write to."""
    if path is None:
        return
    if path.suffix.lower() != suffix:
        raise SkyshareError(f"{flag} must name a {suffix} file, got {str(path)!r}")
    if path.is_dir():
        raise SkyshareError(f"{flag} {str(path)!r} is a directory")
    parent = path.parent
    if not parent.exists() and not any(p.is_file() for p in parent.parents):
        raise SkyshareError(f"{flag}: folder {str(parent)!r} does not exist")
    _check_writable_folder(parent, flag, create=False)


def _check_writable_folder(folder: Path, flag: str, *, create: bool = True) -> None:
    """A clear error unless ``folder`` is (or, with ``create``, can be made) a folder this
    user may write to: no file in the way, the nearest existing ancestor writable."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is" if candidate == folder else f"lies under {str(candidate)!r}, which is"
                raise SkyshareError(f"{flag}: {str(folder)!r} {where} a file, not a folder")
            if candidate != folder and not create:
                raise SkyshareError(f"{flag}: folder {str(folder)!r} does not exist")
            _probe_writable(candidate, flag)
            return


def _probe_writable(folder: Path, flag: str) -> None:
    """Create and remove a file in ``folder``: permission bits say nothing for root, and
    kernel or read-only file systems (/proc, /sys, a full disk) refuse only at write time."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SkyshareError(
            f"{flag}: cannot write in folder {str(folder)!r} (creating a file there failed: "
            f"{exc.strerror})"
        ) from None


def _cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    from skyshare.scenarios import get_scenario

    cls = get_scenario(args.scenario)
    _in_range(args.batch, 1, 65536, "--batch")
    _in_range(args.seed, 0, MAX_SEED, "--seed")
    _check_output_path(args.plot, ".png", "--plot")
    _check_output_path(args.json, ".json", "--json")
    config = cls.config_from(args.preset, file=args.config, overrides=args.overrides)
    horizon = next(
        (getattr(config, name) for name in HORIZON_FIELDS if hasattr(config, name)), None
    )
    # no horizon (independent realizations, vhetnet): a bound that a slot-by-slot walk to
    # --slot finishes in seconds, not the hours an unbounded one could take
    _in_range(args.slot, 0, MAX_FREE_SLOT if horizon is None else horizon - 1, "--slot")

    scenario = cls(config, batch_size=args.batch)
    scenario.reset(seed=args.seed)
    for _ in range(args.slot):
        scenario.step()
    budget = scenario.link_budget()

    table = Table(title=budget.title)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("note", style="dim")
    for row in budget.rows:
        table.add_row(row.quantity, f"{row.value:.4g}", row.unit, row.note)
    console.print(table)

    if args.json is not None:
        payload = {
            "scenario": cls.name,
            "preset": args.preset,
            "batch": args.batch,
            "config": config.model_dump(),
            "link_budget": [row.__dict__ for row in budget.rows],
        }
        args.json.write_text(json.dumps(payload, indent=2))
        console.print(f"link budget written to {args.json}", markup=False)
    if args.plot is not None:
        from skyshare.plots import plot_topology

        plot_topology(scenario, args.plot)
        console.print(f"topology plot written to {args.plot}", markup=False)
    return 0


def _check_env_options(args: argparse.Namespace) -> None:
    """Refuse the ``env`` options of the other scenario (they would be ignored)."""
    if args.scenario == "tn_ntn":
        given = [f for f, v in (("--tu-info", args.tu_info), ("--bs-info", args.bs_info)) if v]
        if given:
            raise SkyshareError(f"{' and '.join(given)}: catn only (tn_ntn has no such option)")
    elif args.formulation is not None:
        raise SkyshareError("--formulation: tn_ntn only (catn has one formulation)")


def _cmd_env(args: argparse.Namespace, console: Console) -> int:
    import torch
    from tqdm.auto import tqdm

    from skyshare import metrics
    from skyshare.envs import CatnEnv, CatnEnvConfig
    from skyshare.scenarios import get_scenario

    cls = get_scenario(args.scenario)
    _in_range(args.batch, 1, 4096, "--batch")
    _in_range(args.seed, 0, MAX_SEED, "--seed")
    config = cls.config_from(args.preset, file=args.config, overrides=args.overrides)
    _check_env_options(args)
    if args.scenario == "tn_ntn":
        return _cmd_env_tn_ntn(args, config, console)
    if args.policy not in ("random", "heuristic"):
        raise SkyshareError(f"--policy for catn must be random or heuristic, got {args.policy}")
    _check_slots(args.slots, config.n_slots)
    env_config = CatnEnvConfig(
        tu_information=args.tu_info or "d3qn", bs_information=args.bs_info or "exchange"
    )
    env = CatnEnv(config, env_config, batch_size=args.batch)
    generator = torch.Generator().manual_seed(0 if args.seed is None else args.seed)
    env.reset(seed=args.seed)
    totals = {
        "TU reward": 0.0,
        "BS reward": 0.0,
        "sum rate": 0.0,
        "cost": 0.0,
        "handovers": 0.0,
        "max rho/I_max": 0.0,
    }
    for _ in tqdm(range(args.slots), desc=f"catn env ({args.policy})"):
        if args.policy == "random":
            tu = torch.randint(0, env.N, (env.B, env.K), generator=generator)
        else:
            tu = metrics.strongest_transmitter(env.state.H)
        env.associate(tu)
        if args.policy == "random":
            bs = torch.rand(env.B, env.N, env.action_dim, generator=generator)
        else:  # full power, equal shares, eta only: maximum-ratio beams
            bs = torch.zeros(env.B, env.N, env.action_dim)
            bs[..., : env.K + 1] = 1.0
            bs[..., 2 * env.K + 1] = 1.0
        out = env.beamform(bs)
        totals["TU reward"] += float(out.tu_reward.sum(-1).mean())
        totals["BS reward"] += float(out.bs_reward.sum(-1).mean())
        totals["sum rate"] += float(out.rates.sum(-1).mean())
        totals["cost"] += float(out.cost[:, 0].mean())
        totals["handovers"] += float(out.handovers.float().mean())
        ratio = out.au_interference / env.i_max
        totals["max rho/I_max"] = max(totals["max rho/I_max"], float(ratio.max()))
    table = Table(title=f"catn env, {args.policy} policy: {args.slots} slots, B={args.batch}")
    table.add_column("per slot (mean over environments)")
    table.add_column("value", justify="right")
    for key, value in totals.items():
        shown = value if key == "max rho/I_max" else value / args.slots
        table.add_row(
            key if key != "max rho/I_max" else "max rho_l / I_max (any slot)", f"{shown:.4g}"
        )
    console.print(table)
    ledger = Table(title="Measured signaling: real scalars received per agent per slot")
    ledger.add_column("agent")
    ledger.add_column("category")
    ledger.add_column("scalars", justify="right")
    for (kind, category), value in sorted(env.ledger.per_agent_per_slot().items()):
        ledger.add_row(kind, category, f"{value:.1f}")
    for kind, value in sorted(env.ledger.per_kind_per_slot().items()):
        ledger.add_row(kind, "total", f"{value:.1f}", style="bold")
    console.print(ledger)
    return 0


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from skyshare.experiments.jobs import Execution
    from skyshare.experiments.registry import get_experiment

    experiment = get_experiment(args.experiment)
    if args.preset not in experiment.presets:
        raise SkyshareError(
            f"unknown preset {args.preset!r} for {args.experiment}; "
            f"available: {', '.join(experiment.presets)}"
        )
    unknown = [name for name in args.schemes or [] if name not in experiment.schemes]
    if unknown:
        raise SkyshareError(
            f"unknown scheme(s) {', '.join(unknown)} for {args.experiment}; "
            f"available: {', '.join(experiment.schemes)}"
        )
    if args.out is not None and not args.out.strip():  # Path("") would be this folder
        raise SkyshareError("--out must name a folder, got an empty name")
    out = (
        Path(args.out)
        if args.out is not None
        else Path("runs") / f"{args.experiment}-{args.preset}"
    )
    _check_writable_folder(out, "--out")
    execution = Execution(  # validates --workers, --address and --device
        executor=args.executor,
        address=args.address,
        workers=args.workers,
        device=args.device,
        threads=args.threads,
        keep_checkpoints=args.keep_checkpoints,
    )
    execution.check_address()  # an unreachable cluster fails now, not after minutes
    before = _file_times(out)
    # the preset, --config and --set are validated before anything is written (exit 2 with
    # nothing created), and an error names the --config file a bad value came from
    summary = experiment.run(
        out,
        args.preset,
        config=args.config,
        overrides=args.overrides,
        schemes=args.schemes,
        seeds=args.seeds,
        execution=execution,
    )
    _print_table(console, *experiment.table(summary))
    changed = [f"--set {o}" for o in args.overrides or []]
    changed += [f"--config {args.config}"] if args.config else []
    if changed:  # the title names the preset: say that it did not run as shipped
        console.print(f"preset {args.preset} changed by {', '.join(changed)}", markup=False)
    written = _file_times(out)
    files = sorted(
        name for name, time in written.items() if before.get(name) != time and name != "preset.yaml"
    )
    listed = f"{', '.join(files)} and jobs/" if files else "jobs/"
    console.print(f"{listed} (each job's series and result) in {out}", markup=False)
    return 0


def _file_times(folder: Path) -> dict[str, int]:
    """Name -> modification time (ns) of the files directly in ``folder`` (none if absent):
    compared before and after a run, the files it wrote."""
    if not folder.is_dir():
        return {}
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir() if path.is_file()}


def _print_table(
    console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    """A result table: the first column left-aligned, the numbers right-aligned."""
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


WIDE_OUTPUT = 1000
"""Columns of the output when it is not a terminal (a pipe, a log file): wide enough that no
table cell is cut, where rich would assume 80 columns."""


def _console() -> Console:
    """Rich's console on stdout: a terminal's own width, else (piped, logged) wide enough
    not to cut table cells (``COLUMNS`` set in the environment still wins)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=WIDE_OUTPUT)
    return console


def _cmd_env_tn_ntn(args: argparse.Namespace, config: Any, console: Console) -> int:
    """``skyshare env tn_ntn``: play a reference rule on the seed 001 game (episodes restart
    at the scenario's horizon) and print the per-frame means and the measured signaling."""
    from skyshare.envs.tn_ntn import TnNtnEnv
    from skyshare.scenarios.tn_ntn import TnNtnScenario
    from skyshare.schemes.tn_ntn import TN_NTN_SCHEMES, TnNtnSchemeOptions, run_tn_ntn

    if args.policy == "heuristic":
        raise SkyshareError("--policy for tn_ntn must be random, round-robin or greedy-BR")
    _in_range(args.slots, 1, 10_000_000, "--slots")
    formulation = args.formulation or "decomposed"
    env = TnNtnEnv(TnNtnScenario(config, batch_size=args.batch), formulation=formulation)
    seed = 0 if args.seed is None else args.seed
    scheme = TN_NTN_SCHEMES.build(args.policy, env, TnNtnSchemeOptions(seed=seed))
    run = run_tn_ntn(env, scheme, args.slots, seed=args.seed, progress=True)
    title = (
        f"tn_ntn env ({formulation}, {env.n_turns} turns per frame), {args.policy}: "
        f"{args.slots} frames, B={args.batch}"
    )
    table = Table(title=title)
    table.add_column("per frame (mean over environments)")
    table.add_column("value", justify="right")
    rows = {
        "reward (9), Mbit/s per user": run.reward.mean(),
        "cost (11) summed over users, Mbit/s": run.cost.mean(),
        "throughput, Mbit/s": run.throughput.mean() / 1e6,
        "active users": run.active_users.mean(),
        "QoS misses": run.qos_miss.mean(),
        "decision time, ms": run.decision_time_s.mean() * 1e3,
    }
    for key, value in rows.items():
        table.add_row(key, f"{float(value):.4g}")
    console.print(table)
    signaling = Table(title="signaling per BS per frame (real scalars from other BSs)")
    for column in ("message", "scalars"):
        signaling.add_column(column)
    for (kind, category), value in env.ledger.per_agent_per_slot().items():
        signaling.add_row(f"{kind}/{category}", f"{value:.4g}")
    console.print(signaling)
    return 0


def _in_range(value: int | None, low: int, high: int, flag: str) -> None:
    """A clear error naming ``flag`` unless ``value`` (when given) is in [low, high]."""
    if value is not None and not low <= value <= high:
        raise SkyshareError(f"{flag} must be in [{low}, {high}], got {value}")


def _check_slots(slots: int | None, n_slots: int) -> None:
    """--slots steps from slot 0 need slots 1..--slots inside the horizon ``n_slots``."""
    if n_slots < 2:
        raise SkyshareError(
            f"n_slots must be >= 2 to step the catn slots (slot 0 plus at least one step), "
            f"got n_slots={n_slots}"
        )
    _in_range(slots, 1, n_slots - 1, "--slots")


def _check_solve_args(args: argparse.Namespace) -> None:
    _in_range(args.batch, 1, 4096, "--batch")
    _in_range(args.seed, 0, MAX_SEED, "--seed")
    _in_range(args.max_iter, 1, 10_000, "--max-iter")
    _in_range(args.threads, 1, 256, "--threads")
    _check_output_path(args.plot, ".png", "--plot")
    _check_output_path(args.json, ".json", "--json")


def _cmd_solve(args: argparse.Namespace, console: Console) -> int:
    import torch

    from skyshare.scenarios import get_scenario
    from skyshare.schemes.catn import build_catn_env, build_scheme
    from skyshare.schemes.catn_online import run_online

    cls = get_scenario(args.scenario)
    _check_solve_args(args)
    config = cls.config_from(args.preset, file=args.config, overrides=args.overrides)
    _check_slots(args.slots, config.n_slots)
    torch.set_num_threads(args.threads)
    name = f"{args.association}+{args.beamforming}"
    options = {"warm_start": not args.cold_start, "max_iter": args.max_iter}
    if args.seed is not None:
        options["seed"] = args.seed
    env = build_catn_env(name, config, batch_size=args.batch)
    scheme = build_scheme(name, env, options)
    log = run_online(env, scheme, args.slots, train=False, seed=args.seed, progress=True)
    title = f"{args.association.upper()}-{args.beamforming.upper()} on {args.scenario}: "
    title += f"{args.slots} slots, B={args.batch}, {'cold' if args.cold_start else 'warm'} starts"
    summary = _solve_summary(log)
    console.print(_solve_table(title, summary, args))
    sum_rate = log.mean("sum_rate")
    ratio = [x.mean(0).tolist() for x in log.au_interference_ratio]
    if args.json is not None:
        payload = {
            "scenario": args.scenario,
            "association": args.association,
            "beamforming": args.beamforming,
            "scheme_options": scheme.options.model_dump(),
            "config": config.model_dump(),
            "summary": summary,
            "slots": log.slots,
            "sum_rate": sum_rate,
            "au_interference_ratio": ratio,
        }
        args.json.write_text(json.dumps(payload, indent=2))
        console.print(f"summary written to {args.json}", markup=False)
    if args.plot is not None:
        from skyshare.plots import plot_online_log

        plot_online_log(log.slots, sum_rate, ratio, args.plot, title=f"{title} (seed 000 §VI)")
        console.print(f"plot written to {args.plot}", markup=False)
    return 0


def _solve_table(title: str, summary: dict[str, float], args: argparse.Namespace) -> Table:
    from skyshare.schemes.catn import PAPER_TABLE1_SECONDS

    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4g}")
    per_realization = summary["time per slot (s)"] / args.batch
    table.add_row("time per slot per realization (s)", f"{per_realization:.4g}")
    if args.beamforming in PAPER_TABLE1_SECONDS:
        paper_s, paper_scheme = PAPER_TABLE1_SECONDS[args.beamforming]
        table.add_row(f"paper Table I ({paper_scheme})", f"{paper_s:.4g} s")
    return table


def _solve_summary(log) -> dict[str, float]:
    """The table of ``skyshare solve``: means over slots and realizations."""
    ratio = log.stacked("au_interference_ratio")
    times = _float64(log.decision_time_s())
    return {
        "mean sum rate (bit/s/Hz)": float(log.stacked("sum_rate").mean()),
        "mean AU interference / I_max": float(ratio.mean()) if ratio.numel() else 0.0,
        "max AU interference / I_max": float(ratio.max()) if ratio.numel() else 0.0,
        "feasible slots (%)": float(log.stacked("feasible").float().mean() * 100),
        "mean beamforming iterations": float(_float64(log.iterations).mean()),
        "time per slot (s)": float(times.mean()),
        "association time per slot (s)": float(_float64(log.association_time_s).mean()),
        "beamforming time per slot (s)": float(_float64(log.beamforming_time_s).mean()),
        "handovers per slot": float(log.stacked("handovers").float().mean()),
    }


def _float64(values: list[float]):
    import torch

    return torch.tensor(values, dtype=torch.float64)


def _apply_memory_limit(gb: float | None) -> None:
    """--memory-limit GB, passed to every check (and to worker processes) through the
    environment variable the checks read."""
    from skyshare.checks import MEMORY_LIMIT_ENV

    if gb is None:
        return
    if not gb >= 0:  # NaN too
        raise SkyshareError(f"--memory-limit must be >= 0 GB (0: no check), got {gb}")
    os.environ[MEMORY_LIMIT_ENV] = repr(gb)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skyshare`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    keep_freed_memory()  # the command's own process (fewer page faults; values unchanged)
    console = _console()
    from skyshare.checks import MEMORY_LIMIT_ENV

    previous_limit = os.environ.get(MEMORY_LIMIT_ENV)
    try:
        _apply_memory_limit(args.memory_limit)
        if args.command == "scenarios":
            return _cmd_scenarios(console)
        if args.command == "inspect":
            return _cmd_inspect(args, console)
        if args.command == "solve":
            return _cmd_solve(args, console)
        if args.command == "env":
            return _cmd_env(args, console)
        if args.command == "run":
            return _cmd_run(args, console)
    except SkyshareError as err:
        print(f"skyshare: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # the file system refused what the checks could not foresee
        where = f" {err.filename}" if err.filename else ""
        print(f"skyshare: error: cannot access{where}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"\nskyshare: interrupted; {INTERRUPTED[args.command == 'run']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:  # --memory-limit holds for this command (and its workers) only
        if previous_limit is None:
            os.environ.pop(MEMORY_LIMIT_ENV, None)
        else:
            os.environ[MEMORY_LIMIT_ENV] = previous_limit
    raise AssertionError(f"unhandled command {args.command}")  # argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
