"""Run the config fuzzer of :mod:`skyshare.fuzz` and report counts per target.

    python -m benchmarks.fuzz --cases 10000 [--seed 0] [--targets catn/wmmse multiband/sswf]
    python -m benchmarks.fuzz --replay '<a failure's JSON reproduction>'

Prints, per target, the cases run, ok, rejected cleanly (by the config model, or later with a
message: "at run"), failures and the mean seconds per case; then the distinct clean refusals
that came after a config was accepted, and every failure with its reproduction. Exits 1 if any
case failed. One torch thread (cases are small; the numbers do not depend on the machine).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from skyshare.fuzz import TARGETS, FuzzCase, run_case, run_fuzz


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=1000, help="cases to run (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    parser.add_argument("--targets", nargs="+", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--replay", metavar="JSON", help="run one case given as JSON")
    parser.add_argument("--max-failures", type=int, default=50, help="failures printed")
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=8.0,
        help="address-space limit of this process (a safety net under the fuzzer's size caps: "
        "an allocation the caps missed fails the case instead of exhausting the machine; "
        "0: none)",
    )
    return parser


def _limit_memory(gb: float) -> None:
    if gb <= 0:
        return
    try:
        import resource
    except ImportError:  # not on this platform: the size caps alone
        return
    limit = int(gb * 2**30)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _replay(text: str) -> int:
    outcome = run_case(FuzzCase.from_json(text))
    print(f"{outcome.case.target}: {outcome.status} ({outcome.seconds:.3f} s)")
    if outcome.message:
        print(outcome.message)
    return 1 if outcome.status == "failure" else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    _limit_memory(args.memory_limit_gb)
    if args.replay:
        return _replay(args.replay)
    start = time.perf_counter()
    step = max(args.cases // 20, 1)

    def progress(index: int, outcome) -> None:
        if (index + 1) % step == 0:
            print(
                f"  {index + 1}/{args.cases} cases, {time.perf_counter() - start:.0f} s",
                file=sys.stderr,
            )

    report = run_fuzz(args.cases, seed=args.seed, targets=args.targets, progress=progress)
    elapsed = time.perf_counter() - start
    print(f"fuzz: {report.n_cases} cases, seed {args.seed}, {elapsed:.1f} s")
    print(report.render(max_failures=args.max_failures))
    print(f"\n{len(report.failures)} failures")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
