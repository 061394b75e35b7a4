"""D3QN TU agents (seed 000 §V-D): dueling aggregation, double-Q target, loss (13), exploration
schedule, target copies, FIFO replay, agent independence, checkpoints, and learning on a tiny
CATN."""

import io
import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.d3qn import (
    D3QNAgents,
    D3QNConfig,
    DuelingQNetwork,
    d3qn_loss,
    double_q_target,
    dueling_q_values,
)


def _agents(obs_dim=5, n_actions=3, n_agents=4, seed=0, **overrides):
    return D3QNAgents(obs_dim, n_actions, n_agents, D3QNConfig(seed=seed, **overrides))


def weights_only_copy(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def q_by_hand(weights, a, x):
    """Agent a's dueling Q values from a parameter dict (plain tensor algebra)."""
    h = x
    for layer in ("trunk.net.0", "trunk.net.2"):
        h = torch.relu(h @ weights[f"{layer}.weight"][a] + weights[f"{layer}.bias"][a, 0])
    v = h @ weights["value.weight"][a] + weights["value.bias"][a, 0]
    adv = h @ weights["advantage.weight"][a] + weights["advantage.bias"][a, 0]
    return v + adv - adv.mean(-1, keepdim=True)


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
    online, target = dict(agents.online.named_parameters()), dict(agents.target.named_parameters())

    expected = []
    with torch.no_grad():
        for a in range(agents.n_agents):
            total = 0.0
            for j in range(6):
                o, o1 = batch["obs"][a, j], batch["next_obs"][a, j]
                best = int(q_by_hand(online, a, o1).argmax())
                y = float(batch["rewards"][a, j]) + 0.7 * float(q_by_hand(target, a, o1)[best])
                total += (float(q_by_hand(online, a, o)[batch["actions"][a, j]]) - y) ** 2
            expected.append(total / (2 * 6))
    stats = agents.update()
    torch.testing.assert_close(agents.last_agent_loss, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert stats["loss"] == pytest.approx(sum(expected) / len(expected), rel=1e-5)


# --- exploration, target copies --------------------------------------------------------------


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


# --- independence, checkpoints, errors ---------------------------------------------------------


def test_agents_are_independent():
    """Changing agent 2's experience changes agent 2's weights only (Adam included)."""
    runs = []
    for perturb in (False, True):
        agents = _agents(batch_size=4, memory_size=20, seed=5)
        _fill(agents, slots=4)
        if perturb:
            agents.memory.storage["rewards"][2] += 10.0
        for _ in range(3):
            agents.update()
        runs.append([p.detach().clone() for p in agents.online.parameters()])
    for p_plain, p_perturbed in zip(*runs, strict=True):
        differs = (p_plain != p_perturbed).flatten(1).any(-1)
        assert differs.tolist() == [False, False, True, False]


def _play(agents, slots, seed):
    """``slots`` slots of Algorithm 4's TU side on random data: act, observe, update."""
    gen = torch.Generator().manual_seed(seed)
    K, D = agents.n_agents, agents.obs_dim
    actions = []
    for _ in range(slots):
        obs = torch.randn(2, K, D, generator=gen)
        chosen = agents.act(obs, explore=True)
        agents.observe(
            obs, chosen, torch.randn(2, K, generator=gen), torch.randn(2, K, D, generator=gen)
        )
        agents.update()
        actions.append(chosen)
    return torch.stack(actions)


def test_checkpoint_loads_with_weights_only_and_continues_bit_identically():
    agents, twin = _agents(batch_size=4, memory_size=20), _agents(batch_size=4, memory_size=20)
    _play(agents, 6, seed=1)
    _play(twin, 6, seed=1)
    state = weights_only_copy(agents.state_dict(include_memory=True))
    assert state["config"]["batch_size"] == 4 and isinstance(state["generator"], torch.Tensor)
    restored = _agents(batch_size=4, memory_size=20, seed=9)  # everything is overwritten
    restored.load_state_dict(state)
    # the restored agents and the uninterrupted twin go on identically: exploration draws,
    # epsilon, replay samples, Adam moments, target copies
    assert torch.equal(_play(restored, 8, seed=2), _play(twin, 8, seed=2))
    assert restored.epsilon == twin.epsilon and restored.n_updates == twin.n_updates == 13
    for p, q in zip(restored.online.parameters(), twin.online.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(restored.target.parameters(), twin.target.parameters(), strict=True):
        assert torch.equal(p, q)
    light = agents.state_dict(include_memory=False)
    assert "memory" not in light and "optimizer" in light
    with pytest.raises(ShapeError, match="checkpoint"):
        _agents(obs_dim=6).load_state_dict(light)


def test_bad_arguments_raise():
    with pytest.raises(ConfigError, match="gamma"):
        D3QNConfig(gamma=1.0)
    with pytest.raises(ConfigError, match="batch_size"):
        D3QNConfig(batch_size=300, memory_size=200)
    with pytest.raises(ConfigError, match="learning_starts"):
        D3QNConfig(batch_size=10, memory_size=20, learning_starts=30)
    with pytest.raises(ConfigError, match="observation_transform: unknown key"):
        D3QNConfig(observation_transform="catn_tu")  # the env normalises (tu_observation)
    with pytest.raises(ConfigError, match="n_actions"):
        D3QNAgents(10, 0, 3)
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
    env = CatnEnv(scenario, CatnEnvConfig(k_out=1, tu_observation="normalized"), batch_size=B)
    N, K = env.N, env.K
    mrt = torch.zeros(B, N, env.action_dim)
    mrt[..., 0] = 1.0  # q_total = 1
    mrt[..., 1 : 1 + K] = 1.0  # equal power split over own users
    mrt[..., 2 * K + 1] = 0.5  # eta (irrelevant with alpha = mu = 0)
    agents = D3QNAgents(env.tu_obs_dim, N, K, D3QNConfig(seed=0))
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
    random = average_reward(lambda o: torch.randint(0, N, (B, K), generator=agents.generator))
    assert learned > random + 3.0, (learned, random)


def test_one_update_is_the_hand_computed_adam_step_on_loss_13():
    """Loss (13) with the double-Q target written by hand (online network selects, target
    network evaluates), its gradient, and Adam's first step ``p - lr g / (|g| + eps)`` (the
    bias-corrected moments of one step are g and g^2): what update() does to every agent."""
    lr, gamma = 0.01, 0.7
    agents = _agents(batch_size=6, memory_size=20, gamma=gamma, learning_rate=lr)
    _fill(agents, slots=5)
    noise = torch.Generator().manual_seed(7)
    with torch.no_grad():  # a target network well away from the online one
        for p in agents.target.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=noise))
    replay = torch.Generator()
    replay.set_state(agents.generator.get_state())
    batch = agents.memory.sample(6, replay)  # the batch update() will draw
    online = {
        k: p.detach().clone().requires_grad_(True) for k, p in agents.online.named_parameters()
    }
    target = {k: p.detach().clone() for k, p in agents.target.named_parameters()}
    loss = torch.zeros(())
    for a in range(agents.n_agents):
        with torch.no_grad():
            next_q_online = q_by_hand(online, a, batch["next_obs"][a])  # (B_b, N)
            best = next_q_online.argmax(-1, keepdim=True)
            y = (
                batch["rewards"][a]
                + gamma * q_by_hand(target, a, batch["next_obs"][a]).gather(-1, best)[:, 0]
            )
        q_taken = q_by_hand(online, a, batch["obs"][a]).gather(-1, batch["actions"][a, :, None])[
            :, 0
        ]
        loss = loss + ((q_taken - y) ** 2).sum() / (2 * 6)
    grads = torch.autograd.grad(loss, list(online.values()))
    expected = {
        k: p.detach() - lr * g / (g.abs() + 1e-8)
        for (k, p), g in zip(online.items(), grads, strict=True)
    }
    stats = agents.update()
    assert stats["loss"] == pytest.approx(float(loss.detach()) / agents.n_agents, rel=1e-5)
    for k, p in agents.online.named_parameters():
        torch.testing.assert_close(p.detach(), expected[k], rtol=0, atol=1e-3 * lr)


def test_update_inside_a_no_grad_caller_is_the_same_update():
    agents, twin = _agents(batch_size=4, memory_size=50), _agents(batch_size=4, memory_size=50)
    for a in (agents, twin):
        _fill(a, slots=4, batch=2)
    with torch.no_grad():  # e.g. an evaluation or benchmark loop around the online loop
        assert agents.update()["updates"] == 1.0
    twin.update()
    for p, q in zip(agents.online.parameters(), twin.online.parameters(), strict=True):
        assert torch.equal(p, q)
