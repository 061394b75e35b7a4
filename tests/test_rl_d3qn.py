"""D3QN TU agents (seed 000 §V-D): dueling aggregation, double-Q target, loss (13), exploration
schedule, target copies, FIFO replay, agent independence, checkpoints, and learning on a tiny
CATN."""

import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.d3qn import (
    D3QNAgents,
    D3QNConfig,
    DuelingQNetwork,
    catn_tu_observation_transform,
    d3qn_loss,
    double_q_target,
    dueling_q_values,
)
from skyshare.rl.replay import ReplayMemory


def _agents(obs_dim=5, n_actions=3, n_agents=4, seed=0, **overrides):
    config = D3QNConfig(observation_transform="none", **overrides)
    return D3QNAgents(
        obs_dim, n_actions, n_agents, config, generator=torch.Generator().manual_seed(seed)
    )


def _fill(agents, slots, batch=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    K, D, N = agents.n_agents, agents.obs_dim, agents.n_actions
    for _ in range(slots):
        agents.observe(
            torch.randn(batch, K, D, generator=gen),
            torch.randint(0, N, (batch, K), generator=gen),
            torch.randn(batch, K, generator=gen),
            torch.randn(batch, K, D, generator=gen),
        )


# --- pure pieces on fixed tensors -------------------------------------------------------------


def test_dueling_aggregation_on_fixed_tensors():
    value = torch.tensor([[2.0], [-1.0]])
    advantage = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    # by hand: mean A = 3 and 1; Q = V + A - mean A
    expected = torch.tensor([[0.0, 1.0, 5.0], [-2.0, -2.0, 1.0]])
    torch.testing.assert_close(dueling_q_values(value, advantage), expected)
    with pytest.raises(ShapeError):
        dueling_q_values(torch.zeros(2, 2), advantage)


def test_dueling_network_composes_value_and_advantage_streams():
    torch.manual_seed(0)
    net = DuelingQNetwork(n_agents=3, obs_dim=4, n_actions=5, hidden_sizes=(6, 7))
    x = torch.randn(3, 8, 4)
    q = net(x)
    assert q.shape == (3, 8, 5)
    for a in range(3):  # independent per-agent re-implementation with plain linear layers
        h = x[a]
        for layer in (net.trunk.net[0], net.trunk.net[2]):
            h = torch.relu(h @ layer.weight[a] + layer.bias[a, 0])
        v = h @ net.value.weight[a] + net.value.bias[a, 0]  # (8, 1)
        adv = h @ net.advantage.weight[a] + net.advantage.bias[a, 0]  # (8, 5)
        torch.testing.assert_close(q[a], v + adv - adv.mean(-1, keepdim=True))
        torch.testing.assert_close(q[a].mean(-1, keepdim=True), v)  # identifiability


def test_double_q_target_on_fixed_tensors():
    rewards = torch.tensor([1.0, 0.5, -2.0])
    next_online = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0], [0.0, 0.0, 4.0]])
    next_target = torch.tensor([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0], [1.0, 2.0, 3.0]])
    # online argmax: 1, 0, 2 -> target evaluates 20, 7, 3; gamma = 0.5
    expected = torch.tensor([1.0 + 0.5 * 20.0, 0.5 + 0.5 * 7.0, -2.0 + 0.5 * 3.0])
    torch.testing.assert_close(double_q_target(rewards, next_online, next_target, 0.5), expected)
    # plain DQN (max of the target network) would give 1 + 15, 0.5 + 4.5: not what we compute
    assert not torch.allclose(expected, rewards + 0.5 * next_target.amax(-1))
    terminated = torch.tensor([False, True, False])
    expected[1] = 0.5  # no bootstrap after a terminal observation
    torch.testing.assert_close(
        double_q_target(rewards, next_online, next_target, 0.5, terminated), expected
    )


def test_loss_13_on_a_fixed_batch():
    q_taken = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 2.0]])
    # 1/(2 B_b) sum (Q - target)^2 with B_b = 3: (0 + 1 + 4)/6 and (1 + 1 + 4)/6
    torch.testing.assert_close(d3qn_loss(q_taken, target), torch.tensor([5 / 6, 1.0]))
    d3qn_loss(q_taken, target).sum().backward()
    # dL/dQ_j = (Q_j - target_j) / B_b
    torch.testing.assert_close(q_taken.grad, torch.tensor([[0.0, 1.0, 2.0], [-1.0, 1.0, -2.0]]) / 3)


def test_update_reports_loss_13_of_the_sampled_batch():
    agents = _agents(batch_size=6, memory_size=20, target_update_interval=100, gamma=0.7)
    _fill(agents, slots=5)
    agents.update()
    agents.update()  # online and target now differ: selection and evaluation are distinguishable
    assert not torch.equal(agents.online.value.weight, agents.target.value.weight)
    # the batch update() will draw: same generator state, same sampler
    replay_gen = torch.Generator()
    replay_gen.set_state(agents.generator.get_state())
    batch = agents.memory.sample(6, replay_gen)

    def q(net, a, x):  # plain per-agent forward pass
        h = x
        for layer in (net.trunk.net[0], net.trunk.net[2]):
            h = torch.relu(h @ layer.weight[a] + layer.bias[a, 0])
        v = h @ net.value.weight[a] + net.value.bias[a, 0]
        adv = h @ net.advantage.weight[a] + net.advantage.bias[a, 0]
        return v + adv - adv.mean(-1, keepdim=True)

    expected = []
    with torch.no_grad():
        for a in range(agents.n_agents):
            total = 0.0
            for j in range(6):
                o, o1 = batch.obs[a, j], batch.next_obs[a, j]
                best = int(q(agents.online, a, o1).argmax())
                y = float(batch.rewards[a, j]) + 0.7 * float(q(agents.target, a, o1)[best])
                total += (float(q(agents.online, a, o)[batch.actions[a, j]]) - y) ** 2
            expected.append(total / (2 * 6))
    stats = agents.update()
    torch.testing.assert_close(agents.last_agent_loss, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert stats["loss"] == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_catn_observation_transform_by_hand():
    N = 2
    obs = torch.tensor([[3.0, 1.0, 0.0, 1.0, 999.0, 9.0, 0.099, 2.5, 99.0, 9999.0]])
    out = catn_tu_observation_transform(obs, N)
    expected = [
        2 * 3 / 4,
        2 * 1 / 4,  # relative loads
        0.0,
        1.0,  # one-hot unchanged
        math.log10(1 + 999.0),
        math.log10(1 + 9.0),  # strengths
        math.log10(1 + 0.099 / 1e-3),  # power re 1 mW
        2.5,  # rate unchanged
        math.log10(1 + 99.0),
        math.log10(1 + 9999.0),
    ]
    torch.testing.assert_close(out[0], torch.tensor(expected))
    with pytest.raises(ShapeError):
        catn_tu_observation_transform(obs, 3)


# --- exploration, target copies, replay --------------------------------------------------------


def test_random_actions_and_no_updates_before_the_memory_holds_a_batch():
    agents = _agents(batch_size=10, memory_size=50)
    obs = torch.randn(3, 4, 5)
    _fill(agents, slots=4, batch=2)  # 8 < 10 transitions per agent
    assert not agents.learning and agents.update() == {} and agents.n_updates == 0
    actions = agents.act(obs, explore=True)
    assert actions.shape == (3, 4) and actions.dtype == torch.long
    assert agents.epsilon == 0.3  # random phase: no epsilon-greedy, no decay
    _fill(agents, slots=1, batch=2)  # 10 transitions: Algorithm 4 line 10 holds
    assert agents.learning and agents.update()["updates"] == 1.0


def test_epsilon_decay_sequence():
    agents = _agents(batch_size=2, memory_size=10)
    _fill(agents, slots=1, batch=2)
    obs = torch.randn(1, 4, 5)
    agents.act(obs, explore=False)  # greedy evaluation does not decay
    assert agents.epsilon == 0.3
    epsilon = 0.3
    for _ in range(1000):
        agents.act(obs, explore=True)
        epsilon = max(0.005, 0.995 * epsilon)
        assert agents.epsilon == pytest.approx(epsilon, rel=1e-12)
    # 0.3 * 0.995^n < 0.005 first at n = ceil(ln(0.005 / 0.3) / ln 0.995) = 817
    assert math.ceil(math.log(0.005 / 0.3) / math.log(0.995)) == 817
    assert agents.epsilon == 0.005


def test_epsilon_greedy_frequency():
    agents = _agents(batch_size=2, memory_size=10, epsilon_decay=1.0, n_actions=5)
    _fill(agents, slots=1, batch=2)
    obs = torch.randn(5000, 4, 5, generator=torch.Generator().manual_seed(3))
    greedy = agents.act(obs, explore=False)
    actions = agents.act(obs, explore=True)
    # an exploring draw picks a non-greedy action with probability (N - 1) / N
    p = 0.3 * 4 / 5
    n = actions.numel()
    rate = float((actions != greedy).float().mean())
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_target_copied_every_t_minus_updates():
    agents = _agents(batch_size=4, memory_size=20, target_update_interval=3)
    _fill(agents, slots=4)

    def same():
        return all(
            torch.equal(a, b)
            for a, b in zip(agents.online.parameters(), agents.target.parameters(), strict=True)
        )

    assert same()  # Algorithm 4 line 1: omega^- <- omega
    flags = []
    for _ in range(7):
        flags.append(agents.update()["target_synced"])
        assert same() == bool(flags[-1])
    assert flags == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]


def test_fifo_replay_overwrites_the_oldest():
    memory = ReplayMemory(n_agents=2, capacity=5, obs_dim=1)
    for slot in range(4):  # 2 environments per slot, rewards 0..7 in arrival order
        r = torch.tensor([[2.0 * slot, 100 + 2.0 * slot], [2.0 * slot + 1, 101 + 2.0 * slot]])
        o = r[..., None]
        memory.add(o, torch.zeros(2, 2, dtype=torch.long), r, o)
    assert len(memory) == 5 and memory.n_added == 8
    assert sorted(memory.rewards[0].tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert sorted(memory.rewards[1].tolist()) == [103.0, 104.0, 105.0, 106.0, 107.0]
    torch.testing.assert_close(memory.obs[..., 0], memory.rewards)
    batch = memory.sample(5, torch.Generator().manual_seed(0), replacement=False)  # all, once
    assert sorted(batch.rewards[0].tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    # more transitions in one call than the capacity: only the newest survive
    big = torch.arange(12.0).view(6, 2) + 1000
    memory.add(big[..., None], torch.zeros(6, 2, dtype=torch.long), big, big[..., None])
    assert sorted(memory.rewards[0].tolist()) == [1002.0, 1004.0, 1006.0, 1008.0, 1010.0]
    with pytest.raises(ConfigError):
        memory.sample(6, torch.Generator())
    with pytest.raises(ShapeError):
        memory.add(torch.zeros(1, 3, 1), torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3, 1))


def test_replay_samples_uniformly_and_independently_per_agent():
    memory = ReplayMemory(n_agents=3, capacity=50, obs_dim=1)
    r = torch.arange(50.0)[:, None].expand(50, 3)
    memory.add(r[..., None], torch.zeros(50, 3, dtype=torch.long), r, r[..., None])
    gen = torch.Generator().manual_seed(1)
    distinct = memory.sample(20, gen, replacement=False)
    for a in range(3):
        assert len(set(distinct.rewards[a].tolist())) == 20
    assert not torch.equal(distinct.rewards[0], distinct.rewards[1])
    torch.testing.assert_close(distinct.obs[..., 0], distinct.rewards)  # rows stay together
    # with replacement: each of the 50 rows has probability 1/50 per draw. Pearson chi-square
    # over 3 x 50 cells with 49 dof each: mean 147, sd sqrt(2 * 147) = 17; allow 5 sd.
    draws = 50 * 200
    counts = torch.stack(
        [torch.bincount(memory.sample(50, gen).rewards[a].long(), minlength=50) for a in range(3)]
    )
    for _ in range(199):
        batch = memory.sample(50, gen)
        counts += torch.stack(
            [torch.bincount(batch.rewards[a].long(), minlength=50) for a in range(3)]
        )
    expected = draws / 50
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert abs(chi2 - 147) < 5 * math.sqrt(2 * 147)


# --- independence, checkpoints, errors ---------------------------------------------------------


def test_agents_are_independent():
    """Changing agent 2's experience changes agent 2's weights only (Adam included)."""
    runs = []
    for perturb in (False, True):
        agents = _agents(batch_size=4, memory_size=20, seed=5)
        _fill(agents, slots=4)
        if perturb:
            agents.memory.rewards[2] += 10.0
        for _ in range(3):
            agents.update()
        runs.append([p.detach().clone() for p in agents.online.parameters()])
    for p_plain, p_perturbed in zip(*runs, strict=True):
        differs = (p_plain != p_perturbed).flatten(1).any(-1)
        assert differs.tolist() == [False, False, True, False]


def test_state_dict_round_trip_resumes_identically():
    agents = _agents(batch_size=4, memory_size=20)
    _fill(agents, slots=4)
    for _ in range(3):
        agents.update()
        agents.act(torch.randn(2, 4, 5), explore=True)
    state = agents.state_dict()
    restored = _agents(batch_size=4, memory_size=20, seed=9)
    restored.load_state_dict(state)
    obs = torch.randn(2, 4, 5)
    torch.testing.assert_close(restored.q_values(obs), agents.q_values(obs))
    assert restored.epsilon == agents.epsilon and restored.n_updates == 3
    restored.generator.set_state(agents.generator.get_state())
    assert restored.update() == agents.update()  # same memory, optimizer and target
    light = agents.state_dict(include_memory=False)
    assert "memory" not in light and "optimizer" in light


def test_bad_arguments_raise():
    with pytest.raises(ConfigError, match="gamma"):
        D3QNConfig(gamma=1.0)
    with pytest.raises(ConfigError, match="batch_size"):
        D3QNConfig(batch_size=300, memory_size=200)
    with pytest.raises(ConfigError, match="3 n_actions \\+ 4"):
        D3QNAgents(10, 7, 3)
    agents = _agents()
    with pytest.raises(ShapeError, match="obs"):
        agents.act(torch.zeros(2, 3, 5))


# --- learning ------------------------------------------------------------------------------------


def test_d3qn_association_beats_random_on_a_tiny_catn():
    """K = 7 TUs, N = 7 BSs, 4 parallel environments, fixed MRT BS actions (alpha = mu = 0, so
    D~ = eta I and w ~ h; full power split equally). After 120 training slots the greedy D3QN
    association earns a much higher average TU reward (15) than uniformly random association
    on the same networks (measured: about 6 vs -0.7 bit/s/Hz over three seeds)."""
    from skyshare.envs import CatnEnv, CatnEnvConfig
    from skyshare.scenarios import CatnScenario

    B = 4
    scenario = CatnScenario.config_from("quick", overrides={"n_tu": 7, "n_slots": 400})
    env = CatnEnv(scenario, CatnEnvConfig(k_out=1), batch_size=B)
    N, K = env.N, env.K
    mrt = torch.zeros(B, N, env.action_dim)
    mrt[..., 0] = 1.0  # q_total = 1
    mrt[..., 1 : 1 + K] = 1.0  # equal power split over own users
    mrt[..., 2 * K + 1] = 0.5  # eta (irrelevant with alpha = mu = 0)
    gen = torch.Generator().manual_seed(0)
    agents = D3QNAgents(env.tu_obs_dim, N, K, D3QNConfig(), generator=gen)
    obs = env.reset(seed=0)
    for _ in range(120):
        actions = agents.act(obs, explore=True)
        env.associate(actions)
        outcome = env.beamform(mrt)
        agents.observe(obs, actions, outcome.tu_reward, outcome.tu_obs)
        agents.update()
        obs = outcome.tu_obs
    assert agents.n_updates == 120 - 200 // B + 1

    def average_reward(policy, slots=30):
        nonlocal obs
        total = 0.0
        for _ in range(slots):
            env.associate(policy(obs))
            outcome = env.beamform(mrt)
            total += float(outcome.tu_reward.mean())
            obs = outcome.tu_obs
        return total / slots

    learned = average_reward(lambda o: agents.act(o, explore=False))
    random = average_reward(lambda o: torch.randint(0, N, (B, K), generator=gen))
    assert learned > random + 3.0, (learned, random)


def test_update_learns_inside_a_no_grad_caller():
    agents = _agents(batch_size=4, memory_size=50)
    _fill(agents, slots=4, batch=2)
    before = [p.detach().clone() for p in agents.online.parameters()]
    with torch.no_grad():
        assert agents.update()["updates"] == 1.0
    assert any(
        not torch.equal(a, b) for a, b in zip(before, agents.online.parameters(), strict=True)
    )
