"""The TN-NTN PettingZoo AEC adapter: PettingZoo's own API, seed and state tests, agent names and
turn-major order, equality with the batched core (observations, group rewards (10), costs (11)
in infos), action errors and truncation at the horizon."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pettingzoo.test import api_test, seed_test
from pettingzoo.test.state_test import test_state as pettingzoo_state_test
from pettingzoo.test.state_test import test_state_space as pettingzoo_state_space_test

from skyshare.envs.tn_ntn import TnNtnEnv
from skyshare.envs.tn_ntn_pettingzoo import MaskedMultiDiscrete, TnNtnAECEnv, make_tn_ntn_aec
from skyshare.errors import ConfigError, ShapeError, UnknownNameError
from skyshare.scenarios.tn_ntn import TnNtnScenario

SCENARIO = {"horizon_slots": 3}  # quick preset: N = 3, F = 80, K_max = 10, S = 40 (M = 2)


def _aec(formulation: str = "decomposed", **overrides) -> TnNtnAECEnv:
    return make_tn_ntn_aec("quick", {**SCENARIO, **overrides}, formulation=formulation)


@pytest.mark.parametrize("formulation", ["decomposed", "per_bs"])
def test_pettingzoo_api_test(formulation):
    with warnings.catch_warnings():
        # Dict observations with action masks, MultiDiscrete actions and bs{n}_srb{m} names
        # are by design (PettingZoo only recommends Box/Discrete and name_<number>).
        warnings.simplefilter("ignore")
        api_test(_aec(formulation), num_cycles=10, verbose_progress=False)


def test_pettingzoo_seed_test():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed_test(_aec, num_cycles=10)


def test_pettingzoo_state_test():
    # PettingZoo's state test samples actions without the mask: inactive slots must mean off.
    env = make_tn_ntn_aec("quick", SCENARIO, inactive_action="off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pettingzoo_state_space_test(env)
        pettingzoo_state_test(env, num_cycles=3)
    assert env.state().shape == (env.core.state_dim,) == (3752,)


def test_agents_spaces_and_turn_major_order():
    env = _aec()
    assert env.possible_agents == [
        "bs0_srb0",
        "bs1_srb0",
        "bs2_srb0",
        "bs0_srb1",
        "bs1_srb1",
        "bs2_srb1",
    ]
    assert _aec("per_bs").possible_agents == ["bs0", "bs1", "bs2"]
    space = env.action_space("bs1_srb1")
    assert isinstance(space, MaskedMultiDiscrete) and space.nvec.tolist() == [11] * 40
    obs_space = env.observation_space("bs1_srb1")
    assert obs_space["observation"].shape == (535,)
    assert obs_space["action_mask"].shape == (40, 11)
    assert _aec("per_bs").action_space("bs2").nvec.tolist() == [11] * 80
    with pytest.raises(UnknownNameError, match="unknown agent 'bs3_srb0'"):
        env.action_space("bs3_srb0")
    env.reset(seed=0)
    order = []
    for agent in env.agent_iter(12):
        order.append(agent)
        obs, *_ = env.last()
        env.step(env.action_space(agent).sample(obs["action_mask"]))
    assert order == env.possible_agents * 2


def test_aec_equals_the_core_and_hands_out_group_rewards_and_costs():
    env = _aec()
    core = TnNtnEnv(TnNtnScenario.from_preset("quick", overrides=SCENARIO))
    env.reset(seed=4)
    core.reset(seed=4)
    generator = torch.Generator().manual_seed(0)
    for _frame in range(2):
        for m in range(2):
            turn = core.observe()
            actions = core.random_actions(generator)
            for n in range(3):
                agent = f"bs{n}_srb{m}"
                assert env.agent_selection == agent
                obs, _, _, truncated, _ = env.last()
                assert np.array_equal(obs["observation"], turn.obs[0, n].numpy())
                assert np.array_equal(obs["action_mask"], turn.action_mask[0, n].numpy())
                assert not truncated
                env.step(actions[0, n].numpy())
            result = core.act(actions)
        for n in range(3):
            for m in range(2):
                agent = f"bs{n}_srb{m}"
                assert env.rewards[agent] == pytest.approx(float(result.reward[0, m]))
                info = env.infos[agent]
                assert info["cost"] == pytest.approx(float(result.cost[0, n].sum()))
                assert np.array_equal(info["user_cost"], result.cost[0, n].numpy())
        assert torch.equal(env.last_result.assignment, result.assignment)
        assert np.array_equal(env.state(), core.observe().state[0].numpy())


def test_agents_get_their_reward_at_their_next_turn_and_truncate_at_the_horizon():
    env = _aec(horizon_slots=2)
    env.reset(seed=1)
    rewards = {}
    steps = 0
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, _ = env.last()
        if steps >= 6:
            rewards.setdefault(agent, reward)
        if truncated:
            env.step(None)
            continue
        assert not terminated
        env.step(env.action_space(agent).sample(obs["action_mask"]))
        steps += 1
    assert steps == 12 and env.agents == []
    assert env.last_result is not None and bool(env.last_result.done[0])
    # the frame-0 reward arrives when the agent acts in frame 1
    assert set(rewards) == set(env.possible_agents)
    assert all(reward != 0.0 for reward in rewards.values())
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(40, dtype=np.int64))


def test_bad_actions_raise_naming_the_agent_and_leave_the_env_as_it_was():
    env = _aec()
    env.reset(seed=1)
    active = env.core.state.active[0, 0]
    k = int((~active).nonzero()[0])  # an inactive slot of BS 0
    with pytest.raises(ShapeError, match="bs0_srb0: the action must be integers"):
        env.step(np.zeros(40, dtype=np.float32))
    with pytest.raises(ShapeError, match=r"bs0_srb0: the action must have shape \(S,\) = \(40,\)"):
        env.step(np.zeros(39, dtype=np.int64))
    with pytest.raises(ShapeError, match="must not be None"):
        env.step(None)
    too_big = np.zeros(40, dtype=np.uint64)
    too_big[2] = 2**63 + 5
    with pytest.raises(
        ConfigError, match=r"bs0_srb0: action\[2\] .* allowed range \[0, K_max=10\]"
    ):
        env.step(too_big)
    inactive = np.zeros(40, dtype=np.int64)
    inactive[4] = k + 1
    with pytest.raises(ConfigError, match=f"agent bs0_srb0, subchannel 4, .* user slot {k}"):
        env.step(inactive)
    assert env.agent_selection == "bs0_srb0"
    env.step(np.zeros(40, dtype=np.int32))
    assert env.agent_selection == "bs1_srb0"

    lenient = make_tn_ntn_aec("quick", SCENARIO, inactive_action="off")
    lenient.reset(seed=1)
    lenient.step(inactive)  # treated as off
    assert lenient.agent_selection == "bs1_srb0"
