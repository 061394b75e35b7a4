"""Algorithm 4 plumbing: every scheme runs end to end on a tiny CATN; learners update."""

import pytest
import torch

from skyshare.envs import CatnEnv, CatnEnvConfig
from skyshare.experiments.catn_training import run_online
from skyshare.rl import CupAgents, CupConfig, D3QNAgents, D3QNConfig, PpoPenaltyAgents
from skyshare.rl.ppo_penalty import PpoPenaltyConfig
from skyshare.scenarios import CatnScenario


def _env(batch=2):
    config = CatnScenario.config_from(
        "quick", overrides={"n_tu": 7, "ura_rows": 2, "ura_cols": 2, "n_slots": 200}
    )
    return CatnEnv(config, CatnEnvConfig(k_out=1), batch_size=batch)


def test_d3qn_cup_trains_through_algorithm_4():
    env = _env()
    small = {"hidden_sizes": (16, 8, 8), "epochs": 2, "minibatch_size": 5}
    cup = CupAgents(env.bs_obs_dim, env.action_dim, env.N, env.L, CupConfig(**small))
    d3qn = D3QNAgents(env.tu_obs_dim, env.N, env.K, D3QNConfig(batch_size=8, memory_size=64))
    nu0 = cup.nu.clone()
    log = run_online(
        env, "d3qn", "cup", 25, tu_agents=d3qn, bs_agents=cup, collector_size=10, seed=0
    )
    assert len(log.sum_rate) == 25 and len(log.au_interference_ratio[0]) == env.L
    assert log.updates == 2  # slots 2..11 and 12..21 fill the collector of 10 twice
    assert not torch.equal(cup.nu, nu0)  # the nu update of Algorithm 3 ran
    assert d3qn.n_updates > 0 and d3qn.epsilon < 0.3
    assert all(r >= 0 for r in log.sum_rate)
    assert 0.0 <= min(log.handover_fraction) <= max(log.handover_fraction) <= 1.0


@pytest.mark.parametrize(("association", "beamforming"), [("sc", "wmmse-lite"), ("dcd", "ppo")])
def test_benchmark_schemes_run(association, beamforming):
    env = _env(batch=1)
    bs = None
    if beamforming == "ppo":
        bs = PpoPenaltyAgents(
            env.bs_obs_dim,
            env.action_dim,
            env.N,
            env.L,
            PpoPenaltyConfig(hidden_sizes=(8, 8, 8), penalty=10.0, epochs=1),
        )
    log = run_online(env, association, beamforming, 4, bs_agents=bs, collector_size=2, seed=1)
    assert len(log.sum_rate) == 4
    if beamforming == "wmmse-lite":  # the solver keeps (2c)
        assert max(max(r) for r in log.au_interference_ratio) <= 1.0 + 1e-3


def test_bad_scheme_names():
    env = _env(batch=1)
    with pytest.raises(Exception, match="unknown association"):
        run_online(env, "greedy", "cup", 1)
    with pytest.raises(ValueError, match="needs tu_agents"):
        run_online(env, "d3qn", "wmmse", 1)


def _build(scheme):
    """A fresh env and fresh agents, as a restarted process would build them."""
    env = _env()
    small = {"hidden_sizes": (16, 8, 8), "epochs": 2, "minibatch_size": 5, "seed": 3}
    tu = D3QNAgents(
        env.tu_obs_dim,
        env.N,
        env.K,
        D3QNConfig(batch_size=8, memory_size=64),
        generator=torch.Generator().manual_seed(5),
    )
    if scheme == "cup":
        bs = CupAgents(env.bs_obs_dim, env.action_dim, env.N, env.L, CupConfig(**small))
    else:
        bs = PpoPenaltyAgents(
            env.bs_obs_dim, env.action_dim, env.N, env.L, PpoPenaltyConfig(penalty=5.0, **small)
        )
    return env, tu, bs


def _comparable(log):
    """Everything in the log but the wall-clock decision times and the last update's stats."""
    return {
        name: getattr(log, name)
        for name in (
            "slots",
            "sum_rate",
            "effective_sum_rate",
            "au_interference_ratio",
            "handover_fraction",
            "tu_reward",
            "bs_reward",
            "updates",
        )
    }


@pytest.mark.parametrize("scheme", ["cup", "ppo"])
def test_interrupted_run_resumes_exactly(tmp_path, scheme):
    """A run that crashes in slot 14 (checkpoints every 4 slots, the last after slot 12) and
    is restarted in fresh objects gives exactly the log, networks, epsilon and ledger of an
    uninterrupted run with the same seeds."""
    n, kwargs = 22, {"collector_size": 5, "seed": 0}
    env, tu, bs = _build(scheme)
    reference = run_online(env, "d3qn", scheme, n, tu_agents=tu, bs_agents=bs, **kwargs)
    assert reference.updates == 4  # the collector of 5 fills after slots 6, 11, 16, 21

    path = tmp_path / "run.pt"
    env1, tu1, bs1 = _build(scheme)
    transmit, calls = env1.beamform, []

    def crash_in_slot_14(actions):
        calls.append(1)
        if len(calls) == 14:
            raise KeyboardInterrupt("simulated interruption")
        return transmit(actions)

    env1.beamform = crash_in_slot_14
    with pytest.raises(KeyboardInterrupt):
        run_online(
            env1,
            "d3qn",
            scheme,
            n,
            tu_agents=tu1,
            bs_agents=bs1,
            checkpoint_path=path,
            checkpoint_every=4,
            **kwargs,
        )
    assert torch.load(path, weights_only=False)["next_slot"] == 12

    env2, tu2, bs2 = _build(scheme)  # the restarted process
    resumed = run_online(
        env2,
        "d3qn",
        scheme,
        n,
        tu_agents=tu2,
        bs_agents=bs2,
        checkpoint_path=path,
        checkpoint_every=4,
        **kwargs,
    )
    assert _comparable(resumed) == _comparable(reference)
    assert len(resumed.decision_time_s) == n
    for a, b in zip(bs2.actor.parameters(), bs.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(tu2.online.parameters(), tu.online.parameters(), strict=True):
        assert torch.equal(a, b)
    assert tu2.epsilon == tu.epsilon and bs2.n_updates == bs.n_updates
    assert env2.ledger.slots == env.ledger.slots == n
    assert env2.ledger.per_kind_per_slot() == env.ledger.per_kind_per_slot()

    # a finished run "resumes" to its end without playing a slot; a longer one continues
    env3, tu3, bs3 = _build(scheme)
    again = run_online(
        env3, "d3qn", scheme, n, tu_agents=tu3, bs_agents=bs3, checkpoint_path=path, **kwargs
    )
    assert _comparable(again) == _comparable(reference) and env3.ledger.slots == n
    with pytest.raises(Exception, match="beyond n_slots"):
        run_online(env3, "d3qn", scheme, 5, tu_agents=tu3, bs_agents=bs3, checkpoint_path=path)


def test_checkpoint_of_another_scheme_is_refused(tmp_path):
    env = _env(batch=1)
    path = tmp_path / "c.pt"
    run_online(env, "sc", "wmmse-lite", 2, checkpoint_path=path, seed=0)
    with pytest.raises(Exception, match="holds"):
        run_online(_env(batch=1), "dcd", "wmmse-lite", 3, checkpoint_path=path, seed=0)
    with pytest.raises(Exception, match="another configuration"):
        run_online(_env(batch=2), "sc", "wmmse-lite", 3, checkpoint_path=path, seed=0)
    resumed = run_online(_env(batch=1), "sc", "wmmse-lite", 4, checkpoint_path=path, seed=0)
    reference = run_online(_env(batch=1), "sc", "wmmse-lite", 4, seed=0)
    assert resumed.sum_rate == reference.sum_rate
