"""Run the benchmarks and write BENCHMARKS.md.

    python -m benchmarks.run                      # all benchmark modules
    python -m benchmarks.run --only channels      # one section; the others are kept as they are

Each module ``benchmarks/bench_<key>.py`` exposes ``run() -> Section``. Sections live in
BENCHMARKS.md between ``<!-- section:<key> -->`` markers so that re-running one keeps the rest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import pkgutil
import re
from pathlib import Path

import torch

import benchmarks
from benchmarks.common import SectionSkipped, machine_description

HEADER = """# Benchmarks

Measured by `make bench` (`python -m benchmarks.run`), never by timed tests. Each section says
what it measures and the command that produced it; re-run a single section with
`python -m benchmarks.run --only KEY`.
"""


def _modules() -> dict[str, str]:
    names = [m.name for m in pkgutil.iter_modules(benchmarks.__path__)]
    return {n.removeprefix("bench_"): f"benchmarks.{n}" for n in names if n.startswith("bench_")}


def _split_sections(text: str) -> dict[str, str]:
    pattern = re.compile(r"<!-- section:(\w+) -->\n(.*?)<!-- end:\1 -->", re.S)
    return {key: body for key, body in pattern.findall(text)}


def _write(path: Path, sections: dict[str, str]) -> None:
    body = "\n".join(
        f"<!-- section:{k} -->\n{sections[k]}<!-- end:{k} -->\n" for k in sorted(sections)
    )
    path.write_text(f"{HEADER}\nMachine of the latest run: {machine_description()}.\n\n{body}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--only", nargs="*", help="section keys to (re)run")
    args = parser.parse_args(argv)
    modules = _modules()
    keys = args.only or sorted(modules)
    unknown = [k for k in keys if k not in modules]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {sorted(modules)}")

    sections = _split_sections(args.output.read_text()) if args.output.exists() else {}
    measured = 0
    for key in keys:
        print(f"running benchmarks.bench_{key} ...", flush=True)
        torch.manual_seed(0)
        grad_mode, threads = torch.is_grad_enabled(), torch.get_num_threads()
        try:
            section = importlib.import_module(modules[key]).run()
        except SectionSkipped as reason:
            print(f"skipped {key}: {reason} (its previous figures are kept)", flush=True)
            continue
        finally:  # a module's global settings never leak into the next one
            torch.set_grad_enabled(grad_mode)
            torch.set_num_threads(threads)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        sections[key] = (
            f"{section.markdown()}\n\n"
            f"_Measured {stamp} with `python -m benchmarks.run --only {key}` on: "
            f"{machine_description()}._\n"
        )
        print(section.markdown(), flush=True)
        _write(args.output, sections)  # after every section: a later failure loses nothing
        measured += 1
    print(f"wrote {args.output}" if measured else f"nothing measured; {args.output} unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
