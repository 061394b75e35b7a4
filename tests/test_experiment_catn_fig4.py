"""catn-fig4 end to end on a tiny preset: every scheme runs, the figure and summary exist,
and a rerun resumes without recomputing."""

import json

import pytest
import yaml

from skyshare.cli import main
from skyshare.experiments import catn_fig4
from skyshare.experiments.catn_schemes import read_series
from skyshare.experiments.jobs import Execution, job_folder

QUIET = Execution(progress=False)

TINY = {
    "n_slots": 12,
    "dfp_slots": 3,
    "seeds": [0],
    "hidden_sizes": [8, 8, 8],
    "scenario": {"n_tu": 14, "ura_rows": 2, "ura_cols": 2},
    "ppo_penalty": 10.0,
}


@pytest.fixture
def tiny(tmp_path):
    """The tiny network as a YAML file for ``skyshare run --config`` (on top of quick)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_every_scheme_runs_and_figure_is_written(tmp_path):
    summary = catn_fig4.EXPERIMENT.run(
        tmp_path, catn_fig4.Preset(**TINY), preset_name="tiny", execution=QUIET
    )
    results = summary["results"]
    assert {r["scheme"] for r in results.values()} == set(catn_fig4.FIG4_SCHEMES)
    for job in catn_fig4.jobs(catn_fig4.Preset(**TINY), "tiny"):
        result = results[job.job_id]
        assert result["scheme"] == job.scheme
        assert result["mean_sum_rate_last"] >= 0
        # DFP on dfp_slots equally spaced slots (every 12 // 3 = 4th), the others on all 12
        expected_slots = TINY["dfp_slots"] if result["scheme"] == "DCD-DFP" else 12
        assert result["slots"] == expected_slots
        # the summary follows from the job's series: means over the last sixth of the slots
        series = read_series(job_folder(tmp_path, job) / "series.csv")
        every = 4 if result["scheme"] == "DCD-DFP" else 1
        assert series["slot"] == [float(t) for t in range(0, 12, every)]
        tail = max(1, expected_slots // 6)
        last_rate = series["sum_rate"][-tail:]
        assert result["mean_sum_rate_last"] == pytest.approx(sum(last_rate) / tail, rel=1e-6)
        n_au = len(result["mean_rho_over_imax_last"])
        assert n_au >= 1
        assert sorted(k for k in series if k.startswith("au")) == [
            f"au{l_}_rho_over_imax" for l_ in range(n_au)
        ]
        rho = [series[f"au{l_}_rho_over_imax"][-tail:] for l_ in range(n_au)]
        for l_ in range(n_au):
            mean = result["mean_rho_over_imax_last"][l_]
            assert mean == pytest.approx(sum(rho[l_]) / tail, rel=1e-9)
            assert result["max_rho_over_imax_last"][l_] == pytest.approx(max(rho[l_]), rel=1e-9)
        violated = sum(any(r > 1.0 + 1e-3 for r in slot) for slot in zip(*rho, strict=True))
        assert result["violation_share_last"] == pytest.approx(violated / tail, rel=1e-9)
        times = series["decision_time_s"]
        assert result["mean_decision_time_s"] == pytest.approx(sum(times) / len(times), rel=1e-5)
        if result["scheme"].endswith(("WMMSE", "DFP")):  # the solvers keep (2c)
            assert max(result["mean_rho_over_imax_last"]) <= 1.0 + 1e-3
            assert result["violation_share_last"] == 0.0  # rounding at I_max is no violation
    assert (tmp_path / "fig4.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "summary.json").read_text())["preset"] == "tiny"
    resolved = yaml.safe_load((tmp_path / "preset.yaml").read_text())  # the resolved preset
    assert resolved["n_slots"] == 12 and resolved["scenario"]["n_tu"] == 14


def test_cli_run_resumes_and_rejects_bad_input(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    argv = ["run", "catn-fig4", "--config", str(tiny), "--out", str(out), "--schemes", "SC-WMMSE"]
    assert main(argv) == 0
    marker = next(out.glob("jobs/*/result.json"))
    stamp = marker.stat().st_mtime_ns
    assert main(argv) == 0  # resumed: the finished job is not recomputed
    assert marker.stat().st_mtime_ns == stamp
    printed = capsys.readouterr().out
    assert "SC-WMMSE" in printed
    # the table names the preset, and a line under it that --config changed it
    assert f"preset quick changed by --config {tiny}" in "".join(printed.split("\n"))
    assert main(["run", "catn-fig4", "--preset", "huge"]) == 2
    huge = ["--schemes", "D3QN-CUP", "--set", "hidden_sizes=[100000,100000,100000]"]
    assert main(["run", "catn-fig4", "--out", str(tmp_path / "huge"), *huge]) == 2
    err = capsys.readouterr().err
    assert "(BS agents, hidden_sizes [100000, 100000, 100000]) needs about" in err
    assert not (tmp_path / "huge").exists() and "Traceback" not in err
    assert main(["run", "catn-fig4", "--config", str(tiny), "--schemes", "MAGIC"]) == 2
    assert "unknown scheme(s) MAGIC" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error_and_keeps_finished_jobs(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    assert (
        main(
            ["run", "catn-fig4", "--config", str(tiny), "--out", str(out), "--schemes", "SC-WMMSE"]
        )
        == 0
    )
    finished = next(out.glob("jobs/*/result.json"))
    stamp = finished.stat().st_mtime_ns
    preset = catn_fig4.EXPERIMENT.load_preset("quick", file=tiny)
    job = catn_fig4.jobs(preset, "quick", ["D3QN-CUP"])[0]
    folder = out / "jobs" / job.job_id
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")  # e.g. a truncated copy
    started = {"experiment": job.experiment, "scheme": job.scheme, "seed": job.seed}
    started |= {"params": job.params, "threads": 1, "device": "cpu"}  # as the runner writes it
    (folder / "job.json").write_text(json.dumps(started))
    argv = ["run", "catn-fig4", "--config", str(tiny), "--out", str(out)]
    argv += ["--schemes", "SC-WMMSE", "D3QN-CUP"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "unreadable" in err and "delete it" in err
    assert finished.stat().st_mtime_ns == stamp  # the finished job is neither rerun nor lost
    assert not (folder / "result.json").exists()


def test_cli_seeds_runs_every_job_once_per_seed_and_reuses_the_presets_job(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    base = ["run", "catn-fig4", "--config", str(tiny), "--out", str(out), "--schemes", "SC-WMMSE"]
    assert main(base) == 0  # the preset's seed 0
    marker = next(out.glob("jobs/*/result.json"))
    stamp = marker.stat().st_mtime_ns
    assert main([*base, "--seeds", "0", "2"]) == 0
    assert marker.stat().st_mtime_ns == stamp  # seed 0 is the preset's job, not recomputed
    summary = json.loads((out / "summary.json").read_text())
    results = list(summary["results"].values())
    assert len(results) == 2 and {r["scheme"] for r in results} == {"SC-WMMSE"}
    assert results[0]["mean_sum_rate_last"] != results[1]["mean_sum_rate_last"]  # other channels
    for bad in (["--seeds", "1", "1"], ["--seeds", "-1"]):
        assert main([*base, *bad]) == 2
        assert len(list((out / "jobs").iterdir())) == 2  # nothing written for a bad list
    assert "seeds must be distinct integers in [0, 9223372036854775807]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: not an integer
        main([*base, "--seeds", "x"])
    assert exit_info.value.code == 2


def test_cli_run_config_and_set_are_validated_before_anything_is_written(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    base = ["run", "catn-fig4", "--config", str(tiny), "--out", str(out), "--schemes", "SC-WMMSE"]
    for bad, message in (
        (["--set", "n_slots=-3"], "n_slots = -3: must be >= 1"),
        (["--set", "hidden_sizes=[]"], "hidden_sizes"),
        (["--set", "colour=blue"], "colour: unknown key"),
        (["--set", "seeds=[-1]"], "seeds.0 = -1: must be >= 0"),
    ):
        assert main([*base, *bad]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()  # nothing written for bad input
    missing = tmp_path / "missing.yaml"
    assert main(["run", "catn-fig4", "--config", str(missing), "--out", str(out)]) == 2
    assert "cannot read config file" in capsys.readouterr().err and not out.exists()
    # --set reaches into the nested scenario overrides; the resolved preset is recorded
    assert main([*base, "--set", "n_slots=7", "--set", "scenario.n_tu=12"]) == 0
    resolved = yaml.safe_load((out / "preset.yaml").read_text())
    assert resolved["n_slots"] == 7 and resolved["scenario"]["n_tu"] == 12
    config = json.loads(next(out.glob("jobs/*/config.json")).read_text())
    assert config["scenario"]["n_tu"] == 12 and config["n_slots"] == 7
    assert config["scheme_options"]["warm_start"] is False  # recorded: the preset's default


def test_cup_step_2_rule_is_a_preset_option_outside_the_default_job_id(tmp_path, tiny, capsys):
    base = ["run", "catn-fig4", "--config", str(tiny), "--schemes", "SC-CUP", "--set", "n_slots=3"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    default = next((tmp_path / "a").glob("jobs/*/config.json"))
    literal = ["--set", "skip_unconstrained_projection=false", "--out", str(tmp_path / "b")]
    assert main([*base, *literal]) == 0
    other = next((tmp_path / "b").glob("jobs/*/config.json"))
    assert json.loads(default.read_text())["bs_agents"]["skip_unconstrained_projection"] is True
    assert json.loads(other.read_text())["bs_agents"]["skip_unconstrained_projection"] is False
    assert default.parent.name != other.parent.name  # another job
    # unset, the option is not in the job's parameters (jobs of earlier runs keep their ids)
    assert (
        "skip_unconstrained_projection"
        not in json.loads((default.parent / "job.json").read_text())["params"]
    )
    bad = ["--set", "skip_unconstrained_projection=maybe", "--out", str(tmp_path / "c")]
    assert main([*base, *bad]) == 2
    assert "skip_unconstrained_projection" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_sigkill_mid_job_then_rerun_recomputes_nothing_and_loses_nothing(tmp_path, tiny):
    """A job killed with SIGKILL after a checkpoint resumes from it on the rerun and ends with
    exactly the series of an uninterrupted run (decision times aside); the finished job of the
    same run directory is not recomputed."""
    import csv
    import os
    import signal
    import subprocess
    import sys
    import time

    base = ["run", "catn-fig4", "--config", str(tiny), "--set", "n_slots=160"]
    base += ["--set", "checkpoint_every=4", "--set", "hidden_sizes=[8, 8, 8]"]
    reference, out = tmp_path / "reference", tmp_path / "killed"
    assert main([*base, "--out", str(reference), "--schemes", "D3QN-CUP"]) == 0
    assert main([*base, "--out", str(out), "--schemes", "SC-WMMSE"]) == 0
    finished = next(out.glob("jobs/*/result.json"))
    stamp = finished.stat().st_mtime_ns
    command = [sys.executable, "-m", "skyshare", *base, "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--schemes", "D3QN-CUP"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    job_dir = next(reference.glob("jobs/*")).name
    checkpoint = out / "jobs" / job_dir / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the job never wrote a checkpoint before the kill"
    assert not (out / "jobs" / job_dir / "result.json").exists(), "killed after it finished"
    assert main([*base, "--out", str(out), "--schemes", "D3QN-CUP", "SC-WMMSE"]) == 0
    assert finished.stat().st_mtime_ns == stamp  # the finished job was not recomputed

    def series(run_dir):
        with open(run_dir / "jobs" / job_dir / "series.csv") as handle:
            rows = list(csv.DictReader(handle))
        return [{k: v for k, v in row.items() if k != "decision_time_s"} for row in rows]

    assert series(out) == series(reference) and len(series(out)) == 160


def test_same_job_gives_bit_identical_series_in_process_in_workers_and_on_ray(tmp_path):
    """Issue 12 item 2: with the default execution settings (one torch thread per job, the
    CPU) a learned and a solver scheme give the same series, to the bit, in this process, in
    two worker processes and as Ray tasks."""
    import csv

    import ray  # noqa: F401  (part of the test install)

    preset = catn_fig4.Preset(**{**TINY, "n_slots": 24})
    schemes = ["SC-CUP", "SC-WMMSE"]
    executions = {
        "local": QUIET,
        "workers": Execution(workers=2, progress=False),
        "ray": Execution(executor="ray", progress=False),
    }
    series = {}
    for name, execution in executions.items():
        summary = catn_fig4.EXPERIMENT.run(
            tmp_path / name, preset, schemes=schemes, execution=execution
        )
        for job_id in summary["results"]:
            with open(tmp_path / name / "jobs" / job_id / "series.csv") as handle:
                rows = list(csv.DictReader(handle))
            rows = [{k: v for k, v in row.items() if k != "decision_time_s"} for row in rows]
            series[name, job_id] = rows
            config = json.loads((tmp_path / name / "jobs" / job_id / "config.json").read_text())
            assert config["execution"] == {"device": "cpu", "threads": 1}
    for (name, job_id), rows in series.items():
        assert len(rows) == 24 and rows == series["local", job_id], (name, job_id)


def test_paths_and_overrides_with_brackets_print_verbatim(tmp_path, tiny, capsys):
    """The lines after the table print user text as is (no rich markup): a --config under a
    folder named like a markup tag and a list override."""
    odd = tmp_path / "[old]" / "[bold]tiny.yaml"
    odd.parent.mkdir()
    odd.write_text(tiny.read_text())
    out = tmp_path / "[red]run"
    argv = ["run", "catn-fig4", "--config", str(odd), "--out", str(out), "--schemes", "SC-WMMSE"]
    assert main([*argv, "--set", "hidden_sizes=[8,8,8]"]) == 0
    printed = "".join(capsys.readouterr().out.split("\n"))
    assert f"changed by --set hidden_sizes=[8,8,8], --config {odd}" in printed
    assert f"in {out}" in printed
