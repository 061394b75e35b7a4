"""MAPPO / IPPO with Lagrange multipliers (seed 001) and the masked multi-head categorical.

The learner is tested against a tiny fake env that follows the contract of
``skyshare.envs.tn_ntn`` exactly (turns, masks, group rewards, per-slot costs), with fixed rates
so that the best joint action is known.
"""

import io
import math
from dataclasses import dataclass

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.distributions import MaskedMultiCategorical
from skyshare.rl.mappo import (
    EnvSpec,
    MappoAgents,
    MappoConfig,
    frame_advantages,
    ippo_config,
    value_loss,
)

# ---------------------------------------------------------------------------------------------
# A fake env following the TnNtnEnv contract
# ---------------------------------------------------------------------------------------------


@dataclass
class FakeTurn:
    obs: torch.Tensor  # (B, N, obs_dim)
    state: torch.Tensor  # (B, state_dim)
    action_mask: torch.Tensor  # (B, N, S, n_choices)
    turn: int


@dataclass
class FakeStepResult:
    reward: torch.Tensor  # (B, M) Mbit/s per user
    cost: torch.Tensor  # (B, N, K_max) Mbit/s
    user_rate: torch.Tensor  # (B, N, K_max) bit/s
    throughput: torch.Tensor  # (B,)
    qos_miss: torch.Tensor  # (B,)
    active: torch.Tensor  # (B, N, K_max) bool
    done: torch.Tensor  # (B,) bool
    assignment: torch.Tensor  # (B, N, F) long


class FakeTnNtnEnv:
    """Two BSs, K_max = 2 user slots, F = M S subchannels with fixed rates (Mbit/s).

    Alone on subchannel f, BS 0's user 0 gets 4 on even f and 2 on odd f, BS 1's user 0 the
    opposite; BS 0's user 1 gets 1.2 anywhere and needs eta = 1 (one clean subchannel); BS 1's
    slot 1 is empty (masked). Both BSs on one subchannel: each link gets a quarter of its rate.
    Reward (10) of group m: the rates on SRB m over K = 3 users. Best without QoS: BS 0 on the
    even, BS 1 on the odd subchannels, all for user 0 (16 / 3 = 5.33 at F = 4, cost 1 for BS 0's
    user 1); best with QoS: one of BS 0's even subchannels for user 1 (13.2 / 3 = 4.4, cost 0).
    Every action is checked against the mask.
    """

    n_bs, k_max, n_choices = 2, 2, 3

    def __init__(self, batch_size=16, n_turns=2, block_size=2, episode_frames=10, eta=1.0):
        self.batch_size, self.n_turns, self.block_size = batch_size, n_turns, block_size
        self.episode_frames, self.eta = episode_frames, eta
        N, K = self.n_bs, self.k_max
        self.n_sub = F = n_turns * block_size
        even = torch.arange(F) % 2 == 0
        self.rates = torch.zeros(N, F, K)
        self.rates[0, :, 0] = torch.where(even, 4.0, 2.0)
        self.rates[1, :, 0] = torch.where(even, 2.0, 4.0)
        self.rates[0, :, 1] = 1.2
        self.active = torch.tensor([[True, True], [True, False]])
        self.obs_dim = n_turns + 2 * K + block_size * K
        self.state_dim = n_turns + N * K + N * F * K
        self.masked_plays = 0
        self.reset(0)

    def reset(self, seed=None):
        self.turn, self.frame = 0, 0
        self.rate = torch.zeros(self.batch_size, self.n_bs, self.k_max)  # Psi, this frame
        self.group_reward = torch.zeros(self.batch_size, self.n_turns)
        self.assignment = torch.zeros(self.batch_size, self.n_bs, self.n_sub, dtype=torch.long)

    def _block(self, m):
        return slice(m * self.block_size, (m + 1) * self.block_size)

    def observe(self):
        B, N, K, M, m = self.batch_size, self.n_bs, self.k_max, self.n_turns, self.turn
        srb = torch.nn.functional.one_hot(torch.tensor(m), M).float()
        obs = torch.cat(
            [
                srb.expand(B, N, M),
                self.rate / self.eta,
                self.active.float().expand(B, N, K),
                self.rates[:, self._block(m)].reshape(N, -1).expand(B, N, -1),
            ],
            -1,
        )
        state = torch.cat(
            [srb.expand(B, M), self.rate.reshape(B, -1), self.rates.reshape(-1).expand(B, -1)], -1
        )
        mask = torch.ones(B, N, self.block_size, self.n_choices, dtype=torch.bool)
        mask[..., 1:] = self.active[:, None, :]
        return FakeTurn(obs, state, mask, m)

    def act(self, actions):
        B, N, S, m = self.batch_size, self.n_bs, self.block_size, self.turn
        assert actions.dtype == torch.long and actions.shape == (B, N, S)
        allowed = self.observe().action_mask.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        self.masked_plays += int((~allowed).sum())
        on = actions > 0
        user = (actions - 1).clamp(min=0)
        table = self.rates[:, self._block(m)].expand(B, N, S, self.k_max)
        alone = table.gather(-1, user.unsqueeze(-1))[..., 0]
        rate = alone * on * torch.where(on.all(1, keepdim=True), 0.25, 1.0)  # (B, N, S)
        self.rate.scatter_add_(2, user, rate)
        self.group_reward[:, m] = rate.sum((1, 2)) / int(self.active.sum())
        self.assignment[:, :, self._block(m)] = actions - 1
        self.turn += 1
        if self.turn < self.n_turns:
            return None
        self.frame += 1
        active = self.active.expand(B, N, self.k_max).clone()
        cost = (self.eta - self.rate).clamp(min=0.0) * active
        result = FakeStepResult(
            reward=self.group_reward.clone(),
            cost=cost,
            user_rate=self.rate * 1e6,
            throughput=self.rate.sum((1, 2)) * 1e6,
            qos_miss=(cost > 0).sum((1, 2)).float(),
            active=active,
            done=torch.full((B,), self.frame % self.episode_frames == 0),
            assignment=self.assignment.clone(),
        )
        self.turn = 0
        self.rate = torch.zeros_like(self.rate)
        self.group_reward = torch.zeros_like(self.group_reward)
        return result


def fast_config(**overrides) -> MappoConfig:
    """Paper structure, test-sized: larger learning rates, small networks, fewer epochs."""
    base = {
        "seed": 0,
        "lr_actor": 3e-3,
        "lr_critic": 3e-3,
        "hidden_sizes": (32,),
        "epochs": 4,
        "lambda_lr": 2.0,
    }
    return MappoConfig(**(base | overrides))


def play(env, policy, frames):
    """Mean per frame of reward (9) = sum_m r_m and of the total cost, over the batch."""
    env.reset(1)
    reward = cost = 0.0
    for _ in range(frames):
        for _ in range(env.n_turns):
            result = env.act(policy(env.observe()))
        reward += float(result.reward.sum(-1).mean())
        cost += float(result.cost.sum((-2, -1)).mean())
    return reward / frames, cost / frames


# ---------------------------------------------------------------------------------------------
# The masked multi-head categorical
# ---------------------------------------------------------------------------------------------


def random_masked_logits(seed=0, shape=(4, 3, 5)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=g) * 3
    mask = torch.rand(*shape, generator=g) < 0.5
    mask[..., 0] = True  # "off" is always allowed
    return logits, mask


def test_masked_heads_never_sample_or_pick_a_masked_choice():
    logits, mask = random_masked_logits()
    logits = logits.masked_fill(~mask, 50.0)  # masked choices would win by far
    dist = MaskedMultiCategorical(logits, mask)
    draws = torch.stack([dist.sample(torch.Generator().manual_seed(i)) for i in range(300)])
    assert bool(mask.gather(-1, draws.movedim(0, -1)).all())
    assert bool(mask.gather(-1, dist.mode().unsqueeze(-1)).all())
    # the allowed choices are drawn with their probabilities
    counts = torch.nn.functional.one_hot(draws, mask.shape[-1]).float().mean(0)
    assert bool((counts[~mask] == 0).all())
    torch.testing.assert_close(counts, dist.probs, atol=0.1, rtol=0)


def test_sampling_by_inversion_matches_the_probabilities_closely():
    # 3 heads: first choice masked, a near-degenerate head, a uniform head over 2 of 4
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [9.0, 0.0, -9.0, 0.0], [5.0, 0.0, 0.0, 5.0]])
    mask = torch.tensor([[False, True, True, True], [True, True, False, True],
                         [True, False, False, True]])  # fmt: skip
    n = 40_000
    dist = MaskedMultiCategorical(logits.expand(n, 3, 4), mask.expand(n, 3, 4))
    draws = dist.sample(torch.Generator().manual_seed(5))
    counts = torch.nn.functional.one_hot(draws, 4).double().mean(0)  # (3, 4)
    probs = dist.probs[0].double()
    assert bool((counts[~mask] == 0).all())
    # binomial standard error at n = 40,000 is <= 0.0025: 4 sigma
    torch.testing.assert_close(counts, probs, atol=0.01, rtol=0)


def test_log_prob_and_entropy_against_an_explicit_computation():
    logits, mask = random_masked_logits(seed=1)
    dist = MaskedMultiCategorical(logits, mask)
    actions = dist.sample(torch.Generator().manual_seed(0))
    lp, ent = dist.log_prob(actions), dist.entropy()
    X, S, C = logits.shape
    for x in range(X):
        expected_lp = expected_ent = 0.0
        for s in range(S):
            allowed = [c for c in range(C) if mask[x, s, c]]
            z = sum(math.exp(logits[x, s, c]) for c in allowed)
            p = {c: math.exp(logits[x, s, c]) / z for c in allowed}
            expected_lp += math.log(p[int(actions[x, s])])
            expected_ent -= sum(q * math.log(q) for q in p.values())
        assert float(lp[x]) == pytest.approx(expected_lp, abs=1e-5)
        assert float(ent[x]) == pytest.approx(expected_ent, abs=1e-5)


def test_masked_entropy_and_log_prob_have_finite_gradients():
    logits, mask = random_masked_logits(seed=2)
    logits.requires_grad_(True)
    dist = MaskedMultiCategorical(logits, mask)
    (dist.entropy().sum() + dist.log_prob(dist.mode()).sum()).backward()
    assert bool(torch.isfinite(logits.grad).all())
    assert bool((logits.grad[~mask] == 0).all())


def test_a_head_without_an_allowed_choice_is_refused():
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[1, 2] = False
    with pytest.raises(ShapeError, match="allowed"):
        MaskedMultiCategorical(torch.zeros(2, 3, 4), mask)


# ---------------------------------------------------------------------------------------------
# Pieces on fixed numbers
# ---------------------------------------------------------------------------------------------


def test_frame_advantages_by_hand_with_an_episode_end():
    rewards = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)  # (T, B=1, M=1)
    values = torch.tensor([0.5, 1.0, 1.5]).view(3, 1, 1)
    done = torch.tensor([[False], [True], [False]])
    adv, targets = frame_advantages(rewards, values, done, gamma=0.9, lam=0.5)
    # deltas: 1 + 0.9 * 1.0 - 0.5 = 1.4; 2 + 0 - 1 = 1 (episode end); 3 + 0 - 1.5 = 1.5 (last)
    # A_2 = 1.5, A_1 = 1 (cut at the end), A_0 = 1.4 + 0.9 * 0.5 * 1 = 1.85
    torch.testing.assert_close(adv.flatten(), torch.tensor([1.85, 1.0, 1.5]))
    torch.testing.assert_close(targets.flatten(), torch.tensor([2.35, 2.0, 3.0]))


def test_value_loss_huber_and_clipping_by_hand():
    values, old, targets = (
        torch.tensor([1.0, 0.0]),
        torch.tensor([0.0, 0.0]),
        torch.tensor([3.0, 30.0]),
    )
    # plain: e = 2 -> 2, e = 30 -> 10 (30 - 5) = 250 with delta 10; MSE / 2: 2, 450
    assert float(value_loss(values, old, targets, None, 10.0)) == pytest.approx((2 + 250) / 2)
    assert float(value_loss(values, old, targets, None, None)) == pytest.approx((2 + 450) / 2)
    # clip 0.2: V_clip = 0.2 for the first: max(2, (3 - 0.2)^2 / 2 = 3.92)
    assert float(value_loss(values, old, targets, 0.2, None)) == pytest.approx((3.92 + 450) / 2)


# ---------------------------------------------------------------------------------------------
# The agents
# ---------------------------------------------------------------------------------------------


def test_defaults_are_the_papers_and_ippo_differs_only_in_the_critic():
    cfg = MappoConfig()
    assert (cfg.lr_actor, cfg.lr_critic, cfg.gamma, cfg.minibatch_size) == (5e-5, 5e-5, 0.9, 64)
    # the measured choices where the seed is silent (docs/rl/mappo.md)
    assert (cfg.actor, cfg.ratio, cfg.gae_lambda) == ("per_subchannel", "per_head", 0.0)
    assert (cfg.critic, cfg.actor_sharing, cfg.lagrangian) == ("central", "bs", True)
    ippo = ippo_config(seed=3)
    assert ippo.critic == "local"
    differ = {k for k, v in ippo.model_dump().items() if MappoConfig(seed=3).model_dump()[k] != v}
    assert differ == {"critic"}
    with pytest.raises(ConfigError):
        MappoConfig(gamma=1.0)
    with pytest.raises(ConfigError):
        MappoConfig(critic="global")


def test_ippo_and_mappo_share_the_actor_and_differ_in_the_critic_input():
    env = FakeTnNtnEnv(batch_size=4)
    spec = EnvSpec.from_env(env)
    mappo = MappoAgents(spec, fast_config())
    ippo = MappoAgents.ippo(spec, fast_config())
    assert ippo.config.critic == "local"
    ippo_actor = ippo.actor.state_dict()
    for name, value in mappo.actor.state_dict().items():
        torch.testing.assert_close(value, ippo_actor[name], msg=name)
    first = lambda agents: next(agents.critic.parameters())  # noqa: E731
    # central: one value network per group m on the global state; local: per BS on o
    assert first(mappo).shape[:2] == (spec.n_turns, spec.state_dim)
    assert first(ippo).shape[:2] == (spec.n_bs, spec.obs_dim)
    turn = env.observe()
    a1, lp1, v1 = mappo.act(turn, with_values=True)
    a2, lp2, v2 = ippo.act(turn, with_values=True)
    assert torch.equal(a1, a2) and torch.equal(lp1, lp2)
    assert v1.shape == v2.shape == (4, 2)
    assert torch.equal(v1[:, 0], v1[:, 1])  # V_m(s) is shared by the group's agents


@pytest.mark.parametrize("sharing", ["bs", "all"])
def test_act_applies_each_bs_network_to_its_own_observation(sharing):
    env = FakeTnNtnEnv(batch_size=3)
    agents = MappoAgents.for_env(
        env, fast_config(actor="mlp", actor_sharing=sharing, normalize_observations=False)
    )
    env.act(torch.ones(3, 2, 2, dtype=torch.long))  # turn 1: Psi in the observation
    turn = env.observe()
    actions, log_prob, _ = agents.act(turn, deterministic=True)
    assert actions.shape == (3, 2, 2) and log_prob.shape == (3, 2) and turn.turn == 1
    w1, b1, w2, b2 = (p.detach() for p in agents.actor.net.parameters())
    for n in range(2):
        g = n if sharing == "bs" else 0
        logits = torch.relu(turn.obs[:, n] @ w1[g] + b1[g]) @ w2[g] + b2[g]
        logits = logits.view(3, 2, 3).masked_fill(~turn.action_mask[:, n], -math.inf)
        assert torch.equal(actions[:, n], logits.argmax(-1))
        expected = torch.log_softmax(logits, -1).max(-1).values.sum(-1)
        torch.testing.assert_close(log_prob[:, n], expected)


def test_record_refuses_turns_out_of_order():
    env = FakeTnNtnEnv(batch_size=2)
    agents = MappoAgents.for_env(env, fast_config())
    env.act(torch.zeros(2, 2, 2, dtype=torch.long))
    turn = env.observe()  # turn 1 first
    with pytest.raises(ShapeError, match="turn"):
        agents.record(turn, agents.act(turn)[0])


def test_update_shapes_the_reward_with_the_multipliers():
    env = FakeTnNtnEnv(batch_size=4, episode_frames=3)
    lam0 = 2.0
    agents = MappoAgents.for_env(env, fast_config(lambda_init=lam0, lambda_lr=0.0, epochs=1))
    log = agents.train(env, frames=3, seed=0)
    stats = log.updates[0]
    # "split": the groups' shaped rewards add up to r - sum_k lambda_k (1 - gamma) c_k
    expected = stats["reward_mean"] - lam0 * (1 - 0.9) * stats["cost_mean"]
    assert stats["shaped_reward_mean"] == pytest.approx(expected, rel=1e-5)
    assert stats["lambda_max"] == lam0 and stats["frames"] == 12
    off = MappoAgents.for_env(env, fast_config(lagrangian=False, lambda_init=lam0))
    stats = off.train(env, frames=3, seed=0).updates[0]
    assert stats["shaped_reward_mean"] == pytest.approx(stats["reward_mean"])
    assert stats["lambda_max"] == 0.0 and stats["cost_mean"] > 0


def test_old_values_and_targets_are_normalised_with_the_same_statistics():
    """The value clip compares V with the collecting critic's values: after the targets move the
    running statistics, both must be expressed in the updated ones."""
    env = FakeTnNtnEnv(batch_size=4, episode_frames=3)
    agents = MappoAgents.for_env(env, fast_config())
    agents.train(env, frames=3, seed=0)  # the value statistics are no longer (0, 1)
    env.reset(None)
    for _ in range(3):
        agents._play_frame(env)
    data = agents.rollout.stacked()
    with torch.no_grad():
        z = agents.obs_normalizer(agents._actor_layout(data["obs"]))
        raw = agents._denormalize(agents.critic(agents._critic_input(z, data["state"]))[..., 0])
    mean_before = agents.value_normalizer.mean.clone()
    batch = agents._prepare(data)
    assert not torch.equal(agents.value_normalizer.mean, mean_before)
    torch.testing.assert_close(agents._denormalize(batch["old_values"]), raw)


def test_checkpoint_round_trip_with_weights_only_gives_identical_actions():
    env = FakeTnNtnEnv(batch_size=4, episode_frames=3)
    agents = MappoAgents.for_env(env, fast_config())
    agents.train(env, frames=6, seed=0)  # two updates: moved weights, statistics, multipliers
    buffer = io.BytesIO()
    torch.save(agents.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = MappoAgents.for_env(env, fast_config(seed=7))
    restored.load_state_dict(state)
    assert restored.n_updates == agents.n_updates == 2
    torch.testing.assert_close(restored.multipliers.value, agents.multipliers.value)
    turn = env.observe()
    for deterministic in (True, False):  # sampling: the generator is restored too
        a1, lp1, v1 = agents.act(turn, deterministic=deterministic, with_values=True)
        a2, lp2, v2 = restored.act(turn, deterministic=deterministic, with_values=True)
        assert torch.equal(a1, a2)
        torch.testing.assert_close(lp1, lp2)
        torch.testing.assert_close(v1, v2)
    with pytest.raises(ConfigError, match="critic"):
        MappoAgents.for_env(env, fast_config(critic="local")).load_state_dict(state)
    with pytest.raises(ShapeError):
        MappoAgents.for_env(FakeTnNtnEnv(n_turns=1, block_size=4), fast_config()).load_state_dict(
            state
        )


def test_checkpoint_of_the_old_state_order_is_converted_exactly():
    """A critic trained on [s, p, l] states (checkpoints without ``state_gain_order``) reads
    [p, l, s] states after loading: same values, same Adam moments for the same inputs."""
    env = FakeTnNtnEnv(batch_size=4, episode_frames=3)
    legacy = MappoAgents.for_env(env, fast_config())
    legacy.train(env, frames=6, seed=0)  # moved weights, moments and normaliser statistics
    state = legacy.state_dict()
    assert state.pop("state_gain_order") == "p,l,s"
    restored = MappoAgents.for_env(env, fast_config(seed=7))
    restored.load_state_dict(state)
    S, N, P = env.block_size, env.n_bs, env.n_bs * env.k_max
    new = torch.randn(5, env.n_turns, env.state_dim, generator=torch.Generator().manual_seed(3))
    old = new.clone()  # the old layout: [s, p, l] of the same gains
    old[..., : S * P * N] = (
        new[..., : S * P * N].unflatten(-1, (P, N, S)).permute(0, 1, 4, 2, 3).flatten(2)
    )
    with torch.no_grad():
        v_new = restored.critic(restored._critic_input(None, new))
        v_old = legacy.critic(legacy._critic_input(None, old))
    torch.testing.assert_close(v_new, v_old)
    weight = lambda agents: next(  # noqa: E731
        m.weight for m in agents.critic.modules() if m.__class__.__name__ == "GroupLinear"
    )
    moments_new = restored.critic_optimizer.state[weight(restored)]["exp_avg_sq"]
    moments_old = legacy.critic_optimizer.state[weight(legacy)]["exp_avg_sq"]
    for i_new, i_old in ((0, 0), (1, P * N), (S, 1), (S * P * N, S * P * N)):
        # new input (p, l, s) = old input (s, p, l): new 1 = (0, 0, 1) = old (1, 0, 0) = P N;
        # new S = (0, 1, 0) = old (0, 0, 1) = 1; the inputs after the gains keep their place
        torch.testing.assert_close(moments_new[:, i_new], moments_old[:, i_old])
    state["state_gain_order"] = "l,p,s"
    with pytest.raises(ConfigError, match="state_gain_order='l,p,s'"):
        restored.load_state_dict(state)
    state["state_gain_order"] = "p,l,s"  # the current order: loaded as it is
    restored.load_state_dict(state)
    torch.testing.assert_close(weight(restored), weight(legacy))


@pytest.mark.parametrize(
    "overrides, n_turns, block_size",
    [({"critic": "local"}, 1, 4), ({}, 1, 4), ({"critic": "local", "actor_sharing": "all"}, 2, 2)],
    ids=["ippo-rl1", "mappo-rl1", "ippo-rl2-shared-actor"],
)
def test_baselines_run_through_updates(overrides, n_turns, block_size):
    env = FakeTnNtnEnv(batch_size=4, n_turns=n_turns, block_size=block_size, episode_frames=4)
    agents = MappoAgents.for_env(env, fast_config(**overrides))
    log = agents.train(env, frames=8, seed=0)
    assert len(log.updates) == len(log.reward) == 2 and log.frames == 8
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"):
        assert math.isfinite(log.updates[-1][name]), name
    assert log.multipliers[-1].shape == (2, 2) and env.masked_plays == 0
    # what makes each baseline itself: the critic reads the agent's own observation (IPPO,
    # one critic per actor group) or the global state (MAPPO, one critic per turn), and the
    # actor is one network per BS or one for all
    from skyshare.rl.common.networks import GroupLinear

    def first_layer(module):
        return next(m for m in module.modules() if isinstance(m, GroupLinear))

    spec = agents.spec
    assert spec.state_dim != spec.obs_dim  # so that the widths below tell the critics apart
    groups = 1 if overrides.get("actor_sharing") == "all" else spec.n_bs
    critic_in = first_layer(agents.critic)
    actor_layers = [m for m in agents.actor.modules() if isinstance(m, GroupLinear)]
    assert {layer.n_agents for layer in actor_layers} == {groups}
    if overrides.get("critic") == "local":
        assert (critic_in.n_agents, critic_in.in_features) == (groups, spec.obs_dim)
    else:
        assert (critic_in.n_agents, critic_in.in_features) == (n_turns, spec.state_dim)


def test_mappo_lagrangian_lowers_the_cost_and_beats_a_random_policy():
    """The proposed method on (RL2), M = 2 SRBs of S = 2 subchannels: the policy first drifts
    to the unconstrained optimum (cost 1: BS 0's user 1 unserved), the multiplier of that user
    rises while the constraint is violated, and the policy ends at the constrained optimum
    (reward 4.4, cost 0), above a uniformly random policy."""
    env = FakeTnNtnEnv(batch_size=16, episode_frames=10)
    g = torch.Generator().manual_seed(0)
    uniform = lambda turn: MaskedMultiCategorical(  # noqa: E731
        torch.zeros(turn.action_mask.shape), turn.action_mask
    ).sample(g)
    random_reward, random_cost = play(env, uniform, frames=20)
    agents = MappoAgents.for_env(env, fast_config())
    log = agents.train(env, frames=400, seed=0)
    assert env.masked_plays == 0 and len(log.updates) == 40
    reward, cost = play(env, lambda turn: agents.act(turn, deterministic=True)[0], frames=5)
    assert reward == pytest.approx(13.2 / 3) and cost == 0.0
    assert reward > random_reward + 1.0 and random_cost > 0.3
    # training curves: the cost peaks and is driven down while the multiplier rises
    assert max(log.cost) > 0.8 and sum(log.cost[-5:]) / 5 < 0.15
    qos = [float(m[0, 1]) for m in log.multipliers]
    violated = [float(u["cost_per_slot"][0, 1]) > 0 for u in log.updates]
    assert all(qos[i] > qos[i - 1] for i in range(1, len(qos)) if violated[i])
    assert qos[-1] > 10.0 and float(log.multipliers[-1][1, 1]) == 0.0  # the empty slot


def test_per_head_ratio_clips_every_head_and_still_reaches_the_constrained_optimum():
    """ratio="per_head": each subchannel head is its own PPO sample with the agent's advantage;
    head log-probabilities sum to the joint one, and on the small problem the learner still
    ends at the constrained optimum (reward 4.4, cost 0)."""
    logits = torch.randn(3, 4, 5)
    mask = torch.ones(3, 4, 5, dtype=torch.bool)
    mask[..., 3:] = False
    dist = MaskedMultiCategorical(logits, mask)
    actions = dist.sample(torch.Generator().manual_seed(1))
    assert torch.allclose(dist.head_log_prob(actions).sum(-1), dist.log_prob(actions))
    assert dist.head_log_prob(actions).shape == (3, 4)
    env = FakeTnNtnEnv(batch_size=16, episode_frames=10)
    agents = MappoAgents.for_env(env, fast_config(ratio="per_head"))
    log = agents.train(env, frames=400, seed=0)
    reward, cost = play(env, lambda turn: agents.act(turn, deterministic=True)[0], frames=5)
    assert reward == pytest.approx(13.2 / 3) and cost == 0.0
    assert all(0.0 <= u["clip_fraction"] <= 1.0 for u in log.updates)


def test_per_subchannel_actor_shares_one_network_across_heads():
    """actor="per_subchannel": head s is the head MLP on [its own gain row, the context's
    embedding], so permuting the subchannels of the gain block permutes the heads' logits the
    same way; an observation without context after the S K_max gains is refused."""
    from skyshare.rl.mappo import SubchannelActorGroup

    S, K, context = 4, 3, 5
    actor = SubchannelActorGroup(2, S * K + context, S, K + 1, (8, 8), "relu", 1.0,
                                 torch.Generator().manual_seed(0))  # fmt: skip
    obs = torch.randn(2, 6, S * K + context)
    mask = torch.ones(2, 6, S, K + 1, dtype=torch.bool)
    perm = torch.tensor([2, 0, 3, 1])
    shuffled = obs.clone()
    shuffled[..., : S * K] = obs[..., : S * K].unflatten(-1, (S, K))[..., perm, :].flatten(-2)
    logits = actor(obs, mask).logits
    assert logits.shape == (2, 6, S, K + 1)
    torch.testing.assert_close(actor(shuffled, mask).logits, logits[..., perm, :])
    assert not torch.allclose(logits[0, 0, 0], logits[0, 0, 1])  # heads differ by their gains
    # head s is the head MLP on the row [gain_s, e(context)] (the split first layer: the same)
    rows = torch.cat(
        [obs[..., : S * K].unflatten(-1, (S, K)),
         actor.context(obs[..., S * K :])[:, :, None].expand(2, 6, S, -1)], -1,
    )  # fmt: skip
    expected = actor.head(rows.flatten(1, 2)).unflatten(1, (6, S))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match="per_subchannel"):
        SubchannelActorGroup(1, S * K, S, K + 1, (8,), "relu", 1.0, torch.Generator())
    env = FakeTnNtnEnv(batch_size=4, episode_frames=4)
    agents = MappoAgents.for_env(env, fast_config(actor="per_subchannel"))
    log = agents.train(env, frames=8, seed=0)
    assert len(log.updates) == 2 and math.isfinite(log.updates[-1]["policy_loss"])
