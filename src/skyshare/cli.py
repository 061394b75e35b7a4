"""The ``skyshare`` command.

    skyshare scenarios                                   list the systems and their presets
    skyshare inspect SCENARIO [--preset NAME] [--config FILE] [--set key=value ...]
                              [--batch B] [--seed S] [--slot T] [--plot FILE] [--json FILE]

Bad input (unknown names, invalid values, unreadable files) prints one clear message naming the
field and the allowed range, without a traceback, and exits with status 2. Nothing is written
before the input has been validated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from skyshare import __version__
from skyshare.config import preset_names
from skyshare.errors import SkyshareError

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyshare",
        description="Interference management in integrated aerial/non-terrestrial + "
        "terrestrial networks.",
    )
    parser.add_argument("--version", action="version", version=f"skyshare {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("scenarios", help="list the scenarios and their presets")

    inspect = sub.add_parser(
        "inspect", help="build a scenario, print its link budget, optionally plot its topology"
    )
    inspect.add_argument("scenario", help="scenario name (see `skyshare scenarios`)")
    inspect.add_argument("--preset", default="paper", help="preset name (default: paper)")
    inspect.add_argument("--config", type=Path, help="YAML file applied on top of the preset")
    inspect.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set p_max_w=10 (repeatable)",
    )
    inspect.add_argument("--batch", type=int, default=16, help="realizations to average (16)")
    inspect.add_argument("--seed", type=int, help="random seed (default: the config's seed)")
    inspect.add_argument("--slot", type=int, default=0, help="advance to this slot first (0)")
    inspect.add_argument("--plot", type=Path, help="write the topology plot to this PNG file")
    inspect.add_argument("--json", type=Path, help="also write the link budget as JSON here")
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
    if path is None:
        return
    if path.suffix.lower() != suffix:
        raise SkyshareError(f"{flag} must name a {suffix} file, got {str(path)!r}")
    if path.exists() and path.is_dir():
        raise SkyshareError(f"{flag} {str(path)!r} is a directory")
    if not path.parent.exists():
        raise SkyshareError(f"{flag}: folder {str(path.parent)!r} does not exist")


def _cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    from skyshare.scenarios import get_scenario

    cls = get_scenario(args.scenario)
    if args.batch < 1 or args.batch > 65536:
        raise SkyshareError(f"--batch must be in [1, 65536], got {args.batch}")
    if args.seed is not None and args.seed < 0:
        raise SkyshareError(f"--seed must be >= 0, got {args.seed}")
    if args.slot < 0:
        raise SkyshareError(f"--slot must be >= 0, got {args.slot}")
    _check_output_path(args.plot, ".png", "--plot")
    _check_output_path(args.json, ".json", "--json")
    config = cls.config_from(args.preset, file=args.config, overrides=args.overrides)

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
        console.print(f"link budget written to {args.json}")
    if args.plot is not None:
        scenario.plot_topology(args.plot)
        console.print(f"topology plot written to {args.plot}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skyshare`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "scenarios":
            return _cmd_scenarios(console)
        if args.command == "inspect":
            return _cmd_inspect(args, console)
    except SkyshareError as err:
        print(f"skyshare: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    raise AssertionError(f"unhandled command {args.command}")  # argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
