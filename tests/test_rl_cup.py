"""CUP (seed 000 Algorithm 3) and its Beta policy: closed forms by hand, early stops, learning."""

import copy
import io
import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.buffers import Trajectory, TrajectoryCollector
from skyshare.rl.common.distributions import IndependentBeta, beta_kl
from skyshare.rl.common.gae import gae_targets
from skyshare.rl.common.optim import GroupAdam
from skyshare.rl.cup import CupAgents, CupConfig, improvement_loss, nu_update, projection_loss

EULER_GAMMA = 0.5772156649015329


def digamma_int(n: int) -> float:
    """psi(n) = -gamma_E + sum_{k=1}^{n-1} 1/k for integer n >= 1."""
    return -EULER_GAMMA + sum(1.0 / k for k in range(1, n))


def log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def beta_pdf(a: float, b: float, x: float) -> float:
    return x ** (a - 1) * (1 - x) ** (b - 1) / math.exp(log_beta(a, b))


def small_config(**overrides) -> CupConfig:
    base = {"hidden_sizes": (16,), "actor_activations": ("relu",), "seed": 0}
    return CupConfig(**(base | overrides))


def weights_only_copy(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def agent_major(x):
    """(T, B, N, ...) -> (N, T*B, ...), sample t*B + b."""
    T, B, N = x.shape[:3]
    return x.permute(2, 0, 1, *range(3, x.ndim)).reshape(N, T * B, *x.shape[3:])


def normalized(obs):
    """The agents' normaliser before any statistics: symlog, mean 0, variance 1, clip 10."""
    return (torch.sign(obs) * torch.log1p(obs.abs()) / math.sqrt(1 + 1e-8)).clamp(-10, 10)


def random_trajectory(T=50, B=2, N=2, D=4, d=3, L=1, seed=0) -> Trajectory:
    g = torch.Generator().manual_seed(seed)
    actions = torch.rand(T, B, N, d, generator=g).clamp(1e-3, 1 - 1e-3)
    return Trajectory(
        obs=torch.randn(T, B, N, D, generator=g),
        actions=actions,
        rewards=actions.sum(-1),
        costs=actions[..., :L] - 0.3,
        next_obs=torch.randn(T, B, N, D, generator=g),
    )


# ---------------------------------------------------------------------------------------------
# The Beta action distribution and its KL
# ---------------------------------------------------------------------------------------------


def test_beta_kl_by_hand_with_integer_concentrations():
    # KL(Beta(2,3) || Beta(1,1)) = ln B(1,1) - ln B(2,3) + psi(2) + 2 psi(3) - 3 psi(5)
    expected = 0.0 - math.log(1 / 12) + digamma_int(2) + 2 * digamma_int(3) - 3 * digamma_int(5)
    assert expected == pytest.approx(math.log(12) - 2.25, abs=1e-12)
    kl = beta_kl(*(torch.tensor([v], dtype=torch.float64) for v in (2.0, 3.0, 1.0, 1.0)))
    assert kl.item() == pytest.approx(expected, abs=1e-10)
    # the KL to the uniform is minus the entropy
    assert IndependentBeta(torch.tensor([[2.0]]), torch.tensor([[3.0]])).entropy().item() == (
        pytest.approx(-expected, abs=1e-5)
    )


def test_beta_functions_agree_with_torch_distributions():
    g = torch.Generator().manual_seed(3)
    a1, b1, a2, b2 = (1.0 + 5 * torch.rand(64, 3, generator=g, dtype=torch.float64) for _ in "1234")
    ours = IndependentBeta(a1, b1)
    reference = torch.distributions.Beta(a1, b1)
    other = torch.distributions.Beta(a2, b2)
    torch.testing.assert_close(
        ours.kl(IndependentBeta(a2, b2)),
        torch.distributions.kl_divergence(reference, other).sum(-1),
    )
    torch.testing.assert_close(ours.entropy(), reference.entropy().sum(-1))
    x = torch.rand(64, 3, generator=g, dtype=torch.float64).clamp(0.01, 0.99)
    torch.testing.assert_close(ours.log_prob(x), reference.log_prob(x).sum(-1))
    assert beta_pdf(2, 3, 0.25) == pytest.approx(1.6875)
    one = IndependentBeta(torch.tensor([2.0]), torch.tensor([3.0]))
    assert one.log_prob(torch.tensor([0.25])).item() == pytest.approx(math.log(1.6875), abs=1e-6)


def test_beta_samples_are_bounded_seeded_and_have_the_right_mean():
    dist = IndependentBeta(torch.full((20000, 1), 2.0), torch.full((20000, 1), 5.0))
    x = dist.sample(torch.Generator().manual_seed(0))
    y = dist.sample(torch.Generator().manual_seed(0))
    assert torch.equal(x, y)
    assert float(x.min()) >= 1e-6 and float(x.max()) <= 1 - 1e-6
    std_error = math.sqrt(2 * 5 / (7**2 * 8)) / math.sqrt(20000)  # 0.00113
    assert abs(float(x.mean()) - 2 / 7) < 5 * std_error
    # exact 0 / 1 are clamped, so log-probabilities stay finite
    edge = IndependentBeta(torch.tensor([3.0, 3.0]), torch.tensor([3.0, 3.0]))
    assert torch.isfinite(edge.log_prob(torch.tensor([0.0, 1.0])))


# ---------------------------------------------------------------------------------------------
# Algorithm 3 pieces on fixed numbers
# ---------------------------------------------------------------------------------------------


def test_nu_update_and_clipping_on_fixed_numbers():
    nu = torch.tensor([[1.0, 9.9, 0.02]])
    j_c = torch.tensor([[0.5, 5.0, -1.0]])
    new = nu_update(nu, j_c, cost_limit=0.0, lr_nu=0.06, nu_max=10.0)
    # 1 + 0.06*0.5 = 1.03; 9.9 + 0.3 = 10.2 -> 10; 0.02 - 0.06 = -0.04 -> 0
    torch.testing.assert_close(new, torch.tensor([[1.03, 10.0, 0.0]]))
    # a cost limit shifts the target: J_C = b leaves nu unchanged
    torch.testing.assert_close(nu_update(nu, j_c, 0.5, 0.06, 10.0)[0, 0], torch.tensor(1.0))


def test_improvement_loss_6_by_hand():
    ratios = [1.1, 1.5, 0.5, 0.7]
    adv = [1.0, 2.0, -1.0, -3.0]
    # min(rA, clip(r, 0.8, 1.2) A): 1.1, min(3.0, 2.4), min(-0.5, -0.8), min(-2.1, -2.4)
    expected = -(1.1 + 2.4 - 0.8 - 2.4) / 4
    log_prob = torch.log(torch.tensor(ratios))
    loss = improvement_loss(log_prob, torch.zeros(4), torch.tensor(adv), clip_ratio=0.2)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # batched over agents: agent axis first
    both = improvement_loss(log_prob.expand(2, 4), torch.zeros(2, 4), torch.tensor([adv] * 2), 0.2)
    assert both.shape == (2,)


def test_projection_loss_7_by_hand_with_a_fixed_tiny_policy():
    # one action entry, two samples; pi_theta = Beta(2,3), pi_theta'' = Beta(1,1),
    # pi_theta' (collecting policy) = Beta(2,2); a = [0.25, 0.5]
    new = IndependentBeta(torch.full((2, 1), 2.0), torch.full((2, 1), 3.0))
    improved = IndependentBeta(torch.ones(2, 1), torch.ones(2, 1))
    collecting = IndependentBeta(torch.full((2, 1), 2.0), torch.full((2, 1), 2.0))
    a = torch.tensor([[0.25], [0.5]])
    cost_adv = torch.tensor([[0.4, -0.2], [1.0, 0.5]])  # (B_b, L)
    nu = torch.tensor([2.0, 0.5])
    gamma, lam = 0.5, 0.1
    loss = projection_loss(
        new.kl(improved), new.log_prob(a), collecting.log_prob(a), cost_adv, nu, gamma, lam
    )
    kl = math.log(12) - 2.25  # KL(Beta(2,3) || U), by hand above
    ratio = [beta_pdf(2, 3, 0.25) / beta_pdf(2, 2, 0.25), beta_pdf(2, 3, 0.5) / beta_pdf(2, 2, 0.5)]
    assert ratio == pytest.approx([1.5, 1.0])
    weighted = [2.0 * 0.4 + 0.5 * -0.2, 2.0 * 1.0 + 0.5 * 0.5]  # nu^T A^C = 0.7, 2.25
    coef = (1 - gamma * lam) / (1 - gamma)  # 1.9
    expected = sum(kl + coef * r * w for r, w in zip(ratio, weighted, strict=True)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_group_adam_matches_torch_adam_per_agent_and_freezes_inactive_agents():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(2, 3, 4, generator=g)
    grads = [torch.randn(2, 3, 4, generator=g) for _ in range(3)]
    masks = [torch.tensor([True, True]), torch.tensor([True, False]), torch.tensor([True, True])]
    group = torch.nn.Parameter(start.clone())
    optimizer = GroupAdam([group], lr=0.1, eps=1e-5)
    history = []
    for grad, mask in zip(grads, masks, strict=True):
        group.grad = grad.clone()
        optimizer.step(mask)
        history.append(group.detach().clone())
    assert torch.equal(history[1][1], history[0][1])  # agent 1 frozen at step 2
    for agent, steps in ((0, [0, 1, 2]), (1, [0, 2])):
        single = torch.nn.Parameter(start[agent].clone())
        reference = torch.optim.Adam([single], lr=0.1, eps=1e-5)
        for s in steps:
            single.grad = grads[s][agent].clone()
            reference.step()
        torch.testing.assert_close(group[agent].detach(), single.detach())


# ---------------------------------------------------------------------------------------------
# The agents
# ---------------------------------------------------------------------------------------------


def test_act_shapes_bounds_and_deterministic_mean():
    agents = CupAgents(4, 3, 2, 1, small_config())
    obs = torch.randn(5, 2, 4, generator=torch.Generator().manual_seed(1))
    actions, log_probs, values = agents.act(obs)
    assert actions.shape == (5, 2, 3) and log_probs.shape == (5, 2) and values.shape == (5, 2)
    assert float(actions.min()) > 0 and float(actions.max()) < 1
    mean_actions, _, _ = agents.act(obs, deterministic=True)
    dist = agents.actor(agents.normalizer(obs.transpose(0, 1)))
    torch.testing.assert_close(mean_actions, dist.mean.transpose(0, 1))
    with pytest.raises(ShapeError, match=r"\(B, N, D\)"):
        agents.act(torch.zeros(5, 3, 4))


def test_update_applies_the_nu_rule_per_agent_and_cost():
    trajectory = random_trajectory(N=2, L=2)
    trajectory.costs = torch.tensor([[0.5, -1.0], [200.0, 0.0]]).expand(50, 2, 2, 2).clone()
    agents = CupAgents(4, 3, 2, 2, small_config(epochs=1))
    stats = agents.update(trajectory)
    torch.testing.assert_close(stats["J_C"], torch.tensor([[0.5, -1.0], [200.0, 0.0]]))
    torch.testing.assert_close(stats["nu"], torch.tensor([[1.03, 0.94], [10.0, 1.0]]))
    assert stats["epochs_improve"].shape == (2,) and stats["kl_project"].shape == (2,)


def test_kl_early_stops_fire_with_a_huge_learning_rate_and_not_with_a_tiny_one():
    trajectory = random_trajectory()
    huge = CupAgents(4, 3, 2, 1, small_config(lr_actor=1.0, lr_critic=1.0))
    stats = huge.update(trajectory)
    assert torch.all(stats["epochs_improve"] < 20) and torch.all(stats["epochs_project"] < 20)
    assert torch.all(stats["kl_improve"] > 0.02) and torch.all(stats["kl_project"] > 0.02)
    tiny = CupAgents(4, 3, 2, 1, small_config(lr_actor=1e-7, lr_critic=1e-7))
    stats = tiny.update(trajectory)
    assert torch.all(stats["epochs_improve"] == 20) and torch.all(stats["epochs_project"] == 20)
    assert torch.all(stats["kl_improve"] <= 0.02) and torch.all(stats["kl_project"] <= 0.02)


def test_step_2_skips_the_agents_whose_nu_is_zero():
    """nu = 0 makes (7) the KL to theta'' alone: the agent keeps its step-1 actor, while an
    agent with nu > 0 runs the same projection epochs as with the literal loop."""
    trajectory = random_trajectory(N=2)
    trajectory.costs[:, :, 1] = -100.0  # agent 1: nu = clip(0.5 - 6, 0, 10) = 0 at line 6
    config = {"nu_init": 0.5, "lr_actor": 3e-3}
    literal = CupAgents(4, 3, 2, 1, small_config(skip_unconstrained_projection=False, **config))
    skipping = CupAgents(4, 3, 2, 1, small_config(**config))
    literal_stats, stats = literal.update(trajectory), skipping.update(trajectory)
    torch.testing.assert_close(stats["nu"], torch.tensor([[0.5 + 0.06 * stats["J_C"][0, 0]], [0]]))
    assert stats["epochs_project"].tolist()[1] == 0 and stats["epochs_project"][0] > 0
    assert literal_stats["epochs_project"][1] > 0
    assert float(stats["kl_project"][1]) < 1e-6  # the policy step 1 left, untouched
    torch.testing.assert_close(stats["kl_total"][1], stats["kl_improve"][1])
    # step 1 is the same in both; agent 0 then runs the same projection, agent 1 none
    for p, q in zip(skipping.actor.parameters(), literal.actor.parameters(), strict=True):
        torch.testing.assert_close(p[0], q[0])
        assert not torch.allclose(p[1], q[1])
    critics = skipping.reward_critic.parameters(), literal.reward_critic.parameters()
    for p, q in zip(*critics, strict=True):
        torch.testing.assert_close(p, q)
    # every agent at nu = 0: no projection epoch at all
    trajectory.costs[:, :, 0] = -100.0
    stats = CupAgents(4, 3, 2, 1, small_config(**config)).update(trajectory)
    assert stats["epochs_project"].tolist() == [0, 0] and stats["project_loss"] == 0.0
    assert float(stats["kl_project"].max()) < 1e-6


def test_agents_not_taking_part_report_their_kl_as_they_are():
    """kl_stopped_epochs with taking_part: an agent outside runs no epoch and reports its KL to
    the reference measured on its unchanged policy (not a placeholder 0)."""
    agents = CupAgents(4, 3, 2, 1, small_config())
    obs = normalized(torch.randn(2, 20, 4, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        current = agents.actor(obs)
    reference = IndependentBeta(current.alpha + 0.5, current.beta)  # another policy
    expected = beta_kl(current.alpha, current.beta, reference.alpha, reference.beta).sum(-1)
    expected = expected.mean(1)  # (N,) mean over the samples of the summed per-dimension KL

    def no_step(minibatch, active):
        return {}

    result = agents.kl_stopped_epochs(obs, reference, no_step, 10, torch.tensor([True, False]))
    assert result.epochs.tolist()[1] == 0 and result.epochs[0] >= 1 and result.steps >= 2
    torch.testing.assert_close(result.kl, expected)
    assert float(result.kl[1]) > 0.01
    result = agents.kl_stopped_epochs(obs, reference, no_step, 10, torch.tensor([False, False]))
    assert result.epochs.tolist() == [0, 0] and result.steps == 0
    torch.testing.assert_close(result.kl, expected)
    torch.testing.assert_close(result.final.alpha, current.alpha)


def collect(agents, collector, obs, gen, n_updates):
    """Bandit slots (reward sum(a), cost a_0 - 0.3) until ``n_updates`` updates are done."""
    actions_seen, stats = [], []
    while len(stats) < n_updates:
        actions, _, _ = agents.act(obs)
        next_obs = torch.randn(obs.shape, generator=gen)
        collector.add(obs, actions, actions.sum(-1), actions[..., :1] - 0.3, next_obs)
        actions_seen.append(actions)
        obs = next_obs
        if collector.full:
            stats.append(agents.update(collector.pop()))
    return obs, torch.stack(actions_seen), stats


def test_checkpoint_loads_with_weights_only_and_continues_bit_identically():
    config = small_config(epochs=2, collector_size=10, minibatch_size=5)
    agents, twin = CupAgents(4, 3, 2, 1, config), CupAgents(4, 3, 2, 1, config)
    runs = []
    for learner in (agents, twin):
        gen = torch.Generator().manual_seed(0)
        collector = TrajectoryCollector(10)
        obs, _, _ = collect(learner, collector, torch.randn(2, 2, 4, generator=gen), gen, 2)
        for _ in range(4):  # a half-full collector travels with the checkpoint
            actions, _, _ = learner.act(obs)
            collector.add(obs, actions, actions.sum(-1), actions[..., :1] - 0.3, obs)
        runs.append((collector, obs, gen))
    state = weights_only_copy({"agents": agents.state_dict(), "collector": runs[0][0].state_dict()})
    assert state["agents"]["config"]["epochs"] == 2 and state["agents"]["nu"].shape == (2, 1)
    restored = CupAgents(4, 3, 2, 1, config.replace(seed=7))  # the generator state wins
    restored.load_state_dict(state["agents"])
    collector = TrajectoryCollector(1)
    collector.load_state_dict(state["collector"])
    gen = torch.Generator()
    gen.set_state(runs[0][2].get_state())
    _, actions_restored, stats_restored = collect(restored, collector, runs[0][1], gen, 2)
    _, actions_twin, stats_twin = collect(twin, runs[1][0], runs[1][1], runs[1][2], 2)
    assert torch.equal(actions_restored, actions_twin)
    assert torch.equal(stats_restored[-1]["nu"], stats_twin[-1]["nu"])
    for name in ("actor", "reward_critic", "cost_critic", "normalizer"):
        for p, q in zip(
            getattr(restored, name).state_dict().values(),
            getattr(twin, name).state_dict().values(),
            strict=True,
        ):
            assert torch.equal(p, q), name
    with pytest.raises(ShapeError, match="checkpoint"):
        CupAgents(5, 3, 2, 1, small_config()).load_state_dict(agents.state_dict())


def test_actor_activations_follow_another_depth_when_unset():
    """§VI's actor is relu, relu, sigmoid over 512-128-64; with other hidden_sizes and no
    activations given, every hidden layer but the last is relu and the last sigmoid, and the
    actor built from that config has exactly those modules."""
    assert CupConfig().actor_activation_names() == ("relu", "relu", "sigmoid")
    assert CupConfig(hidden_sizes=(8,)).actor_activation_names() == ("sigmoid",)
    four = CupConfig(hidden_sizes=(16, 8, 8, 4), seed=0)
    assert four.actor_activation_names() == ("relu", "relu", "relu", "sigmoid")
    # unset stays unset through replace(), so another depth gets its own activations
    assert CupConfig(hidden_sizes=(16, 8)).replace(hidden_sizes=[16, 8, 4, 2]) == four.replace(
        hidden_sizes=[16, 8, 4, 2], seed=0
    )
    assert four.replace(hidden_sizes=[8]).actor_activation_names() == ("sigmoid",)
    given = CupConfig(hidden_sizes=(8, 8), actor_activations=("relu", "relu"))
    assert given.actor_activation_names() == ("relu", "relu")
    agents = CupAgents(5, 3, 2, 1, four)
    kinds = [type(m).__name__ for m in agents.actor.modules() if not list(m.children())]
    assert [k for k in kinds if k in ("ReLU", "Sigmoid")] == ["ReLU", "ReLU", "ReLU", "Sigmoid"]


def test_config_validation():
    with pytest.raises(ConfigError, match="gamma"):
        CupConfig(gamma=1.0)
    with pytest.raises(ConfigError, match="nu_init"):
        CupConfig(nu_init=11.0)
    with pytest.raises(ConfigError, match="actor_activations needs one name per hidden layer"):
        CupConfig(hidden_sizes=(8, 8), actor_activations=("relu", "relu", "sigmoid"))
    defaults = CupConfig()
    assert (defaults.gamma, defaults.gae_lambda, defaults.lr_nu) == (0.5, 0.1, 0.06)
    assert (defaults.nu_init, defaults.nu_max, defaults.kl_bound) == (1.0, 10.0, 0.02)
    assert (defaults.collector_size, defaults.minibatch_size, defaults.epochs) == (50, 10, 20)


def test_cup_drives_the_cost_below_its_limit_on_a_constrained_bandit():
    """Reward sum(a) over 3 entries, cost a_0 - 0.3 (limit 0): the start (a ~ 0.5) violates.

    The constrained optimum is a_0 = 0.3 with the other entries at 1. Seeded, 15 updates of
    50 slots x 4 environments; the learning rates are raised (3e-3) so that the KL early stops,
    not the epoch count, bound each update. Measured: the cost crosses 0 after ~6 updates and
    stays near -0.1 while the reward keeps rising (PPO with zeta = 0 on the same problem keeps
    violating: tests/test_rl_ppo.py).
    """
    torch.manual_seed(0)  # nothing should depend on it; the agents own their generator
    N, D, d, B = 2, 4, 3, 4
    agents = CupAgents(D, d, N, 1, small_config(lr_actor=3e-3, lr_critic=3e-3))
    g = torch.Generator().manual_seed(0)
    collector = TrajectoryCollector(agents.config.collector_size)
    obs = torch.randn(B, N, D, generator=g)
    history = []
    for _ in range(15):
        while not collector.full:
            actions, _, _ = agents.act(obs)
            next_obs = torch.randn(B, N, D, generator=g)
            collector.add(obs, actions, actions.sum(-1), actions[..., :1] - 0.3, next_obs)
            obs = next_obs
        history.append(agents.update(collector.pop()))
    first, last = history[0], history[-5:]
    assert first["cost_mean"] > 0.1  # the initial policy violates
    assert max(s["cost_mean"] for s in last) <= 0.02
    assert sum(s["reward_mean"] for s in last) / 5 > first["reward_mean"] + 0.2


def test_group_adam_clipping_matches_per_agent_clip_grad_norm_and_adam():
    """Per-agent norm clipping folded into the fused kernel = clip_grad_norm_ + Adam per agent."""
    g = torch.Generator().manual_seed(4)
    weight = torch.nn.Parameter(torch.randn(3, 5, 4, generator=g).transpose(1, 2))  # strided
    bias = torch.nn.Parameter(torch.randn(3, 1, 4, generator=g))
    grads = [
        (3 * torch.randn(3, 4, 5, generator=g), torch.randn(3, 1, 4, generator=g)) for _ in "ab"
    ]
    optimizer = GroupAdam([weight, bias], lr=0.05, eps=1e-5, max_grad_norm=0.5)
    starts = (weight.detach().clone(), bias.detach().clone())
    for grad_w, grad_b in grads:
        weight.grad, bias.grad = grad_w.clone(), grad_b.clone()
        optimizer.step()
    for agent in range(3):
        w = torch.nn.Parameter(starts[0][agent].clone())
        b = torch.nn.Parameter(starts[1][agent].clone())
        reference = torch.optim.Adam([w, b], lr=0.05, eps=1e-5)
        for grad_w, grad_b in grads:
            w.grad, b.grad = grad_w[agent].clone(), grad_b[agent].clone()
            norm = torch.nn.utils.clip_grad_norm_([w, b], 0.5)
            assert norm > 0.5  # the clipping is active in this test
            reference.step()
        torch.testing.assert_close(weight[agent].detach(), w.detach())
        torch.testing.assert_close(bias[agent].detach(), b.detach())


def test_update_inside_a_no_grad_caller_is_the_same_update():
    trajectory = random_trajectory(N=2, L=1)
    agents, twin = (CupAgents(4, 3, 2, 1, small_config(epochs=1)) for _ in range(2))
    with torch.no_grad():  # e.g. an evaluation or benchmark loop around the online loop
        agents.update(trajectory)
    twin.update(trajectory)
    for p, q in zip(agents.actor.parameters(), twin.actor.parameters(), strict=True):
        assert torch.equal(p, q)


def test_step_1_lowers_losses_4_5_and_6_on_the_collected_batch():
    """With nu = 0 the projection (7) is KL(pi_theta || pi_theta'') alone, whose gradient
    vanishes at theta'': the update is step 1. On the collected batch, with the advantages and
    targets of the collecting networks, the critic losses (4), (5) and the clipped surrogate
    (6) must be lower after the update than before."""
    T, B, N, D, d, L = 50, 2, 2, 4, 3, 2
    trajectory = random_trajectory(T=T, B=B, N=N, D=D, d=d, L=L, seed=3)
    trajectory.rewards = trajectory.rewards - 5.0  # reward and cost targets far apart
    agents = CupAgents(D, d, N, L, small_config(nu_init=0.0, lr_nu=0.0))
    before = copy.deepcopy(agents)
    stats = agents.update(trajectory)
    assert torch.all(stats["epochs_improve"] >= 1) and torch.equal(stats["nu"], torch.zeros(N, L))
    obs, next_obs = (
        normalized(agent_major(trajectory.obs)),
        normalized(agent_major(trajectory.next_obs)),
    )
    actions = agent_major(trajectory.actions)

    def time_major(x):
        return x.reshape(N, T, B, *x.shape[2:]).movedim(0, 2)

    with torch.no_grad():
        adv, target = gae_targets(
            trajectory.rewards,
            time_major(before.reward_critic(obs)[..., 0]),
            time_major(before.reward_critic(next_obs)[..., 0]),
            0.5,
            0.1,
        )
        _, cost_target = gae_targets(
            trajectory.costs,
            time_major(before.cost_critic(obs)),
            time_major(before.cost_critic(next_obs)),
            0.5,
            0.1,
        )
        adv, target, cost_target = agent_major(adv), agent_major(target), agent_major(cost_target)
        adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True, correction=0) + 1e-8)
        old_log_prob = before.actor(obs).log_prob(actions)

        def losses(net):
            value = (net.reward_critic(obs)[..., 0] - target).square().mean(1)
            cost_value = (net.cost_critic(obs) - cost_target).square().mean(1).sum(-1)
            surrogate = improvement_loss(net.actor(obs).log_prob(actions), old_log_prob, adv, 0.2)
            return value, cost_value, surrogate

        for name, old, new in zip(
            ("(4)", "(5)", "(6)"), losses(before), losses(agents), strict=True
        ):
            assert torch.all(new < old - 1e-3), (name, old, new)


def test_one_projection_epoch_is_loss_7_by_hand():
    """Step 2 starts at theta'' (the policy after step 1) and minimises (7), whose ratio is
    pi_theta(a|o) / pi_theta'(a|o) with theta' the *collecting* policy (the one whose data
    estimated A^C). One epoch of one minibatch: the reported projection loss is (7) at theta''
    averaged over agents, recomputed here from theta', theta'' (recorded after step 1's single
    gradient step), the cost critic's GAE (centred) and the nu of line 6."""
    T, B, N, D, d, L = 20, 2, 2, 4, 3, 2
    gamma, lam, lr_nu, nu_init = 0.5, 0.1, 0.1, 0.5
    trajectory = random_trajectory(T=T, B=B, N=N, D=D, d=d, L=L, seed=5)
    config = small_config(
        epochs=1, minibatch_size=T, lr_actor=0.02, nu_init=nu_init, lr_nu=lr_nu, kl_bound=10.0
    )
    agents = CupAgents(D, d, N, L, config)
    collecting = copy.deepcopy(agents)  # theta' and the cost critic of lines 3-4
    after_step = []
    step = agents.actor_optimizer.step

    def recording_step(active=None):
        step(active)
        after_step.append(copy.deepcopy(agents.actor))

    agents.actor_optimizer.step = recording_step
    stats = agents.update(trajectory)
    assert len(after_step) == 2  # one gradient step in step 1, one in step 2
    improved = after_step[0]  # theta''

    obs, next_obs = (
        normalized(agent_major(trajectory.obs)),
        normalized(agent_major(trajectory.next_obs)),
    )
    actions = agent_major(trajectory.actions).clamp(1e-6, 1 - 1e-6).double()  # (N, S, d)
    with torch.no_grad():

        def log_prob(actor):  # ln pi(a|o) of the independent Beta, reference implementation
            dist = actor(obs)
            beta = torch.distributions.Beta(dist.alpha.double(), dist.beta.double())
            return beta.log_prob(actions).sum(-1)  # (N, S)

        ratio = torch.exp(log_prob(improved) - log_prob(collecting.actor))
        assert float((ratio - 1).abs().max()) > 0.02  # step 1 moved the policy
        values = collecting.cost_critic(obs).double().reshape(N, T, B, L)
        next_values = collecting.cost_critic(next_obs).double().reshape(N, T, B, L)
    costs = agent_major(trajectory.costs).double().reshape(N, T, B, L)
    cost_adv = torch.zeros(N, T, B, L, dtype=torch.float64)
    following = torch.zeros(N, B, L, dtype=torch.float64)
    for t in reversed(range(T)):  # GAE, lines 3-4: A_t = delta_t + gamma lam A_{t+1}
        delta = costs[:, t] + gamma * next_values[:, t] - values[:, t]
        following = delta + gamma * lam * following
        cost_adv[:, t] = following
    cost_adv = cost_adv.reshape(N, T * B, L)
    cost_adv = cost_adv - cost_adv.mean(1, keepdim=True)  # centred per agent and cost
    nu = (nu_init + lr_nu * costs.mean((1, 2))).clamp(0.0, 10.0)  # line 6, (N, L)
    torch.testing.assert_close(stats["nu"].double(), nu)
    coefficient = (1 - gamma * lam) / (1 - gamma)
    # (7) at theta = theta'': KL(pi_theta || pi_theta'') = 0
    loss = (coefficient * ratio * (cost_adv * nu[:, None, :]).sum(-1)).mean(1)  # (N,)
    assert stats["project_loss"] == pytest.approx(float(loss.mean()), rel=1e-4, abs=1e-7)


def test_an_update_with_factored_first_layer_gradients_is_the_dense_update():
    """A first layer of >= 2^20 weights per agent (the paper's 3996 x 512) takes the factored
    gradient path (LowRankGrad) in CUP's update; one update equals the same update with
    dense gradients up to float rounding, and the path was taken."""
    from skyshare.rl.common.networks import GroupLinear
    from skyshare.rl.common.optim import low_rank_grad

    D, hidden = 2048, (512, 8, 8)
    trajectory = random_trajectory(T=10, B=1, N=2, D=D, d=3, L=1)
    config = small_config(
        hidden_sizes=hidden,
        actor_activations=("relu", "relu", "sigmoid"),
        epochs=2,
        collector_size=10,
        minibatch_size=5,
    )
    agents, dense = (CupAgents(D, 3, 2, 1, config) for _ in range(2))

    def networks(a):
        return (a.actor, a.reward_critic, a.cost_critic)

    layers = [m for n in networks(dense) for m in n.modules() if isinstance(m, GroupLinear)]
    deferred = [m for n in networks(agents) for m in n.modules() if isinstance(m, GroupLinear)]
    assert sum(m.deferred_weight_grad for m in deferred) == 3  # the three first layers
    for layer in layers:
        layer.deferred_weight_grad = False
    seen = []
    first = agents.actor.net.net[0]
    original = agents.actor_optimizer.step

    def spy(active=None):  # the factors are there when the optimiser steps
        seen.append(low_rank_grad(first.weight) is not None and first.weight.grad is None)
        original(active)

    agents.actor_optimizer.step = spy
    agents.update(trajectory)
    dense.update(trajectory)
    assert seen and all(seen)
    for net, twin in zip(networks(agents), networks(dense), strict=True):
        for p, q in zip(net.parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_memory_estimate_counts_the_networks_and_their_training_state(monkeypatch):
    """The estimate is 4 float32 copies (weights, gradient, Adam's two moments) of exactly the
    parameters CUP builds (actor, reward critic, cost critic); agents over the memory limit
    are refused by name before anything is allocated."""
    agents = CupAgents(7, 3, 2, 2, CupConfig(hidden_sizes=(16, 8), seed=0))
    networks = (agents.actor, agents.reward_critic, agents.cost_critic)
    n_parameters = sum(p.numel() for net in networks for p in net.parameters())
    assert CupAgents.memory_estimate(7, 3, 2, 2, (16, 8)) == 16 * n_parameters
    monkeypatch.setenv("SKYSHARE_MEMORY_LIMIT_GB", "0.5")  # the paper's agents need ~0.71 GB
    with pytest.raises(ConfigError, match=r"CupAgents \(7 agents, hidden_sizes \[512, 128, 64\]"):
        CupAgents(3996, 46, 7, 2, CupConfig())
