"""The seed 004 scheme registry and its one online loop: the five schemes of §V registered with
their tags, ``run_multiband`` (shapes, the same channels block by block for every scheme of a
seed, capacities equal to the environment's rewards), what each scheme decides, and every
scheme's state round trip through ``torch.save`` / ``torch.load(weights_only=True)``."""

from __future__ import annotations

import pytest
import torch

from skyshare.envs.multiband import MultibandEnv
from skyshare.errors import ConfigError, UnknownNameError
from skyshare.scenarios.multiband import MultibandScenario
from skyshare.schemes.base import Stateless
from skyshare.schemes.multiband import (
    MULTIBAND_SCHEMES,
    MultibandDecision,
    MultibandSchemeOptions,
    PowerRule,
    run_multiband,
)
from skyshare.solvers.flwf import flwf, flwf_random_starts
from skyshare.solvers.waterfilling import sswf

C, M, U, F, T = 2, 4, 2, 3, 3
SMALL = {"n_cells": C, "n_antennas": M, "users_per_cell": U, "n_freq": F, "n_blocks": T}
TD3 = {
    "hidden_sizes": [8],
    "mixer_state": "interference",
    "hypernet_hidden": [8],
    "mixing_embed_dim": 4,
    "buffer_size": 64,
    "learning_starts": 8,
    "batch_size": 4,
}
PAPER_SCHEMES = ["random", "SSWF", "FLWF", "TD3-MIX", "TD3-MIX+FLWF"]


def _env(batch_size: int = 2, **overrides) -> MultibandEnv:
    config = MultibandScenario.config_from("quick", overrides={**SMALL, **overrides})
    return MultibandEnv(config, batch_size=batch_size)


def _options(**changes) -> MultibandSchemeOptions:
    fields = {"flwf_starts": 3, "flwf_max_iter": 30, "flwf_tol": 1e-4, "td3": TD3}
    return MultibandSchemeOptions(**{**fields, **changes})


class EqualPower(Stateless):
    """Each user spends its budget P_b(t) / U equally over the F channels."""

    def __init__(self, env=None, options=None) -> None:
        pass

    def decide(self, env: MultibandEnv) -> MultibandDecision:
        return MultibandDecision(env.scenario.equal_power(env.state))


class Recording:
    """Wraps a scheme and keeps a copy of the channels and of the power of every decision."""

    def __init__(self, scheme) -> None:
        self.scheme, self.channels, self.powers = scheme, [], []

    def decide(self, env: MultibandEnv) -> MultibandDecision:
        self.channels.append(env.state.H.clone())
        decision = self.scheme.decide(env)
        self.powers.append(decision.power.clone())
        return decision


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------


def test_registry_holds_the_five_schemes_of_section_v_with_their_tags():
    assert MULTIBAND_SCHEMES.names()[:5] == PAPER_SCHEMES
    assert set(MULTIBAND_SCHEMES.names(learns=True)) >= {"TD3-MIX", "TD3-MIX+FLWF"}
    assert {"random", "SSWF", "FLWF"} <= set(MULTIBAND_SCHEMES.names(learns=False))
    for name in PAPER_SCHEMES:
        assert MULTIBAND_SCHEMES.entry(name).description
    with pytest.raises(UnknownNameError, match="SSWF"):
        MULTIBAND_SCHEMES.build("ZF", _env(), _options())
    with pytest.raises(ConfigError, match="already registered"):
        MULTIBAND_SCHEMES.register("SSWF", EqualPower)


def test_options_are_validated():
    with pytest.raises(ConfigError, match="distribution"):
        MultibandSchemeOptions(distribution="gaussian")
    with pytest.raises(ConfigError, match="flwf_starts"):
        MultibandSchemeOptions(flwf_starts=0)
    with pytest.raises(ConfigError, match="flwf_tol"):
        MultibandSchemeOptions(flwf_tol=-1.0)


# ------------------------------------------------------------------------------------------------
# The online loop
# ------------------------------------------------------------------------------------------------


def test_run_multiband_shapes_and_equal_power_baseline():
    env = _env(batch_size=2)
    run = run_multiband(env, EqualPower(), n_episodes=2, seed=0)
    assert run.capacity.shape == (2, T, 2, C) and run.power_ratio.shape == (2, T, 2, C)
    assert bool((run.capacity > 0).all())
    assert [(block.episode, block.t) for block in run.blocks] == [
        (e, t) for e in range(2) for t in range(T)
    ]
    assert len(run.decision_time_s) == 2 * T and min(run.decision_time_s) >= 0
    # equal power spends every BS's block budget exactly (eq. (6b) with equality)
    assert torch.allclose(run.power_ratio, torch.ones_like(run.power_ratio), rtol=1e-5)
    with pytest.raises(ConfigError, match="n_episodes"):
        run_multiband(env, EqualPower(), n_episodes=0)
    # any allocation rule is a scheme through PowerRule
    rule = PowerRule(lambda e: e.scenario.equal_power(e.state))
    assert torch.equal(run_multiband(_env(), rule, n_episodes=2, seed=0).capacity, run.capacity)


def test_same_seed_gives_every_scheme_the_same_channels_block_by_block():
    seen = {}
    for name in ("random", "SSWF", "FLWF"):
        recording = Recording(MULTIBAND_SCHEMES.build(name, _env(), _options()))
        run_multiband(_env(), recording, n_episodes=2, seed=5)
        seen[name] = recording.channels
    assert len(seen["SSWF"]) == 2 * T
    for name in ("random", "FLWF"):  # these draw from their own generators only
        for ours, theirs in zip(seen[name], seen["SSWF"], strict=True):
            assert torch.equal(ours, theirs)
    other = Recording(MULTIBAND_SCHEMES.build("SSWF", _env(), _options()))
    run_multiband(_env(), other, seed=6)
    assert not torch.equal(other.channels[0], seen["SSWF"][0])


@pytest.mark.parametrize("name", ["random", "FLWF"])
def test_capacities_are_the_environments_rewards(name):
    recording = Recording(MULTIBAND_SCHEMES.build(name, _env(), _options()))
    run = run_multiband(_env(), recording, seed=3)
    replay = _env()
    replay.reset(seed=3)
    for block, power in zip(run.blocks, recording.powers, strict=True):
        out = replay.step_power(power)
        assert torch.equal(block.capacity, out.reward)  # R_b of eq. (18), bit for bit
        expected_ratio = replay.scenario.bs_power(power) / out.budget
        assert torch.equal(block.power_ratio, expected_ratio)
    assert replay.done


# ------------------------------------------------------------------------------------------------
# What each scheme decides
# ------------------------------------------------------------------------------------------------


def test_sswf_and_random_schemes_are_the_solvers_on_the_envs_problem():
    env = _env()
    env.reset(seed=1)
    decision = MULTIBAND_SCHEMES.build("SSWF", env, _options()).decide(env)
    assert torch.equal(decision.power, sswf(env.problem()).power) and decision.diagnostics == {}
    a = MULTIBAND_SCHEMES.build("random", env, _options(seed=4)).decide(env).power
    b = MULTIBAND_SCHEMES.build("random", env, _options(seed=4)).decide(env).power
    c = MULTIBAND_SCHEMES.build("random", env, _options(seed=5)).decide(env).power
    assert torch.equal(a, b) and not torch.equal(a, c)
    share = env.scenario.user_power_budget(env.state.budget)  # P_b(t) / U, eq. (14)
    assert torch.allclose(a.sum(-1), share, rtol=1e-5)


def test_flwf_scheme_plays_the_first_start_and_reports_the_mean_over_starts():
    env = _env()
    env.reset(seed=2)
    decision = MULTIBAND_SCHEMES.build("FLWF", env, _options(seed=7)).decide(env)
    expected = flwf_random_starts(
        env.problem(), 3, torch.Generator().manual_seed(7), max_iter=30, tol=1e-4
    )
    B, S = 2, 3
    d = decision.diagnostics
    assert torch.equal(decision.power, expected.result.power.reshape(B, S, U * C, F)[:, 0])
    assert torch.equal(d["start_capacity"], expected.capacity)
    assert torch.allclose(d["capacity_mean"], d["start_capacity"].mean(-1))
    assert torch.allclose(d["capacity_std"], d["start_capacity"].std(-1))
    assert torch.equal(d["capacity_best"], d["start_capacity"].amax(-1))
    assert d["iterations"].shape == d["converged"].shape == (B, S)
    assert bool((d["iterations"] <= 30).all())


def test_td3_mix_schemes_play_the_actor_with_and_without_flwf():
    env = _env()
    plain = MULTIBAND_SCHEMES.build("TD3-MIX", env, _options(seed=1))
    with_flwf = MULTIBAND_SCHEMES.build("TD3-MIX+FLWF", env, _options(seed=1))
    env.reset(seed=0)
    actor_power = env.action_to_power(plain.agents.act(env.observe()))
    decision = plain.decide(env)
    assert torch.equal(decision.power, actor_power) and decision.diagnostics == {}
    start = env.action_to_power(with_flwf.agents.act(env.observe()))
    decision = with_flwf.decide(env)
    expected = flwf(env.problem(), start, max_iter=30, tol=1e-4)
    assert torch.equal(decision.power, expected.power)
    assert decision.diagnostics["iterations"].tolist() == [
        [i] for i in expected.instance_iterations.tolist()
    ]
    assert plain.learn() == {} and plain.learns and with_flwf.learns
    # a learned scheme wraps agents trained for it, and only those
    wrapped = MULTIBAND_SCHEMES.build("TD3-MIX", env, _options(agents=plain.agents))
    assert wrapped.agents is plain.agents
    with pytest.raises(ConfigError, match="TD3-MIX\\+FLWF"):
        MULTIBAND_SCHEMES.build("TD3-MIX+FLWF", env, _options(agents=plain.agents))


def test_td3_mix_scheme_trains_through_its_agents_loop():
    env = _env(batch_size=4)
    scheme = MULTIBAND_SCHEMES.build("TD3-MIX+FLWF", env, _options())
    log = scheme.train(env, 3)
    assert log.n_transitions == 3 * 4 and len(log.flwf_iterations) == 3
    assert scheme.agents.n_transitions == 12


# ------------------------------------------------------------------------------------------------
# State round trip
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER_SCHEMES)
def test_state_dict_round_trip_through_weights_only_load(tmp_path, name):
    env = _env()
    scheme = MULTIBAND_SCHEMES.build(name, env, _options(seed=11))
    env.reset(seed=0)
    scheme.decide(env)  # moves the scheme's generator (random, FLWF)
    path = tmp_path / "scheme.pt"
    torch.save(scheme.state_dict(), path)
    state = torch.load(path, weights_only=True)  # tensors, numbers, strings, lists, dicts only
    restored = MULTIBAND_SCHEMES.build(name, env, _options(seed=99))
    restored.load_state_dict(state)
    env.reset(seed=1)
    assert torch.equal(restored.decide(env).power, scheme.decide(env).power)
    assert restored.learns == MULTIBAND_SCHEMES.entry(name).tags["learns"]


def test_stateless_scheme_refuses_a_foreign_state():
    scheme = MULTIBAND_SCHEMES.build("SSWF", _env(), _options())
    assert scheme.state_dict() == {}
    with pytest.raises(ConfigError, match="no state"):
        scheme.load_state_dict({"generator": torch.zeros(3)})
