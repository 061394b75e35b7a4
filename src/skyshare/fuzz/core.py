"""Generating and running fuzz cases, and the report of a run.

Case ``i`` of seed ``S`` is drawn alone from a generator seeded by ``(S, i)`` (targets in
turn), redrawn while its estimated tensors exceed :data:`MAX_ELEMENTS`; running it gives an
:class:`~skyshare.fuzz.cases.Outcome` ("ok", "rejected" or "failure"), and a
:class:`FuzzReport` counts the outcomes per target.
"""

from __future__ import annotations

import random
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from skyshare.errors import SkyshareError
from skyshare.fuzz.cases import DTYPES, Checks, FuzzCase, Outcome, Refused
from skyshare.fuzz.configs import draw_config
from skyshare.fuzz.families import FAMILIES
from skyshare.fuzz.targets import TARGETS

MAX_ELEMENTS = 3_000_000  # cap on the estimated elements of a case's dominant tensors
MAX_BATCH = 4


def generate_case(index: int, seed: int = 0, targets: list[str] | None = None) -> FuzzCase:
    """Case ``index`` of the run seeded ``seed`` (targets in turn; reproducible one by one).

    A config the model accepts but whose estimated tensors exceed :data:`MAX_ELEMENTS` is
    drawn again (up to 100 times, then the smallest sizes are used).
    """
    names = targets or list(TARGETS)
    name = names[index % len(names)]
    target = TARGETS[name]
    family = FAMILIES[target.family]
    model = family.config_model()
    for attempt in range(100):
        rng = random.Random(f"{seed}:{index}:{attempt}")
        data = draw_config(rng, model, family.caps)
        family.repair(rng, data)
        batch = rng.choice([1, 1, 2, 3, MAX_BATCH])
        case = FuzzCase(
            name, data, target.options(rng), batch, rng.choice(list(DTYPES)), rng.randrange(2**31)
        )
        try:
            config = model.from_dict(data)
        except SkyshareError:
            return case
        if family.elements(config, batch) <= MAX_ELEMENTS:
            return case
    return FuzzCase(name, {k: 1 for k in family.caps}, {}, 1, "float64", 0)


def _describe_exception(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" at {frames[-1].filename.rsplit('/src/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    )
    return f"{type(exc).__name__}{where}: {exc}"


def run_case(case: FuzzCase) -> Outcome:
    """Run one case: "rejected" if the config (or a later step) is refused cleanly, "ok" if
    every check holds, "failure" (with what went wrong) otherwise."""
    start = time.perf_counter()
    target = TARGETS[case.target]
    try:
        config = FAMILIES[target.family].config_model().from_dict(case.config)
    except SkyshareError as exc:
        return Outcome(case, "rejected", "config", str(exc), time.perf_counter() - start)
    checks = Checks()
    status, message = "ok", ""
    try:
        with torch.no_grad():
            target.run(case, config, checks)
    except Refused as exc:
        status, message = "failure", str(exc)
    except SkyshareError as exc:
        status, message = "rejected", str(exc)
    except Exception as exc:  # the point of a fuzzer: any other exception is a failure
        status, message = "failure", _describe_exception(exc)
    if checks.problems:  # violations found before a refusal or an error count too
        status, message = "failure", "; ".join([*checks.problems[:5], message][:6]).strip("; ")
    return Outcome(case, status, "run", message, time.perf_counter() - start)


_NUMBER = re.compile(r"-?\d+(\.\d*)?(e[-+]?\d+)?")  # numbers in messages, for grouping


@dataclass
class FuzzReport:
    """Counts per target and status, the failures, and the distinct run-time refusals."""

    counts: dict[str, Counter] = field(default_factory=dict)
    seconds: Counter = field(default_factory=Counter)
    failures: list[Outcome] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)
    refusal_examples: dict[str, FuzzCase] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        name = outcome.case.target
        self.counts.setdefault(name, Counter())[outcome.status] += 1
        self.seconds[name] += outcome.seconds
        if outcome.status == "failure":
            self.failures.append(outcome)
        elif outcome.status == "rejected" and outcome.stage == "run":
            self.counts[name]["rejected at run time"] += 1
            key = f"{name}: {_NUMBER.sub('#', outcome.message.splitlines()[0])[:150]}"
            self.refusals[key] += 1
            self.refusal_examples.setdefault(key, outcome.case)

    @property
    def n_cases(self) -> int:
        return sum(c["ok"] + c["rejected"] + c["failure"] for c in self.counts.values())

    def render(self, *, max_failures: int = 20) -> str:
        """A table of counts, then each failure's message and reproduction."""
        lines = [f"{'target':<18} {'cases':>6} {'ok':>6} {'rejected':>9} {'(at run)':>9} "
                 f"{'failures':>9} {'s/case':>7}"]  # fmt: skip
        for name in sorted(self.counts):
            c = self.counts[name]
            n = c["ok"] + c["rejected"] + c["failure"]
            lines.append(
                f"{name:<18} {n:>6} {c['ok']:>6} {c['rejected']:>9} "
                f"{c['rejected at run time']:>9} {c['failure']:>9} {self.seconds[name] / n:>7.3f}"
            )
        if self.refusals:
            lines.append("\nclean refusals after the config was accepted (count: first line):")
            lines += [f"  {n}: {m}" for m, n in self.refusals.most_common(15)]
        for outcome in self.failures[:max_failures]:
            lines.append(f"\nFAILURE {outcome.case.target}: {outcome.message}")
            lines.append(
                f"  reproduce: python -m benchmarks.fuzz --replay '{outcome.case.reproduction()}'"
            )
        if len(self.failures) > max_failures:
            lines.append(f"\n... and {len(self.failures) - max_failures} more failures")
        return "\n".join(lines)


def run_fuzz(
    n_cases: int,
    *,
    seed: int = 0,
    targets: list[str] | None = None,
    progress: Callable[[int, Outcome], None] | None = None,
) -> FuzzReport:
    """Generate and run ``n_cases`` cases (targets in turn); :class:`FuzzReport`."""
    unknown = sorted(set(targets or []) - set(TARGETS))
    if unknown:
        from skyshare.errors import UnknownNameError

        raise UnknownNameError(f"unknown fuzz targets {unknown}; available: {', '.join(TARGETS)}")
    report = FuzzReport()
    for index in range(n_cases):
        outcome = run_case(generate_case(index, seed, targets))
        report.add(outcome)
        if progress is not None:
            progress(index, outcome)
    return report
