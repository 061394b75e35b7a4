"""PPO with a fixed cost penalty (seed 000 §VI benchmark), its collector and learning."""

import io

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.policies import Trajectory, TrajectoryCollector
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


def test_checkpoint_round_trip_and_config_validation():
    agents = PpoPenaltyAgents(4, 3, 2, 1, small_config(epochs=2))
    run_bandit(agents, 1)
    buffer = io.BytesIO()
    torch.save(agents.state_dict(), buffer)
    buffer.seek(0)
    restored = PpoPenaltyAgents(4, 3, 2, 1, small_config(epochs=2, seed=5))
    restored.load_state_dict(torch.load(buffer, weights_only=False))
    obs = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        agents.act(obs, deterministic=True)[0], restored.act(obs, deterministic=True)[0]
    )
    # same state (networks, normaliser, optimisers, generator): the next update is identical
    after, after_restored = run_bandit(agents, 1, seed=3)[0], run_bandit(restored, 1, seed=3)[0]
    assert after["reward_mean"] == after_restored["reward_mean"]
    assert after["policy_loss"] == pytest.approx(after_restored["policy_loss"])
    for p, q in zip(agents.actor.parameters(), restored.actor.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ConfigError, match="penalty"):
        PpoPenaltyConfig(penalty=-1.0)
    with pytest.raises(ConfigError, match="clip_ratio"):
        PpoPenaltyConfig(clip_ratio=1.5)
