"""Generalised advantage estimation (seed 000 Algorithm 3 lines 2-4) against hand computations."""

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.gae import gae, gae_targets

GAMMA, LAM = 0.5, 0.1  # seed 000 §VI


def test_gae_matches_the_unrolled_recursion_by_hand():
    r = [1.0, -2.0, 0.5]
    v = [0.3, 0.7, -0.2]
    v_next = [0.7, -0.2, 1.5]  # V(o_{i+1}); the last one bootstraps from o_4
    # delta_i = r_i + gamma V(o_{i+1}) - V(o_i)
    d0 = 1.0 + 0.5 * 0.7 - 0.3  # 1.05
    d1 = -2.0 + 0.5 * -0.2 - 0.7  # -2.8
    d2 = 0.5 + 0.5 * 1.5 - -0.2  # 1.45
    k = 0.5 * 0.1  # gamma lambda
    expected = [d0 + k * d1 + k * k * d2, d1 + k * d2, d2]  # A_4 = 0
    adv = gae(torch.tensor(r), torch.tensor(v), torch.tensor(v_next), GAMMA, LAM)
    torch.testing.assert_close(adv, torch.tensor(expected))
    assert adv[0].item() == pytest.approx(1.05 - 0.14 + 0.003625, abs=1e-6)


def test_lambda_one_gives_discounted_return_minus_value():
    r = torch.tensor([1.0, 2.0, 3.0])
    zeros = torch.zeros(3)
    adv = gae(r, zeros, zeros, 0.9, 1.0)
    expected = [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3.0]
    torch.testing.assert_close(adv, torch.tensor(expected))


def test_trailing_axes_are_independent_sequences():
    g = torch.Generator().manual_seed(0)
    T, B, N, L = 6, 3, 4, 2
    r, v, vn = (torch.randn(T, B, N, L, generator=g) for _ in range(3))
    adv = gae(r, v, vn, GAMMA, LAM)
    assert adv.shape == (T, B, N, L)
    for b, n, cost in [(0, 0, 0), (2, 3, 1), (1, 2, 0)]:
        single = gae(r[:, b, n, cost], v[:, b, n, cost], vn[:, b, n, cost], GAMMA, LAM)
        torch.testing.assert_close(adv[:, b, n, cost], single)


def test_episode_end_cuts_the_recursion():
    r = torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]])  # (T=3, B=2)
    v = torch.zeros(3, 2)
    vn = torch.tensor([[0.0, 0.0], [4.0, 4.0], [0.0, 0.0]])
    ends = torch.tensor([[False, True], [False, False], [False, False]])
    adv = gae(r, v, vn, GAMMA, LAM, episode_ends=ends)
    k = GAMMA * LAM
    d = [1.0, 2.0 + 0.5 * 4.0, 0.0]
    assert adv[0, 0].item() == pytest.approx(d[0] + k * d[1] + k * k * d[2])
    assert adv[0, 1].item() == pytest.approx(d[0])  # cut after slot 0 in env 1
    assert adv[1, 1].item() == pytest.approx(d[1])


def test_targets_are_advantage_plus_value():
    r, v, vn = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 2.0]), torch.tensor([2.0, 0.0])
    adv, target = gae_targets(r, v, vn, GAMMA, LAM)
    d1 = 0.0 - 2.0
    d0 = 1.0 + 0.5 * 2.0 - 0.5
    torch.testing.assert_close(adv, torch.tensor([d0 + 0.05 * d1, d1]))
    torch.testing.assert_close(target, torch.tensor([d0 + 0.05 * d1 + 0.5, d1 + 2.0]))


def test_bad_arguments_raise():
    x = torch.zeros(4, 2)
    with pytest.raises(ShapeError, match="same shape"):
        gae(x, torch.zeros(4, 3), x, GAMMA, LAM)
    with pytest.raises(ConfigError, match="gamma"):
        gae(x, x, x, 1.5, LAM)
    with pytest.raises(ConfigError, match="lam"):
        gae(x, x, x, GAMMA, -0.1)
    with pytest.raises(ShapeError, match="episode_ends"):
        gae(x, x, x, GAMMA, LAM, episode_ends=torch.zeros(3, dtype=torch.bool))
