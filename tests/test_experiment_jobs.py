"""Jobs run once, resume after interruption, retry failures, and keep ids stable."""

import json
import os
import re

import pytest
import torch
from pydantic import Field

from skyshare.config import StrictModel
from skyshare.experiments import Job, JobFailed, load_result, run_jobs
from skyshare.experiments.jobs import Execution, ExperimentPreset, with_seeds
from skyshare.experiments.smoke import smoke_job, smoke_jobs

QUIET = Execution(progress=False)

CALLS: list[str] = []


def square(job, folder):
    CALLS.append(job.job_id)
    (folder / "series.csv").write_text("slot,value\n0,1\n")
    return {"value": job.params["x"] ** 2, "seed": job.seed}


def test_jobs_run_once_and_resume(tmp_path):
    CALLS.clear()
    jobs = [Job("toy", "square", seed, {"x": x}) for seed in (0, 1) for x in (2, 3)]
    results = run_jobs(jobs, square, tmp_path, QUIET)
    assert sorted(r["value"] for r in results.values()) == [4, 4, 9, 9]
    assert len(CALLS) == 4
    # a rerun recomputes nothing; a deleted marker (an interrupted job) is recomputed alone
    marker = tmp_path / "jobs" / jobs[1].job_id / "result.json"
    marker.unlink()
    again = run_jobs(jobs, square, tmp_path, QUIET)
    assert CALLS == [j.job_id for j in jobs] + [jobs[1].job_id]
    assert {k: v["value"] for k, v in again.items()} == {k: v["value"] for k, v in results.items()}
    assert json.loads((tmp_path / "jobs" / jobs[0].job_id / "job.json").read_text())["seed"] == 0
    assert load_result(tmp_path, jobs[2])["value"] == 4


def test_job_ids_are_stable_and_distinct():
    a = Job("e", "D3QN-PPO(zeta=10)", 0, {"zeta": 10})
    assert a.job_id == Job("e", "D3QN-PPO(zeta=10)", 0, {"zeta": 10}).job_id
    assert a.job_id != Job("e", "D3QN-PPO(zeta=10)", 0, {"zeta": 20}).job_id
    assert "(" not in a.job_id and "=" not in a.job_id


QUICK_FIG4 = {  # catn-fig4's quick preset as its jobs carried it before the typed presets
    "n_slots": 300,
    "dfp_slots": 6,
    "seeds": [0],
    "hidden_sizes": [64, 32, 16],
    "scenario": {"n_tu": 14},
    "ppo_penalty": 10.0,
    "preset": "quick",
}


def test_job_id_is_pinned_and_independent_of_key_order():
    """A finished run is found again only if the id is reproducible: the literal id of a
    quick-preset job, whatever the order of its parameters (the hash sorts the keys)."""
    job = Job("catn-fig4", "SC-WMMSE", 0, QUICK_FIG4)
    assert job.job_id == "SC-WMMSE-s0-3c285445"
    reordered = dict(reversed(list(QUICK_FIG4.items())))
    reordered["scenario"] = dict(reversed(list(QUICK_FIG4["scenario"].items())))
    assert Job("catn-fig4", "SC-WMMSE", 0, reordered).job_id == job.job_id


def test_typed_presets_keep_the_job_ids_of_earlier_runs():
    """The YAML preset, resolved by its pydantic model, gives the same job parameters (hence
    ids) as the dict presets did: runs finished before the refactor are reused."""
    from skyshare.experiments import catn_fig4

    preset = catn_fig4.EXPERIMENT.load_preset("quick")
    (job,) = catn_fig4.jobs(preset, "quick", ["SC-WMMSE"])
    assert job.params == QUICK_FIG4 and job.job_id == "SC-WMMSE-s0-3c285445"
    # an option left at None is not part of the identity; setting it makes another job
    warm = catn_fig4.EXPERIMENT.load_preset("quick", overrides=["warm_start=true"])
    (warm_job,) = catn_fig4.jobs(warm, "quick", ["SC-WMMSE"])
    assert warm_job.params["warm_start"] is True and warm_job.job_id != job.job_id


def test_bad_input_is_not_retried(tmp_path):
    """A SkyshareError (bad input, a corrupt checkpoint) cannot be fixed by retrying: the
    in-process runner runs the job exactly once and raises the error itself."""
    from skyshare.errors import ConfigError

    calls = []

    def bad_input(job, folder):
        calls.append(1)
        raise ConfigError("n_tu must be >= 1")

    with pytest.raises(ConfigError, match="n_tu must be"):
        run_jobs([Job("t", "bad", 0)], bad_input, tmp_path, QUIET, max_retries=3)
    assert calls == [1]


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
    assert run_jobs([Job("t", "flaky", 0)], flaky, tmp_path, QUIET, max_retries=1)
    with pytest.raises(JobFailed, match="failed after 2 attempts: always"):
        run_jobs([Job("t", "broken", 0)], broken, tmp_path, QUIET, max_retries=1)
    assert load_result(tmp_path, Job("t", "broken", 0)) is None


def test_duplicate_jobs_and_unknown_executor_rejected(tmp_path):
    job = Job("t", "s", 0)
    with pytest.raises(Exception, match="unique"):
        run_jobs([job, job], square, tmp_path)
    with pytest.raises(Exception, match="unknown executor"):
        run_jobs([job], square, tmp_path, Execution(executor="slurm"))


def test_ray_executor_gives_the_same_results_as_in_process(tmp_path):
    """A tiny experiment on a local Ray instance equals the in-process run (issue 5). Ray is
    part of the test install (".[dev,ray]"): this test runs in CI, it is not skipped."""
    import ray  # noqa: F401

    jobs = smoke_jobs()
    local = run_jobs(jobs, smoke_job, tmp_path / "local", QUIET)
    remote = run_jobs(jobs, smoke_job, tmp_path / "ray", Execution("ray", progress=False))
    assert {k: v["value"] for k, v in remote.items()} == {k: v["value"] for k, v in local.items()}
    assert sorted(v["value"] for v in local.values()) == [4, 5, 9, 10, 25, 26]
    for job in jobs:  # the Ray workers wrote into the same run-directory layout
        assert (tmp_path / "ray" / "jobs" / job.job_id / "series.csv").exists()


def fails_once(job, folder):
    """Fails on the first attempt (leaves a marker in its folder), then succeeds; a worker
    process cannot share a counter with the test, the folder can."""
    marker = folder / "attempted"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("transient")
    return {"value": job.params["x"] * 10, "pid": os.getpid()}


def test_worker_processes_give_the_same_results_and_retry(tmp_path):
    jobs = smoke_jobs(n_seeds=2, values=(2, 3))
    local = run_jobs(jobs, smoke_job, tmp_path / "local", QUIET)
    pooled = run_jobs(jobs, smoke_job, tmp_path / "pool", Execution(workers=2, progress=False))
    assert {k: v["value"] for k, v in pooled.items()} == {k: v["value"] for k, v in local.items()}
    for job in jobs:
        assert (tmp_path / "pool" / "jobs" / job.job_id / "series.csv").exists()
    # a failed job is resubmitted, in another process than this one
    retried = run_jobs(
        [Job("t", "once", 0, {"x": 4}), Job("t", "once", 1, {"x": 5})],
        fails_once,
        tmp_path / "retry",
        Execution(workers=2, progress=False),
        max_retries=1,
    )
    assert sorted(r["value"] for r in retried.values()) == [40, 50]
    assert all(r["pid"] != os.getpid() for r in retried.values())
    with pytest.raises(JobFailed, match="failed after 1 attempts: transient"):
        run_jobs(
            [Job("t", "once", 2, {"x": 6})],
            fails_once,
            tmp_path / "final",
            Execution(workers=2, progress=False),
            max_retries=0,
        )


def test_execution_rejects_bad_settings():
    for bad, match in (
        ({"workers": 0}, r"workers \(--workers\) must be in"),
        ({"threads": 0}, r"threads \(--threads\) must be in"),
        ({"executor": "ray", "workers": 2}, "local executor"),
        ({"address": "auto"}, "only with executor 'ray'"),
        ({"device": "tpu"}, "unknown device"),
        ({"device": "cuda:x"}, "unknown device"),
    ):
        with pytest.raises(Exception, match=match):
            Execution(**bad)
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="no CUDA device"):
            Execution(device="cuda")


class _OneAnswerServer:
    """A TCP server on localhost that answers every connection with ``reply`` (bytes, or
    None: nothing) after reading what the client sends, on a daemon thread."""

    def __init__(self, reply: bytes | None) -> None:
        import socket
        import threading

        self.reply = reply
        self.connections: list = []  # kept open until the test ends
        self.received: list[bytes] = []  # the first bytes each client sent
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.received.append(connection.recv(64))
            if self.reply is not None:
                connection.sendall(self.reply)
            self.connections.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.parametrize(
    "reply",
    [None, b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x00\x00\x06\x01\x04\x00\x00\x00\x01"],
    ids=["silent", "http1", "h2-headers-frame"],
)
def test_an_address_that_is_not_a_ray_cluster_is_refused_at_once(reply, monkeypatch):
    """A port that accepts TCP but does not answer the HTTP/2 preface with a SETTINGS frame
    (a silent service, an HTTP/1 server, another frame first) is refused within the timeout,
    before ray.init would wait ~20 s on it: the refusal is the HTTP/2 probe's, with the
    check's timeout, and Ray is never initialised."""
    import sys
    import time
    import types

    from skyshare.errors import SkyshareError
    from skyshare.experiments import jobs as jobs_module

    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    probes = []  # (timeout_s, answer) of each HTTP/2 probe
    probe = jobs_module._answers_http2

    def spy(connection, timeout_s):
        answer = probe(connection, timeout_s)
        probes.append((timeout_s, answer))
        return answer

    monkeypatch.setattr(jobs_module, "_answers_http2", spy)
    inits = []  # a stand-in Ray: the check must not get as far as ray.init
    fake_ray = types.ModuleType("ray")
    fake_ray.init = lambda *args, **kwargs: inits.append((args, kwargs))
    fake_ray.is_initialized = lambda: False
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    server = _OneAnswerServer(reply)
    try:
        execution = Execution(executor="ray", address=f"127.0.0.1:{server.port}")
        with pytest.raises(SkyshareError, match="does not answer as a Ray cluster"):
            execution.check_address(timeout_s=0.5)
        deadline = time.monotonic() + 10  # the server thread records what it read
        while not server.received and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.close()
    assert probes == [(0.5, False)]  # one probe, bounded by the check's timeout, said no
    assert inits == []
    # the probe sent the HTTP/2 client preface (RFC 9113 §3.4) on its one connection
    assert len(server.received) == 1
    assert server.received[0].startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")


def test_an_address_that_answers_http2_passes_the_check(monkeypatch):
    """A server whose first frame is SETTINGS (gRPC's, so Ray's) passes; with RAY_USE_TLS set,
    where the cluster expects a TLS handshake, only the TCP connection is checked."""
    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    for reply, tls in ((settings, None), (None, "1")):
        if tls:
            monkeypatch.setenv("RAY_USE_TLS", tls)
        server = _OneAnswerServer(reply)
        try:
            Execution(executor="ray", address=f"ray://127.0.0.1:{server.port}").check_address(
                timeout_s=0.5
            )
        finally:
            server.close()


def test_device_is_not_part_of_the_job_identity(tmp_path):
    job = Job("t", "s", 0, {"x": 2})
    assert Job("t", "s", 0, {"x": 2}, device="cuda").job_id == job.job_id
    run_jobs([job], square, tmp_path, QUIET)
    assert json.loads((tmp_path / "jobs" / job.job_id / "job.json").read_text())["device"] == "cpu"


def test_with_seeds_repeats_every_distinct_job_and_reuses_the_presets_ids():
    preset_jobs = [
        Job("e", "A", 0, {"x": 1, "seeds": [0]}),
        Job("e", "A", 0, {"x": 2, "seeds": [0]}),
        Job("e", "B", 0, {"x": 1, "seeds": [0]}),
    ]
    jobs = with_seeds(preset_jobs, [0, 3])
    assert [(j.scheme, j.params["x"], j.seed) for j in jobs] == [
        ("A", 1, 0), ("A", 1, 3), ("A", 2, 0), ("A", 2, 3), ("B", 1, 0), ("B", 1, 3),
    ]  # fmt: skip
    assert {j.job_id for j in jobs if j.seed == 0} == {j.job_id for j in preset_jobs}
    assert len({j.job_id for j in jobs}) == 6
    for bad in ([], [1, 1], [-1], [0.5]):
        with pytest.raises(Exception, match="seeds"):
            with_seeds(preset_jobs, bad)


def uses_its_threads(job, folder):
    torch.set_num_threads(job.threads)
    return {"threads": torch.get_num_threads()}


def test_threads_default_to_one_for_every_executor(tmp_path, monkeypatch):
    from skyshare.experiments import jobs

    monkeypatch.setattr(jobs, "available_cpus", lambda: 4)
    assert Execution().threads_per_job == 1
    assert Execution(workers=2).threads_per_job == 1
    assert Execution(executor="ray").threads_per_job == 1
    assert Execution(threads=3, workers=2).threads_per_job == 3
    with pytest.raises(Exception, match=r"threads \(--threads\) must be in"):
        Execution(threads=0)
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    result = run_jobs([Job("t", "s", 0)], uses_its_threads, tmp_path, Execution(threads=other))
    assert next(iter(result.values()))["threads"] == other
    assert torch.get_num_threads() == before  # the caller's setting is restored
    assert Job("t", "s", 0, threads=4).job_id == Job("t", "s", 0).job_id


def test_a_started_job_resumes_only_with_its_threads_and_device(tmp_path):
    """Thread count and device change floating-point results: a job that has a checkpoint
    is refused, with a clear message, when rerun with other settings; nothing is run."""
    from skyshare.errors import SkyshareError

    job = Job("t", "s", 0, {"x": 2})
    folder = tmp_path / "jobs" / job.job_id
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"threads": 1, "device": "cpu"}))
    (folder / "checkpoint.pt").write_bytes(b"started")
    CALLS.clear()
    with pytest.raises(
        SkyshareError, match=r"started with 1 torch thread\(s\) on cpu.*--threads 1"
    ):
        run_jobs([job], square, tmp_path, Execution(threads=2, progress=False))
    assert CALLS == []
    run_jobs([job], square, tmp_path, QUIET)  # the same settings resume
    assert CALLS == [job.job_id]


def test_corrupt_markers_and_a_job_folder_replaced_by_a_file_are_named(tmp_path):
    from skyshare.errors import SkyshareError

    job = Job("t", "s", 0, {"x": 2})
    run_jobs([job], square, tmp_path, QUIET)
    marker = tmp_path / "jobs" / job.job_id / "result.json"
    marker.write_text("{not json")
    with pytest.raises(SkyshareError, match=r"result\.json .*unreadable.*delete it"):
        run_jobs([job], square, tmp_path, QUIET)
    marker.write_text("[1, 2]")
    with pytest.raises(SkyshareError, match="not a JSON object"):
        run_jobs([job], square, tmp_path, QUIET)
    marker.unlink()
    folder = marker.parent
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    folder.write_text("a file where the job folder was")
    with pytest.raises(SkyshareError, match="is a file"):
        run_jobs([job], square, tmp_path, QUIET)


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """Issue 12 item 4: SIGKILL of the parent of `--workers N` used to leave the workers
    computing, then idle forever. They now end within about a second of their parent."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = (
        "from skyshare.experiments.jobs import Execution, Job, run_jobs\n"
        "from skyshare.experiments.smoke import smoke_job\n"
        "jobs = [Job('smoke', 'slow', s, {'x': 2, 'sleep_s': 600}) for s in range(2)]\n"
        f"run_jobs(jobs, smoke_job, {str(tmp_path)!r}, Execution(workers=2, progress=False))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])

    def children():
        path = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    deadline = time.monotonic() + 60
    while len(children()) < 3 and time.monotonic() < deadline:  # 2 workers + the manager
        time.sleep(0.1)
    workers = children()
    assert workers, "no worker started"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and _running(pid)]
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert alive == [], "workers outlived their parent"


def _running(pid):
    """A process that exists and is not a zombie waiting to be reaped."""
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_stops_worker_processes_at_once(tmp_path):
    """Ctrl-C with --workers: only the parent handles it (the workers ignore SIGINT); it
    stops the workers at once, whatever their jobs are doing, and raises KeyboardInterrupt."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys\n"
        "from skyshare.experiments.jobs import Execution, Job, run_jobs\n"
        "from skyshare.experiments.smoke import smoke_job\n"
        "jobs = [Job('smoke', 'slow', s, {'x': 2, 'sleep_s': 600}) for s in range(2)]\n"
        "try:\n"
        f"    run_jobs(jobs, smoke_job, {str(tmp_path)!r}, Execution(workers=2, progress=False))\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
    )
    from pathlib import Path

    from test_cli import _default_sigint  # SIGINT handled even under a background runner

    parent = subprocess.Popen([sys.executable, "-c", script], preexec_fn=_default_sigint)

    def children():
        path = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("jobs/*/job.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # both workers are running their job
    workers = children()
    assert len(list(tmp_path.glob("jobs/*/job.json"))) == 2, "the workers never started"
    assert len(workers) >= 2, f"worker processes not found: {workers}"
    parent.send_signal(signal.SIGINT)
    try:  # the 600 s jobs are stopped, not waited for
        assert parent.wait(timeout=30) == 130
    finally:
        if parent.poll() is None:
            parent.kill()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if _running(pid)]
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert alive == [], "worker processes outlived the Ctrl-C"


# --- Experiment.run: checks before writing, and the run directory's earlier results -----------


class _ToyPreset(ExperimentPreset):
    xs: list[int] = Field(default_factory=lambda: [2, 3])
    note: str | None = None  # an option "added later": None when unset


class _TaggedToyPreset(_ToyPreset):
    tags: list[int] = Field(default_factory=list)  # a list that makes no jobs


def _toy_experiment(name="toy", finished=None, preset_class=_ToyPreset):
    from skyshare.errors import ConfigError
    from skyshare.experiments.jobs import Experiment

    def jobs(preset, preset_name, schemes=None):
        names = schemes or ["a", "b"]
        return [
            Job(name, s, seed, {"x": x}) for s in names for x in preset.xs for seed in preset.seeds
        ]

    def check_job(job):
        if job.params["x"] < 0:
            raise ConfigError(f"x must be >= 0, got {job.params['x']}")

    def finish(run_dir, selected, summary):
        if finished is not None:
            finished.append(sorted(job.job_id for job in selected))

    def table(summary):
        return "toy", ["job"], [[key] for key in summary["results"]]

    return Experiment(
        name, "toy", preset_class, jobs, smoke_job, finish, table, ("a", "b"), check_job
    )


def test_a_bad_job_parameter_fails_before_anything_is_written(tmp_path):
    from skyshare.errors import ConfigError

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="x must be >= 0, got -1"):
        _toy_experiment().run(out, _ToyPreset(xs=[1, -1]), execution=QUIET)
    assert not out.exists()


def test_a_job_given_twice_is_refused_before_anything_is_written(tmp_path):
    """A preset list with a repeated value or a scheme named twice would run one job twice:
    refused naming what repeats, with no folder created (a preset.yaml written first would
    lock the folder against the corrected command)."""
    from skyshare.errors import ConfigError

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"same job twice: xs \[2, 3, 2\] lists 2 twice"):
        _toy_experiment().run(out, _ToyPreset(xs=[2, 3, 2]), execution=QUIET)
    with pytest.raises(ConfigError, match="same job twice: --schemes lists a twice"):
        _toy_experiment().run(out, _ToyPreset(), schemes=["a", "b", "a"], execution=QUIET)
    # a repeated value in a list that makes no jobs is not blamed
    tagged = _toy_experiment(preset_class=_TaggedToyPreset)
    with pytest.raises(ConfigError, match=r"twice: xs \[2, 2\] lists 2 twice; give"):
        tagged.run(out, _TaggedToyPreset(xs=[2, 2], tags=[1, 1]), execution=QUIET)
    with pytest.raises(ConfigError, match=r"twice: --schemes lists b twice; give"):
        tagged.run(out, _TaggedToyPreset(tags=[1, 1]), schemes=["b", "b"], execution=QUIET)
    assert not out.exists()
    _toy_experiment().run(out, _ToyPreset(xs=[2, 3]), schemes=["a", "b"], execution=QUIET)


def test_a_folder_of_another_run_is_refused_and_left_as_it_was(tmp_path):
    from skyshare.errors import SkyshareError

    out = tmp_path / "run"
    _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(SkyshareError, match="holds a toy run; running other there"):
        _toy_experiment("other").run(out, _ToyPreset(), execution=QUIET)
    with pytest.raises(SkyshareError, match=r"other parameters \(xs: \[2, 3\] there, \[4\] now\)"):
        _toy_experiment().run(out, _ToyPreset(xs=[4]), execution=QUIET)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "summary.json").unlink()  # a run stopped before its first summary: preset.yaml
    with pytest.raises(SkyshareError, match="holds a toy run; running other there"):
        _toy_experiment("other").run(out, _ToyPreset(), execution=QUIET)
    (out / "summary.json").write_text("[1, 2")
    with pytest.raises(SkyshareError, match=r"summary\.json is unreadable"):
        _toy_experiment().run(out, _ToyPreset(), execution=QUIET)


def test_a_resumed_run_leaves_its_preset_file_untouched(tmp_path):
    """Rerunning the same preset (to resume, or after a refused job) does not rewrite
    preset.yaml; a run under another preset name with the same values records that name."""
    import os

    out = tmp_path / "run"
    _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    preset = out / "preset.yaml"
    os.utime(preset, ns=(10**9, 10**9))  # an old time stamp, so a rewrite would show
    _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    assert preset.stat().st_mtime_ns == 10**9
    _toy_experiment().run(out, _ToyPreset(), execution=QUIET, preset_name="renamed")
    assert preset.stat().st_mtime_ns != 10**9 and "'renamed'" in preset.read_text()


def test_a_run_of_some_schemes_keeps_the_folders_other_results(tmp_path):
    out = tmp_path / "run"
    finished: list[list[str]] = []
    full = _toy_experiment(finished=finished).run(out, _ToyPreset(), execution=QUIET)
    assert len(full["results"]) == 4
    part = _toy_experiment(finished=finished).run(out, _ToyPreset(), schemes=["a"], execution=QUIET)
    assert part["results"] == full["results"]  # b's results kept, a's reused
    assert finished[1] == finished[0]  # the figure gets every job
    assert json.loads((out / "summary.json").read_text())["results"] == full["results"]
    more = _toy_experiment(finished=finished).run(
        out, _ToyPreset(), seeds=[1], schemes=["b"], execution=QUIET
    )
    assert set(full["results"]) < set(more["results"]) and len(more["results"]) == 6


def test_a_folder_written_before_an_option_existed_is_still_the_same_run(tmp_path):
    out = tmp_path / "run"
    first = _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    summary = json.loads((out / "summary.json").read_text())
    del summary["params"]["note"]  # as an older version wrote it
    (out / "summary.json").write_text(json.dumps(summary))
    again = _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    assert again["results"] == first["results"]


# --- damaged files of a run directory, nested config errors, --threads -------------------------


class _Scenario(StrictModel):
    n: int = Field(1, ge=1, le=8)


class _NestedPreset(ExperimentPreset):
    scenario: dict = Field(default_factory=dict)
    xs: list[int] = Field(default_factory=lambda: [2, 3])


def _drawing_experiment(check_result=None):
    """An experiment whose table and figure read every result's ``value`` and whose jobs
    build a nested ``scenario`` config (as the real ones build their scenario's)."""
    from skyshare.experiments.jobs import Experiment

    def jobs(preset, preset_name, schemes=None):
        return [
            Job("draw", "a", seed, {"x": x, "scenario": preset.scenario})
            for x in preset.xs
            for seed in preset.seeds
        ]

    def check_job(job):
        _Scenario.from_dict(job.params["scenario"], what="toy scenario")

    def finish(run_dir, selected, summary):
        values = [result["value"] + 0 for result in summary["results"].values()]
        (run_dir / "figure.txt").write_text(f"{sorted(values)}\n")

    def table(summary):
        return "draw", ["value"], [[f"{r['value'] + 0}"] for r in summary["results"].values()]

    return Experiment(
        "draw",
        "toy",
        _NestedPreset,
        jobs,
        smoke_job,
        finish,
        table,
        ("a",),
        check_job,
        check_result,
    )


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("damage", ["{}", '{"value": "abc"}'])
def test_a_result_file_that_lacks_fields_is_named_by_the_hook_and_nothing_is_overwritten(
    damage, tmp_path
):
    """A result.json that is a JSON object but not a result (edited, another version) is
    named by the experiment's check_result with the damaged-file message before anything is
    drawn, and the summary and figures of the run stay as they were."""
    from skyshare.errors import SkyshareError

    def check_result(job, result):
        result["value"] + 0

    experiment = _drawing_experiment(check_result)
    out = tmp_path / "run"
    experiment.run(out, _NestedPreset(), execution=QUIET)
    marker = next((out / "jobs").iterdir()) / "result.json"
    marker.write_text(damage)
    before = _files(out)
    with pytest.raises(SkyshareError) as info:
        experiment.run(out, _NestedPreset(), execution=QUIET)
    assert str(info.value).startswith(
        f"{marker} (the result of job {marker.parent.name}) is damaged"
    )
    assert "delete it and rerun the same command: that job runs again" in str(info.value)
    assert _files(out) == before
    marker.unlink()
    experiment.run(out, _NestedPreset(), execution=QUIET)  # that job runs again
    assert "value" in json.loads(marker.read_text())


@pytest.mark.parametrize("cause", ["damaged result", "plotting bug"])
def test_without_the_hook_a_failed_drawing_blames_no_file(cause, tmp_path):
    """Without check_result, a drawing that fails on results read back keeps its own
    exception and traceback, with a note on what to check, and names no file: a plotting bug
    (every result sound) looks the same as a damaged result, and guessing would tell the user
    to delete good results. The files of the run stay as they were."""
    from skyshare.experiments.jobs import Experiment

    base = _drawing_experiment()
    out = tmp_path / "run"
    base.run(out, _NestedPreset(), execution=QUIET)
    if cause == "damaged result":
        experiment = base
        next((out / "jobs").iterdir()).joinpath("result.json").write_text("{}")
    else:

        def finish(run_dir, selected, summary):
            (run_dir / "figure.txt").write_text("half drawn")
            raise ZeroDivisionError("a bug")

        parts = ("name", "description", "Preset", "jobs", "run_job")
        experiment = Experiment(
            *[getattr(base, f) for f in parts], finish, base.table, base.schemes, base.check_job
        )
    before = _files(out)
    with pytest.raises((KeyError, ZeroDivisionError)) as info:
        experiment.run(out, _NestedPreset(), execution=QUIET)
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "read back from" in note and "otherwise this is a bug" in note
    assert "is damaged" not in str(info.value)
    assert _files(out) == before


def test_a_finish_that_fails_on_fresh_results_keeps_its_traceback_and_the_old_files(tmp_path):
    """A finish that fails on the results this run computed is a bug, not a damaged file:
    its own exception (with the one read back, seed 0, beside them), and the files it had
    written are put back, summary.json included."""
    from skyshare.experiments.jobs import Experiment

    base = _drawing_experiment()

    def finish(run_dir, selected, summary):
        (run_dir / "figure.txt").write_text("half drawn")
        (run_dir / "new.txt").write_text("half drawn")
        raise ZeroDivisionError("a bug")

    out = tmp_path / "run"
    base.run(out, _NestedPreset(xs=[2]), execution=QUIET)
    before = _files(out)
    broken = Experiment(
        *[getattr(base, f) for f in ("name", "description", "Preset", "jobs", "run_job")],
        finish,
        base.table,
        base.schemes,
        base.check_job,
    )
    with pytest.raises(ZeroDivisionError):
        broken.run(out, _NestedPreset(xs=[2]), seeds=[0, 1], execution=QUIET)
    after = {p: data for p, data in _files(out).items() if "jobs" not in p.parts}
    assert after == {p: data for p, data in before.items() if "jobs" not in p.parts}


def test_a_summary_that_parses_but_lacks_fields_is_damaged_not_another_run(tmp_path):
    from skyshare.errors import SkyshareError

    out = tmp_path / "run"
    _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    (out / "summary.json").write_text(json.dumps({"experiment": "toy"}))
    with pytest.raises(SkyshareError, match=r"summary\.json is damaged: params missing") as info:
        _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    assert "other parameters" not in str(info.value)


def test_a_damaged_job_file_says_what_a_rerun_does_and_the_rerun_does_it(tmp_path):
    """job.json damaged: the message says the result is kept and job.json written again;
    after deleting it, the rerun reuses the result and writes job.json."""
    from skyshare.errors import SkyshareError

    out = tmp_path / "run"
    first = _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    folder = next((out / "jobs").iterdir())
    (folder / "job.json").write_text("{not json")
    with pytest.raises(SkyshareError, match=r"job\.json is written again by the next run"):
        _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    (folder / "job.json").unlink()
    result = (folder / "result.json").read_bytes()
    again = _toy_experiment().run(out, _ToyPreset(), execution=QUIET)
    assert again["results"] == first["results"]
    assert (folder / "result.json").read_bytes() == result  # kept, not run again
    description = json.loads((folder / "job.json").read_text())
    assert Job(**description).job_id == folder.name


def test_a_started_job_without_its_job_file_is_not_resumed_blindly(tmp_path):
    """A job with a checkpoint resumes only with the threads and device it started with,
    which its job.json records: with that file missing (or reduced to the job's identity) the
    runner refuses and asks for the job's folder to be deleted, instead of resuming with any
    setting."""
    from skyshare.errors import SkyshareError
    from skyshare.experiments.jobs import _check_resume_execution, job_folder

    job = Job("toy", "a", 0, {"x": 1}, threads=1, device="cpu")
    folder = job_folder(tmp_path, job)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(SkyshareError, match=r"no record of the torch threads .* starts afresh"):
        _check_resume_execution(tmp_path, job)
    identity = {"experiment": "toy", "scheme": "a", "seed": 0, "params": {"x": 1}}
    (folder / "job.json").write_text(json.dumps(identity))
    with pytest.raises(SkyshareError, match=r"missing or incomplete"):
        _check_resume_execution(tmp_path, job)
    (folder / "job.json").write_text(json.dumps({**identity, "threads": 1, "device": "cpu"}))
    _check_resume_execution(tmp_path, job)  # the same setting: resumed


def test_nested_config_errors_name_the_path_in_the_preset_and_the_config_file(tmp_path):
    from skyshare.errors import ConfigError

    out = tmp_path / "run"
    experiment = _drawing_experiment()
    with pytest.raises(ConfigError, match=r"  - scenario\.n = \{'x': 5\}: Input should be"):
        experiment.run(out, None, overrides=["scenario.n.x=5"], execution=QUIET)
    config = tmp_path / "mine.yaml"
    config.write_text("scenario: {n: [4]}\n")
    with pytest.raises(
        ConfigError, match=rf"scenario\.n = \[4\]: .*from config file {re.escape(str(config))}"
    ):
        experiment.run(out, None, config=config, execution=QUIET)
    with pytest.raises(ConfigError) as info:  # --set replaces the file's value
        experiment.run(out, None, config=config, overrides=["scenario.n=0"], execution=QUIET)
    assert "scenario.n = 0: must be >= 1" in str(info.value)
    assert "config file" not in str(info.value)
    assert not out.exists()


def test_more_local_threads_than_cpus_are_warned_about(monkeypatch):
    """Oversubscribing the CPUs (workers x threads) slows the jobs: a warning, not a refusal
    (a job started elsewhere with more threads resumes only with its own count)."""
    import warnings

    from skyshare.errors import SkyshareError
    from skyshare.experiments import jobs

    monkeypatch.setattr(jobs, "available_cpus", lambda: 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Execution(threads=2).threads_per_job == 2
        assert Execution(executor="ray", threads=3).threads_per_job == 3  # the cluster's cores
    with pytest.warns(RuntimeWarning, match=r"1 worker\(s\) x 3 torch thread\(s\) .* 2 CPU"):
        assert Execution(threads=3).threads_per_job == 3
    with pytest.warns(RuntimeWarning, match=r"2 worker\(s\) x 2 torch"):
        Execution(workers=2, threads=2)
    with pytest.raises(SkyshareError, match=r"must be in \[1, 1024\]"):
        Execution(executor="ray", threads=1025)
    assert 1 <= jobs.available_cpus() <= (os.cpu_count() or 1)
