"""Batched groups of independent networks equal per-agent nn.Linear stacks."""

import pytest
import torch
from torch import nn

from skyshare.rl.networks import GroupLinear, GroupMLP


def test_group_linear_equals_independent_linears():
    torch.manual_seed(0)
    layer = GroupLinear(3, 5, 4)
    x = torch.randn(3, 7, 5)
    y = layer(x)
    for a in range(3):
        reference = nn.functional.linear(x[a], layer.weight[a].T, layer.bias[a, 0])
        torch.testing.assert_close(y[a], reference)


def test_agents_are_independent_in_value_and_gradient():
    torch.manual_seed(1)
    mlp = GroupMLP(4, (6, 16, 8, 2), activations="relu", output_activation="sigmoid")
    x = torch.randn(4, 10, 6)
    out = mlp(x)
    assert out.shape == (4, 10, 2) and bool(((out > 0) & (out < 1)).all())
    assert not torch.allclose(out[0], out[1])  # independent initialisation
    out[2].sum().backward()
    for p in mlp.parameters():
        grads = p.grad.flatten(1).abs().sum(-1)
        assert grads[2] > 0 and torch.all(grads[[0, 1, 3]] == 0)


def test_shape_errors_and_bad_activation():
    with pytest.raises(ValueError, match="expected input"):
        GroupLinear(2, 3, 4)(torch.zeros(3, 1, 3))
    with pytest.raises(ValueError, match="unknown activation"):
        GroupMLP(1, (2, 3, 1), activations="swishy")
