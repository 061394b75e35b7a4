"""The one replay buffer (per-agent FIFO queues for D3QN, one joint queue for TD3-MIX) and the
on-policy trajectory collector: FIFO order, uniform sampling, checkpoints read with
weights_only=True."""

import io
import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.buffers import ReplayBuffer, TrajectoryCollector


def per_agent_memory(n_agents, capacity, obs_dim=1):
    fields = {
        "obs": ((obs_dim,), torch.float32),
        "actions": ((), torch.long),
        "rewards": ((), torch.float32),
        "next_obs": ((obs_dim,), torch.float32),
        "terminated": ((), torch.bool),
    }
    return ReplayBuffer(capacity, fields, n_queues=n_agents)


def add(memory, r):
    """Store rewards ``r`` (B, A) with obs = next_obs = r."""
    o = r[..., None]
    zeros = torch.zeros(r.shape, dtype=torch.long)
    memory.add(obs=o, actions=zeros, rewards=r, next_obs=o, terminated=False)


def weights_only_copy(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_per_agent_fifo_overwrites_the_oldest():
    memory = per_agent_memory(n_agents=2, capacity=5)
    for slot in range(4):  # 2 environments per slot, rewards 0..7 in arrival order
        add(
            memory,
            torch.tensor([[2.0 * slot, 100 + 2.0 * slot], [2.0 * slot + 1, 101 + 2.0 * slot]]),
        )
    rewards = memory.storage["rewards"]  # (A, capacity)
    assert len(memory) == 5 and memory.n_added == 8
    assert sorted(rewards[0].tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert sorted(rewards[1].tolist()) == [103.0, 104.0, 105.0, 106.0, 107.0]
    torch.testing.assert_close(memory.storage["obs"][..., 0], rewards)
    batch = memory.sample(5, torch.Generator().manual_seed(0), replacement=False)  # all, once
    assert batch["rewards"].shape == (2, 5) and batch["obs"].shape == (2, 5, 1)
    assert sorted(batch["rewards"][0].tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    # more transitions in one call than the capacity: only the newest survive
    add(memory, torch.arange(12.0).view(6, 2) + 1000)
    assert sorted(rewards[0].tolist()) == [1002.0, 1004.0, 1006.0, 1008.0, 1010.0]
    with pytest.raises(ConfigError):
        memory.sample(6, torch.Generator(), replacement=False)
    with pytest.raises(ShapeError):
        add(memory, torch.zeros(1, 3))


def test_per_agent_samples_are_uniform_and_independent():
    memory = per_agent_memory(n_agents=3, capacity=50)
    add(memory, torch.arange(50.0)[:, None].expand(50, 3))
    gen = torch.Generator().manual_seed(1)
    distinct = memory.sample(20, gen, replacement=False)
    for a in range(3):
        assert len(set(distinct["rewards"][a].tolist())) == 20
    assert not torch.equal(distinct["rewards"][0], distinct["rewards"][1])
    torch.testing.assert_close(distinct["obs"][..., 0], distinct["rewards"])  # rows stay together
    # with replacement: each of the 50 rows has probability 1/50 per draw. Pearson chi-square
    # over 3 x 50 cells with 49 dof each: mean 147, sd sqrt(2 * 147) = 17; allow 5 sd.
    counts = torch.zeros(3, 50, dtype=torch.long)
    for _ in range(200):
        batch = memory.sample(50, gen)
        counts += torch.stack(
            [torch.bincount(batch["rewards"][a].long(), minlength=50) for a in range(3)]
        )
    expected = 50 * 200 / 50
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert abs(chi2 - 147) < 5 * math.sqrt(2 * 147)


def test_joint_queue_wraps_around_and_samples_whole_transitions():
    fields = {
        "obs": ((2, 3), torch.float32),
        "reward": ((), torch.float32),
        "done": ((), torch.float32),
    }
    memory = ReplayBuffer(5, fields)
    for start in (0, 3):
        n = 3
        obs = torch.arange(start, start + n, dtype=torch.float32)[:, None, None].expand(n, 2, 3)
        memory.add(obs=obs, reward=torch.arange(start, start + n) * 1.0, done=False)
    assert len(memory) == 5
    torch.testing.assert_close(memory.storage["reward"][0], torch.tensor([5.0, 1.0, 2.0, 3.0, 4.0]))
    batch = memory.sample(16, torch.Generator().manual_seed(0))
    assert batch["obs"].shape == (16, 2, 3) and batch["done"].shape == (16,)
    torch.testing.assert_close(batch["obs"][:, 1, 2], batch["reward"])  # one row per transition
    with pytest.raises(ShapeError, match="add needs the fields"):
        memory.add(obs=obs, reward=torch.zeros(3))


def test_buffer_and_collector_checkpoints_load_with_weights_only():
    memory = per_agent_memory(n_agents=2, capacity=4)
    add(memory, torch.randn(3, 2))
    restored = per_agent_memory(n_agents=2, capacity=4)
    with pytest.raises(ShapeError):
        restored.load_state_dict(per_agent_memory(2, 5).state_dict())
    restored.load_state_dict(weights_only_copy(memory.state_dict()))
    assert (restored.position, restored.size, restored.n_added) == (3, 3, 3)
    gen_a, gen_b = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    original, copy = memory.sample(7, gen_a), restored.sample(7, gen_b)
    assert all(torch.equal(original[name], copy[name]) for name in original)

    collector = TrajectoryCollector(3)
    for _ in range(2):
        collector.add(
            torch.randn(2, 4, 5), torch.rand(2, 4, 6), torch.ones(2, 4), torch.zeros(2, 4, 2),
            torch.randn(2, 4, 5), truncated=torch.zeros(2, dtype=torch.bool),
        )  # fmt: skip
    again = TrajectoryCollector(1)
    again.load_state_dict(weights_only_copy(collector.state_dict()))
    assert again.capacity == 3 and len(again) == 2
    assert torch.equal(again.trajectory().obs, collector.trajectory().obs)
    assert again.trajectory().terminated is None and again.trajectory().truncated.shape == (2, 2)
