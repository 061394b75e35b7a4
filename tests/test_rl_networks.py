"""Batched groups of independent networks equal per-agent nn.Linear stacks."""

import pytest
import torch
from torch import nn

from skyshare.rl.common.networks import GroupLinear, GroupMLP


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


@pytest.mark.parametrize("reuse_grad_buffer", [False, True])
@pytest.mark.parametrize("transposed_storage", [False, True])
def test_speed_options_give_the_default_values_and_gradients(reuse_grad_buffer, transposed_storage):
    torch.manual_seed(2)
    reference = GroupMLP(3, (6, 16, 8, 2), activations=("relu", "sigmoid"))
    fast = GroupMLP(
        3,
        (6, 16, 8, 2),
        activations=("relu", "sigmoid"),
        reuse_grad_buffer=reuse_grad_buffer,
        transposed_storage=transposed_storage,
    )
    assert [p.shape for p in fast.parameters()] == [p.shape for p in reference.parameters()]
    if transposed_storage:  # (A, in, out) views of (A, out, in) memory
        assert fast.net[0].weight.transpose(1, 2).is_contiguous()
    with torch.no_grad():
        for p, q in zip(fast.parameters(), reference.parameters(), strict=True):
            p.copy_(q)
    for batch in (1, 5):  # one row takes the x W product, several rows W^T x^T
        x = torch.randn(3, batch, 6)
        torch.testing.assert_close(fast(x), reference(x))
        for model in (fast, reference):
            model.zero_grad(set_to_none=True)
            model(x).square().sum().backward()
            model(2 * x).sum().backward()  # a second backward accumulates
        for p, q in zip(fast.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad)
