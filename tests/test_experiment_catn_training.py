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
