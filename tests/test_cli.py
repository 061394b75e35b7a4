"""The `skyshare` command: happy paths, and bad input -> message naming the field, exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from skyshare.cli import main


def test_scenarios_lists_catn(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert "catn" in out and "paper" in out and "quick" in out


def test_inspect_prints_budget_and_writes_files(tmp_path, capsys):
    plot, report = tmp_path / "topo.png", tmp_path / "budget.json"
    files = ["--plot", str(plot), "--json", str(report)]
    code = main(
        [
            "inspect",
            "catn",
            "--preset",
            "quick",
            "--batch",
            "2",
            "--slot",
            "3",
            *files,
            "--set",
            "p_max_w=5",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "I_max" in out and "slot 3" in out
    assert plot.stat().st_size > 10_000
    payload = json.loads(report.read_text())
    assert payload["config"]["p_max_w"] == 5
    rows = {row["quantity"]: row["value"] for row in payload["link_budget"]}
    assert rows["P_max per BS"] == pytest.approx(36.99, abs=0.01)  # 5 W


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["inspect", "nope"], "unknown scenario 'nope'; available:"),
        (["inspect", "catn", "--preset", "huge"], "unknown preset 'huge'"),
        (["inspect", "catn", "--set", "n_bs=8"], "n_bs must fill whole hexagonal rings"),
        (["inspect", "catn", "--set", "p_max_w=-3"], "p_max_w = -3"),
        (["inspect", "catn", "--set", "ar1_alpha=2"], "allowed range: [0, 1]"),
        (["inspect", "catn", "--set", "bogus=1"], "bogus: unknown key"),
        (["inspect", "catn", "--set", "p_max_w"], "must look like key=value (a field and its"),
        (["env", "catn", "--formulation", "per_bs"], "--formulation: tn_ntn only"),
        (["env", "tn_ntn", "--tu-info", "dcd", "--bs-info", "global_csi"], "catn only"),
        (["env", "tn_ntn", "--bs-info", "global_csi"], "--bs-info: catn only"),
        (["inspect", "catn", "--set", "p_max_w=nan"], "NaN"),
        (["inspect", "catn", "--batch", "0"], "--batch must be in [1, 65536]"),
        (["inspect", "catn", "--plot", "topo.txt"], "--plot must name a .png file"),
        (["inspect", "catn", "--config", "/no/such.yaml"], "cannot read config file"),
        (["env", "catn", "--set", "n_slots=1"], "n_slots must be >= 2"),
        (["solve", "catn", "--set", "n_slots=1", "--slots", "1"], "n_slots must be >= 2"),
    ],
)
def test_bad_input_exits_2_with_named_field(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_invalid_input_leaves_existing_files_untouched(tmp_path):
    plot = tmp_path / "topo.png"
    plot.write_bytes(b"keep me")
    assert main(["inspect", "catn", "--set", "p_max_w=-1", "--plot", str(plot)]) == 2
    assert plot.read_bytes() == b"keep me"


def test_console_script_exit_code_and_no_traceback():
    """The installed entry point exits 2 on bad input (run as a real process)."""
    code = "import sys; from skyshare.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "inspect", "catn", "--set", "n_tu=0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "n_tu = 0" in proc.stderr and "Traceback" not in proc.stderr


def test_env_command_prints_rewards_and_measured_signaling(capsys):
    argv = ["env", "catn", "--preset", "quick", "--slots", "2", "--set", "n_tu=14"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "TU reward" in out and "handovers" in out
    # (3 Nc K + K + 2) B_in K_in + (K + 6) B~_in L + 3 K_out B_in + 2 L with K = 14
    expected = (3 * 4 * 14 + 14 + 2) * 4 * 3 + (14 + 6) * 5 * 2 + 3 * 3 * 4 + 2 * 2
    assert f"{expected:.1f}" in out


def test_env_command_bad_input(capsys):
    assert main(["env", "catn", "--slots", "0"]) == 2
    assert "--slots must be in" in capsys.readouterr().err
    assert main(["env", "catn", "--set", "n_tu=0"]) == 2
    assert "n_tu = 0" in capsys.readouterr().err


def test_solve_command_runs_two_stage_scheme(tmp_path, capsys):
    plot, report = tmp_path / "solve.png", tmp_path / "solve.json"
    argv = [
        "solve",
        "catn",
        "--association",
        "sc",
        "--beamforming",
        "wmmse-lite",
        "--slots",
        "3",
        "--preset",
        "quick",
        "--plot",
        str(plot),
        "--json",
        str(report),
        "--max-iter",
        "4",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mean sum rate" in out and "paper Table I" in out
    payload = json.loads(report.read_text())
    assert payload["summary"]["mean beamforming iterations"] <= 4  # the per-slot budget
    assert len(payload["sum_rate"]) == 3
    assert payload["summary"]["max AU interference / I_max"] <= 1.0 + 1e-3  # (2c) holds
    assert plot.stat().st_size > 10_000


def test_solve_command_bad_input(capsys):
    assert main(["solve", "catn", "--slots", "0"]) == 2
    assert "--slots must be in" in capsys.readouterr().err
    assert main(["solve", "catn", "--max-iter", "0"]) == 2
    assert "--max-iter must be in [1, 10000], got 0" in capsys.readouterr().err
    assert main(["solve", "catn", "--threads", "0"]) == 2
    assert "--threads must be in" in capsys.readouterr().err


def test_bad_paths_configs_and_seeds_exit_2_without_traceback_or_output(tmp_path, capsys):
    """Issue 12 item 3: each reproduction is a named-field message, exit 2, nothing written."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    nan = tmp_path / "nan.yaml"
    nan.write_text("p_max_w: .nan\n")
    huge = "99999999999999999999999"
    cases = [
        (["inspect", "catn", "--plot", str(a_file / "x.png")], "is a file, not a folder"),
        (["inspect", "catn", "--json", str(tmp_path / "missing" / "x.json")], "does not exist"),
        (["solve", "catn", "--json", str(a_file / "x.json")], "is a file, not a folder"),
        (["run", "catn-fig4", "--out", str(a_file / "run")], "is a file, not a folder"),
        (["inspect", "catn", "--config", "/dev/zero"], "not a regular file"),
        (["inspect", "catn", "--config", str(binary)], "is not text"),
        (["inspect", "catn", "--config", str(nan)], "p_max_w = nan: Input should be a finite"),
        (["inspect", "catn", "--seed", huge], "--seed must be in [0, 9223372036854775807]"),
        (["env", "catn", "--seed", huge], "--seed must be in"),
        (["solve", "catn", "--seed", huge], "--seed must be in"),
        (["run", "catn-fig4", "--seeds", huge, "--out", str(tmp_path / "r")], "seeds must be"),
        (["solve", "catn", "--set", "i_max_mw=1e-300"], "i_max_mw = 1e-300 is "),
        (["inspect", "catn", "--set", "tu_height_m=1"], "tu_height_m = 1: must be >= 1.5"),
        (["inspect", "catn", "--set", "n_tu=true"], "n_tu = True: a number is needed"),
        (["inspect", "catn", "--slot", "100000"], "--slot must be in [0, 5999], got 100000"),
    ]
    if Path("/proc").is_dir():
        cases.append((["inspect", "catn", "--json", "/proc/x.json"], "cannot write in folder"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "binary.yaml", "nan.yaml"]


def test_infinite_interference_limit_means_no_constraint(tmp_path, capsys):
    report = tmp_path / "inf.json"
    argv = ["solve", "catn", "--preset", "quick", "--slots", "2", "--json", str(report)]
    assert main([*argv, "--set", "i_max_mw=inf"]) == 0
    summary = json.loads(report.read_text())["summary"]
    assert summary["max AU interference / I_max"] == 0.0  # rho / inf: nothing to keep
    assert summary["feasible slots (%)"] == 100.0


def test_small_networks_play_with_fitted_report_sizes(capsys):
    """n_bs = 1 and n_tu = 1 are valid scenarios: every command runs on them (the env fits
    B_in, B~_in, K_out and K_in to the network and records the fitted values)."""
    from skyshare.envs import CatnEnv
    from skyshare.scenarios import CatnScenario

    for override in ("n_bs=1", "n_tu=1", "n_tu=2"):
        for command in (["solve", "catn", "--slots", "2"], ["env", "catn", "--slots", "2"]):
            assert main([*command, "--preset", "quick", "--set", override]) == 0, override
    env = CatnEnv(CatnScenario.config_from("quick", overrides={"n_bs": 1, "n_tu": 2}))
    assert (env.config.b_in, env.config.b_in_pri, env.config.k_out, env.config.k_in) == (1, 1, 2, 2)
    paper = CatnEnv(CatnScenario.config_from("paper"))
    assert (paper.config.b_in, paper.config.b_in_pri, paper.config.k_out) == (4, 5, 3)


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    """SIGINT during a run: one line saying how to resume, exit status 130, no traceback;
    rerunning the same command finishes the run."""
    import signal
    import subprocess
    import sys
    import time

    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("n_slots: 400\nhidden_sizes: [8, 8, 8]\ncheckpoint_every: 5\n")
    out = tmp_path / "run"
    argv = ["run", "catn-fig4", "--config", str(tiny), "--out", str(out), "--schemes", "SC-CUP"]
    process = subprocess.Popen(
        [sys.executable, "-m", "skyshare", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,  # a background runner may hand SIGINT down ignored
    )
    deadline = time.monotonic() + 120
    while (
        not list(out.glob("jobs/*/checkpoint.pt"))
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    if not list(out.glob("jobs/*/checkpoint.pt")):  # clean up before failing
        process.kill()
        _, err = process.communicate(timeout=60)
        pytest.fail(f"the run wrote no checkpoint before the SIGINT; stderr:\n{err}")
    assert process.poll() is None, "the run ended before the SIGINT"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err


def test_memory_guard_refuses_before_allocating(monkeypatch, capsys):
    """Issue 12 item 4: sizes whose tensors would not fit are refused from the config, with
    the estimate, before anything is allocated (these took > 10 GB before failing)."""
    import resource

    from skyshare.checks import MEMORY_LIMIT_ENV

    # set (empty: no limit given) so that monkeypatch restores the environment afterwards:
    # main(["--memory-limit", ...]) writes the variable for the process and its workers
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["inspect", "catn", "--set", "n_bs=3003001"]) == 2
    assert main(["env", "catn", "--set", "n_tu=4096", "--batch", "4096", "--slots", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("GB for its largest tensors, above the limit") == 2
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 1000  # refused from the estimate: nothing big was allocated
    # the limit is a flag (and 0 disables the check): a tiny limit refuses the quick preset
    assert main(["--memory-limit", "0.0001", "inspect", "catn", "--preset", "quick"]) == 2
    assert "(--memory-limit)" in capsys.readouterr().err
    assert main(["--memory-limit", "-1", "inspect", "catn"]) == 2
    assert "--memory-limit must be >= 0 GB" in capsys.readouterr().err


def _default_sigint():
    """In the child before exec: SIGINT back to its default, so that Python installs its
    KeyboardInterrupt handler (it keeps SIGINT ignored when it inherits it ignored, as in
    jobs started in the background by a non-interactive shell)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "catn-fig4", "--set", "scenario.n_tu=0"], "n_tu"),
        (["run", "catn-fig6", "--set", "scenario_preset=nosuch"], "nosuch"),
        (["run", "catn-fig4", "--set", "env.nosuch=0"], "nosuch: unknown key"),
        (["run", "multiband-fig5", "--set", "env.nosuch=1"], "nosuch: unknown key"),
        (["run", "multiband-fig5", "--set", "scenario.nosuch=1"], "nosuch: unknown key"),
        (["run", "tn-ntn-fig3", "--set", "learner.lr_actor=-1"], "lr_actor"),
        (
            [
                "run",
                "vhetnet-fig3",
                "--set",
                "points=[{options: {distributed: {rho_over_beta: -2}}}]",
            ],
            "points[0].options.distributed.rho_over_beta: must be a finite number > 0",
        ),
        (["run", "catn-fig4", "--executor", "ray", "--address", "127.0.0.1:1"], "no Ray cluster"),
        (["run", "catn-fig4", "--executor", "ray", "--address", "nohost"], "not a Ray address"),
    ],
)
def test_run_checks_nested_values_before_writing_anything(argv, needle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()


def test_run_keeps_an_existing_run_of_another_experiment(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"experiment": "catn-fig4", "params": {}}))
    assert main(["run", "catn-table1", "--out", str(out)]) == 2
    assert "holds a catn-fig4 run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_inspect_slot_is_bounded_by_the_horizon(capsys):
    assert main(["inspect", "tn_ntn", "--preset", "quick", "--slot", "2000000"]) == 2
    err = capsys.readouterr().err
    assert "--slot must be in [0, " in err and "2000000" in err
    assert main(["inspect", "vhetnet", "--slot", "20000"]) == 2
    assert "--slot must be in [0, 10000]" in capsys.readouterr().err


def test_policies_from_a_missing_folder_says_so(tmp_path, capsys):
    missing = tmp_path / "none"
    argv = ["run", "tn-ntn-fig4", "--set", f"policies_from={missing}", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert f"policies_from: {missing} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["run", "vhetnet-fig3", "--set", "points=[{options: {nosuch: {rho_over_beta: 1}}}]"],
            "points[0].options: unknown scheme(s) nosuch",
        ),
        (["run", "tn-ntn-fig3", "--set", "reference.nosuch=1"], "unknown option(s) nosuch"),
    ],
)
def test_run_refuses_options_for_unknown_names_before_writing(argv, needle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_an_infinite_override_stays_infinite_in_the_jobs():
    """``inf`` ("no constraint" for i_max_mw) survives the preset's JSON dump into the job
    parameters (pydantic's default would write null) and passes the up-front job checks."""
    import math

    from skyshare.experiments.registry import get_experiment

    experiment = get_experiment("catn-fig4")
    preset = experiment.load_preset("quick", overrides=["scenario.i_max_mw=inf"])
    jobs = experiment.jobs(preset, "quick", None)
    experiment.check_jobs(jobs)
    assert all(math.isinf(job.params["scenario"]["i_max_mw"]) for job in jobs)


def test_an_empty_policies_from_is_refused(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "tn-ntn-fig4", "--set", "policies_from=", "--out", str(out)]) == 2
    assert "policies_from" in capsys.readouterr().err
    assert not out.exists()


def test_training_curves_table_names_the_seed_when_a_run_holds_several():
    from skyshare.experiments.catn_schemes import training_curves_table

    result = {
        "scheme": "SC-CUP",
        "mean_sum_rate_last": 100.0,
        "mean_rho_over_imax_last": [0.5],
        "violation_share_last": 0.1,
    }
    summary = {"preset": "quick", "results": {"a": result, "b": result}}
    _, _, rows = training_curves_table("catn-fig4", {**summary, "seeds": {"a": 0, "b": 0}})
    assert [row[0] for row in rows] == ["SC-CUP", "SC-CUP"]
    _, _, rows = training_curves_table("catn-fig4", {**summary, "seeds": {"a": 0, "b": 1}})
    assert [row[0] for row in rows] == ["SC-CUP, seed 0", "SC-CUP, seed 1"]
    _, _, rows = training_curves_table("catn-fig4", summary)  # an older summary: no seeds
    assert [row[0] for row in rows] == ["SC-CUP", "SC-CUP"]


def test_fig4_and_table1_tables_name_the_seed_when_a_run_holds_several():
    from skyshare.experiments import catn_fig4, catn_table1

    fig4 = {"scheme": "D3QN-CUP", "mean_sum_rate_last": 100.0, "mean_rho_over_imax_last": [0.5]}
    fig4["mean_decision_time_s"] = 1e-3
    table1 = {"scheme": "D3QN-CUP", "signaling_tu": 1.0, "signaling_bs": 2.0}
    table1 |= {"decision_time_s": 1e-3, "paper": {"tu": 1, "bs": 2, "time_s": 0.08}}
    for module, result in ((catn_fig4, fig4), (catn_table1, table1)):
        summary = {"preset": "quick", "results": {"a": result, "b": result}}
        _, _, rows = module.summary_table({**summary, "seeds": {"a": 0, "b": 1}})
        assert [row[0] for row in rows] == ["D3QN-CUP, seed 0", "D3QN-CUP, seed 1"], module
        _, _, rows = module.summary_table({**summary, "seeds": {"a": 0, "b": 0}})
        assert [row[0] for row in rows] == ["D3QN-CUP", "D3QN-CUP"], module


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["multiband-fig5", "--set", "td3={hidden_sizes: [100000, 100000]}"], "TD3-MIX networks"),
        (["tn-ntn-fig3", "--set", "learner={hidden_sizes: [100000, 100000]}"], "MAPPO networks"),
    ],
)
def test_learner_widths_that_cannot_fit_are_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch, argv, needle
):
    monkeypatch.setenv("SKYSHARE_MEMORY_LIMIT_GB", "8")  # whatever this machine has free
    out = tmp_path / "run"
    assert main(["run", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"({needle}): hidden_sizes [100000, 100000] needs about 160 GB" in err
    assert "Traceback" not in err and not out.exists()


def test_run_refuses_an_empty_out_and_an_absurd_thread_count(tmp_path, monkeypatch, capsys):
    """--out '' would be this folder (Path('') is '.'); --threads above 1024: both exit 2
    naming the option, with nothing written."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "catn-fig4", "--out", ""]) == 2
    assert "--out must name a folder, got an empty name" in capsys.readouterr().err
    assert main(["run", "catn-fig4", "--threads", "1025", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "(--threads) must be in [1, 1024], got 1025" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_run_config_file_errors_name_the_nested_path_and_the_file(tmp_path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text("scenario: {n_ue: [4]}\n")
    out = tmp_path / "out"
    assert main(["run", "vhetnet-fig5", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "scenario.n_ue = [4]: Input should be a valid integer" in err
    assert f"(from config file {config})" in err
    assert main(["run", "vhetnet-fig5", "--set", "scenario.n_ue.x=5", "--out", str(out)]) == 2
    assert "scenario.n_ue = {'x': 5}: Input should be" in capsys.readouterr().err
    assert not out.exists()


def test_tables_are_not_cut_when_the_output_is_not_a_terminal(capsys, monkeypatch):
    """Piped or logged (capsys: not a terminal) a result table keeps every cell whole, where
    rich would cut it to 80 columns ("TD3-M…" for two schemes)."""
    from skyshare.cli import _console, _print_table

    monkeypatch.delenv("COLUMNS", raising=False)
    names = ["TD3-MIX with a long learned mixer name", "TD3-MIX with another long name"]
    rows = [[name, *[f"{1234.5678 + i:.4f}" for i in range(8)]] for name in names]
    _print_table(_console(), "a wide table", ["scheme", *[f"metric {i}" for i in range(8)]], rows)
    lines = capsys.readouterr().out.splitlines()
    for name, row in zip(names, rows, strict=True):
        assert any(name in line and row[-1] in line for line in lines)
    assert "…" not in "\n".join(lines)


def test_run_lists_only_the_files_it_wrote(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine, not the run's")
    argv = ["run", "multiband-fig5", "--out", str(out), "--schemes", "FLWF"]
    argv += ["--set", "flwf_starts=2", "--set", "flwf_max_iter=5"]
    argv += ["--set", "points=[{n_antennas: 4, users_per_cell: 2}]"]
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"fig5.png, summary.json and jobs/ (each job's series and result) in {out}"
