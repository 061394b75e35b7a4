"""catn-fig5..8 and catn-table1 end to end on tiny presets: every sweep point and scheme runs,
figures and tables are written, the numbers they report follow from the saved series, Table I's
signaling is measured equal to its closed forms, and interrupted runs resume without
recomputation."""

import csv
import functools
import json
import math

import pytest
import torch
import yaml

from skyshare.cli import main
from skyshare.envs.catn import CatnEnv
from skyshare.experiments import catn_fig5, catn_fig6, catn_fig7, catn_fig8, catn_table1
from skyshare.experiments.catn_schemes import build_env, build_job_scheme, read_series
from skyshare.experiments.jobs import Execution, job_folder
from test_experiment_catn_fig4 import TINY as SMALL  # the same reduced network

QUIET = Execution(progress=False)


def _tail_mean(values):
    tail = max(1, len(values) // 6)
    return sum(values[-tail:]) / tail


def test_fig5_zeta_sweep_and_cup(tmp_path, monkeypatch):
    preset = catn_fig5.Preset(**SMALL, zetas=[0.1, 100.0])
    summary = catn_fig5.EXPERIMENT.run(tmp_path, preset, preset_name="tiny", execution=QUIET)
    results = summary["results"]
    assert sorted(r["label"] for r in results.values()) == [
        "D3QN-CUP",
        "D3QN-PPO, zeta=0.1",
        "D3QN-PPO, zeta=100",
    ]
    for job in catn_fig5.jobs(preset, "tiny"):
        folder = job_folder(tmp_path, job)
        config = json.loads((folder / "config.json").read_text())
        if job.scheme == "D3QN-PPO":  # the swept zeta reached the learner
            assert config["bs_agents"]["penalty"] == job.params["ppo_penalty"]
            assert config["bs_agents"]["type"] == "PpoPenaltyAgents"
        series = read_series(folder / "series.csv")
        assert series["slot"] == list(range(12))
        result = results[job.job_id]
        assert result["mean_sum_rate_last"] == pytest.approx(_tail_mean(series["sum_rate"]))
        assert (folder / "networks.pt").exists()
        assert not (folder / "checkpoint.pt").exists()  # finished: only resumption needed it
    assert (tmp_path / "fig5.png").stat().st_size > 10_000
    title, _, rows = catn_fig5.EXPERIMENT.table(summary)
    assert len(rows) == 3 and "fig5" in title


@pytest.mark.parametrize(
    ("module", "key", "field", "values"),
    [
        (catn_fig6, "i_max_values_mw", "i_max_mw", [0.8e-10, 3.2e-10]),
        (catn_fig7, "p_max_values_w", "p_max_w", [10.0, 40.0]),
    ],
)
def test_scenario_sweeps_cover_every_value(tmp_path, monkeypatch, module, key, field, values):
    preset = module.Preset(**SMALL, **{key: values})
    summary = module.EXPERIMENT.run(tmp_path, preset, preset_name="tiny", execution=QUIET)
    jobs = module.jobs(preset, "tiny")
    assert len(jobs) == len(summary["results"]) == len(values)
    seen = []
    for job in jobs:
        config = json.loads((job_folder(tmp_path, job) / "config.json").read_text())
        seen.append(config["scenario"][field])
        assert config["scenario"]["n_tu"] == 14  # the preset's other overrides stay
    assert sorted(seen) == sorted(values)
    figure = tmp_path / f"fig{module.__name__[-1]}.png"
    assert figure.stat().st_size > 10_000


def test_fig8_test_metrics_follow_from_the_test_series(tmp_path, monkeypatch):
    preset = catn_fig8.Preset(**SMALL, test_slots=9, test_seed_offset=0)
    summary = catn_fig8.EXPERIMENT.run(tmp_path, preset, preset_name="tiny", execution=QUIET)
    assert {r["scheme"] for r in summary["results"].values()} == set(catn_fig8.SCHEMES)
    for job in catn_fig8.jobs(preset, "tiny"):
        result = summary["results"][job.job_id]
        series = read_series(job_folder(tmp_path, job) / "test_series.csv")
        assert len(series["slot"]) == result["test_slots"] == 9
        handovers = 100 * sum(series["handover_fraction"][1:]) / 8  # first slot: vs reset
        assert 0.0 <= result["handover_percent"] <= 100.0
        assert result["handover_percent"] == pytest.approx(handovers, rel=1e-9)
        # throughput in one second: mean effective sum rate (bit/s/Hz) x 10 MHz
        rate = sum(series["effective_sum_rate"]) / 9
        assert result["throughput_bps"] == pytest.approx(rate * 10e6, rel=1e-9)
        assert result["throughput_bps"] <= result["throughput_undiscounted_bps"] + 1e-6
        for l_ in range(2):
            rho = sum(series[f"au{l_}_rho_over_imax"]) / 9
            assert result["au_rho_over_imax"][l_] == pytest.approx(rho, rel=1e-9)
            assert result["au_rho_mw"][l_] == pytest.approx(rho * 1.6e-10, rel=1e-9)
    assert (tmp_path / "fig8.png").stat().st_size > 10_000


def test_fig8_job_resumes_from_its_checkpoints_without_playing_a_slot(tmp_path, monkeypatch):
    """A job that finished but lost its result marker (a crash before the marker, which is
    when its checkpoints still exist: kept here) is rerun: the training and test runs restore
    their final checkpoints and play no slot."""
    params = {**SMALL, "n_slots": 6, "test_slots": 4, "test_seed_offset": 1}
    preset = catn_fig8.Preset(**params)
    run = functools.partial(
        catn_fig8.EXPERIMENT.run, execution=Execution(progress=False, keep_checkpoints=True)
    )
    first = run(tmp_path, preset, preset_name="tiny", schemes=["D3QN-CUP"])
    (job,) = catn_fig8.jobs(preset, "tiny", ["D3QN-CUP"])
    folder = job_folder(tmp_path, job)
    (folder / "result.json").unlink()

    def no_more_slots(self, actions):
        raise AssertionError("a finished run played a slot again")

    monkeypatch.setattr(CatnEnv, "associate", no_more_slots)
    again = run(tmp_path, preset, preset_name="tiny", schemes=["D3QN-CUP"])
    before, after = first["results"][job.job_id], again["results"][job.job_id]
    for key in ("mean_sum_rate_last", "throughput_bps", "handover_percent", "au_rho_mw"):
        assert after[key] == before[key]
    assert after["test_seed"] == 1
    # the saved policies (what acting needs) load into fresh agents and act as trained
    saved = torch.load(folder / "networks.pt", weights_only=True)
    assert set(saved["bs_agents"]) == {"config", "dims", "actor", "normalizer", "nu"}
    assert set(saved["tu_agents"]) == {"config", "dims", "online"}
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)["scheme"]
    env = build_env("D3QN-CUP", params, 0, 6)
    scheme = build_job_scheme(env, "D3QN-CUP", params, 0)
    tu, bs = scheme.association.agents, scheme.beamforming.agents
    tu.online.load_state_dict(saved["tu_agents"]["online"])
    bs.actor.load_state_dict(saved["bs_agents"]["actor"])
    bs.normalizer.load_state_dict(saved["bs_agents"]["normalizer"])
    trained = checkpoint["beamforming"]["agents"]["actor"]
    for name, value in bs.actor.state_dict().items():
        assert torch.equal(value, trained[name])


def test_table1_measures_the_closed_form_signaling(tmp_path, monkeypatch):
    """Paper sizes: L=2, N=7, K=21, M=16, N_c=4, B_in=4, B~_in=5, K_in=3, K_out=3."""
    overrides = ["n_slots=2", "dfp_slots=1", "hidden_sizes=[8, 8, 8]"]
    preset = catn_table1.EXPERIMENT.load_preset("quick", overrides=overrides)
    summary = catn_table1.EXPERIMENT.run(tmp_path, preset, execution=QUIET)
    L, N, K, M, Nc, B_in, B_pri, K_in, K_out = 2, 7, 21, 16, 4, 4, 5, 3, 3
    exchange = (3 * Nc * K + K + 2) * B_in * K_in + (K + 6) * B_pri * L + 3 * K_out * B_in + 2 * L
    global_csi = 2 * M * (N - 1) * K + 2 * M * (N - 1) * L
    assert (exchange, global_csi) == (3610, 4416)
    expected = {  # scheme: (each TU, each BS)
        "DCD-DFP": (N * (K - 1), global_csi),
        "DCD-CUP": (N * (K - 1), exchange),
        "D3QN-CUP": (N, exchange),
        "SC-CUP": (0, exchange),
        "D3QN-PPO": (N, exchange),
        "D3QN-WMMSE": (N, global_csi),
    }
    results = {r["scheme"]: r for r in summary["results"].values()}
    assert set(results) == set(expected)
    for scheme, (tu, bs) in expected.items():
        r = results[scheme]
        assert (r["signaling_tu"], r["signaling_bs"]) == (tu, bs), scheme
        assert (r["paper"]["tu"], r["paper"]["bs"]) == (tu, bs)
        assert r["decision_time_s"] > 0 and math.isfinite(r["decision_time_s"])
    with open(tmp_path / "table1.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["scheme"] for row in rows] == list(catn_table1.SCHEMES)
    assert rows[2]["BS info measured"] == "3610" and rows[2]["decision time paper (ms)"] == "82.64"
    assert "| D3QN-CUP | 7 | 7 | 3610 | 3610 |" in (tmp_path / "table1.md").read_text()


def test_table1_files_name_the_seed_when_a_run_holds_several(tmp_path):
    overrides = ["n_slots=2", "dfp_slots=1", "hidden_sizes=[8, 8, 8]", "seeds=[0, 1]"]
    preset = catn_table1.EXPERIMENT.load_preset("quick", overrides=overrides)
    catn_table1.EXPERIMENT.run(tmp_path, preset, schemes=["SC-CUP"], execution=QUIET)
    with open(tmp_path / "table1.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["scheme"] for row in rows] == ["SC-CUP, seed 0", "SC-CUP, seed 1"]
    assert "| SC-CUP, seed 1 | 0 | 0 | 3610 | 3610 |" in (tmp_path / "table1.md").read_text()


def test_cli_runs_new_experiments_and_resumes(tmp_path, monkeypatch, capsys):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({**SMALL, "n_slots": 4, "p_max_values_w": [5.0]}))
    out = tmp_path / "run"
    argv = ["run", "catn-fig7", "--config", str(tiny), "--out", str(out)]
    assert main(argv) == 0
    marker = next(out.glob("jobs/*/result.json"))
    stamp = marker.stat().st_mtime_ns
    assert main(argv) == 0  # resumed: the finished job is not recomputed
    assert marker.stat().st_mtime_ns == stamp
    assert "catn-fig7 (quick)" in capsys.readouterr().out
    assert main(["run", "catn-fig5", "--preset", "tiny", "--schemes", "SC-CUP"]) == 2
