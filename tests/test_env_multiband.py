"""The seed 004 multiband game: observation (17) layout and normalisation, action mapping within
the per-user budget (14), reward (18)/(19) against hand-computed SINRs, budget roll-over (5),
episode end, errors, seeding, and PettingZoo's parallel API test."""

import math
import warnings

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from skyshare.envs.multiband import (
    MultibandEnv,
    MultibandEnvConfig,
    MultibandParallelEnv,
    make_multiband_parallel,
)
from skyshare.errors import ConfigError, ShapeError, UnknownNameError
from skyshare.scenarios.multiband import MultibandScenario

C, M, U, F, T = 2, 4, 2, 3, 4
SMALL = {"n_cells": C, "n_antennas": M, "users_per_cell": U, "n_freq": F, "n_blocks": T}


def _env(batch_size=3, **config):
    scenario = MultibandScenario.config_from("quick", overrides=SMALL)
    return MultibandEnv(scenario, MultibandEnvConfig(**config), batch_size=batch_size)


def _hand_c(state, power, b, k, f):
    """Eq. (7) for realization b, user k, channel f with plain loops over scalars."""
    cell = k // U
    interference = 0.0
    for j in range(C * U):
        if j // U != cell:
            interference += float(power[b, j, f]) * float(state.gain_power[b, k, j, f])
    return (interference + 1.0) / float(state.direct_gain[b, k, f])


def test_observation_layout_and_normalisation():
    env = _env()
    obs = env.reset(seed=4)
    assert obs.shape == (3, C, 4 * F * U * M + U * F) == (3, C, env.obs_dim)
    state = env.state
    a_bb = 10 ** (20 / 10)  # SNR 20 dB: a_bb = 100, so H is divided by 10
    W = state.W
    for b, cell, f, u, m in [(0, 0, 0, 0, 0), (1, 1, 2, 1, 3), (2, 0, 1, 1, 2)]:
        k = cell * U + u
        h = complex(state.H[b, k, cell, f, m])
        w = complex(W[b, cell, k, f, m])
        index = ((f * U + u) * M + m) * 2
        beams = 2 * F * U * M
        assert float(obs[b, cell, index]) == pytest.approx(h.real / math.sqrt(a_bb), rel=1e-5)
        assert float(obs[b, cell, index + 1]) == pytest.approx(h.imag / math.sqrt(a_bb), rel=1e-5)
        assert float(obs[b, cell, beams + index]) == pytest.approx(w.real * math.sqrt(M), rel=1e-5)
        assert float(obs[b, cell, beams + index + 1]) == pytest.approx(
            w.imag * math.sqrt(M), rel=1e-5
        )
    # c of the first block, under equal power P_bar / (T U F) = 1 per user and channel.
    equal = torch.ones(3, C * U, F)
    start = 4 * F * U * M
    for b, k, f in [(0, 0, 0), (1, 3, 2), (2, 2, 1)]:
        cell, u = divmod(k, U)
        feature = float(obs[b, cell, start + u * F + f])
        assert feature == pytest.approx(math.log10(_hand_c(state, equal, b, k, f)), abs=1e-5)


def test_c_only_observation_and_budget_features():
    env = _env(observe_channels=False, observe_beams=False, observe_budget=True)
    obs = env.reset(seed=0)
    assert env.obs_dim == U * F + 2 and obs.shape == (3, C, U * F + 2)
    torch.testing.assert_close(obs[..., -2], torch.ones(3, C))  # P_b(1) = P_bar / T
    torch.testing.assert_close(obs[..., -1], torch.ones(3, C))  # T of T blocks left
    env.step(torch.full((3, C, U * F), 0.5))
    assert float(env.observe()[0, 0, -1]) == pytest.approx((T - 1) / T)
    zero = _env(observe_channels=False, observe_beams=False, first_block_power="zero")
    obs = zero.reset(seed=0)
    c_noise_only = 1.0 / zero.state.direct_gain  # no other-cell power: c = sigma^2 / gain
    torch.testing.assert_close(obs.reshape(3, C * U, F), torch.log10(c_noise_only))


def test_next_observation_uses_previous_power_through_new_channels():
    env = _env(observe_channels=False, observe_beams=False)
    env.reset(seed=1)
    actions = torch.rand(3, C, U * F, generator=torch.Generator().manual_seed(0))
    out = env.step(actions)
    new_state = env.state
    assert new_state.t == 1
    for b, k, f in [(0, 1, 0), (2, 2, 2)]:
        cell, u = divmod(k, U)
        expected = math.log10(_hand_c(new_state, out.power, b, k, f))
        assert float(out.obs[b, cell, u * F + f]) == pytest.approx(expected, abs=1e-5)


def test_simplex_mapping_spends_each_users_share_in_proportion():
    env = _env(batch_size=1)
    env.reset(seed=0)
    x = torch.zeros(1, C, U * F)
    x[0, 0, :F] = torch.tensor([0.2, 0.6, 0.2])  # bs_0 user 0
    x[0, 0, F:] = 0.0  # bs_0 user 1: all zero -> uniform
    x[0, 1, :] = 1.0
    power = env.action_to_power(x)
    share = 3.0  # P_bar = T U F = 24; P_b(1) = 24 / T = 6; per user 6 / U = 3
    torch.testing.assert_close(power[0, 0], torch.tensor([0.6, 1.8, 0.6]))
    torch.testing.assert_close(power[0, 1], torch.full((F,), 1.0))
    torch.testing.assert_close(power.sum(-1), torch.full((1, C * U), share))
    back = env.action_to_power(env.power_to_action(power))
    torch.testing.assert_close(back, power)


def test_box_mapping_and_budget_roll_over():
    env = _env(batch_size=2, action_mapping="box")
    env.reset(seed=0)
    out = env.step(torch.full((2, C, U * F), 0.5))
    # P_b(1) = 24 / 4 = 6, per user 3, p = 3 * 0.5 / 3 = 0.5 per channel; BS spends 3 of 6.
    torch.testing.assert_close(out.power, torch.full((2, C * U, F), 0.5))
    torch.testing.assert_close(env.state.budget, torch.full((2, C), (24 - 3) / (T - 1)))
    x = torch.rand(2, C, U * F, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(env.action_to_power(env.power_to_action(env.action_to_power(x))),
                               env.action_to_power(x))  # fmt: skip


def test_reward_is_the_achieved_sum_rate_per_cell():
    env = _env(batch_size=2)
    env.reset(seed=3)
    state = env.state
    actions = torch.rand(2, C, U * F, generator=torch.Generator().manual_seed(5))
    power = env.action_to_power(actions)
    out = env.step(actions)
    for b in range(2):
        cells = [0.0] * C
        for k in range(C * U):
            for f in range(F):
                interference = 1.0
                for j in range(C * U):
                    if j != k:
                        interference += float(power[b, j, f] * state.gain_power[b, k, j, f])
                signal = float(power[b, k, f] * state.gain_power[b, k, k, f])
                cells[k // U] += math.log2(1 + signal / interference)
        for cell in range(C):
            assert float(out.reward[b, cell]) == pytest.approx(cells[cell], rel=1e-4)
        assert float(out.reward_total[b]) == pytest.approx(sum(cells), rel=1e-4)


def test_episode_ends_after_the_horizon():
    env = _env(batch_size=1)
    env.reset(seed=0)
    dones = [env.step(env.random_actions()).done for _ in range(T)]
    assert dones == [False] * (T - 1) + [True]
    assert env.done
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.random_actions())


def test_bad_actions_and_powers_raise():
    env = _env(batch_size=1)
    env.reset(seed=0)
    with pytest.raises(ShapeError):
        env.step(torch.zeros(1, C, U * F + 1))
    with pytest.raises(ConfigError, match="bs_1"):
        bad = torch.zeros(1, C, U * F)
        bad[0, 1, 2] = 1.5
        env.step(bad)
    with pytest.raises(ConfigError, match="budget"):
        env.step_power(torch.full((1, C * U, F), 5.0))
    with pytest.raises(ConfigError):
        env.step_power(torch.full((1, C * U, F), -0.1))
    assert env.t == 0  # nothing was played


def test_seeded_resets_repeat_and_unseeded_resets_continue():
    env = _env()
    first = env.reset(seed=11).clone()
    again = env.reset(seed=11)
    torch.testing.assert_close(first, again)
    later = env.reset()
    assert not torch.allclose(first, later)


def test_problem_is_the_current_blocks():
    # (whole episodes of a scheme: skyshare.schemes.multiband.run_multiband, tested there)
    env = _env(batch_size=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.problem()
    env.reset(seed=0)
    env.step_power(env.scenario.equal_power(env.state) * 0.5)  # carry half of P_b(1) over
    problem = env.problem()
    assert problem.gain_power is env.state.gain_power and problem.H is env.state.H
    # P_b(2) = (P_bar - P_b(1) / 2) / (T - 1), shared by the U users (eqs. (5), (14))
    per_block = env.scenario.power_budget_total / T
    expected = (env.scenario.power_budget_total - per_block / 2) / (T - 1) / U
    assert torch.allclose(problem.user_budget, torch.full((2, C * U), expected), rtol=1e-6)


def test_pettingzoo_parallel_api_test():
    env = make_multiband_parallel("quick", SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observation boxes are by design
        parallel_api_test(env, num_cycles=2 * T + 1)


def test_parallel_env_matches_the_core():
    scenario = MultibandScenario.config_from("quick", overrides=SMALL)
    env = MultibandParallelEnv(scenario)
    core = MultibandEnv(scenario, batch_size=1)
    obs, infos = env.reset(seed=2)
    core_obs = core.reset(seed=2)
    assert env.possible_agents == ["bs_0", "bs_1"]
    assert env.action_space("bs_1").shape == (U * F,)
    np.testing.assert_allclose(obs["bs_1"], core_obs[0, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(env.state(), core_obs[0].reshape(-1).numpy(), rtol=1e-6)
    rng = np.random.default_rng(0)
    for t in range(T):
        actions = {a: rng.random(U * F).astype(np.float32) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        out = core.step(torch.as_tensor(np.stack([actions["bs_0"], actions["bs_1"]]))[None])
        assert rewards["bs_0"] == pytest.approx(float(out.reward[0, 0]), rel=1e-6)
        assert infos["bs_1"]["reward_total"] == pytest.approx(float(out.reward_total[0]))
        assert infos["bs_0"]["power"].shape == (U, F)
        assert terms["bs_0"] == (t == T - 1) and not truncs["bs_0"]
    assert env.agents == []
    with pytest.raises(UnknownNameError):
        env.action_space("tu_0")
