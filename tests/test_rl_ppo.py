"""PPO with a fixed cost penalty (seed 000 §VI benchmark), its collector and learning."""

import copy
import io
import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.buffers import Trajectory, TrajectoryCollector
from skyshare.rl.common.gae import gae_targets
from skyshare.rl.ppo_penalty import (
    PpoPenaltyAgents,
    PpoPenaltyConfig,
    clipped_surrogate_loss,
    penalized_reward,
)


def small_config(**overrides) -> PpoPenaltyConfig:
    base = {"hidden_sizes": (16,), "actor_activations": ("relu",), "seed": 0}
    return PpoPenaltyConfig(**(base | overrides))


def run_bandit(agents: PpoPenaltyAgents, n_updates: int, seed: int = 0) -> list[dict]:
    """Reward sum(a) over 3 entries, cost a_0 - 0.3 (limit 0); 4 environments, 2 agents."""
    B, N, D = 4, agents.n_agents, agents.obs_dim
    g = torch.Generator().manual_seed(seed)
    collector = TrajectoryCollector(agents.config.collector_size)
    obs = torch.randn(B, N, D, generator=g)
    history = []
    for _ in range(n_updates):
        while not collector.full:
            actions, _, _ = agents.act(obs)
            next_obs = torch.randn(B, N, D, generator=g)
            collector.add(obs, actions, actions.sum(-1), actions[..., :1] - 0.3, next_obs)
            obs = next_obs
        history.append(agents.update(collector.pop()))
    return history


def test_penalized_reward_by_hand():
    rewards = torch.tensor([[3.0, 1.0]])
    costs = torch.tensor([[[0.5, -2.0], [0.25, 0.75]]])  # (B=1, N=2, L=2)
    # 3 - 2 * 0.5 = 2; 1 - 2 * (0.25 + 0.75) = -1 (negative costs are not rewarded)
    torch.testing.assert_close(penalized_reward(rewards, costs, 2.0), torch.tensor([[2.0, -1.0]]))
    with pytest.raises(ShapeError):
        penalized_reward(rewards, torch.zeros(1, 3, 2), 1.0)


def test_clipped_surrogate_value_and_zero_gradient_outside_the_clip_range():
    ratios = torch.tensor([1.5, 0.5, 0.5, 1.5, 1.1])
    adv = torch.tensor([2.0, -1.0, 1.0, -1.0, 3.0])
    log_prob = torch.log(ratios).requires_grad_(True)
    loss = clipped_surrogate_loss(log_prob, torch.zeros(5), adv, clip_ratio=0.2)
    # min(rA, clip(r) A): min(3, 2.4), min(-0.5, -0.8), min(0.5, 0.8), min(-1.5, -1.2), 3.3
    assert loss.item() == pytest.approx(-(2.4 - 0.8 + 0.5 - 1.5 + 3.3) / 5, abs=1e-6)
    loss.backward()
    grad = log_prob.grad
    # ratio above 1 + eps with A > 0 and below 1 - eps with A < 0: the clip is active, no gradient
    assert grad[0].item() == 0.0 and grad[1].item() == 0.0
    # the other direction keeps the unclipped gradient -r A / M (d r / d log r = r)
    assert grad[2].item() == pytest.approx(-0.5 * 1.0 / 5)
    assert grad[3].item() == pytest.approx(-1.5 * -1.0 / 5)
    assert grad[4].item() == pytest.approx(-1.1 * 3.0 / 5)


def test_collector_fills_stacks_time_first_and_empties():
    collector = TrajectoryCollector(3)
    for t in range(3):
        obs = torch.full((2, 4, 5), float(t))
        collector.add(obs, torch.rand(2, 4, 6), torch.ones(2, 4), torch.zeros(2, 4, 2), obs + 1)
    assert collector.full and len(collector) == 3
    with pytest.raises(RuntimeError, match="full"):
        collector.add(obs, torch.rand(2, 4, 6), torch.ones(2, 4), torch.zeros(2, 4, 2), obs)
    state = collector.state_dict()
    trajectory = collector.pop()
    assert len(collector) == 0 and trajectory.obs.shape == (3, 2, 4, 5)
    assert trajectory.obs[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    trajectory.check(n_agents=4, obs_dim=5, act_dim=6, n_costs=2)
    with pytest.raises(ShapeError, match="actions"):
        trajectory.check(n_agents=4, obs_dim=5, act_dim=7, n_costs=2)
    collector.load_state_dict(state)
    assert len(collector) == 3 and torch.equal(collector.pop().obs, trajectory.obs)


def test_kl_early_stop_fires_with_a_huge_learning_rate():
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(50, 2, 2, 3, generator=g)
    trajectory = Trajectory(
        obs=torch.randn(50, 2, 2, 4, generator=g),
        actions=actions,
        rewards=actions.sum(-1),
        costs=actions[..., :1] - 0.3,
        next_obs=torch.randn(50, 2, 2, 4, generator=g),
    )
    stats = PpoPenaltyAgents(4, 3, 2, 1, small_config(lr_actor=1.0)).update(trajectory)
    assert torch.all(stats["epochs"] < 20) and torch.all(stats["kl"] > 0.02)
    stats = PpoPenaltyAgents(4, 3, 2, 1, small_config(lr_actor=1.0, kl_bound=None)).update(
        trajectory
    )
    assert torch.all(stats["epochs"] == 20)


def test_ppo_without_penalty_improves_reward_and_keeps_violating():
    """zeta = 0 is unconstrained PPO: the reward rises from its start and so does the cost.

    Measured (seeded): reward 1.47 -> 2.53, cost 0.19 -> 0.54 in 15 updates.
    """
    agents = PpoPenaltyAgents(4, 3, 2, 1, small_config(penalty=0.0, lr_actor=3e-3, lr_critic=3e-3))
    history = run_bandit(agents, 15)
    first, last = history[0], history[-3:]
    assert sum(s["reward_mean"] for s in last) / 3 > first["reward_mean"] + 0.5
    assert min(s["cost_mean"] for s in last) > 0.3  # keeps violating the limit 0
    assert history[-1]["penalized_reward_mean"] == history[-1]["reward_mean"]


def test_a_large_penalty_reduces_the_violation():
    """zeta = 10: sum max(c, 0) falls from 0.22 to 0.03 in 10 updates (seeded)."""
    agents = PpoPenaltyAgents(4, 3, 2, 1, small_config(penalty=10.0, lr_actor=3e-3, lr_critic=3e-3))
    history = run_bandit(agents, 10)
    assert history[0]["violation_mean"] > 0.2
    assert history[-1]["violation_mean"] < 0.5 * history[0]["violation_mean"]


def test_checkpoint_loads_with_weights_only_and_continues_bit_identically():
    agents = PpoPenaltyAgents(4, 3, 2, 1, small_config(epochs=2))
    twin = PpoPenaltyAgents(4, 3, 2, 1, small_config(epochs=2))
    run_bandit(agents, 1)
    run_bandit(twin, 1)
    buffer = io.BytesIO()
    torch.save(agents.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["config"]["penalty"] == 1.0 and state["dims"] == [4, 3, 2, 1]
    restored = PpoPenaltyAgents(4, 3, 2, 1, small_config(epochs=2, seed=5))
    restored.load_state_dict(state)
    obs = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(
        twin.act(obs, deterministic=True)[0], restored.act(obs, deterministic=True)[0]
    )
    # same state (networks, normaliser, optimisers, generator): the next updates are identical
    after, after_restored = run_bandit(twin, 2, seed=3), run_bandit(restored, 2, seed=3)
    assert after[-1]["policy_loss"] == after_restored[-1]["policy_loss"]
    for p, q in zip(twin.actor.parameters(), restored.actor.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(
        twin.reward_critic.parameters(), restored.reward_critic.parameters(), strict=True
    ):
        assert torch.equal(p, q)


def test_config_validation():
    with pytest.raises(ConfigError, match="penalty"):
        PpoPenaltyConfig(penalty=-1.0)
    with pytest.raises(ConfigError, match="clip_ratio"):
        PpoPenaltyConfig(clip_ratio=1.5)
    with pytest.raises(ConfigError, match="seed"):
        PpoPenaltyConfig(seed="zero")
    assert PpoPenaltyConfig(kl_bound=None).kl_bound is None  # PPO may run without early stop


def test_one_update_lowers_losses_4_and_6_on_the_collected_batch():
    """On the collected batch, with the penalised reward's advantages and targets of the
    collecting networks, the critic loss (4) and the clipped surrogate (6) are lower after one
    update than before."""
    T, B, N, D, d, L = 50, 2, 2, 4, 3, 2
    g = torch.Generator().manual_seed(4)
    actions = torch.rand(T, B, N, d, generator=g).clamp(1e-3, 1 - 1e-3)
    trajectory = Trajectory(
        obs=torch.randn(T, B, N, D, generator=g),
        actions=actions,
        rewards=actions.sum(-1),
        costs=actions[..., :L] - 0.3,
        next_obs=torch.randn(T, B, N, D, generator=g),
    )
    agents = PpoPenaltyAgents(D, d, N, L, small_config(penalty=2.0))
    before = copy.deepcopy(agents)
    agents.update(trajectory)

    def agent_major(x):
        return x.movedim(2, 0).reshape(N, T * B, *x.shape[3:])

    def normalized(x):  # symlog, then the initial statistics (mean 0, variance 1)
        return torch.sign(x) * torch.log1p(x.abs()) / math.sqrt(1 + 1e-8)

    obs = normalized(agent_major(trajectory.obs))
    next_obs = normalized(agent_major(trajectory.next_obs))
    shaped = trajectory.rewards - 2.0 * trajectory.costs.clamp(min=0).sum(-1)
    with torch.no_grad():
        values = before.reward_critic(obs)[..., 0].reshape(N, T, B).movedim(0, 2)
        next_values = before.reward_critic(next_obs)[..., 0].reshape(N, T, B).movedim(0, 2)
        adv, target = gae_targets(shaped, values, next_values, 0.5, 0.1)
        adv, target = agent_major(adv), agent_major(target)
        adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True, correction=0) + 1e-8)
        old_log_prob = before.actor(obs).log_prob(agent_major(actions))

        def losses(net):
            value = (net.reward_critic(obs)[..., 0] - target).square().mean(1)
            log_prob = net.actor(obs).log_prob(agent_major(actions))
            return value, clipped_surrogate_loss(log_prob, old_log_prob, adv, 0.2)

        for name, old, new in zip(("(4)", "(6)"), losses(before), losses(agents), strict=True):
            assert torch.all(new < old - 1e-3), (name, old, new)
