"""The `skyshare` command: happy paths, and bad input -> message naming the field, exit 2."""

import json
import subprocess
import sys

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
        (["inspect", "catn", "--set", "p_max_w"], "must look like key=value"),
        (["inspect", "catn", "--set", "p_max_w=nan"], "NaN"),
        (["inspect", "catn", "--batch", "0"], "--batch must be in [1, 65536]"),
        (["inspect", "catn", "--plot", "topo.txt"], "--plot must name a .png file"),
        (["inspect", "catn", "--config", "/no/such.yaml"], "cannot read config file"),
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
