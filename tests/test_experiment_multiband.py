"""multiband-fig5/6/7 (seed 004 Figs. 5-7) end to end on tiny presets: every scheme and sweep
point is in the summary and the figure is written; invariants of the evaluation (finite
positive capacities, the per-BS budget spent exactly, FLWF = mean over its starts, identical
test realizations for every scheme); a rerun resumes without recomputing; an interrupted
learned job resumes from its checkpoint; bad input through the CLI exits with status 2."""

import contextlib
import csv
import json
import math

import pytest
import torch

from skyshare.cli import main
from skyshare.errors import ConfigError
from skyshare.experiments import multiband_capacity as mc
from skyshare.experiments.jobs import Execution, job_folder
from skyshare.rl.td3_mix import TD3MixAgents as TD3Mix

QUIET = Execution(progress=False)

_COMMON = {
    "seeds": [0],
    "env": {},
    "td3": {
        "hidden_sizes": [16, 16],
        "mixer_state": "interference",
        "buffer_size": 64,
        "learning_starts": 8,
        "hypernet_hidden": [8],
        "mixing_embed_dim": 8,
        "flwf_iterations": 5,
    },
    "train_batch": 4,
    "train_steps": 4,
    "checkpoint_every": 2,
    "test_batch": 2,
    "test_seed": 1_000_000,
    "flwf_starts": 4,
    "flwf_max_iter": 40,
    "flwf_tol": 1e-4,
}
_SCENARIO = {"n_cells": 2, "snr_db": 20.0, "n_blocks": 2}
TINY = {
    "multiband-fig5": {
        **_COMMON,
        "sweep": "(M, U)",
        "scenario": {**_SCENARIO, "n_freq": 3, "sir_db": 0.0},
        "points": [{"n_antennas": 2, "users_per_cell": 1}, {"n_antennas": 4, "users_per_cell": 2}],
    },
    "multiband-fig6": {
        **_COMMON,
        "sweep": "n_freq",
        "scenario": {**_SCENARIO, "sir_db": 0.0},
        "points": [{"n_antennas": 2, "users_per_cell": 1, "n_freq": f} for f in (2, 3)],
    },
    "multiband-fig7": {
        **_COMMON,
        "sweep": "sir_db",
        "scenario": {**_SCENARIO, "n_antennas": 2, "users_per_cell": 1, "n_freq": 2},
        "points": [{"sir_db": 0.0}, {"sir_db": 6.0}],
    },
}
EXPERIMENTS = {"multiband-fig5": mc.FIG5, "multiband-fig6": mc.FIG6, "multiband-fig7": mc.FIG7}


@pytest.fixture
def tiny(tmp_path):
    """The tiny presets as YAML files for ``skyshare run --config`` (name -> path)."""
    import yaml

    paths = {}
    for name, preset in TINY.items():
        paths[name] = tmp_path / f"{name}-tiny.yaml"
        paths[name].write_text(yaml.safe_dump(preset))
    return paths


def _run(name, run_dir, **kwargs):
    """Run ``name`` on its tiny preset (a preset object, reported as "tiny")."""
    preset = mc.Preset(**TINY[name])
    return EXPERIMENTS[name].run(run_dir, preset, preset_name="tiny", execution=QUIET, **kwargs)


def _jobs(name, schemes=None):
    return EXPERIMENTS[name].jobs(mc.Preset(**TINY[name]), "tiny", schemes)


def _eval_rows(folder):
    with open(folder / "eval.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_scheme_and_point_runs_and_figure_is_written(tmp_path, name):
    experiment = EXPERIMENTS[name]
    summary = _run(name, tmp_path)
    preset = TINY[name]
    results = summary["results"]
    seen = {(r["scheme"], json.dumps(r["point"], sort_keys=True)) for r in results.values()}
    expected = {
        (scheme, json.dumps(point, sort_keys=True))
        for scheme in mc.SCHEMES
        for point in preset["points"]
    }
    assert seen == expected
    assert len(summary["table"]) == len(expected)
    figure = tmp_path / f"fig{name[-1]}.png"
    assert figure.stat().st_size > 10_000
    assert json.loads((tmp_path / "summary.json").read_text())["preset"] == "tiny"
    _title, columns, rows = experiment.table(summary)
    assert len(rows) == len(expected) and len(columns) == len(rows[0])

    n_realizations = preset["test_batch"] * preset["scenario"]["n_blocks"]
    for job in _jobs(name):
        folder = job_folder(tmp_path, job)
        result = results[job.job_id]
        # Positive, finite capacities, on the stated number of test realizations.
        assert math.isfinite(result["capacity_per_cell"]) and result["capacity_per_cell"] > 0
        assert result["n_realizations"] == n_realizations
        # Every scheme spends each BS's block budget P_b(t) exactly (simplex mapping and
        # water-filling both use the whole per-user share, eq. (14)), never more (eq. (6b)).
        assert result["max_power_over_budget"] == pytest.approx(1.0, abs=1e-4)
        rows = _eval_rows(folder)
        starts = preset["flwf_starts"] if job.scheme == "FLWF" else 1
        assert len(rows) == n_realizations * starts
        assert all(float(r["max_bs_power_over_budget"]) <= 1 + 1e-4 for r in rows)
        assert all(math.isfinite(float(r["capacity_per_cell"])) for r in rows)
        config = json.loads((folder / "config.json").read_text())
        assert config["scenario"]["n_cells"] == 2 and config["point"] == job.params["point"]
        if job.scheme in mc.SCHEMES.names(learns=True):
            assert (folder / "networks.pt").exists()  # the trained agents
            assert not (folder / "checkpoint.pt").exists()  # finished: resumption is done
            assert config["td3_mix"]["hidden_sizes"] == [16, 16]
            assert result["train_steps"] == preset["train_steps"]


def test_flwf_is_the_mean_over_its_starts_and_realizations_are_shared(tmp_path):
    summary = _run("multiband-fig5", tmp_path, schemes=["FLWF", "SSWF"])
    preset = TINY["multiband-fig5"]
    for job in _jobs("multiband-fig5", ["FLWF", "SSWF"]):
        rows = _eval_rows(job_folder(tmp_path, job))
        result = summary["results"][job.job_id]
        # Mean over starts per realization, then over realizations, recomputed from the CSV.
        per_realization: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            key = (row["block"], row["realization"])
            per_realization.setdefault(key, []).append(float(row["capacity_per_cell"]))
        means = [sum(v) / len(v) for v in per_realization.values()]
        assert result["capacity_per_cell"] == pytest.approx(sum(means) / len(means), rel=1e-6)
        if job.scheme == "FLWF":
            assert {len(v) for v in per_realization.values()} == {preset["flwf_starts"]}
            assert all(int(row["flwf_iterations"]) <= preset["flwf_max_iter"] for row in rows)

    # SSWF is deterministic given the channels: recomputing it on the documented test seed
    # from the stored config reproduces the job's numbers (so every scheme saw these blocks).
    from skyshare.envs.multiband import MultibandEnv
    from skyshare.scenarios.multiband import MultibandConfig
    from skyshare.solvers.waterfilling import sswf

    job = _jobs("multiband-fig5", ["SSWF"])[-1]
    folder = job_folder(tmp_path, job)
    config = json.loads((folder / "config.json").read_text())
    seed = config["test_scenario_seed"]
    env = MultibandEnv(
        MultibandConfig(**{**config["scenario"], "seed": seed}), batch_size=preset["test_batch"]
    )
    env.reset(seed=seed)
    expected = []
    while not env.done:
        expected.append(env.step_power(sswf(env.problem()).power).reward.mean(-1))
    stored = torch.tensor([float(r["capacity_per_cell"]) for r in _eval_rows(folder)])
    assert torch.allclose(stored, torch.cat(expected), rtol=1e-5)


def test_a_sixth_registered_scheme_runs_and_plots_with_the_five(tmp_path):
    from skyshare.plots import plot_capacity_sweep
    from skyshare.schemes.base import Stateless
    from skyshare.schemes.multiband import MULTIBAND_SCHEMES, MultibandDecision

    class EqualPower(Stateless):
        """Each user spends its budget P_b(t) / U equally over the N_f channels."""

        def __init__(self, env, options=None) -> None:
            pass

        def decide(self, env):
            return MultibandDecision(env.scenario.equal_power(env.state))

    MULTIBAND_SCHEMES.register("equal power", EqualPower, learns=False)
    try:
        assert "equal power" in mc.SCHEMES  # the experiment reads the registry
        summary = _run("multiband-fig7", tmp_path)
        schemes = {result["scheme"] for result in summary["results"].values()}
        assert schemes == {"random", "SSWF", "FLWF", "TD3-MIX", "TD3-MIX+FLWF", "equal power"}
        equal = [r for r in summary["table"] if r["scheme"] == "equal power"]
        assert len(equal) == len(TINY["multiband-fig7"]["points"])
        assert all(
            math.isfinite(r["capacity_per_cell"]) and r["capacity_per_cell"] > 0 for r in equal
        )
        assert (tmp_path / "fig7.png").stat().st_size > 10_000
        # the plot takes any number of schemes: twelve made-up ones (colours and markers cycle)
        row = next(iter(summary["results"].values()))
        results = {str(i): {**row, "scheme": f"scheme {i}"} for i in range(12)}
        rows = mc.aggregate({**summary, "results": results})
        path = plot_capacity_sweep(rows, "sir_db", "twelve schemes", tmp_path / "many.png")
        assert path.stat().st_size > 10_000
    finally:
        MULTIBAND_SCHEMES.unregister("equal power")
    assert "equal power" not in mc.SCHEMES


def test_cli_run_resumes_and_rejects_bad_input(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    argv = ["run", "multiband-fig7", "--config", str(tiny["multiband-fig7"]), "--out", str(out)]
    argv += ["--schemes", "SSWF"]
    assert main(argv) == 0
    markers = sorted(out.glob("jobs/*/result.json"))
    assert len(markers) == len(TINY["multiband-fig7"]["points"])
    stamps = [marker.stat().st_mtime_ns for marker in markers]
    assert main(argv) == 0  # resumed: the finished jobs are not recomputed
    assert [marker.stat().st_mtime_ns for marker in markers] == stamps
    assert "SSWF" in capsys.readouterr().out
    assert (out / "fig7.png").exists()
    assert main(["run", "multiband-fig5", "--preset", "huge"]) == 2
    assert main(["run", "multiband-fig6", "--preset", "tiny", "--schemes", "SSWF"]) == 2
    assert main(["run", "multiband-fig6", "--schemes", "ZF"]) == 2
    assert "unknown scheme(s) ZF" in capsys.readouterr().err


def test_interrupted_learned_job_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    job = _jobs("multiband-fig5", ["TD3-MIX+FLWF"])[0]
    folder = job_folder(tmp_path, job)
    folder.mkdir(parents=True)
    trained_steps = []
    original_train = TD3Mix.train

    def interrupted_after_first_chunk(self, env, n_steps, **kwargs):
        if trained_steps:
            raise KeyboardInterrupt  # the run is killed during the second chunk
        trained_steps.append(n_steps)
        return original_train(self, env, n_steps, **kwargs)

    monkeypatch.setattr(TD3Mix, "train", interrupted_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        mc.capacity_job(job, folder)
    assert json.loads((folder / "train.json").read_text())["steps_done"] == 2
    saved = torch.load(folder / "checkpoint.pt", weights_only=False)

    loaded = []
    original_load = TD3Mix.load

    def counting_load(self, path):
        original_load(self, path)
        loaded.append({k: v.clone() for k, v in self.actor.state_dict().items()})

    def counting_train(self, env, n_steps, **kwargs):
        trained_steps.append(n_steps)
        return original_train(self, env, n_steps, **kwargs)

    monkeypatch.setattr(TD3Mix, "load", counting_load)
    monkeypatch.setattr(TD3Mix, "train", counting_train)
    result = mc.capacity_job(job, folder)
    # The checkpoint was loaded (the actor as saved), and only the 2 missing steps trained.
    assert len(loaded) == 1
    for key, value in saved["actor"].items():
        assert torch.equal(loaded[0][key], value)
    assert trained_steps == [2, 2]
    assert result["resumed_from_checkpoint"] == 1 and result["train_steps"] == 4
    assert len(list(csv.DictReader((folder / "train.csv").read_text().splitlines()))) == 4

    # A finished checkpoint: a rerun (result.json lost) evaluates without training at all.
    result = mc.capacity_job(job, folder)
    assert trained_steps == [2, 2] and len(loaded) == 2
    assert result["resumed_from_checkpoint"] == 2


@contextlib.contextmanager
def _second_training_chunk_interrupted(monkeypatch):
    """``TD3Mix.train`` raises KeyboardInterrupt on its second call (a run stopped during its
    second training chunk); yields the chunk sizes trained before."""
    original_train = TD3Mix.train
    calls = []

    def interrupted_after_first_chunk(self, env, n_steps, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(n_steps)
        return original_train(self, env, n_steps, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(TD3Mix, "train", interrupted_after_first_chunk)
        yield calls


def _interrupted_job(tmp_path, monkeypatch, scheme="TD3-MIX"):
    """A learned job stopped during its second training chunk: its folder holds the
    checkpoint and ``train.json`` of the first chunk (2 of 4 steps)."""
    job = _jobs("multiband-fig5", [scheme])[0]
    folder = job_folder(tmp_path, job)
    folder.mkdir(parents=True)
    with _second_training_chunk_interrupted(monkeypatch), pytest.raises(KeyboardInterrupt):
        mc.capacity_job(job, folder)
    assert json.loads((folder / "train.json").read_text())["steps_done"] == 2
    return job, folder


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"steps_done": \n', "not readable as JSON: JSONDecodeError"),
        ("[2, 0.5]", "holds a JSON list, not an object"),
        ('{"train_time_s": 0.5}', "missing key 'steps_done'"),
        ('{"steps_done": 2}', "missing key 'train_time_s'"),
        (
            '{"steps_done": "2", "train_time_s": 0.5}',
            "steps_done = '2': must be an integer in [0, 4]",
        ),
        ('{"steps_done": 9, "train_time_s": 0.5}', "steps_done = 9: must be an integer in [0, 4]"),
        ('{"steps_done": true, "train_time_s": 0.5}', "steps_done = True: must be an integer"),
        (
            '{"steps_done": 2, "train_time_s": -1}',
            "train_time_s = -1: must be a number in [0, inf)",
        ),
        ('{"steps_done": 2, "train_time_s": Infinity}', "train_time_s = inf: must be a number"),
        ('{"steps_done": 2, "train_time_s": 1, "resumed": -3}', "resumed = -3: must be an integer"),
    ],
)
def test_a_corrupt_train_json_is_refused_naming_it_and_nothing_changes(
    tmp_path, monkeypatch, text, needle
):
    job, folder = _interrupted_job(tmp_path, monkeypatch)
    state_file = folder / "train.json"
    state_file.write_text(text)
    before = _snapshot(folder)
    with pytest.raises(ConfigError) as info:
        mc.capacity_job(job, folder)
    message = str(info.value)
    assert f"{state_file} is corrupt" in message and needle in message
    assert "delete it and rerun the same command" in message and "\n" not in message
    assert _snapshot(folder) == before  # nothing written: the files are as they were


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"dims": [1, 2, 3, 4]}, "not a TD3-MIX checkpoint of this job: ShapeError"),
        ({"format": 1}, "not a TD3-MIX checkpoint of this job: KeyError: 'dims'"),
        ([1, 2, 3], "not a TD3-MIX checkpoint of this job: TypeError"),
    ],
)
def test_a_checkpoint_of_something_else_is_refused_naming_it(
    tmp_path, monkeypatch, content, needle
):
    job, folder = _interrupted_job(tmp_path, monkeypatch)
    checkpoint = folder / "checkpoint.pt"
    torch.save(content, checkpoint)
    before = _snapshot(folder)
    with pytest.raises(ConfigError) as info:
        mc.capacity_job(job, folder)
    message = str(info.value)
    assert f"{checkpoint} is corrupt" in message and needle in message
    assert "delete it and rerun" in message
    assert _snapshot(folder) == before


def test_train_json_ahead_of_its_checkpoint_is_refused(tmp_path, monkeypatch):
    job, folder = _interrupted_job(tmp_path, monkeypatch)
    (folder / "train.json").write_text('{"steps_done": 4, "train_time_s": 0.5}')
    before = _snapshot(folder)
    with pytest.raises(ConfigError, match="records steps_done = 4 of 4: they do not belong"):
        mc.capacity_job(job, folder)
    assert _snapshot(folder) == before


def test_a_checkpoint_one_chunk_ahead_of_train_json_resumes_from_the_checkpoint(
    tmp_path, monkeypatch
):
    """Stopped between the checkpoint and train.json writes (and after train.csv rows of a
    chunk the checkpoint does not hold): the checkpoint's step count wins, train.csv keeps
    one row per step."""
    job, folder = _interrupted_job(tmp_path, monkeypatch)
    (folder / "train.json").write_text('{"steps_done": 0, "train_time_s": 0.0}')
    with open(folder / "train.csv", "a") as handle:
        handle.write("2,9.9,9.9,\n3,9.9,9.9,\n")  # logged, then stopped before the checkpoint
    trained = []
    original_train = TD3Mix.train

    def counting_train(self, env, n_steps, **kwargs):
        trained.append(n_steps)
        return original_train(self, env, n_steps, **kwargs)

    monkeypatch.setattr(TD3Mix, "train", counting_train)
    result = mc.capacity_job(job, folder)
    assert trained == [2]  # the 2 steps the checkpoint lacks, not 4
    assert result["train_steps"] == 4 and result["resumed_from_checkpoint"] == 1
    rows = list(csv.DictReader((folder / "train.csv").read_text().splitlines()))
    assert [int(row["step"]) for row in rows] == [0, 1, 2, 3]
    assert all(row["capacity_per_cell"] != "9.9" for row in rows)


def test_cli_corrupt_train_json_exits_2_without_traceback_then_restarts(
    tmp_path, tiny, monkeypatch, capsys
):
    out = tmp_path / "run"
    argv = ["run", "multiband-fig7", "--config", str(tiny["multiband-fig7"]), "--out", str(out)]
    argv += ["--schemes", "TD3-MIX", "--threads", "1"]
    with _second_training_chunk_interrupted(monkeypatch):
        assert main(argv) == 130
    (state_file,) = out.glob("jobs/*/train.json")
    state_file.write_text('{"steps_done": ')
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{state_file} is corrupt" in err and "delete it and rerun" in err
    assert "Traceback" not in err and "attempts" not in err  # not retried
    assert state_file.read_text() == '{"steps_done": '  # left for the user to look at
    state_file.unlink()  # as the message says: the job trains again from step 0
    assert main(argv) == 0
    results = [json.loads(path.read_text()) for path in out.glob("jobs/*/result.json")]
    assert len(results) == len(TINY["multiband-fig7"]["points"])
    assert all(r["train_steps"] == 4 and r["resumed_from_checkpoint"] == 0 for r in results)


def test_an_unreadable_train_log_names_what_deleting_it_does(tmp_path, monkeypatch):
    """train.csv is only the log: its message says the job resumes from its checkpoint
    without the earlier rows (not that it trains again), and the file is left as it was."""
    job, folder = _interrupted_job(tmp_path, monkeypatch)
    log = folder / "train.csv"
    log.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match=r"train\.csv is corrupt .* resumes from its checkpoint"):
        mc.capacity_job(job, folder)
    assert log.read_bytes() == b"\xff\xfe not utf-8"
    log.unlink()
    result = mc.capacity_job(job, folder)
    assert result["resumed_from_checkpoint"] == 1 and result["train_steps"] == 4
    rows = list(csv.DictReader(log.read_text().splitlines()))
    assert [int(row["step"]) for row in rows] == [2, 3]  # the remaining steps only


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["multiband-fig5", "--set", "scenario.n_antennas=2"],
         "scenario.n_antennas is swept by this experiment (points[].n_antennas: 8, 16, 32)"),
        (["multiband-fig7", "--set", "scenario.sir_db=3"],
         "scenario.sir_db is swept by this experiment (points[].sir_db: 0.0, 6.0, 12.0)"),
        (["multiband-fig5", "--set", "sweep=sir_db"],
         "points[0].sir_db: not set, but sweep = 'sir_db'"),
        (["multiband-fig7", "--schemes", "SSWF", "--set", "points=[{sir_db: 0}, {n_freq: 3}]"],
         "points[1].sir_db: not set, but sweep = 'sir_db'"),
        (["multiband-fig6", "--set", "points=[{n_antennas: 8, users_per_cell: 4}]"],
         "points[0].n_freq: not set, but sweep = 'n_freq'"),
        (["multiband-fig5", "--set", "flwf_starts=1000000000"],
         "flwf_starts = 1000000000: must be <= 10000"),
    ],
)  # fmt: skip
def test_a_preset_the_figure_cannot_use_is_refused_before_anything_is_written(
    tmp_path, capsys, argv, needle
):
    """Before: the fixed value was silently ignored (exit 0; M = 2 < U = 4 even accepted), a
    sweep the points do not set ran every job and crashed in matplotlib (exit 1), and a huge
    flwf_starts crashed in the allocator after the run folder was created."""
    out = tmp_path / "run"
    assert main(["run", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()


def test_a_fixed_field_only_some_points_set_is_kept():
    preset = mc.Preset(**{**TINY["multiband-fig7"], "points": [{"sir_db": 0.0}, {"sir_db": 6.0,
                          "n_freq": 3}]})  # fmt: skip
    jobs = mc.FIG7.jobs(preset, "tiny", ["SSWF"])
    assert [job.params["point"] for job in jobs] == [{"sir_db": 0.0}, {"sir_db": 6.0, "n_freq": 3}]
    assert {mc._scenario_config(job.params, 0).n_freq for job in jobs} == {2, 3}


def test_flwf_memory_is_checked_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """flwf_starts x test_batch starts play in one batch: refused against the memory limit
    (here 1 GB) naming the job, as the other memory checks do."""
    monkeypatch.setenv("SKYSHARE_MEMORY_LIMIT_GB", "1")
    out = tmp_path / "run"
    argv = ["run", "multiband-fig5", "--set", "flwf_starts=10000", "--set", "test_batch=1000"]
    assert main([*argv, "--schemes", "FLWF", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "(FLWF, flwf_starts, test_batch) needs about" in err and "above the limit of 1" in err
    assert not out.exists()
    job = _jobs("multiband-fig5", ["FLWF", "SSWF"])[0]
    scenario = mc._scenario_config(job.params, 0)
    # 2 cells x 1 user x 3 channels, 4 starts x 2 realizations, 40 iterations
    assert mc.flwf_memory_estimate(job, scenario) == 8.0 * 8 * (12 * 2 * 3 + 2 * 41)
    sswf = _jobs("multiband-fig5", ["SSWF"])[0]
    assert mc.flwf_memory_estimate(sswf, scenario) == 0.0


def _summary_of(resumed):
    results = {}
    for seed, again in enumerate(resumed):
        for scheme, capacity in (("FLWF", 100.0), ("TD3-MIX", 90.0 + seed)):
            result = {"scheme": scheme, "seed": seed, "point": {"sir_db": 6.0},
                      "capacity_per_cell": capacity, "capacity_std": 1.0}  # fmt: skip
            if scheme == "TD3-MIX":
                result |= {"train_time_s": 1.0, "resumed_from_checkpoint": again}
            results[f"{scheme}-s{seed}"] = result
    return {"experiment": "multiband-fig7", "preset": "quick", "results": results}


def test_the_table_marks_a_learned_job_resumed_from_a_checkpoint():
    """A resumed job is not bit-identical to an uninterrupted one (docs/experiments/
    multiband.md): the printed table marks it with a footnote. Before: no sign at all."""
    title, columns, rows = mc.summary_table(_summary_of([0, 1]))
    capacity = {row[1]: row[columns.index("cap/cell")] for row in rows}
    assert capacity == {"FLWF": "100", "TD3-MIX": "90.5" + mc.RESUMED_MARK}
    assert "*: resumed from a checkpoint" in title and "not bit-identical" in title
    assert [row["n_resumed"] for row in mc.aggregate(_summary_of([0, 1]))] == [0, 1]
    title, columns, rows = mc.summary_table(_summary_of([0, 0]))
    assert "*" not in "".join(row[columns.index("cap/cell")] for row in rows)
    assert "resumed" not in title


def test_an_n_freq_figure_without_m_u_families_is_drawn(tmp_path):
    """Fig. 6's families come from the points' (M, U); points that leave them to the fixed
    scenario draw one line per scheme (before: KeyError 'n_antennas')."""
    from skyshare.plots import plot_capacity_sweep

    rows = [
        {"point": {"n_freq": f}, "scheme": "SSWF", "capacity_per_cell": 1.0 + f,
         "capacity_std_over_starts": None}
        for f in (2, 3)
    ]  # fmt: skip
    assert plot_capacity_sweep(rows, "n_freq", "t", tmp_path / "f.png").exists()
