"""Per-user Lagrange multipliers of seed 001 §III-D: the step (17)-(18) and the shaping (16)."""

import io

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.lagrangian import LagrangeMultipliers, multiplier_step, shaped_reward


def test_multiplier_step_by_hand_clips_at_zero_and_at_the_upper_bound():
    lam = torch.tensor([0.5, 0.1, 2.0, 0.0])
    cost = torch.tensor([1.0, 0.0, 3.0, 0.25])
    # lambda + 0.2 (c - 0.5): 0.6; 0.1 - 0.1 = 0.0; 2.0 + 0.5 = 2.5 -> 2.3; 0 - 0.05 -> 0
    out = multiplier_step(lam, cost, lr=0.2, cost_limit=0.5, upper=2.3)
    torch.testing.assert_close(out, torch.tensor([0.6, 0.0, 2.3, 0.0]))
    # no bound, d = 0: (17) with (18) is lambda + alpha E[c]
    torch.testing.assert_close(
        multiplier_step(lam, cost, lr=0.2), torch.tensor([0.7, 0.1, 2.6, 0.05])
    )


def test_shaped_reward_by_hand_split_and_full():
    reward = torch.tensor([[3.0, 1.0]])  # (B=1, M=2)
    cost = torch.tensor([[[1.0, 0.0], [0.5, 2.0]]])  # (B=1, N=2, K=2)
    lam = torch.tensor([[2.0, 5.0], [4.0, 0.0]])
    # penalty = (1 - 0.9) (2 * 1 + 5 * 0 + 4 * 0.5 + 0 * 2) = 0.4
    split = shaped_reward(reward, cost, lam, gamma=0.9, sharing="split")
    full = shaped_reward(reward, cost, lam, gamma=0.9, sharing="full")
    torch.testing.assert_close(split, torch.tensor([[2.8, 0.8]]))
    torch.testing.assert_close(full, torch.tensor([[2.6, 0.6]]))
    # "split": the groups' shaped rewards add up to the shaped reward of (RL1), M = 1
    rl1 = shaped_reward(reward.sum(-1, keepdim=True), cost, lam, gamma=0.9)
    torch.testing.assert_close(split.sum(-1, keepdim=True), rl1)
    with pytest.raises(ShapeError):
        shaped_reward(reward, cost, torch.zeros(2, 3), gamma=0.9)
    with pytest.raises(ConfigError):
        shaped_reward(reward, cost, lam, gamma=0.9, sharing="half")


def test_step_every_period_on_the_mean_cost_of_the_period():
    lam = LagrangeMultipliers((1, 2), lr=0.5, period=2, init=1.0)
    lam.observe(torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]]))  # (T=2, 1, 2)
    assert not lam.step()  # first call of the period: nothing moves
    torch.testing.assert_close(lam.value, torch.tensor([[1.0, 1.0]]))
    lam.observe(torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]]))
    assert lam.step()
    # mean over the 4 samples of the period: [1.0, 0.0] -> 1 + 0.5 * [1, 0]
    torch.testing.assert_close(lam.value, torch.tensor([[1.5, 1.0]]))
    assert lam.n_steps == 1 and float(lam.count.sum()) == 0.0  # cleared for the next period


def test_active_average_ignores_empty_slots_and_keeps_never_active_ones():
    lam = LagrangeMultipliers((2,), lr=1.0, average="active", init=0.5)
    cost = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # (4 samples, 2)
    active = torch.tensor([[True, False], [False, False], [False, False], [True, False]])
    lam.observe(cost, active)
    lam.step()
    # slot 0: mean over its 2 active samples (2 + 1) / 2 = 1.5; slot 1 never active: unchanged
    torch.testing.assert_close(lam.value, torch.tensor([2.0, 0.5]))
    every = LagrangeMultipliers((2,), lr=1.0, init=0.5)  # "all": (2 + 1) / 4 = 0.75
    every.observe(cost, active)
    every.step()
    torch.testing.assert_close(every.value, torch.tensor([1.25, 0.5]))
    with pytest.raises(ShapeError):
        lam.observe(cost)  # "active" needs the mask


def test_multipliers_rise_while_violated_and_hold_once_satisfied():
    lam = LagrangeMultipliers((2,), lr=0.1)
    history = []
    for violation in (1.0, 0.5, 0.25, 0.0, 0.0):
        lam.observe(torch.tensor([[violation, 0.0]]))
        lam.step()
        history.append(lam.value.clone())
    first = [float(h[0]) for h in history]
    assert first == pytest.approx([0.1, 0.15, 0.175, 0.175, 0.175])
    assert all(float(h[1]) == 0.0 for h in history)  # a satisfied user is never penalised


def test_state_dict_round_trip_with_weights_only():
    lam = LagrangeMultipliers((2, 3), lr=0.3, period=3, upper=4.0)
    lam.observe(torch.rand(5, 2, 3, generator=torch.Generator().manual_seed(0)))
    for _ in range(4):
        lam.step()
    lam.observe(torch.ones(1, 2, 3))
    buffer = io.BytesIO()
    torch.save(lam.state_dict(), buffer)
    buffer.seek(0)
    other = LagrangeMultipliers((2, 3), lr=0.3, period=3, upper=4.0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("value", "cost_sum", "count"):
        torch.testing.assert_close(getattr(other, name), getattr(lam, name))
    assert (other.calls, other.n_steps) == (lam.calls, lam.n_steps) == (4, 1)
    lam.step(), other.step()  # the 2nd period completes alike
    torch.testing.assert_close(other.value, lam.value)
    with pytest.raises(ShapeError):
        LagrangeMultipliers((3, 2), lr=0.3).load_state_dict(lam.state_dict())


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": -1.0}, {"lr": 0.1, "period": 0}, {"lr": 0.1, "init": 2.0, "upper": 1.0},
     {"lr": 0.1, "average": "some"}],
)  # fmt: skip
def test_bad_settings_raise_config_errors(kwargs):
    with pytest.raises(ConfigError):
        LagrangeMultipliers((2,), **kwargs)
