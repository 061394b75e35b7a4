"""Jobs run once, resume after interruption, retry failures, and keep ids stable."""

import json

import pytest

from skyshare.experiments import Job, JobFailed, load_result, run_jobs

CALLS: list[str] = []


def square(job, folder):
    CALLS.append(job.job_id)
    (folder / "series.csv").write_text("slot,value\n0,1\n")
    return {"value": job.params["x"] ** 2, "seed": job.seed}


def test_jobs_run_once_and_resume(tmp_path):
    CALLS.clear()
    jobs = [Job("toy", "square", seed, {"x": x}) for seed in (0, 1) for x in (2, 3)]
    results = run_jobs(jobs, square, tmp_path, progress=False)
    assert sorted(r["value"] for r in results.values()) == [4, 4, 9, 9]
    assert len(CALLS) == 4
    # a rerun recomputes nothing; a deleted marker (an interrupted job) is recomputed alone
    marker = tmp_path / "jobs" / jobs[1].job_id / "result.json"
    marker.unlink()
    again = run_jobs(jobs, square, tmp_path, progress=False)
    assert CALLS == [j.job_id for j in jobs] + [jobs[1].job_id]
    assert {k: v["value"] for k, v in again.items()} == {k: v["value"] for k, v in results.items()}
    assert json.loads((tmp_path / "jobs" / jobs[0].job_id / "job.json").read_text())["seed"] == 0
    assert load_result(tmp_path, jobs[2])["value"] == 4


def test_job_ids_are_stable_and_distinct():
    a = Job("e", "D3QN-PPO(zeta=10)", 0, {"zeta": 10})
    assert a.job_id == Job("e", "D3QN-PPO(zeta=10)", 0, {"zeta": 10}).job_id
    assert a.job_id != Job("e", "D3QN-PPO(zeta=10)", 0, {"zeta": 20}).job_id
    assert "(" not in a.job_id and "=" not in a.job_id


FLAKY = {"left": 1}


def flaky(job, folder):
    if FLAKY["left"] > 0:
        FLAKY["left"] -= 1
        raise RuntimeError("transient")
    return {"ok": True}


def broken(job, folder):
    raise ValueError("always")


def test_failed_jobs_are_retried_then_reported(tmp_path):
    FLAKY["left"] = 1
    assert run_jobs([Job("t", "flaky", 0)], flaky, tmp_path, max_retries=1, progress=False)
    with pytest.raises(JobFailed, match="failed after 2 attempts: always"):
        run_jobs([Job("t", "broken", 0)], broken, tmp_path, max_retries=1, progress=False)
    assert load_result(tmp_path, Job("t", "broken", 0)) is None


def test_duplicate_jobs_and_unknown_executor_rejected(tmp_path):
    job = Job("t", "s", 0)
    with pytest.raises(Exception, match="unique"):
        run_jobs([job, job], square, tmp_path)
    with pytest.raises(Exception, match="unknown executor"):
        run_jobs([job], square, tmp_path, executor="slurm")


def test_ray_executor_gives_the_same_results_as_in_process(tmp_path):
    """A tiny experiment on a local Ray instance equals the in-process run (issue 5)."""
    pytest.importorskip("ray")
    from skyshare.experiments.smoke import smoke_job, smoke_jobs

    jobs = smoke_jobs()
    local = run_jobs(jobs, smoke_job, tmp_path / "local", progress=False)
    remote = run_jobs(jobs, smoke_job, tmp_path / "ray", executor="ray", progress=False)
    assert {k: v["value"] for k, v in remote.items()} == {k: v["value"] for k, v in local.items()}
    assert sorted(v["value"] for v in local.values()) == [4, 5, 9, 10, 25, 26]
    for job in jobs:  # the Ray workers wrote into the same run-directory layout
        assert (tmp_path / "ray" / "jobs" / job.job_id / "series.csv").exists()
