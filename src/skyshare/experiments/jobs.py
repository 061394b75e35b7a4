"""Experiments as lists of independent jobs, run in-process or on Ray, never recomputed.

An experiment is a list of :class:`Job` (scheme x seed x parameter). Each job writes its own
folder ``<run_dir>/jobs/<job_id>/`` and, when it has finished, a ``result.json`` marker; a job
whose marker exists is never run again, so an interrupted experiment resumes where it stopped
and no finished job is lost. How the jobs run is an :class:`Execution`:

* ``local`` (default): on this machine, no setup; one job after the other in this process, or
  ``workers`` jobs at a time in worker processes (``spawn``);
* ``ray``: one Ray task per job on a local Ray instance or an existing cluster (``address``),
  with ``max_retries`` for failed tasks; results are gathered into the same run directory.
  Ray is an optional extra (``pip install -e ".[ray]"``).

``device`` (``cpu``, ``cuda``, ``cuda:1``) says where a job's tensors live. It is not part of the
job's identity: a job interrupted on one device resumes on another.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError

from skyshare.checks import MAX_SEED
from skyshare.config import (
    InvalidConfigError,
    StrictModel,
    build_config,
    config_sources,
    preset_names,
    set_dotted,
)
from skyshare.errors import ConfigError, SkyshareError
from skyshare.runtime import keep_freed_memory

__all__ = [
    "Execution",
    "Experiment",
    "ExperimentPreset",
    "Job",
    "JobFailed",
    "job_folder",
    "load_result",
    "run_jobs",
    "with_seeds",
]

RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Job:
    """One independent unit of work.

    Attributes:
        experiment: experiment id, e.g. ``"catn-fig4"``.
        scheme: scheme name, e.g. ``"D3QN-CUP"``.
        seed: random seed of the job.
        params: JSON-serialisable parameters (e.g. ``{"zeta": 10}``) and the resolved config.
        device: where the job's tensors live; set by :func:`run_jobs` from the
            :class:`Execution`, not part of :attr:`job_id`.
        threads: torch intra-op threads the job may use (``torch.set_num_threads``); set by
            :func:`run_jobs`, not part of :attr:`job_id`.
        keep_checkpoints: keep the job's ``*checkpoint*.pt`` files once it has finished (by
            default they are removed after ``result.json`` is written: they only serve
            resumption, and a paper-preset CUP checkpoint is ~560 MB); not part of the id.
    """

    experiment: str
    scheme: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    threads: int = 1
    keep_checkpoints: bool = False

    @property
    def job_id(self) -> str:
        """Stable, readable id: scheme, seed and a hash of the parameters."""
        digest = hashlib.sha1(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:8]
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.scheme)
        return f"{safe}-s{self.seed}-{digest}"


class ExperimentPreset(StrictModel):
    """Base of every experiment's preset model: the seeds every job runs with. An experiment
    module subclasses it with its own fields (the paper's values in ``paper.yaml``, a reduced
    setting in ``quick.yaml`` under ``skyshare/configs/experiments/<id>/``)."""

    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] = Field([0], min_length=1)


@dataclass(frozen=True)
class Experiment:
    """A runnable experiment id of ``skyshare run`` (see :mod:`skyshare.experiments.registry`).

    Attributes:
        name: experiment id, e.g. ``"catn-fig4"``; its presets are the YAML files of
            ``skyshare/configs/experiments/<name>/``.
        description: one line for ``skyshare run --help``.
        Preset: the pydantic model of its presets (an :class:`ExperimentPreset`).
        jobs: ``jobs(preset, preset_name, schemes) -> [Job]``: every job of a resolved preset
            (``schemes``: a subset, None for the experiment's own).
        run_job: ``run_job(job, folder) -> dict``: one job, writing into its folder (module
            level, so that workers and Ray can import it).
        finish: ``finish(run_dir, jobs, summary)``: figures and table files from the results.
        table: ``table(summary) -> (title, columns, rows)``: the summary table the CLI prints.
        schemes: the scheme names a run may be restricted to (a tuple, or a scheme
            :class:`~skyshare.schemes.base.Registry`, read when the run starts).
        check_job: ``check_job(job)``: build what the job's nested parameters configure
            (scenario, env and learner configs; nothing large) so that a bad value raises
            a :class:`~skyshare.errors.SkyshareError` before anything is written (None: the
            preset model checks everything). A nested config's error names its fields by
            their path in the preset (``scenario.n_ue``, not ``n_ue``) and the ``--config``
            file that set them.
        check_result: ``check_result(job, result)``: raise (KeyError, TypeError, ValueError)
            when a ``result.json`` read back from the run directory lacks what
            :attr:`finish` and :attr:`table` read, so that the damaged file is named before
            they run (None: a finish or table that fails on results read back is retried
            without each of them in turn to find the file, see :meth:`Experiment.run`).
    """

    name: str
    description: str
    Preset: type[ExperimentPreset]
    jobs: Callable[[Any, str, Sequence[str] | None], list[Job]]
    run_job: Callable[[Job, Path], dict[str, Any]]
    finish: Callable[[Path, list[Job], dict[str, Any]], Any]
    table: Callable[[dict[str, Any]], tuple[str, list[str], list[list[str]]]]
    schemes: Collection[str]
    check_job: Callable[[Job], None] | None = None
    check_result: Callable[[Job, dict[str, Any]], None] | None = None

    @property
    def presets(self) -> list[str]:
        """The preset names shipped for this experiment."""
        return preset_names(f"experiments/{self.name}")

    def load_preset(
        self,
        preset: str = "quick",
        *,
        file: str | Path | None = None,
        overrides: Sequence[str] | dict[str, Any] | None = None,
    ) -> ExperimentPreset:
        """The validated preset: the YAML preset ``preset`` (None: the model's defaults), then
        the YAML ``file``, then ``key=value`` overrides (dotted keys reach into dicts)."""
        return build_config(
            self.Preset,
            f"experiments/{self.name}",
            preset=preset,
            file=file,
            overrides=list(overrides) if isinstance(overrides, tuple) else overrides,
        )

    def run(
        self,
        run_dir: str | Path,
        preset: str | ExperimentPreset | None = "quick",
        *,
        config: str | Path | None = None,
        overrides: Sequence[str] | dict[str, Any] | None = None,
        schemes: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        execution: Execution | None = None,
        preset_name: str | None = None,
    ) -> dict[str, Any]:
        """Resolve the preset (a name, None for the model's defaults, or a ready preset
        object), check every job's parameters (:attr:`check_job`) and the run directory
        (:func:`check_run_dir`), write ``run_dir/preset.yaml``, run the unfinished jobs as
        ``execution`` says, draw the figures and tables (:attr:`finish`, :attr:`table`) and
        then write ``summary.json``; return the summary.

        Nothing is written before all of that input has been checked; a nested config's error
        names its fields by their path in the preset, and the ``config`` file that set them
        (a preset given by name). A directory that already holds a run must hold one of this
        experiment with the same resolved preset (finished jobs are reused); a run restricted
        to some schemes or seeds keeps the other results of the directory's summary in the
        new one (the figure shows them all). A finish that fails leaves the files it had
        replaced as they were; when it fails on results read back from the run directory,
        the damaged ``result.json`` is named (:meth:`_conclude`)."""
        if not isinstance(preset, ExperimentPreset):  # a name, or None: the model's defaults
            preset_name = preset_name or preset or "custom"
            resolved = self.load_preset(preset, file=config, overrides=overrides)
        else:
            resolved = self.Preset.from_dict(preset.model_dump(), what=self.name)
            preset_name = preset_name or "custom"
            config = overrides = None  # a ready preset: its values came from no file
        dumped = resolved.model_dump(mode="json")
        try:
            selected = self.jobs(resolved, preset_name, schemes)
            if seeds is not None:
                selected = with_seeds(selected, seeds)

            def rebuild(data: dict[str, Any]) -> list[Job]:
                jobs = self.jobs(self.Preset.from_dict(data, what=self.name), preset_name, schemes)
                return with_seeds(jobs, seeds) if seeds is not None else jobs

            check_distinct_jobs(selected, dumped, schemes, rebuild)
            self.check_jobs(selected)
        except InvalidConfigError as err:  # a nested config (scenario, env): name its path
            sources = config_sources(config, overrides) if config or overrides else {}
            raise err.located(dumped).with_sources(sources) from None
        run_dir = Path(run_dir)
        earlier = check_run_dir(run_dir, self.name, dumped)
        execution = execution or Execution()
        started_ray = execution.connect()  # a cluster that cannot be reached: nothing written
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            preset_path = run_dir / "preset.yaml"
            text = f"# {self.name}, preset {preset_name!r} as resolved for this run\n"
            text += yaml.safe_dump(dumped, sort_keys=False)
            if not preset_path.is_file() or preset_path.read_text() != text:
                preset_path.write_text(text)  # a resumed run leaves its own file untouched
            on_disk = {job.job_id for job, _ in earlier}  # results read back, not computed
            on_disk |= {
                job.job_id for job in selected if (job_folder(run_dir, job) / RESULT_FILE).is_file()
            }
            results = run_jobs(selected, self.run_job, run_dir, execution)
        finally:
            if started_ray:  # as run_jobs does for a Ray instance it started itself
                import ray

                ray.shutdown()
        ids = {job.job_id for job in selected}
        kept = [(job, result) for job, result in earlier if job.job_id not in ids]
        everything = [job for job, _ in kept] + list(selected)
        summary = {
            "experiment": self.name,
            "preset": preset_name,
            "params": dumped,
            "seeds": {job.job_id: job.seed for job in everything},  # --seeds may add some
            "results": {
                **{job.job_id: result for job, result in kept},
                **{job.job_id: results[job.job_id] for job in selected},
            },
        }
        self._conclude(run_dir, everything, summary, on_disk)
        return summary

    def _conclude(
        self, run_dir: Path, jobs: list[Job], summary: dict[str, Any], on_disk: set[str]
    ) -> None:
        """Draw the figures and tables of ``summary`` (:attr:`finish`, :attr:`table`), then
        write ``summary.json``.

        A result read back from the run directory (``on_disk``: job ids) that
        :attr:`check_result` refuses is named before anything is drawn. A finish that fails
        puts back the top-level files of ``run_dir`` it had written (figures, tables). A
        :class:`~skyshare.errors.SkyshareError` of theirs (e.g. a figure that needs a scheme
        the run lacks) still writes ``summary.json``: the results are sound and a later run of
        the other schemes keeps them. Any other error is raised with its traceback (it may be
        a bug, and guessing a culprit could blame a good result); ``summary.json`` is then
        written only when every result was computed in this run, and otherwise the error
        carries a note on what to check (a ``result.json`` edited by hand or written by
        another version)."""
        results = summary["results"]
        if self.check_result is not None:
            for job in jobs:
                if job.job_id not in on_disk:
                    continue
                try:
                    self.check_result(job, results[job.job_id])
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    raise _damaged_result(run_dir, job, self.name, exc) from None
        before = _snapshot(run_dir)
        pristine = copy.deepcopy(summary)
        try:
            self._draw(run_dir, jobs, summary)
        except SkyshareError:
            _restore(run_dir, before)
            _write_atomic(run_dir / "summary.json", _summary_text(pristine))
            raise
        except Exception as exc:
            _restore(run_dir, before)
            read_back = [job.job_id for job in jobs if job.job_id in on_disk]
            if not read_back:
                _write_atomic(run_dir / "summary.json", _summary_text(pristine))
                raise
            exc.add_note(
                f"{self.name}: the figures and tables failed with {len(read_back)} result(s) "
                f"read back from {run_dir / 'jobs'}; the files of {run_dir} were left as they "
                f"were. If a {RESULT_FILE} there was edited or written by another version of "
                "skyshare, delete that job's folder and rerun the same command (that job runs "
                "again, the others are kept); otherwise this is a bug: please report it"
            )
            raise
        _write_atomic(run_dir / "summary.json", _summary_text(summary))

    def _draw(self, run_dir: Path, jobs: list[Job], summary: dict[str, Any]) -> None:
        """The summary table (as the CLI prints it) and the figures of ``jobs``."""
        if jobs:
            self.table(summary)
            self.finish(run_dir, jobs, summary)

    def check_jobs(self, jobs: Sequence[Job]) -> None:
        """:attr:`check_job` once per distinct (scheme, parameters) of ``jobs`` (seeds
        aside); a pydantic error becomes a :class:`~skyshare.errors.ConfigError` naming the
        job."""
        if self.check_job is None:
            return
        seen: set[str] = set()
        for job in jobs:
            rest = {key: value for key, value in job.params.items() if key != "seeds"}
            key = json.dumps([job.scheme, rest], sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            try:
                self.check_job(job)
            except ValidationError as err:  # a model built without from_dict's formatting
                raise ConfigError(f"{self.name}, job {job.job_id}: {err}") from None


def check_distinct_jobs(
    jobs: Sequence[Job],
    preset: dict[str, Any],
    schemes: Collection[str] | None = None,
    rebuild: Callable[[dict[str, Any]], Sequence[Job]] | None = None,
) -> None:
    """Refuse, before anything is written, a job list that holds one job twice, naming what
    repeats: a scheme given twice in ``schemes`` (``--schemes``), or a list of the resolved
    ``preset`` with a repeated value that makes jobs repeat (``seeds: [0, 0]``, a sweep of
    ``[1, 1]``). ``rebuild(preset) -> jobs`` tells which lists do: a list is named when the
    jobs of the preset with its repeats removed repeat less (without ``rebuild``, every list
    with a repeated value is named)."""
    duplicates = _duplicates(jobs)
    if not duplicates:
        return
    causes = [
        f"--schemes lists {name} twice"
        for name in dict.fromkeys(schemes or [])
        if list(schemes or []).count(name) > 1
    ]
    for key, value in _flat_items(preset):
        if not isinstance(value, list):
            continue
        items = [json.dumps(item, sort_keys=True) for item in value]
        repeated = next((v for i, v in enumerate(value) if items[i] in items[:i]), _NONE)
        if repeated is _NONE:
            continue
        if rebuild is not None:
            once = [v for i, v in enumerate(value) if items[i] not in items[:i]]
            try:
                data = copy.deepcopy(preset)
                set_dotted(data, key, once)
                if _duplicates(rebuild(data)) >= duplicates:
                    continue  # the repeat does not make jobs repeat (e.g. hidden sizes)
            except (ValidationError, SkyshareError, ValueError, TypeError):
                continue
        causes.append(f"{key} {json.dumps(value)} lists {json.dumps(repeated)} twice")
    seen: set[str] = set()
    job = next(j for j in jobs if j.job_id in seen or seen.add(j.job_id))  # a repeated one
    cause = "; ".join(causes) or f"job {job.job_id} (scheme {job.scheme}, seed {job.seed})"
    raise ConfigError(f"the run would play the same job twice: {cause}; give each value once")


def _duplicates(jobs: Sequence[Job]) -> int:
    """How many jobs of ``jobs`` repeat an earlier job id."""
    return len(jobs) - len({job.job_id for job in jobs})


_NONE = object()


def _flat_items(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested dict (lists are leaves)."""
    items: list[tuple[str, Any]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            items += _flat_items(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def check_run_dir(
    run_dir: Path, experiment: str, params: dict[str, Any]
) -> list[tuple[Job, dict[str, Any]]]:
    """Refuse a run directory that holds another run, before anything is written; return the
    directory's earlier finished jobs and their results (to keep in the new summary).

    A directory whose ``summary.json`` (or, for a run stopped before its first summary,
    ``preset.yaml``) names another experiment, or the same experiment with other resolved
    parameters, is refused with the differing fields: writing there would replace that run's
    preset and summary. One whose ``summary.json`` lacks those fields is refused as damaged.
    An earlier job is kept when its folder still holds its ``job.json`` and ``result.json``."""
    summary_path, preset_path = run_dir / "summary.json", run_dir / "preset.yaml"
    if run_dir.exists() and not run_dir.is_dir():
        raise SkyshareError(f"--out {run_dir} is a file, not a folder")
    summary = _read_summary(summary_path)
    if summary is not None:
        before_experiment, before_params = summary["experiment"], summary["params"]
    else:
        preset = _read_run_file(preset_path, yaml.safe_load)
        if preset is None:
            return []
        header = preset_path.read_text().split("\n", 1)[0]  # "# <experiment>, preset ..."
        before_experiment = header.removeprefix("# ").split(",", 1)[0]
        before_params = preset
    if before_experiment != experiment:
        raise SkyshareError(
            f"{run_dir} holds a {before_experiment} run; running {experiment} there would "
            "replace its preset and summary: choose another --out"
        )
    before_params = before_params if isinstance(before_params, dict) else {}
    # a key absent on one side and None on the other is the same setting: an option added by
    # a later version is None when unset (and not part of a job's id)
    changed = sorted(
        key for key in set(params) | set(before_params) if before_params.get(key) != params.get(key)
    )
    if changed:
        details = "; ".join(
            f"{key}: {json.dumps(before_params.get(key))} there, {json.dumps(params.get(key))} now"
            for key in changed[:4]
        )
        raise SkyshareError(
            f"{run_dir} holds a {experiment} run with other parameters ({details}"
            f"{'; ...' if len(changed) > 4 else ''}); its finished jobs would not be reused and "
            "its preset and summary would be replaced: choose another --out, or rerun with "
            "that run's preset and --set values"
        )
    earlier = []
    for job_id in (summary or {}).get("results", {}):
        folder = run_dir / "jobs" / str(job_id)
        data = _job_file(folder, str(job_id))
        result = _read_json(folder / RESULT_FILE, f"the result of job {job_id}")
        if data is None or result is None:
            continue
        try:
            job = Job(**{key: data[key] for key in IDENTITY})
        except (KeyError, TypeError):
            continue  # not a job description this version wrote: the job is not kept
        if job.job_id == job_id:
            earlier.append((job, result))
    return earlier


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_run_file(path: Path, parse: Callable[[str], Any]) -> dict[str, Any] | None:
    """``summary.json`` or ``preset.yaml`` of a run directory as a mapping (None if absent)."""
    if not path.exists():
        return None
    try:
        data = parse(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise _damaged_run(path, f"is unreadable ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise _damaged_run(path, f"holds a {type(data).__name__}, not a mapping")
    return data


def _read_summary(path: Path) -> dict[str, Any] | None:
    """A run directory's ``summary.json`` (None if absent), with the fields a run reads back."""
    summary = _read_run_file(path, json.loads)
    if summary is None:
        return None
    expected = {"experiment": str, "params": dict, "results": dict}  # results: may be absent
    wrong = [
        key
        for key, kind in expected.items()
        if not isinstance(summary.get(key, {} if key == "results" else None), kind)
    ]
    if wrong:
        raise _damaged_run(path, f"is damaged: {', '.join(wrong)} missing or of the wrong type")
    return summary


def _damaged_run(path: Path, problem: str) -> SkyshareError:
    """The error for a damaged ``summary.json`` or ``preset.yaml`` of a run directory."""
    return SkyshareError(
        f"{path} {problem}: this folder holds a damaged run; choose another --out, or delete "
        "that file to run here anew"
    )


def with_seeds(jobs: Sequence[Job], seeds: Sequence[int]) -> list[Job]:
    """The experiment's jobs for other seeds: every distinct (scheme, parameters) of ``jobs``
    once per seed in ``seeds``, with ``params["seeds"] = [seed]``.

    A preset lists its seeds in ``params["seeds"]``; a job made here for seed s has the id of
    the preset's own job when the preset's list is ``[s]``, so finished jobs are reused.
    """
    if not seeds:
        raise SkyshareError("seeds must list at least one seed")
    if len(set(seeds)) != len(seeds) or any(
        isinstance(s, bool) or int(s) != s or not 0 <= s <= MAX_SEED for s in seeds
    ):
        raise SkyshareError(
            f"seeds must be distinct integers in [0, {MAX_SEED}] (torch's seed range), "
            f"got {list(seeds)}"
        )
    distinct: dict[str, Job] = {}
    for job in jobs:
        rest = {key: value for key, value in job.params.items() if key != "seeds"}
        key = json.dumps([job.experiment, job.scheme, rest], sort_keys=True)
        distinct.setdefault(key, job)
    return [
        replace(job, seed=int(seed), params={**job.params, "seeds": [int(seed)]})
        for job in distinct.values()
        for seed in seeds
    ]


EXECUTORS = ("local", "ray")
MAX_RAY_THREADS = 1024  # a Ray job's threads: the cluster's machines, not this one, run it


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113 §3.4)."""


def _answers_http2(connection: socket.socket, timeout_s: float) -> bool:
    """Whether the server on ``connection`` answers the HTTP/2 preface with a SETTINGS frame,
    as every gRPC server (Ray's GCS, Ray Client) does at once: RFC 9113 §3.4, the server's
    preface is a SETTINGS frame (type 0x4, stream 0). A plain TCP service sends nothing or
    something else, on which ``ray.init`` would wait ~20 s before failing."""
    connection.settimeout(timeout_s)
    deadline = time.monotonic() + timeout_s
    header = b""
    try:
        connection.sendall(_HTTP2_PREFACE)
        while len(header) < 9 and time.monotonic() < deadline:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                break
            header += chunk
    except OSError:
        return False
    return len(header) == 9 and header[3] == 0x04 and header[5:9] == bytes(4)


@dataclass(frozen=True)
class Execution:
    """How and where an experiment's jobs run.

    Attributes:
        executor: ``"local"`` (this machine) or ``"ray"`` (a Ray instance or cluster).
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a local
            Ray instance. Only with ``executor="ray"``.
        workers: local executor: jobs run at a time, each in its own worker process (1: one
            after the other in this process). In [1, 256].
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: where the jobs' tensors live. With
            ``workers > 1`` the workers share the device.
        threads: torch threads per job; None: 1, for every executor (the thread count
            changes floating-point results; it is recorded in each job's ``job.json`` and a
            started job resumes only with the same count). Local executor: at most this
            machine's CPUs (:func:`available_cpus`; more threads than cores make a job many
            times slower); Ray: up to 1024, as the cluster's machines may have more cores.
        progress: show progress bars.
        keep_checkpoints: keep finished jobs' checkpoints (default: removed, see :class:`Job`).
    """

    executor: str = "local"
    address: str | None = None
    workers: int = 1
    device: str = "cpu"
    threads: int | None = None
    progress: bool = True
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise SkyshareError(
                f"unknown executor {self.executor!r}; available: {', '.join(EXECUTORS)}"
            )
        if self.address is not None and self.executor != "ray":
            raise SkyshareError("address is a Ray cluster address: only with executor 'ray'")
        if not 1 <= self.workers <= 256:
            raise SkyshareError(f"workers (--workers) must be in [1, 256], got {self.workers}")
        if self.workers > 1 and self.executor != "local":
            raise SkyshareError("workers is for the local executor (Ray schedules its own)")
        if self.threads is not None:
            if not 1 <= self.threads <= MAX_RAY_THREADS:
                raise SkyshareError(
                    f"threads (--threads) must be in [1, {MAX_RAY_THREADS}], got {self.threads}"
                )
            cpus = available_cpus()
            if self.executor == "local" and self.workers * self.threads > cpus:
                # a warning, not a refusal: a job started elsewhere with more threads resumes
                # only with its own count (_check_resume_execution)
                warnings.warn(
                    f"{self.workers} worker(s) x {self.threads} torch thread(s) (--workers, "
                    f"--threads) is more than the {cpus} CPU(s) this process may use: the "
                    "threads will compete for cores and the jobs run slower",
                    RuntimeWarning,
                    stacklevel=2,
                )
        self._check_device()

    @property
    def threads_per_job(self) -> int:
        """``threads``, or its default, 1 for every executor: the same job gives the same
        numbers in-process, in worker processes and on Ray (torch's reductions depend on the
        thread count), and jobs side by side do not oversubscribe the cores."""
        return 1 if self.threads is None else self.threads

    def check_address(self, timeout_s: float = 5.0) -> None:
        """Refuse a Ray ``address`` of the form ``host:port`` or ``ray://host:port`` that
        accepts no TCP connection within ``timeout_s`` (``ray.init`` would retry for minutes,
        deaf to Ctrl-C), or whose server does not answer the HTTP/2 preface within another
        ``timeout_s`` (:func:`_answers_http2`: not a gRPC server, so not Ray; ``ray.init``
        would wait ~20 s on it). With ``RAY_USE_TLS`` set only the connection is checked.
        ``"auto"`` and a missing address are left to Ray."""
        if self.executor != "ray" or self.address in (None, "auto", "local"):
            return
        target = self.address.removeprefix("ray://")
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SkyshareError(
                f"--address {self.address!r} is not a Ray address: give host:port (the GCS, "
                "e.g. 10.0.0.1:6379), ray://host:port (Ray Client, port 10001) or auto"
            )
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as s:
                # a TLS-enabled cluster answers a TLS handshake, not the plain preface
                tls = os.environ.get("RAY_USE_TLS", "0") not in ("0", "")
                speaks_grpc = tls or _answers_http2(s, timeout_s)
        except OSError as exc:
            raise SkyshareError(
                f"--address {self.address!r}: no Ray cluster answers there within "
                f"{timeout_s:g} s ({exc.strerror or exc}); start it (ray start --head) or "
                "fix the address"
            ) from None
        if not speaks_grpc:
            raise SkyshareError(
                f"--address {self.address!r}: a server accepts connections there but does not "
                f"answer as a Ray cluster (gRPC) within {timeout_s:g} s; check the port (the "
                "GCS, e.g. 6379, or 10001 with ray://)"
            )

    def connect(self) -> bool:
        """Ray executor: connect to (or start) the Ray instance now, so that a failure is a
        :class:`~skyshare.errors.SkyshareError` before a run writes anything; the jobs then use
        this connection. Returns whether this call initialised Ray (the caller then shuts it
        down). Nothing for the local executor."""
        if self.executor != "ray":
            return False
        try:
            import ray
        except ImportError:
            raise SkyshareError(
                "the ray executor needs Ray: pip install -c constraints.txt -e '.[ray]'"
            ) from None
        if ray.is_initialized():
            return False
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        except (ConnectionError, OSError, RuntimeError, ValueError) as exc:
            raise SkyshareError(
                f"--executor ray --address {self.address or '(a new local instance)'}: Ray "
                f"cannot connect ({_first_line(exc)}); start a cluster (ray start --head) or "
                "fix the address"
            ) from None
        return True

    def _check_device(self) -> None:
        import torch

        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError):
            raise SkyshareError(
                f"unknown device {self.device!r}; use cpu, cuda or cuda:N"
            ) from None
        if device.type not in ("cpu", "cuda"):
            raise SkyshareError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise SkyshareError(
                    f"device {self.device!r}: no CUDA device is available on this machine"
                )
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise SkyshareError(
                    f"device {self.device!r}: index must be < {torch.cuda.device_count()}"
                )
            if self.executor == "ray":
                raise SkyshareError(
                    "device 'cuda' with executor 'ray' is not supported yet (Ray would need a "
                    "GPU share per task); use the local executor with workers"
                )


class JobFailed(SkyshareError):
    """A job raised; the message carries its id and the remote traceback."""


def job_folder(run_dir: str | Path, job: Job) -> Path:
    """The folder of ``job`` inside ``run_dir``."""
    return Path(run_dir) / "jobs" / job.job_id


def load_result(run_dir: str | Path, job: Job) -> dict[str, Any] | None:
    """The stored result of a finished job, or None; a clear error naming the file when the
    job's folder is not a folder or its ``result.json`` is not a JSON object."""
    folder = job_folder(run_dir, job)
    if folder.exists() and not folder.is_dir():
        raise SkyshareError(
            f"{folder} should be the folder of job {job.job_id} but is a file; move or delete "
            "it and rerun (the job then runs again)"
        )
    return _read_json(folder / RESULT_FILE, f"the result of job {job.job_id}")


RERUN_JOB = "delete it and rerun the same command: that job runs again, the others are kept"
"""What to do about a damaged ``result.json``."""

REWRITE_JOB_FILE = (
    "delete it and rerun the same command: a finished job's result is kept, and job.json is "
    "written again by the next run that includes that job (a started job, with a checkpoint, "
    "then asks for its folder to be deleted)"
)
"""What to do about a damaged ``job.json`` (see :func:`run_jobs`)."""


def _damaged(path: Path, what: str, problem: str, remedy: str = RERUN_JOB) -> SkyshareError:
    """The error for a damaged file of a job: ``"<path> (<what>) <problem>; <remedy>"``."""
    return SkyshareError(f"{path} ({what}) {problem}; {remedy}")


def _damaged_result(
    run_dir: Path, job: Job, experiment: str, exc: BaseException, count: int = 1
) -> SkyshareError:
    """A ``result.json`` that is a JSON object but not the result ``experiment`` reads."""
    path = job_folder(run_dir, job) / RESULT_FILE
    others = f" (and {count - 1} other result(s) of this run)" if count > 1 else ""
    problem = (
        f"is damaged{others}: {experiment} cannot read it as a job's result (a field missing "
        f"or of the wrong type: {type(exc).__name__}: {_first_line(exc)})"
    )
    return _damaged(path, f"the result of job {job.job_id}", problem)


def _read_json(path: Path, what: str, remedy: str = RERUN_JOB) -> dict[str, Any] | None:
    """A JSON object from ``path``, None when the file does not exist."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, what, f"is unreadable ({type(exc).__name__}: {exc})", remedy) from None
    if not isinstance(data, dict):
        raise _damaged(path, what, f"holds a {type(data).__name__}, not a JSON object", remedy)
    return data


def _job_file(folder: Path, job_id: str) -> dict[str, Any] | None:
    """The ``job.json`` of a job's folder (None if absent)."""
    return _read_json(folder / "job.json", f"the description of job {job_id}", REWRITE_JOB_FILE)


def _snapshot(run_dir: Path) -> dict[Path, bytes]:
    """The top-level files of ``run_dir`` (summary, figures, tables: what a finish writes),
    with their bytes; subfolders (``jobs/``, anything of the user's) are not read."""
    if not run_dir.is_dir():
        return {}
    return {path: path.read_bytes() for path in run_dir.iterdir() if path.is_file()}


def _restore(run_dir: Path, snapshot: dict[Path, bytes]) -> None:
    """Put the top-level files of ``run_dir`` back as :func:`_snapshot` found them: those
    written since removed, those changed rewritten (subfolders untouched)."""
    for path in run_dir.iterdir():
        if path.is_file() and path not in snapshot:
            path.unlink()
    for path, data in snapshot.items():
        if not path.is_file() or path.read_bytes() != data:
            _write_atomic(path, data)


def _summary_text(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=float)


def _check_resume_execution(run_dir: Path, job: Job) -> None:
    """Refuse to resume a started job (its folder holds a checkpoint) with other torch threads
    or another device than it started with: both change floating-point results, so the
    resumed numbers would match neither setting."""
    folder = job_folder(run_dir, job)
    if not any(folder.glob("*checkpoint*.pt")):
        return
    afresh = f"delete {folder} and rerun the same command: that job starts afresh"
    what = f"the description of started job {job.job_id}"
    started = _read_json(folder / "job.json", what, afresh)
    if started is None or not {"threads", "device"} <= set(started):
        raise SkyshareError(
            f"job {job.job_id} has a checkpoint but no record of the torch threads and device it "
            f"started with ({folder / 'job.json'} is missing or incomplete), and resuming with "
            f"others would change its numbers; {afresh}"
        )
    before = {key: started.get(key) for key in ("threads", "device")}
    now = {"threads": job.threads, "device": job.device}
    if before != now:
        raise SkyshareError(
            f"job {job.job_id} was started with {before['threads']} torch thread(s) on "
            f"{before['device']}; resuming it with {now['threads']} on {now['device']} would "
            f"change its numbers. Rerun with --threads {before['threads']} --device "
            f"{before['device']}, or delete {folder} to start that job afresh"
        )


IDENTITY = ("experiment", "scheme", "seed", "params")
"""The fields of a :class:`Job` that make its id (what :func:`check_run_dir` reads back)."""


def _restore_job_file(run_dir: Path, job: Job) -> None:
    """Write again the ``job.json`` of a finished job whose file was deleted (as a damaged
    one's message says to), with the fields of the job's identity: the threads and device it
    ran with are not known any more, and only a started job's resumption reads them."""
    path = job_folder(run_dir, job) / "job.json"
    if not path.exists():
        identity = {key: value for key, value in asdict(job).items() if key in IDENTITY}
        _write_atomic(path, json.dumps(identity, indent=2))


def _write_atomic(path: Path, content: str | bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    os.replace(tmp, path)  # a crash never leaves a half-written marker


def _run_one(fn: Callable[[Job, Path], dict[str, Any]], job: Job, run_dir: str) -> dict[str, Any]:
    """Run ``fn(job, folder)`` and store its JSON result as the job's completion marker."""
    keep_freed_memory()  # in every executor's process (fewer page faults; values unchanged)
    folder = job_folder(run_dir, job)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "job.json", json.dumps(asdict(job), indent=2))
    start = time.perf_counter()
    result = dict(fn(job, folder))
    result.setdefault("wall_time_s", time.perf_counter() - start)
    _write_atomic(folder / RESULT_FILE, json.dumps(result, indent=2, default=float))
    if not job.keep_checkpoints:  # finished: resumption needs nothing but result.json now
        for checkpoint in folder.glob("*checkpoint*.pt"):
            checkpoint.unlink(missing_ok=True)
    return result


def run_jobs(
    jobs: Sequence[Job],
    fn: Callable[[Job, Path], dict[str, Any]],
    run_dir: str | Path,
    execution: Execution | None = None,
    *,
    max_retries: int = 2,
) -> dict[str, dict[str, Any]]:
    """Run every unfinished job; return ``{job_id: result}`` for all jobs.

    Args:
        jobs: the experiment's jobs (ids must be unique).
        fn: ``fn(job, folder) -> dict`` does the work on ``job.device``, writing checkpoints
            and series into ``folder`` (and resuming from them when it finds them); must be
            importable by workers (a module-level function) for worker processes and Ray.
        run_dir: the experiment's run directory.
        execution: executor, workers, device, progress bars (default: :class:`Execution`()).
        max_retries: retries of a failed job (Ray: task retries; local: immediate re-runs).
            A :class:`~skyshare.errors.SkyshareError` (bad input, a corrupt checkpoint) is
            never retried.
    """
    execution = execution or Execution()
    ids = [job.job_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise SkyshareError("job ids must be unique (same scheme, seed and parameters twice?)")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for job in jobs:
        stored = load_result(run_dir, job)
        if stored is not None:
            results[job.job_id] = stored
            _restore_job_file(run_dir, job)
        else:
            pending.append(
                replace(
                    job,
                    device=execution.device,
                    threads=execution.threads_per_job,
                    keep_checkpoints=execution.keep_checkpoints,
                )
            )
            _check_resume_execution(run_dir, pending[-1])
    if not pending:
        return results
    if execution.executor == "ray":
        return {**results, **_run_ray(pending, fn, run_dir, execution, max_retries)}
    if execution.workers == 1:
        return {**results, **_run_in_process(pending, fn, run_dir, execution, max_retries)}
    return {**results, **_run_in_workers(pending, fn, run_dir, execution, max_retries)}


def _failure(job: Job, attempts: int, exc: BaseException) -> JobFailed:
    trace = "".join(traceback.format_exception(exc))
    return JobFailed(f"job {job.job_id} failed after {attempts} attempts: {exc}\n{trace}")


def _run_in_process(jobs, fn, run_dir, execution, max_retries) -> dict[str, dict[str, Any]]:
    import torch
    from tqdm.auto import tqdm

    results: dict[str, dict[str, Any]] = {}
    threads = torch.get_num_threads()
    try:
        for job in tqdm(jobs, desc="jobs", disable=not execution.progress):
            for attempt in range(max_retries + 1):
                try:
                    results[job.job_id] = _run_one(fn, job, str(run_dir))
                    break
                except (KeyboardInterrupt, SkyshareError):
                    raise  # bad input or a corrupt checkpoint: retrying cannot help
                except Exception as exc:  # retried, then reported with the job id
                    if attempt == max_retries:
                        raise _failure(job, attempt + 1, exc) from exc
    finally:
        torch.set_num_threads(threads)  # the jobs set their own; the caller keeps its
    return results


def _run_in_workers(jobs, fn, run_dir, execution, max_retries) -> dict[str, dict[str, Any]]:
    """``execution.workers`` jobs at a time in ``spawn`` worker processes (fresh interpreters:
    no forked torch or CUDA state). A failed job is resubmitted up to ``max_retries`` times;
    on a final failure the other jobs are stopped (the running ones resume from their
    checkpoints on the next run).
    Ctrl-C reaches only this process (the workers ignore SIGINT): it stops the workers at once
    and raises KeyboardInterrupt; the jobs resume from their checkpoints on the next run."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    workers = min(execution.workers, len(jobs))
    _quiet_resource_tracker()
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_setup,
        initargs=(os.getpid(),),
    )
    try:
        with tqdm(
            total=len(jobs), desc=f"jobs ({workers} workers)", disable=not execution.progress
        ) as bar:
            return _gather(pool, jobs, fn, run_dir, max_retries, bar)
    except BaseException:  # Ctrl-C or a job that failed for good: stop the others now
        processes = list(getattr(pool, "_processes", {}).values())
        for process in processes:
            process.terminate()  # a job may run for hours; it resumes from its checkpoint
        for process in processes:  # reaped, so that the pool can release its queues' locks
            process.join(timeout=2.0)
            if process.is_alive():  # stuck past SIGTERM: the pool's shutdown must not wait
                process.kill()
                process.join(timeout=2.0)
        raise
    finally:
        # after the workers are gone, waiting lets the pool close its queues (whose semaphores
        # the resource tracker would otherwise report as leaked at exit)
        pool.shutdown(wait=True, cancel_futures=True)


def _quiet_resource_tracker() -> None:
    """Turn off the "leaked semaphore" warning of multiprocessing's resource tracker, for a
    tracker started from now on (it is started, with this process's ``sys.warnoptions``, when
    the first pool creates its locks; one already running keeps its options). Workers
    stopped by Ctrl-C are terminated, so locks of the pool's queues they had registered may
    never be unregistered; the tracker then unlinks them itself at exit and warns, which
    reads as an error after a clean stop (seen in some interrupted runs, not reproducibly).
    Only that tracker's UserWarnings about leaked resources are filtered."""
    option = "ignore:resource_tracker:UserWarning:multiprocessing.resource_tracker"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)


def _gather(pool, jobs, fn, run_dir, max_retries, bar) -> dict[str, dict[str, Any]]:
    """Submit every job to ``pool`` and collect the results, resubmitting failures."""
    from concurrent.futures import FIRST_COMPLETED, wait

    results: dict[str, dict[str, Any]] = {}
    attempts = dict.fromkeys((job.job_id for job in jobs), 1)
    running = {pool.submit(_run_one, fn, job, str(run_dir)): job for job in jobs}
    while running:
        # a bounded wait: a lock wait without timeout does not see Ctrl-C until it returns
        done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
        for future in done:
            job = running.pop(future)
            exc = future.exception()
            if exc is None:
                results[job.job_id] = future.result()
                bar.update(1)
            elif isinstance(exc, SkyshareError):
                raise exc  # bad input or a corrupt file: retrying cannot help
            elif attempts[job.job_id] > max_retries:
                raise _failure(job, attempts[job.job_id], exc) from exc
            else:
                attempts[job.job_id] += 1
                running[pool.submit(_run_one, fn, job, str(run_dir))] = job
    return results


def _worker_setup(parent_pid: int) -> None:
    """Worker initializer: ignore Ctrl-C (the parent handles it and stops the workers) and end
    when the parent is gone (:func:`_exit_with_parent`)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Worker initializer: a daemon thread ends the worker as soon as its parent is gone.

    A parent killed with SIGKILL cannot tell its pool to stop; its workers are re-parented
    and would finish their job (writing into the run directory behind the user's back) and
    then wait forever. Polling ``os.getppid()`` is portable across POSIX systems.
    """
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(EXIT_PARENT_GONE)

    threading.Thread(target=watch, name="skyshare-parent-watch", daemon=True).start()


EXIT_PARENT_GONE = 70  # a worker that ends because its parent died


def _run_ray(jobs, fn, run_dir, execution, max_retries) -> dict[str, dict[str, Any]]:
    started_here = execution.connect()  # Ray is importable and initialised from here on
    import ray

    try:
        remote = ray.remote(max_retries=max_retries, retry_exceptions=True)(_run_one)
        refs = {remote.remote(fn, job, str(run_dir)): job for job in jobs}
        results: dict[str, dict[str, Any]] = {}
        remaining = list(refs)
        from tqdm.auto import tqdm

        with tqdm(total=len(remaining), desc="ray jobs", disable=not execution.progress) as bar:
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
