"""Seed 001 schemes, the online loop and the tn-ntn-fig3/fig4 experiments (small settings; the
env, the learners and the allocation rules have their own tests)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from skyshare.cli import main
from skyshare.envs.tn_ntn import TnNtnEnv
from skyshare.errors import ConfigError
from skyshare.experiments.registry import get_experiment
from skyshare.experiments.tn_ntn import _dynamic
from skyshare.scenarios.tn_ntn import TnNtnConfig, TnNtnScenario
from skyshare.schemes.tn_ntn import (
    TN_NTN_SCHEMES,
    TnNtnSchemeOptions,
    run_tn_ntn,
    scheme_formulation,
)
from skyshare.solvers.ofdm_allocation import round_robin_allocation
from spy import returns_of

SMALL = {"n_subchannels": 8, "k_max": 3, "srb_size": 4, "horizon_slots": 3}


def small_env(formulation: str = "decomposed", batch: int = 2, **overrides) -> TnNtnEnv:
    config = TnNtnScenario.config_from("paper", overrides={**SMALL, **overrides})
    return TnNtnEnv(TnNtnScenario(config, batch_size=batch), formulation=formulation)


@pytest.mark.parametrize("name", list(TN_NTN_SCHEMES))
def test_every_scheme_plays_valid_frames(name):
    env = small_env(scheme_formulation(name))
    scheme = TN_NTN_SCHEMES.build(name, env, TnNtnSchemeOptions(seed=3))
    results = returns_of(env, "act")  # every turn's result, as the env returned it
    run = run_tn_ntn(env, scheme, 5, seed=1)  # crosses an episode end (horizon 3)
    assert run.reward.shape == (5, 2) and run.decision_time_s.shape == (5,)
    assert bool((run.throughput >= 0).all()) and bool((run.cost >= 0).all())
    assert bool((run.qos_miss <= run.active_users).all())
    # each frame's row is its last turn's result, aggregated as documented (TnNtnRun)
    assert len(results) == 5 * env.n_turns
    for t in range(5):
        result = results[(t + 1) * env.n_turns - 1]
        assert torch.equal(run.reward[t], result.reward.sum(-1).double()), t
        assert torch.equal(run.cost[t], result.cost.sum((-2, -1)).double()), t
        assert torch.equal(run.throughput[t], result.throughput.double()), t
        assert torch.equal(run.qos_miss[t], result.qos_miss.double()), t
        assert torch.equal(run.active_users[t], result.active.sum((-2, -1)).double()), t


def test_frame_rule_plays_its_full_frame_assignment_srb_by_srb():
    env = small_env()
    scheme = TN_NTN_SCHEMES.build("round-robin", env)
    env.reset(4)
    expected = round_robin_allocation(env.state.active, env.n_subchannels)
    result = None
    for _ in range(env.n_turns):
        result = env.act(scheme.decide(env, env.observe()))
    assert torch.equal(result.assignment, expected)


def test_run_records_the_env_results_frame_by_frame():
    env = small_env()
    scheme = TN_NTN_SCHEMES.build("random", env, TnNtnSchemeOptions(seed=0))
    run = run_tn_ntn(env, scheme, 3, seed=2)
    replay = small_env()
    again = TN_NTN_SCHEMES.build("random", replay, TnNtnSchemeOptions(seed=0))
    replay.reset(2)
    for t in range(3):
        result = None
        for _ in range(replay.n_turns):
            result = replay.act(again.decide(replay, replay.observe()))
        assert torch.allclose(run.reward[t], result.reward.sum(-1).double())
        assert torch.allclose(run.cost[t], result.cost.sum((-2, -1)).double())
        assert torch.allclose(run.throughput[t], result.throughput.double())
    with pytest.raises(ConfigError, match="frames"):
        run_tn_ntn(env, scheme, 0)


def test_learned_schemes_refuse_the_other_game_and_rules_check_options():
    with pytest.raises(ConfigError, match="per_bs"):
        TN_NTN_SCHEMES.build("MAPPO-L", small_env("decomposed"))
    with pytest.raises(ConfigError, match="decomposed"):
        TN_NTN_SCHEMES.build("decomposed MAPPO-L", small_env("per_bs"))
    with pytest.raises(ConfigError, match="unknown option"):
        TN_NTN_SCHEMES.build("greedy-BR", small_env(), TnNtnSchemeOptions(reference={"x": 1}))
    assert scheme_formulation("IPPO-L") == "per_bs"
    assert scheme_formulation("random") == "decomposed"


def test_greedy_reference_beats_random_on_the_played_frames():
    outcomes = {}
    for name in ("random", "greedy-BR"):
        env = small_env(batch=4)
        scheme = TN_NTN_SCHEMES.build(name, env, TnNtnSchemeOptions(seed=0))
        outcomes[name] = run_tn_ntn(env, scheme, 3, seed=5)
    greedy, random = outcomes["greedy-BR"], outcomes["random"]
    assert float(greedy.throughput.mean()) > float(random.throughput.mean())
    assert float(greedy.qos_miss.sum()) <= float(random.qos_miss.sum())


def test_fig4_test_scenario_decides_once_per_second_with_independent_fading():
    overrides = _dynamic(3.0, 2.5)
    assert overrides["horizon_slots"] == 150 and overrides["frame_s"] == 1.0
    config = TnNtnScenario.config_from("paper", overrides=overrides)
    assert config.ar1_alpha == 0.0 and config.horizon_s == 150.0
    with pytest.raises(ValueError, match="fading_correlation"):  # Jakes < 0 at 1 s frames
        TnNtnConfig(frame_s=1.0, trace_step_s=1.0)
    assert TnNtnConfig(fading_correlation=0.3).ar1_alpha == 0.3


def test_fig3_runs_trains_and_plots(tmp_path):
    experiment = get_experiment("tn-ntn-fig3")
    overrides = [
        "settings=[{n_subchannels: 8, k_max: 3}]",
        "scenario={srb_size: 4, horizon_slots: 4}",
        "frames=8",
        "batch=2",
        "reference_frames=2",
    ]
    summary = experiment.run(
        tmp_path, "quick", schemes=["decomposed MAPPO-L", "round-robin"], overrides=overrides
    )
    assert (tmp_path / "fig3.png").stat().st_size > 10_000
    results = {r["scheme"]: r for r in summary["results"].values()}
    learned = results["decomposed MAPPO-L"]
    assert len(learned["reward"]) == 2 and learned["train_frames"] == 8  # 2 episodes of 4
    assert "reward" not in results["round-robin"]
    assert all(math.isfinite(r["mean_reward"]) for r in results.values())
    table = json.loads((tmp_path / "summary.json").read_text())["table"]
    assert len(table) == 2
    title, columns, rows = experiment.table(summary)
    assert "tn-ntn-fig3" in title and len(rows) == 2 and "QoS misses" in columns
    assert "sampling their policies" in title  # the preset's play mode, "sample"
    greedy = {**summary, "params": {**summary["params"], "play": "greedy"}}
    assert "most probable" in experiment.table(greedy)[0]


def test_fig4_trains_then_tests_every_arrival_rate(tmp_path):
    experiment = get_experiment("tn-ntn-fig4")
    overrides = [
        "setting={n_subchannels: 8, k_max: 3}",
        "scenario={srb_size: 4, horizon_slots: 4}",
        "frames=4",
        "batch=2",
        "test_minutes=0.2",
        "arrival_rates_per_min=[2.0, 30.0]",
    ]
    summary = experiment.run(tmp_path, "quick", schemes=["IPPO-L", "random"], overrides=overrides)
    assert (tmp_path / "fig4.png").stat().st_size > 10_000
    tests: dict[str, dict[str, dict]] = {}
    for result in summary["results"].values():
        for rate, test in result["tests"].items():
            assert rate not in tests.setdefault(result["scheme"], {})
            tests[result["scheme"]][rate] = test
            assert len(test["throughput"]) == 12  # 0.2 min, one decision per second
            assert max(test["active_users"]) <= 9  # N K_max
    # the learner trains once and tests both rates in one job; the rule is one job per rate
    jobs = {r["scheme"]: 0 for r in summary["results"].values()}
    for result in summary["results"].values():
        jobs[result["scheme"]] += 1
    assert jobs == {"IPPO-L": 1, "random": 2}
    for by_rate in tests.values():
        assert sorted(by_rate) == ["2.0", "30.0"]
        assert by_rate["30.0"]["mean_active_users"] >= by_rate["2.0"]["mean_active_users"]
    # the same arrivals for every scheme (the same test seed)
    assert tests["IPPO-L"]["30.0"]["active_users"] == tests["random"]["30.0"]["active_users"]
    assert "train_time_s" in next(r for r in summary["results"].values() if r["scheme"] == "IPPO-L")


def test_cli_refuses_bad_tn_ntn_input_before_any_job(tmp_path, capsys):
    assert main(["run", "tn-ntn-fig3", "--schemes", "nope", "--out", str(tmp_path / "a")]) == 2
    assert "nope" in capsys.readouterr().err
    bad = ["--set", "settings=[{n_subchannels: 50, k_max: 3}]", "--out", str(tmp_path / "b")]
    assert main(["run", "tn-ntn-fig3", *bad]) == 2
    assert "srb_size" in capsys.readouterr().err
    assert not (tmp_path / "b" / "jobs").exists()


def test_cli_env_tn_ntn_plays_a_rule_and_refuses_the_catn_policy(capsys):
    code = main(["env", "tn_ntn", "--preset", "quick", "--slots", "3", "--batch", "2",
                 "--policy", "round-robin", "--formulation", "per_bs"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "QoS misses" in out and "bs/pathloss" in out and "1 turns" in out
    assert main(["env", "tn_ntn", "--policy", "heuristic"]) == 2
    assert "round-robin" in capsys.readouterr().err


def test_fig4_tests_the_policies_fig3_trained_without_training_again(tmp_path):
    fig3, fig4 = get_experiment("tn-ntn-fig3"), get_experiment("tn-ntn-fig4")
    common = ["scenario={srb_size: 4, horizon_slots: 4}", "batch=2"]
    fig3.run(tmp_path / "f3", "quick", schemes=["IPPO-L"], overrides=[
        "settings=[{n_subchannels: 8, k_max: 3}]", "frames=4", "reference_frames=1", *common,
    ])  # fmt: skip
    (policy,) = (tmp_path / "f3").glob("jobs/*/policy.pt")
    trained = torch.load(policy, weights_only=True)
    tested = ["setting={n_subchannels: 8, k_max: 3}", "test_minutes=0.05",
              "arrival_rates_per_min=[6.0]", *common]  # fmt: skip
    summary = fig4.run(tmp_path / "f4", "quick", schemes=["IPPO-L"],
                       overrides=[*tested, f"policies_from={tmp_path / 'f3'}"])  # fmt: skip
    (result,) = summary["results"].values()
    assert result["policy_from"] == str(policy) and "train_time_s" not in result
    # only the learned jobs depend on policies_from: a rule's finished test is kept
    preset = fig4.load_preset("quick", overrides=tested)
    reused = fig4.load_preset("quick", overrides=[*tested, f"policies_from={tmp_path / 'f3'}"])
    ids = [{j.scheme: j.job_id for j in fig4.jobs(p, "quick", ["random", "IPPO-L"])}
           for p in (preset, reused)]  # fmt: skip
    assert ids[0]["random"] == ids[1]["random"] and ids[0]["IPPO-L"] != ids[1]["IPPO-L"]
    # the loaded weights are the trained ones: a scheme loaded from the file decides the same
    env = small_env("per_bs")
    loaded = TN_NTN_SCHEMES.build("IPPO-L", env, TnNtnSchemeOptions(seed=0, play="greedy"))
    loaded.load_state_dict(trained)
    fresh = TN_NTN_SCHEMES.build("IPPO-L", small_env("per_bs"), TnNtnSchemeOptions(seed=0))
    actor = next(k for k in trained if "actor" in k)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            loaded.state_dict()[actor].values(), fresh.state_dict()[actor].values(), strict=True
        )
    )
    # no policy at another setting: refused before any job, naming the field and what exists
    with pytest.raises(ConfigError, match=r"policies_from.*IPPO-L \(seed 0, F=8, K_max=3\)"):
        fig4.run(tmp_path / "f5", "quick", schemes=["IPPO-L"], overrides=[
            "setting={n_subchannels: 12, k_max: 3}", f"policies_from={tmp_path / 'f3'}",
            *tested[1:],
        ])  # fmt: skip
    assert not (tmp_path / "f5" / "jobs").exists()
    policy.write_bytes(b"not a checkpoint")  # corrupt: a clear error, not a traceback
    with pytest.raises(ConfigError, match=r"policies_from: .*unreadable.*rerun tn-ntn-fig3"):
        fig4.run(tmp_path / "f6", "quick", schemes=["IPPO-L"],
                 overrides=[*tested, f"policies_from={tmp_path / 'f3'}"])  # fmt: skip


def test_play_modes_sample_the_policy_or_take_its_most_probable_choice():
    env = small_env("per_bs", batch=64)
    greedy = TN_NTN_SCHEMES.build("MAPPO-L", env, TnNtnSchemeOptions(seed=1, play="greedy"))
    sample = TN_NTN_SCHEMES.build("MAPPO-L", env, TnNtnSchemeOptions(seed=1, play="sample"))
    env.reset(3)
    turn = env.observe()
    first = greedy.decide(env, turn)
    assert torch.equal(first, greedy.decide(env, turn))  # deterministic
    draws = torch.stack([sample.decide(env, turn) for _ in range(4)])
    assert not bool((draws == draws[0]).all())  # an untrained policy is nearly uniform
    mask = turn.action_mask.expand(4, *turn.action_mask.shape)
    allowed = mask.gather(-1, draws.unsqueeze(-1)).squeeze(-1)
    assert bool(allowed.all())  # samples are masked like the greedy choice
    with pytest.raises(ConfigError, match="play"):
        TnNtnSchemeOptions(play="argmax")
