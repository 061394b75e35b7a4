"""Experiments as lists of independent jobs, run in-process or on Ray, never recomputed.

An experiment is a list of :class:`Job` (scheme x seed x parameter). Each job writes its own
folder ``<run_dir>/jobs/<job_id>/`` and, when it has finished, a ``result.json`` marker; a job
whose marker exists is never run again, so an interrupted experiment resumes where it stopped
and no finished job is lost. Two executors run the same jobs:

* ``local`` (default): in this process, one job after the other, no setup;
* ``ray``: one Ray task per job on a local Ray instance or an existing cluster (``address``),
  with ``max_retries`` for failed tasks; results are gathered into the same run directory.
  Ray is an optional extra (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from skyshare.errors import SkyshareError

__all__ = ["Experiment", "Job", "JobFailed", "job_folder", "load_result", "run_jobs"]

RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Job:
    """One independent unit of work.

    Attributes:
        experiment: experiment id, e.g. ``"catn-fig4"``.
        scheme: scheme name, e.g. ``"D3QN-CUP"``.
        seed: random seed of the job.
        params: JSON-serialisable parameters (e.g. ``{"zeta": 10}``) and the resolved config.
    """

    experiment: str
    scheme: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        """Stable, readable id: scheme, seed and a hash of the parameters."""
        digest = hashlib.sha1(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:8]
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.scheme)
        return f"{safe}-s{self.seed}-{digest}"


@dataclass(frozen=True)
class Experiment:
    """A runnable experiment id of ``skyshare run`` (see :mod:`skyshare.experiments.registry`).

    Attributes:
        name: experiment id, e.g. ``"catn-fig4"``.
        description: one line for ``skyshare run --help``.
        presets: ``{preset name: parameters}`` (``paper`` and ``quick`` at least).
        schemes: the scheme names a run may be restricted to.
        run: ``run(run_dir, preset, *, executor, address, schemes, progress) -> summary``: runs
            the unfinished jobs, writes figures and ``summary.json``, returns the summary dict.
        table: ``table(summary) -> (title, columns, rows)``: the summary table the CLI prints.
    """

    name: str
    description: str
    presets: dict[str, dict[str, Any]]
    schemes: tuple[str, ...]
    run: Callable[..., dict[str, Any]]
    table: Callable[[dict[str, Any]], tuple[str, list[str], list[list[str]]]]


class JobFailed(SkyshareError):
    """A job raised; the message carries its id and the remote traceback."""


def job_folder(run_dir: str | Path, job: Job) -> Path:
    """The folder of ``job`` inside ``run_dir``."""
    return Path(run_dir) / "jobs" / job.job_id


def load_result(run_dir: str | Path, job: Job) -> dict[str, Any] | None:
    """The stored result of a finished job, or None."""
    path = job_folder(run_dir, job) / RESULT_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a crash never leaves a half-written marker


def _run_one(fn: Callable[[Job, Path], dict[str, Any]], job: Job, run_dir: str) -> dict[str, Any]:
    """Run ``fn(job, folder)`` and store its JSON result as the job's completion marker."""
    folder = job_folder(run_dir, job)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "job.json", json.dumps(asdict(job), indent=2))
    start = time.perf_counter()
    result = dict(fn(job, folder))
    result.setdefault("wall_time_s", time.perf_counter() - start)
    _write_atomic(folder / RESULT_FILE, json.dumps(result, indent=2, default=float))
    return result


def run_jobs(
    jobs: Sequence[Job],
    fn: Callable[[Job, Path], dict[str, Any]],
    run_dir: str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    max_retries: int = 2,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run every unfinished job; return ``{job_id: result}`` for all jobs.

    Args:
        jobs: the experiment's jobs (ids must be unique).
        fn: ``fn(job, folder) -> dict`` does the work, writing checkpoints and series into
            ``folder`` (and resuming from them when it finds them); must be importable by
            workers (a module-level function) for the Ray executor.
        run_dir: the experiment's run directory.
        executor: ``"local"`` or ``"ray"``.
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a local
            Ray instance.
        max_retries: retries of a failed job (Ray: task retries; local: immediate re-runs).
    """
    ids = [job.job_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise SkyshareError("job ids must be unique (same scheme, seed and parameters twice?)")
    if executor not in ("local", "ray"):
        raise SkyshareError(f"unknown executor {executor!r}; available: local, ray")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for job in jobs:
        stored = load_result(run_dir, job)
        if stored is not None:
            results[job.job_id] = stored
        else:
            pending.append(job)
    if not pending:
        return results
    if executor == "local":
        from tqdm.auto import tqdm

        for job in tqdm(pending, desc="jobs", disable=not progress):
            for attempt in range(max_retries + 1):
                try:
                    results[job.job_id] = _run_one(fn, job, str(run_dir))
                    break
                except (KeyboardInterrupt, SkyshareError):
                    raise  # bad input or a corrupt checkpoint: retrying cannot help
                except Exception as exc:  # retried, then reported with the job id
                    if attempt == max_retries:
                        raise JobFailed(
                            f"job {job.job_id} failed after {max_retries + 1} attempts: {exc}\n"
                            f"{traceback.format_exc()}"
                        ) from exc
        return results
    return {**results, **_run_ray(pending, fn, run_dir, address, max_retries, progress)}


def _run_ray(jobs, fn, run_dir, address, max_retries, progress) -> dict[str, dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise SkyshareError(
            "the ray executor needs Ray: pip install -c constraints.txt -e '.[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True
        )
    try:
        remote = ray.remote(max_retries=max_retries, retry_exceptions=True)(_run_one)
        refs = {remote.remote(fn, job, str(run_dir)): job for job in jobs}
        results: dict[str, dict[str, Any]] = {}
        remaining = list(refs)
        from tqdm.auto import tqdm

        with tqdm(total=len(remaining), desc="ray jobs", disable=not progress) as bar:
            while remaining:
                done, remaining = ray.wait(remaining, num_returns=1)
                job = refs[done[0]]
                try:
                    results[job.job_id] = ray.get(done[0])
                except Exception as exc:
                    raise JobFailed(f"job {job.job_id} failed on Ray: {exc}") from exc
                bar.update(1)
        return results
    finally:
        if started_here:
            ray.shutdown()
