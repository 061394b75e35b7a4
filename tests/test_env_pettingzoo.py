"""The CATN PettingZoo AEC adapter: PettingZoo's own API, seed and state tests, equality with
the batched core, turn order (Algorithm 4), costs in infos, action errors, horizon."""

import warnings

import numpy as np
import pytest
import torch
from pettingzoo.test import api_test, seed_test
from pettingzoo.test.state_test import test_state as pettingzoo_state_test
from pettingzoo.test.state_test import test_state_space as pettingzoo_state_space_test

from skyshare.envs.catn import CatnEnv, CatnEnvConfig
from skyshare.envs.catn_pettingzoo import CatnAECEnv, make_catn_aec
from skyshare.errors import ShapeError, UnknownNameError
from skyshare.scenarios import CatnScenario

K, N, L = 7, 7, 2  # small network: 7 TUs, 7 BSs, 2 AUs, 2x2 URAs
SCENARIO = {"n_tu": K, "ura_rows": 2, "ura_cols": 2, "n_slots": 6}
GAME = {"k_out": 1}  # K_out B_in = 4 <= K


def _aec(**scenario):
    return make_catn_aec("quick", {**SCENARIO, **scenario}, config=GAME)


def _core():
    config = CatnScenario.config_from("quick", overrides=SCENARIO)
    return CatnEnv(config, CatnEnvConfig(**GAME), batch_size=1)


def _play_slot(env, tu_actions, bs_actions):
    """Step every agent once (TUs then BSs), in the environment's own order."""
    for agent in env.possible_agents:
        assert env.agent_selection == agent
        kind, index = agent.split("_")
        env.step(tu_actions[int(index)] if kind == "tu" else bs_actions[int(index)])


def test_pettingzoo_api_test():
    with warnings.catch_warnings():
        # Unbounded observation spaces and different TU/BS observation sizes are by design.
        warnings.simplefilter("ignore")
        api_test(_aec(), num_cycles=30, verbose_progress=False)


def test_pettingzoo_seed_test():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed_test(_aec, num_cycles=30)


def test_pettingzoo_state_test():
    env = _aec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pettingzoo_state_space_test(env)
        pettingzoo_state_test(env, num_cycles=3)
    assert env.state().shape == (2 * K * N + L * N + 3 * K,)


def test_spaces_have_the_paper_dimensions():
    env = _aec()
    assert env.possible_agents == [f"tu_{k}" for k in range(K)] + [f"bs_{n}" for n in range(N)]
    assert env.action_space("tu_3").n == N
    assert env.observation_space("tu_0").shape == (3 * N + 4,)  # (14)
    assert env.action_space("bs_2").shape == (2 * K + L + 2,)  # (9)
    assert env.action_space("bs_2").dtype == np.float32
    assert float(env.action_space("bs_2").low.min()) == 0.0
    assert float(env.action_space("bs_2").high.max()) == 1.0
    Nc, b_in, b_in_pri, k_in, k_out = 4, 4, 5, 3, 1
    bs_dim = (
        (K + 3 * Nc * K + 4 * K)  # o_loc
        + 5 * L  # o_loc_pri
        + ((1 + 3 * Nc * K + K + 1) * b_in + 1) * k_in  # o_in
        + (1 + 4 + K + 1) * b_in_pri * L  # o_in_pri
        + 4 * k_out * b_in  # o_out
        + 4 * L  # o_out_pri
    )
    assert env.observation_space("bs_6").shape == (bs_dim,)
    assert env.observation_space("bs_0").dtype == np.float32
    assert env.action_space("tu_0") is not env.action_space("tu_1")  # seeded independently
    assert env.observation_space("bs_0") is not env.observation_space("bs_1")
    with pytest.raises(UnknownNameError, match="bs_7"):
        env.action_space("bs_7")


def test_one_slot_equals_one_slot_of_the_batched_core():
    aec, core = _aec(), _core()
    aec.reset(seed=11)
    tu_obs = core.reset(seed=11)
    for k in range(K):
        np.testing.assert_array_equal(aec.observe(f"tu_{k}"), tu_obs[0, k].numpy())
    np.testing.assert_array_equal(aec.state(), core.global_state()[0].numpy())
    rng = np.random.default_rng(0)
    for _ in range(2):  # two slots: the second has handovers relative to the first
        tu_actions = rng.integers(0, N, K)
        bs_actions = rng.random((N, 2 * K + L + 2), dtype=np.float32)
        bs_actions[0, 0] = 1.0  # the closed upper end is a valid action

        for k in range(K):
            aec.step(int(tu_actions[k]))
        bs_obs = core.associate(torch.as_tensor(tu_actions)[None])
        for n in range(N):
            np.testing.assert_array_equal(aec.observe(f"bs_{n}"), bs_obs[0, n].numpy())
        np.testing.assert_array_equal(aec.state(), core.global_state()[0].numpy())

        for n in range(N):
            aec.step(bs_actions[n])
        outcome = core.beamform(torch.as_tensor(bs_actions)[None])
        for k in range(K):
            assert aec.rewards[f"tu_{k}"] == float(outcome.tu_reward[0, k])
            np.testing.assert_array_equal(aec.observe(f"tu_{k}"), outcome.tu_obs[0, k].numpy())
            assert aec.infos[f"tu_{k}"]["handover"] == bool(core.handover[0, k])
        for n in range(N):
            assert aec.rewards[f"bs_{n}"] == float(outcome.bs_reward[0, n])
            np.testing.assert_array_equal(aec.infos[f"bs_{n}"]["cost"], outcome.cost[0, n].numpy())
        np.testing.assert_array_equal(aec.state(), core.global_state()[0].numpy())
    assert aec.core.ledger.per_kind_per_slot() == core.ledger.per_kind_per_slot()


def test_turn_order_is_tus_then_bss_and_rewards_arrive_at_the_next_turn():
    env = _aec(n_slots=4)
    env.reset(seed=3)
    order = []
    rewards_seen = {}
    slot_rewards = []
    for agent in env.agent_iter(2 * (K + N)):
        _, reward, _, _, _ = env.last()
        order.append(agent)
        if len(order) > K + N:  # second slot: every agent sees the reward of the first
            rewards_seen[agent] = reward
        env.step(env.action_space(agent).sample())
        if agent == f"bs_{N - 1}":
            slot_rewards.append(dict(env.rewards))
    expected = [f"tu_{k}" for k in range(K)] + [f"bs_{n}" for n in range(N)]
    assert order == expected + expected
    assert rewards_seen == slot_rewards[0]
    assert any(value != 0.0 for value in rewards_seen.values())


def test_bs_observations_appear_only_after_the_last_tu_has_acted():
    env = _aec()
    env.reset(seed=4)
    zeros = np.zeros(env.observation_space("bs_0").shape, dtype=np.float32)
    for _ in range(K - 1):
        env.step(0)
        np.testing.assert_array_equal(env.observe("bs_0"), zeros)  # documented: zeros
    env.step(0)
    first = env.observe("bs_0")
    assert np.abs(first).sum() > 0
    for _ in range(N):
        env.step(np.full(2 * K + L + 2, 0.5, dtype=np.float32))
    np.testing.assert_array_equal(env.observe("bs_0"), first)  # kept until the next association
    env.reset(seed=4)
    np.testing.assert_array_equal(env.observe("bs_0"), zeros)  # not carried across episodes


def test_costs_are_in_infos_and_follow_eq_11():
    env = _aec()
    env.reset(seed=5)
    assert all(env.infos[f"bs_{n}"]["cost"].shape == (L,) for n in range(N))
    assert all(env.infos[f"tu_{k}"]["cost"].shape == (0,) for k in range(K))
    _play_slot(env, [k % N for k in range(K)], [np.full(2 * K + L + 2, 0.7)] * N)
    rho = env.last_outcome.au_interference[0].double().numpy()
    i_max = env.core.i_max  # I_max in noise units
    for n in range(N):
        cost = env.infos[f"bs_{n}"]["cost"]
        assert cost.shape == (L,) and cost.dtype == np.float32
        np.testing.assert_allclose(cost, rho / i_max - 1.0, rtol=1e-5, atol=1e-6)  # (11)
        assert list(cost < 0) == list(rho < i_max)
    assert env.infos["tu_0"]["rate"] == float(env.last_outcome.rates[0, 0])
    # After bs_0's next turn starts, last() returns exactly this info.
    for _ in range(K):
        env.step(0)
    assert env.agent_selection == "bs_0"
    assert env.last()[4]["cost"] is env.infos["bs_0"]["cost"]


def test_invalid_actions_raise_errors_naming_the_agent_and_leave_the_env_unchanged():
    env = _aec()
    env.reset(seed=6)
    with pytest.raises(ValueError, match=r"tu_0 \(env 0\) chose BS 7; allowed range: \[0, 6\]"):
        env.step(N)
    with pytest.raises(ValueError, match=r"tu_0.*not finite"):
        env.step(float("nan"))
    with pytest.raises(ShapeError, match="tu_0"):
        env.step(np.array([1, 2]))
    with pytest.raises(ShapeError, match="tu_0"):
        env.step(None)
    assert env.agent_selection == "tu_0"  # nothing happened
    for k in range(K):
        env.step(np.int32(k % N))
    assert env.agent_selection == "bs_0"
    bad = np.full(2 * K + L + 2, 0.5, dtype=np.float32)
    bad[1 + K] = np.nan  # alpha_0
    with pytest.raises(ValueError, match=r"bs_0 \(env 0\) action\[8\] \(alpha_0\) is nan"):
        env.step(bad)
    too_big = np.full(2 * K + L + 2, 0.5)
    too_big[0] = 1.5
    with pytest.raises(ValueError, match=r"bs_0 .*q_total.* allowed range: \[0, 1\]"):
        env.step(too_big)
    with pytest.raises(ShapeError, match=r"bs_0.*\(18,\)"):
        env.step(np.full(5, 0.5))
    assert env.agent_selection == "bs_0"
    env.step(np.ones(2 * K + L + 2, dtype=np.float32))  # exactly 1.0 everywhere is valid
    env.step(np.zeros(2 * K + L + 2, dtype=np.float32))  # and so is 0.0
    assert env.agent_selection == "bs_2"


def test_episode_truncates_at_the_horizon():
    n_slots = 4
    env = _aec(n_slots=n_slots)
    env.reset(seed=7)
    played = 0
    for agent in env.agent_iter():
        _, _, terminated, truncated, _ = env.last()
        assert not terminated
        if truncated:
            env.step(None)
            continue
        env.step(env.action_space(agent).sample())
        if agent == f"bs_{N - 1}":
            played += 1
            assert all(env.truncations.values()) == (played == n_slots - 1)
    assert played == n_slots - 1  # slot 0 is the core's random slot
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset()
    assert len(env.agents) == K + N and not any(env.truncations.values())


def test_seeding_reset_with_and_without_a_seed():
    env = _aec()
    env.reset(seed=9)
    first = env.observe("tu_0")
    env.reset(seed=9)
    np.testing.assert_array_equal(env.observe("tu_0"), first)
    env.reset()  # continues the random stream: a new episode
    assert not np.array_equal(env.observe("tu_0"), first)
    # The stream is reproducible: a fresh environment seeded the same way draws the same episode.
    other = _aec()
    other.reset(seed=9)
    other.reset()
    np.testing.assert_array_equal(other.observe("tu_3"), env.observe("tu_3"))
    # The first reset without a seed uses the scenario's seed.
    a, b = _aec(), CatnAECEnv(CatnScenario.config_from("quick", overrides=SCENARIO), GAME)
    a.reset()
    b.reset(seed=0)
    np.testing.assert_array_equal(a.observe("tu_1"), b.observe("tu_1"))


def test_render_close_and_render_mode():
    env = _aec()
    env.reset(seed=0)
    assert env.render() is None
    env.close()
    with pytest.raises(ValueError, match="render_mode"):
        make_catn_aec("quick", SCENARIO, config=GAME, render_mode="human")
