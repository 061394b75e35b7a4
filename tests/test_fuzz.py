"""The config fuzzer (skyshare.fuzz): a bounded run has no failure, and planted defects are
caught with a reproduction that replays them."""

from __future__ import annotations

import dataclasses
import importlib
import json

import pytest
import torch
from benchmarks import fuzz as fuzz_command

from skyshare import fuzz
from skyshare.fuzz import TARGETS, FuzzCase, generate_case, run_case, run_fuzz
from skyshare.fuzz.configs import field_range

NO_LIMIT = ("--memory-limit-gb", "0")  # no rlimit on the pytest process
BOUNDED_CASES = 540  # 30 per target; ~20 s on a loaded 2-core CPU


def test_bounded_run_has_no_failure():
    report = run_fuzz(BOUNDED_CASES, seed=12)
    assert not report.failures, report.render()
    assert report.n_cases == BOUNDED_CASES
    assert sorted(report.counts) == sorted(TARGETS)
    for name, counts in report.counts.items():  # every target runs most of its cases
        assert counts["ok"] >= 0.4 * (counts["ok"] + counts["rejected"]), name


def test_cases_are_reproducible_and_within_the_size_caps():
    for index in range(60):
        case = generate_case(index, seed=5)
        assert case == generate_case(index, seed=5)
        assert FuzzCase.from_json(case.reproduction()) == case
        assert case.batch_size <= fuzz.MAX_BATCH and case.dtype in fuzz.DTYPES
        family = fuzz.FAMILIES[TARGETS[case.target].family]
        for name, cap in family.caps.items():
            assert case.config.get(name, 0) is None or case.config.get(name, 0) <= cap
        try:
            config = family.config_model().from_dict(case.config)
        except fuzz.SkyshareError:
            continue
        assert family.elements(config, case.batch_size) <= fuzz.MAX_ELEMENTS
    assert generate_case(0, seed=5) != generate_case(0, seed=6)


def test_a_config_the_model_refuses_is_a_clean_rejection():
    case = FuzzCase("catn", {"n_bs": 2}, {}, 1, "float32", 0)  # not whole hexagonal rings
    outcome = run_case(case)
    assert (outcome.status, outcome.stage) == ("rejected", "config")
    assert "n_bs" in outcome.message


def _planted(target: str, monkeypatch, module: str, name: str, broken) -> list:
    """The failures of 8 cases of ``target`` with ``module.name`` replaced by ``broken``."""
    monkeypatch.setattr(importlib.import_module(module), name, broken)
    return run_fuzz(8, seed=1, targets=[target]).failures


def test_planted_budget_violation_is_caught_with_a_replayable_reproduction(monkeypatch):
    waterfilling = importlib.import_module("skyshare.solvers.waterfilling")
    honest = waterfilling.sswf

    def overspending(problem):
        result = honest(problem)
        return dataclasses.replace(result, power=result.power * 1.01)

    failures = _planted(
        "multiband/sswf", monkeypatch, "skyshare.solvers.waterfilling", "sswf", overspending
    )
    assert failures
    for outcome in failures:
        assert "BS power" in outcome.message and "exceeds its limit" in outcome.message
        replay = json.loads(outcome.case.reproduction())
        assert replay["target"] == "multiband/sswf"
        assert set(replay) == {"target", "config", "options", "batch_size", "dtype", "seed"}
        assert run_case(FuzzCase.from_json(outcome.case.reproduction())).status == "failure"
    monkeypatch.setattr(waterfilling, "sswf", honest)
    assert run_case(failures[0].case).status == "ok"


def test_planted_nan_and_crash_are_caught(monkeypatch):
    honest = importlib.import_module("skyshare.solvers.wmmse").wmmse

    def nan_beams(problem, **kwargs):
        result = honest(problem, **kwargs)
        return dataclasses.replace(result, w=result.w * float("nan"))

    failures = _planted("catn/wmmse", monkeypatch, "skyshare.solvers.wmmse", "wmmse", nan_beams)
    assert failures and all("NaN/Inf" in outcome.message for outcome in failures)

    def crash(problem, **kwargs):
        raise IndexError("planted")

    failures = _planted("catn/wmmse", monkeypatch, "skyshare.solvers.wmmse", "wmmse", crash)
    assert failures and all("IndexError" in outcome.message for outcome in failures)


def test_command_reports_counts_and_exits_nonzero_on_failure(monkeypatch, capsys):
    assert fuzz_command.main(["--cases", str(len(TARGETS)), "--seed", "3", *NO_LIMIT]) == 0
    out = capsys.readouterr().out
    assert "multiband/sswf" in out and "0 failures" in out

    def crash(problem):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(importlib.import_module("skyshare.solvers.waterfilling"), "sswf", crash)
    assert fuzz_command.main(["--cases", "4", "--targets", "multiband/sswf", *NO_LIMIT]) == 1
    out = capsys.readouterr().out
    assert "ZeroDivisionError" in out and "--replay '" in out
    replay = out.split("--replay '")[1].split("'\n")[0]
    assert fuzz_command.main(["--replay", replay, *NO_LIMIT]) == 1


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_runs_its_smallest_sizes(name):
    """Every size at its minimum (one antenna, one user, no AU or MBS, one block...), float32:
    ok or a clean refusal, never a failure."""
    family = fuzz.FAMILIES[TARGETS[name].family]
    fields = family.config_model().model_fields
    smallest = {}
    for field_name in family.caps:
        bounds = field_range(fields[field_name].metadata)
        smallest[field_name] = int(bounds.lo) + int(bounds.lo_open)
    outcome = run_case(FuzzCase(name, smallest, {}, 1, "float32", 0))
    assert outcome.status in ("ok", "rejected"), outcome.message
    assert torch.get_num_threads() == 1  # the conftest setting is left alone
