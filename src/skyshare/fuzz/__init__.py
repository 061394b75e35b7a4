"""A seeded config fuzzer over every scenario, solver and environment.

A case is ``(target, config, options, batch size, dtype, seed)``: the config is drawn from the
declared ranges of the target's config model (pydantic ``ge``/``gt``/``le``/``lt``), with edge
values drawn often (minimum sizes, one antenna, co-located nodes, extreme distances, tiny and
huge powers, ``inf`` where a field allows it). Every case must end in one of

* ``ok``: finite outputs that meet their constraints (per-BS power budgets, interference
  limits where a solver claims feasibility, probabilities in [0, 1], rates >= 0), or
* ``rejected``: a clean :class:`~skyshare.errors.SkyshareError` (the config model refused the
  config, or a later step refused it with a message),

and anything else is a ``failure`` (NaN/Inf, another exception, a violated constraint, or an
environment refusing what a solver or its own action mapping produced), reported with the
case as JSON: ``python -m benchmarks.fuzz --replay '<json>'`` runs it again. Sizes are capped
(:data:`MAX_ELEMENTS` tensor elements, the fuzzer's caps on size fields) so that a case runs
in well under a second and never allocates large tensors. Usage::

    report = run_fuzz(200, seed=0)
    assert not report.failures, report.render()

The modules: :mod:`~skyshare.fuzz.cases` (a case, its outcome, the checks),
:mod:`~skyshare.fuzz.configs` (drawing from declared field ranges),
:mod:`~skyshare.fuzz.families` (each scenario's caps, repairs and size estimate),
:mod:`~skyshare.fuzz.runs` (what each target runs), :mod:`~skyshare.fuzz.targets` (the
registry) and :mod:`~skyshare.fuzz.core` (generating and running cases, the report).
"""

from skyshare.errors import SkyshareError as SkyshareError  # as before: fuzz.SkyshareError
from skyshare.fuzz.cases import DTYPES, FuzzCase, Outcome, Run
from skyshare.fuzz.configs import DRAW, EDGE, draw_config
from skyshare.fuzz.core import (
    MAX_BATCH,
    MAX_ELEMENTS,
    FuzzReport,
    generate_case,
    run_case,
    run_fuzz,
)
from skyshare.fuzz.families import FAMILIES, Family
from skyshare.fuzz.runs import FEASIBILITY_TOL, STEPS
from skyshare.fuzz.targets import TARGETS, Target

__all__ = [
    "DRAW",
    "DTYPES",
    "EDGE",
    "FAMILIES",
    "FEASIBILITY_TOL",
    "MAX_BATCH",
    "MAX_ELEMENTS",
    "STEPS",
    "TARGETS",
    "Family",
    "FuzzCase",
    "FuzzReport",
    "Outcome",
    "Run",
    "Target",
    "draw_config",
    "generate_case",
    "run_case",
    "run_fuzz",
]
