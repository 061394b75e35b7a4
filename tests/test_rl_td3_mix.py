"""QMIX mixing (monotone, non-negative weights) and TD3-MIX / TD3-MIX+FLWF (seed 004 §IV,
Algorithm 1): target (22) on fixed tensors, delayed policy updates, soft updates, the per-user
budget, the FLWF step of Algorithm 1 lines 7-9, checkpoints, and learning beyond random
power allocation on a tiny instance."""

import copy
import math

import pytest
import torch
from torch.nn import functional

from skyshare.envs.multiband import MultibandEnv, MultibandEnvConfig
from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.mixing import QMixer
from skyshare.rl.common.networks import GroupLinear
from skyshare.rl.td3_mix import (
    TD3MixAgents,
    TD3MixConfig,
    smoothed_target_actions,
    soft_update_,
    twin_td_target,
)
from skyshare.scenarios.multiband import MultibandScenario
from skyshare.schemes.multiband import (
    MULTIBAND_SCHEMES,
    MultibandSchemeOptions,
    PowerRule,
    TD3MixScheme,
    run_multiband,
)

TINY = {"n_cells": 2, "n_antennas": 4, "users_per_cell": 2, "n_freq": 2, "n_blocks": 4}
C_ONLY = {"observe_channels": False, "observe_beams": False}


def _env(batch_size=4, env_config=None, **overrides):
    scenario = MultibandScenario.config_from("quick", overrides={**TINY, **overrides})
    return MultibandEnv(scenario, MultibandEnvConfig(**(env_config or {})), batch_size=batch_size)


def _learner(env, seed=0, **config):
    return TD3MixAgents.for_env(env, TD3MixConfig(seed=seed, **config))


def dense(group, index, x):
    """Network ``index`` of a GroupMLP with ReLU hidden layers and a linear output, by hand
    (float64)."""
    layers = [m for m in group.modules() if isinstance(m, GroupLinear)]
    x = x.double()
    for j, layer in enumerate(layers):
        x = x @ layer.weight[index].double() + layer.bias[index, 0].double()
        if j < len(layers) - 1:
            x = torch.relu(x)
    return x


# ---------------------------------------------------------------------------------------------
# Mixing network
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["abs", "softplus"])
def test_mixer_is_monotone_in_every_agent_value(activation):
    torch.manual_seed(0)
    mixer = QMixer(3, 7, n_mixers=2, embed_dim=8, weight_activation=activation)
    for _ in range(5):
        q = (10 * torch.randn(2, 64, 3)).requires_grad_(True)
        state = 3 * torch.randn(64, 7)
        q_tot = mixer(q, state)
        assert q_tot.shape == (2, 64)
        (grad,) = torch.autograd.grad(q_tot.sum(), q)
        assert bool((grad >= 0).all())
        assert bool((grad > 0).any())
        w1, w2 = mixer.mixing_weights(state)
        assert w1.shape == (2, 64, 3, 8) and w2.shape == (2, 64, 8)
        assert bool((w1 >= 0).all()) and bool((w2 >= 0).all())
    # The constraint is what makes it monotone: the raw hypernetwork outputs have both signs.
    raw = mixer.hyper_w1(state.expand(2, -1, -1))
    assert bool((raw < 0).any()) and bool((raw > 0).any())


@torch.no_grad()
def test_mixer_forward_matches_the_qmix_formula():
    torch.manual_seed(1)
    mixer = QMixer(2, 3, n_mixers=1, embed_dim=2, hypernet_hidden=())
    q = torch.tensor([[[1.5, -0.5]]])
    s = torch.tensor([[0.2, -1.0, 0.7]])

    def linear(group, index=0):
        layer = group.net[index]
        return lambda x: x @ layer.weight[0] + layer.bias[0]

    w1 = linear(mixer.hyper_w1)(s).abs()[0]  # (A E,) = [W1[0, :], W1[1, :]]
    b1 = linear(mixer.hyper_b1)(s)[0]
    w2 = linear(mixer.hyper_w2)(s).abs()[0]
    v = float(linear(mixer.value, 2)(functional.relu(linear(mixer.value)(s)))[0, 0])
    expected = v
    for e in range(2):
        pre = 1.5 * float(w1[e]) - 0.5 * float(w1[2 + e]) + float(b1[e])
        hidden = pre if pre > 0 else math.exp(pre) - 1  # ELU
        expected += hidden * float(w2[e])
    assert float(mixer(q, s)[0, 0]) == pytest.approx(expected, rel=1e-5)


def test_mixer_rejects_bad_shapes():
    mixer = QMixer(3, 5, n_mixers=2)
    with pytest.raises(ShapeError):
        mixer(torch.zeros(2, 4, 2), torch.zeros(4, 5))
    with pytest.raises(ShapeError):
        mixer(torch.zeros(2, 4, 3), torch.zeros(4, 6))
    with pytest.raises(ConfigError):
        QMixer(3, 5, weight_activation="relu")


# ---------------------------------------------------------------------------------------------
# TD3 pieces on fixed tensors
# ---------------------------------------------------------------------------------------------


def test_twin_target_takes_the_smaller_twin_and_stops_at_the_horizon():
    reward = torch.tensor([1.0, 2.0, -0.5])
    next_q = torch.tensor([[3.0, 5.0, 2.0], [4.0, 1.0, -1.0]])
    done = torch.tensor([0.0, 1.0, 0.0])
    y = twin_td_target(reward, next_q, done, gamma=0.9)
    # 1 + 0.9 min(3, 4); done: 2; -0.5 + 0.9 min(2, -1)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 3.0, 2.0, -0.5 - 0.9]))
    torch.testing.assert_close(twin_td_target(reward, next_q, done, 0.9, bootstrap=False), reward)
    with pytest.raises(ShapeError):
        twin_td_target(reward, next_q[:1], done, 0.9)


def test_target_noise_is_clipped_and_actions_stay_in_range():
    actions = torch.tensor([0.5, 0.95, 0.1, 0.3])
    noise = torch.tensor([0.4, 0.1, -0.3, -0.1])
    out = smoothed_target_actions(actions, noise, noise_clip=0.25)
    # 0.5 + 0.25 (clipped); 0.95 + 0.1 -> 1 (range); 0.1 - 0.25 -> 0; 0.3 - 0.1
    torch.testing.assert_close(out, torch.tensor([0.75, 1.0, 0.0, 0.2]))


def test_td_target_22_by_hand_with_every_target_network_perturbed():
    """y = r + gamma (1 - done) min_i Q_tot,Theta_i'(Q_theta_i'(S'_b, x~'_b); S') with
    x~' = project(clip(pi_phi'(S'_b) + clip(eps, -c, c), 0, 1)), written out: the target actor
    (softmax per user), the clipped noise and the per-user renormalisation, every BS's twin
    target critics, and the twin target mixers (hypernetworks |W1|, b1, |W2|, V, ELU) fed by
    those target critics. The actor, critic and mixer targets are all moved away from the
    online networks, so none of them may be replaced by its online twin."""
    C, D, U, F = 2, 5, 2, 2
    A, E, gamma, clip = U * F, 3, 0.9, 0.05
    config = TD3MixConfig(
        hidden_sizes=(8, 8),
        hypernet_hidden=(6,),
        mixing_embed_dim=E,
        gamma=gamma,
        target_noise_clip=clip,
        seed=2,
    )
    agents = TD3MixAgents(C, D, U, F, config)
    noise_source = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in (agents.actor_target, agents.critics_target, agents.mixers_target):
            for p in module.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=noise_source))
    N = 6
    next_obs = torch.randn(N, C, D, generator=noise_source)
    reward = torch.linspace(-1.0, 2.0, N)
    done = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    noise = 0.1 * torch.randn(N, C, A, generator=noise_source)  # partly beyond the clip
    y = agents.td_target(reward, next_obs, done, noise=noise)

    mixers = agents.mixers_target
    expected = []
    for n in range(N):
        actions = []
        for b in range(C):
            x = dense(agents.actor_target, 0, next_obs[n, b]).reshape(U, F).softmax(-1)
            x = (x + noise[n, b].double().reshape(U, F).clamp(-clip, clip)).clamp(0, 1)
            actions.append((x / x.sum(-1, keepdim=True)).reshape(A))
        state = next_obs[n].reshape(C * D)
        q_tot = []
        for i in range(2):
            q = torch.stack(
                [
                    dense(
                        agents.critics_target,
                        i * C + b,
                        torch.cat([next_obs[n, b].double(), actions[b]]),
                    )[0]
                    for b in range(C)
                ]
            )
            w1 = dense(mixers.hyper_w1, i, state).abs().reshape(C, E)
            b1 = dense(mixers.hyper_b1, i, state)
            w2 = dense(mixers.hyper_w2, i, state).abs()
            value = dense(mixers.value, i, state)[0]
            q_tot.append(functional.elu(q @ w1 + b1) @ w2 + value)
        bootstrap = 0.0 if done[n] else gamma * float(min(q_tot))
        expected.append(float(reward[n]) + bootstrap)
    torch.testing.assert_close(
        y.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-5
    )


def test_soft_update_is_polyak_averaging():
    online, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    torch.nn.init.constant_(online.weight, 1.0)
    torch.nn.init.constant_(target.weight, 0.0)
    soft_update_(target, online, 0.1)
    torch.testing.assert_close(target.weight, torch.full((1, 2), 0.1))
    soft_update_(target, online, 0.1)
    torch.testing.assert_close(target.weight, torch.full((1, 2), 0.19))  # 0.1 + 0.9 * 0.1


def test_policy_and_targets_update_every_d_critic_updates():
    env = _env(batch_size=4, env_config=C_ONLY)
    learner = _learner(env, policy_delay=3, batch_size=8)
    obs = env.reset(seed=0)
    for _ in range(3):
        actions = learner.project(env.random_actions(torch.Generator().manual_seed(1)))
        out = env.step(actions)
        learner.memory.add(
            obs=obs, actions=actions, reward=out.reward_total, next_obs=out.obs, done=out.done
        )
        obs = out.obs

    def snapshot(module):
        return torch.cat([p.detach().flatten().clone() for p in module.parameters()])

    changed = []
    for _ in range(7):
        before = [snapshot(m) for m in (learner.actor, learner.critics, learner.actor_target)]
        losses = learner.update()
        after = [snapshot(m) for m in (learner.actor, learner.critics, learner.actor_target)]
        changed.append([not torch.equal(b, a) for b, a in zip(before, after, strict=True)])
        assert ("actor_loss" in losses) == changed[-1][0]
    assert [c[0] for c in changed] == [False, False, True, False, False, True, False]
    assert [c[2] for c in changed] == [False, False, True, False, False, True, False]
    assert all(c[1] for c in changed)  # the critics learn at every update
    assert learner.n_critic_updates == 7 and learner.n_actor_updates == 2


def test_config_validation():
    assert TD3MixConfig().reward == "total" and TD3MixConfig().bootstrap is True
    plain = TD3MixConfig(scheme="td3_mix")
    assert plain.reward == "mean_user" and plain.bootstrap is False
    paper = TD3MixConfig()
    assert (paper.hidden_sizes, paper.actor_lr, paper.gamma, paper.batch_size) == (
        (128, 128),
        1e-3,
        0.99,
        16,
    )
    for bad in ({"gamma": 1.5}, {"tau": 0.0}, {"batch_size": 0}, {"scheme": "ddpg"}):
        with pytest.raises(ConfigError):
            TD3MixConfig(**bad)


# ---------------------------------------------------------------------------------------------
# Acting within the budget; Algorithm 1 with FLWF
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mapping", ["simplex", "box"])
def test_actions_respect_the_per_user_budget(mapping):
    env = _env(batch_size=6, env_config={"action_mapping": mapping})
    learner = _learner(env, exploration_noise=0.3)
    obs = env.reset(seed=0)
    share = env.scenario.user_power_budget(env.state.budget)  # P_b(t) / U, eq. (14)
    for explore in (False, True):
        actions = learner.act(obs, explore=explore)
        assert bool((actions >= 0).all()) and bool((actions <= 1).all())
        spent = env.action_to_power(actions).sum(-1)
        assert bool((spent <= share * (1 + 1e-5)).all())
        if mapping == "simplex":
            torch.testing.assert_close(spent, share)


def test_td3_mix_flwf_stores_the_actor_action_and_the_reward_after_k_flwf_iterations():
    from skyshare.solvers.flwf import flwf

    env = _env(batch_size=3, env_config=C_ONLY)
    learner = _learner(env, flwf_iterations=3, learning_starts=0, exploration_noise=0.1)
    env.reset(seed=5)
    state = env.state
    log = learner.train(env, 1)
    assert len(learner.memory) == 3 and log.n_transitions == 3
    stored = learner.memory.storage["actions"][0, :3]
    share = env.scenario.user_power_budget(state.budget)[..., None]
    power0 = share * stored.reshape(3, 4, 2)  # simplex actions: fractions of the user's share
    result = flwf(env.scenario.problem(state), power0, max_iter=3)
    expected = env.scenario.cell_capacity(env.scenario.rates(state, result.power)).sum(-1)
    torch.testing.assert_close(
        learner.memory.storage["reward"][0, :3], expected, rtol=1e-4, atol=1e-4
    )
    # Online use (the scheme around the agents): the actor's allocation, then FLWF to the end.
    scheme = TD3MixScheme(learner, use_flwf=True, max_iter=200, tol=1e-6)
    decision = scheme.decide(env)
    assert bool(decision.diagnostics["converged"].all())
    initial = env.action_to_power(learner.act(env.observe()))
    again = flwf(env.problem(), initial, max_iter=200, tol=1e-6)
    torch.testing.assert_close(decision.power, again.power)


def test_plain_td3_mix_learns_on_mean_user_capacity_without_flwf(tmp_path):
    env = _env(batch_size=3, env_config=C_ONLY)
    learner = _learner(env, scheme="td3_mix", learning_starts=0, batch_size=3)
    env.reset(seed=2)
    log = learner.train(env, 2)
    # reward = R_total / (C U), the target is the reward itself (no forward-looking term)
    assert log.reward[0] == pytest.approx(log.capacity_per_cell[0] * 2 / 4, rel=1e-5)
    batch = learner.memory.sample(4, torch.Generator().manual_seed(0))
    y = learner.td_target(batch["reward"], batch["next_obs"], batch["done"])
    torch.testing.assert_close(y, batch["reward"])
    decision = TD3MixScheme(learner, use_flwf=False, max_iter=1, tol=1.0).decide(env)
    actor = env.action_to_power(learner.act(env.observe()))
    assert not decision.diagnostics and torch.equal(decision.power, actor)
    # checkpoint round trip
    path = learner.save(tmp_path / "td3_mix.pt")
    clone = _learner(env, seed=9, scheme="td3_mix")
    clone.load(path)
    obs = env.observe()
    torch.testing.assert_close(clone.act(obs), learner.act(obs))


def test_td3_mix_beats_random_power_allocation():
    """Tiny instance, (M, U) = (4, 2), C = 2, N_f = 2, SIR 0 dB, observation c only: random
    allocation gives ~6.5 bit/s/Hz per cell, frequency reuse (one cell per channel) ~18; after
    300 steps (2400 transitions, 900 updates) the greedy policy reaches ~9.7 (seeds 0-3 gave
    9.0-11.1)."""
    env = _env(batch_size=8, env_config=C_ONLY, sir_db=0.0)
    learner = _learner(
        env, scheme="td3_mix", hidden_sizes=(64, 64), batch_size=64, updates_per_step=3
    )
    learner.train(env, 300)
    evaluation = _env(batch_size=64, env_config=C_ONLY, sir_db=0.0)
    random_generator = torch.Generator().manual_seed(1)
    random = run_multiband(
        evaluation,
        PowerRule(lambda e: e.action_to_power(e.random_actions(random_generator))),
        seed=123,
    ).capacity.mean()
    plain = MULTIBAND_SCHEMES.build("TD3-MIX", evaluation, MultibandSchemeOptions(agents=learner))
    learned = run_multiband(evaluation, plain, seed=123).capacity.mean()
    assert float(learned) > 1.2 * float(random), (float(learned), float(random))


@pytest.mark.parametrize(
    ("config", "env_config"),
    [
        ({"share_critics": True}, {}),
        ({"mixer_state": "interference"}, {"observe_budget": True}),
        ({"mixing_weight_activation": "softplus"}, {"action_mapping": "box"}),
    ],
)
def test_variants_train_and_keep_shapes(config, env_config):
    env = _env(batch_size=2, env_config=env_config)
    learner = _learner(env, learning_starts=2, batch_size=4, flwf_iterations=2, **config)
    log = learner.train(env, 6)  # crosses an episode end (T = 4)
    assert log.n_transitions == 12 and log.n_critic_updates == 5 and log.n_actor_updates == 2
    assert learner.critics.n_agents == (2 if config.get("share_critics") else 4)
    state_dim = 2 * 4 if config.get("mixer_state") == "interference" else 2 * env.obs_dim
    assert learner.mixers.state_dim == state_dim
    obs = env.observe()
    actions = learner.act(obs)
    assert learner.q_total(obs, actions).shape == (2, 2)
    assert all(math.isfinite(x) for x in log.critic_loss + log.actor_loss)
    # the mixer's state: every cell's interference features (log10 c) or whole observation
    features = env.interference_features if "mixer_state" in config else slice(None)
    state = torch.cat([obs[:, b, features] for b in range(env.n_agents)], -1)
    assert torch.equal(learner.global_state(obs), state)
    # QMIX (Rashid et al. 2018) with the configured non-negative map of the hypernetworks:
    # Q_tot = w2 . elu(sum_a Q_a W1[a] + b1) + V(s), W = |hyper(s)| or softplus(hyper(s))
    mixers = learner.mixers
    positive = functional.softplus if "mixing_weight_activation" in config else torch.abs
    states = state.unsqueeze(0).expand(2, -1, -1)
    w1 = positive(mixers.hyper_w1(states)).reshape(2, 2, env.n_agents, -1)
    w2 = positive(mixers.hyper_w2(states))
    q = learner.agent_values(obs, actions)  # (2, N, C)
    hidden = functional.elu((q[..., None] * w1).sum(2) + mixers.hyper_b1(states))
    expected = (hidden * w2).sum(-1) + mixers.value(states)[..., 0]
    torch.testing.assert_close(learner.q_total(obs, actions), expected)


# ---------------------------------------------------------------------------------------------
# One constructor shape, checkpoints, learning steps
# ---------------------------------------------------------------------------------------------


def test_agents_are_built_from_dims_and_for_an_env_alike():
    env = _env(batch_size=2, env_config={"observe_budget": True})
    from_env = _learner(env, seed=4, mixer_state="interference")
    from_dims = TD3MixAgents(
        env.n_agents,
        env.obs_dim,
        env.users_per_cell,
        env.n_freq,
        TD3MixConfig(seed=4, mixer_state="interference"),
        interference_features=env.interference_features,
    )
    for p, q in zip(from_env.actor.parameters(), from_dims.actor.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ConfigError, match="interference_features"):
        TD3MixAgents(2, 5, 2, 2, TD3MixConfig(mixer_state="interference"))
    with pytest.raises(ConfigError, match="action_mapping"):
        TD3MixAgents(2, 5, 2, 2, action_mapping="ball")


def test_checkpoint_loads_with_weights_only_and_training_continues_bit_identically(tmp_path):
    """Save mid-training (with the replay memory), load with weights_only=True into agents of
    another seed, and go on training on a twin environment: the same transitions, losses and
    parameters as the uninterrupted agents."""
    config = {"learning_starts": 4, "batch_size": 4, "flwf_iterations": 2, "hidden_sizes": (16, 16)}
    env, twin_env = _env(batch_size=2), _env(batch_size=2)
    agents, twin = _learner(env, **config), _learner(twin_env, **config)
    env.reset(seed=1)
    twin_env.reset(seed=1)
    agents.train(env, 5)
    twin.train(twin_env, 5)
    path = agents.save(tmp_path / "td3.pt")
    state = torch.load(path, weights_only=True)
    assert state["config"]["hidden_sizes"] == [16, 16] and state["memory"]["size"] == 10
    restored = _learner(env, seed=9, **config)
    restored.load(path)
    log, twin_log = restored.train(env, 4), twin.train(twin_env, 4)
    assert log.critic_loss == twin_log.critic_loss and log.actor_loss == twin_log.actor_loss
    assert log.capacity_per_cell == twin_log.capacity_per_cell
    for name in ("actor", "critics", "mixers", "actor_target", "critics_target", "mixers_target"):
        for p, q in zip(
            getattr(restored, name).parameters(), getattr(twin, name).parameters(), strict=True
        ):
            assert torch.equal(p, q), name
    light = agents.state_dict(include_memory=False)
    assert "memory" not in light and "critic_optimizer" in light
    with pytest.raises(ShapeError, match="checkpoint"):
        TD3MixAgents(3, env.obs_dim, 2, 2).load_state_dict(light)


def test_one_update_lowers_the_critic_loss_and_the_actor_loss_on_its_batch():
    """A fixed batch, no target noise (y is deterministic), an actor update at every critic
    update: the critics' loss (13) against the same y and the actor's loss -Q_tot,1(S, pi(S))
    (under the updated critics) are lower after the update."""
    env = _env(batch_size=8, env_config=C_ONLY)
    agents = _learner(env, learning_starts=64, target_noise=0.0, policy_delay=1, batch_size=16)
    env.reset(seed=3)
    agents.train(env, 2)  # 16 random transitions, no update yet
    assert agents.n_critic_updates == 0
    batch = agents.memory.sample(16, torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = agents.td_target(batch["reward"], batch["next_obs"], batch["done"], noise=None)

        def critic_loss():
            return float(
                (agents.q_total(batch["obs"], batch["actions"]) - y).square().mean(1).sum()
            )

        before = critic_loss()
        actor_before = copy.deepcopy(agents.actor)
    losses = agents.update(batch)
    assert losses["critic_loss"] == pytest.approx(before, rel=1e-5)
    with torch.no_grad():
        assert critic_loss() < before - 1e-4
        obs = batch["obs"]
        actor_after = agents.actor
        agents.actor = actor_before
        old = float(-agents.q_total(obs, agents.policy(obs))[0].mean())
        agents.actor = actor_after
        new = float(-agents.q_total(obs, agents.policy(obs))[0].mean())
    assert new < old - 1e-5, (old, new)
