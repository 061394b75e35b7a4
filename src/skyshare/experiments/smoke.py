"""A tiny job that checks an executor end to end (run directory, markers, workers' imports).

``run_jobs(smoke_jobs(), smoke_job, "runs/smoke", Execution("ray", "auto"))`` is a quick
way to check that a Ray cluster sees the installed skyshare before launching real experiments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skyshare.experiments.jobs import Job


def smoke_jobs(n_seeds: int = 2, values: tuple[int, ...] = (2, 3, 5)) -> list[Job]:
    """Jobs ``square`` for every (seed, x)."""
    return [Job("smoke", "square", seed, {"x": x}) for seed in range(n_seeds) for x in values]


def smoke_job(job: Job, folder: Path) -> dict[str, Any]:
    """Write a one-line series into the job's folder and return ``x^2 + seed`` (after
    ``params["sleep_s"]`` seconds, if given: a slow job for the executor tests)."""
    import time

    time.sleep(float(job.params.get("sleep_s", 0.0)))
    x = job.params["x"]
    (folder / "series.csv").write_text(f"slot,value\n0,{x * x}\n")
    return {"value": x * x + job.seed}
