"""The compact inference mode of the BS policies (skyshare.rl.common.compact) and its accuracy
check on a trained policy (skyshare.schemes.catn_online.compact_accuracy)."""

import pytest
import torch

from skyshare.errors import ShapeError
from skyshare.rl import CupAgents, CupConfig, PpoPenaltyAgents, PpoPenaltyConfig
from skyshare.rl.common.buffers import TrajectoryCollector
from skyshare.rl.common.compact import CompactPolicy
from skyshare.scenarios import CatnScenario
from skyshare.schemes.catn import bs_obs_baseline, build_catn_env, build_scheme
from skyshare.schemes.catn_online import compact_accuracy, run_online

SMALL = {"hidden_sizes": (16, 8, 8), "seed": 2}


def _sparse_obs(B, N, D, generator, density=0.2):
    """Observations with a spread of magnitudes (as (8): 1e-3 .. 1e7) and mostly zeros."""
    values = torch.randn(B, N, D, generator=generator) * 10 ** (
        torch.rand(B, N, D, generator=generator) * 8 - 3
    )
    return torch.where(torch.rand(B, N, D, generator=generator) < density, values, 0.0)


def _trained_agents(cls, config_cls):
    N, D, d, L = 3, 40, 7, 2
    agents = cls(D, d, N, L, config_cls(**SMALL))
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # running statistics of sparse observations
        agents.act(_sparse_obs(4, N, D, g))
    with torch.no_grad():  # a policy far from its initial Beta(1.69, 1.69)
        for p in agents.actor.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return agents, g


@pytest.mark.parametrize(
    "cls, config_cls", [(CupAgents, CupConfig), (PpoPenaltyAgents, PpoPenaltyConfig)]
)
@pytest.mark.parametrize("batch", [1, 5])
def test_compact_policy_is_the_dense_beta_mean(cls, config_cls, batch):
    agents, g = _trained_agents(cls, config_cls)
    obs = _sparse_obs(batch, agents.n_agents, agents.obs_dim, g)
    obs[0, 1] = 0.0  # an agent with nothing to read: the folded bias alone
    obs[-1, 0, :5] = 1e9  # beyond the normaliser's clip
    reference = agents.act(obs, deterministic=True, with_values=False)[0]
    assert float((reference - 0.5).abs().max()) > 0.05
    exact = CompactPolicy(agents).act(obs)
    assert exact.shape == reference.shape
    torch.testing.assert_close(exact, reference, atol=2e-6, rtol=0)
    baseline = torch.zeros(agents.obs_dim)
    baseline[3] = 4.0  # a constant input folded into the bias is equally exact
    obs[..., 3] = 4.0
    reference = agents.act(obs, deterministic=True, with_values=False)[0]
    torch.testing.assert_close(
        CompactPolicy(agents, baseline=baseline)(obs), reference, atol=2e-6, rtol=0
    )
    quantized = CompactPolicy(agents, weights="int8").act(obs)
    assert float((quantized - reference).abs().max()) < 1e-2
    with pytest.raises(ShapeError):
        CompactPolicy(agents).act(obs[:, :2])


def test_compact_policy_is_a_snapshot_and_the_scheme_rebuilds_it():
    scenario = CatnScenario.config_from(
        "quick", overrides={"n_tu": 7, "ura_rows": 2, "ura_cols": 2, "n_slots": 40}
    )
    env = build_catn_env("SC-CUP", scenario, {"k_out": 1}, batch_size=2)
    scheme = build_scheme("SC-CUP", env, {**SMALL, "compact_inference": True})
    assert build_scheme("SC-CUP", env, SMALL).beamforming.compact is None  # off by default
    beamforming = scheme.beamforming
    beamforming.collector = TrajectoryCollector(5)
    baseline = bs_obs_baseline(env)
    assert int((baseline != 0).sum()) == env.L  # the AU indices of o_out_pri
    run_online(env, scheme, 3, train=False, seed=0)
    first = beamforming._compact_policy
    assert first is not None
    run_online(env, scheme, 8, seed=0)  # learning: one update, new statistics
    obs = env.associate(scheme.association.decide(env, None, explore=False))
    decided = beamforming.decide(env, obs, explore=False).actions
    assert beamforming._compact_policy is not first
    reference = beamforming.agents.act(obs, deterministic=True, with_values=False)[0]
    torch.testing.assert_close(decided, reference, atol=2e-6, rtol=0)


def test_compact_mode_changes_a_trained_policys_sum_rate_and_interference_by_under_half_a_percent():
    """The issue's check: 1000 slots, same seeds, float32 vs compact (int8: the approximate
    mode; fp32 is exact up to rounding, above), on a D3QN-CUP policy trained briefly (50
    slots, 4 environments, 4 updates)."""
    name = "D3QN-CUP"
    scenario = CatnScenario.config_from(
        "quick", overrides={"n_tu": 7, "ura_rows": 2, "ura_cols": 2, "n_slots": 1002}
    )
    env = build_catn_env(name, scenario, {"k_out": 1}, batch_size=4)
    scheme = build_scheme(name, env, {"hidden_sizes": (32, 16, 16), "seed": 1})
    scheme.beamforming.collector = TrajectoryCollector(10)
    assert run_online(env, scheme, 50, seed=0).updates == 4
    test_env = build_catn_env(name, scenario, {"k_out": 1}, batch_size=1)
    result = compact_accuracy(test_env, scheme, 1000, seed=1, weights="int8")
    assert result.n_slots == 1000 and scheme.beamforming.compact is None
    assert 0 < result.max_action_diff < 1e-2
    assert result.rel_sum_rate < 0.005 and result.rel_au_interference < 0.005
    assert result.sum_rate[0] > 0 and result.au_interference[0] > 0
