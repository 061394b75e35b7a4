"""Batched groups of independent networks equal per-agent nn.Linear stacks."""

import pytest
import torch
from torch import nn

from skyshare.rl.common import networks
from skyshare.rl.common.networks import GroupLinear, GroupMLP, weight_left_product


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


def test_weight_left_product_follows_the_cpu_vendor(tmp_path):
    for vendor, expected in (("GenuineIntel", True), ("AuthenticAMD", False)):
        cpuinfo = tmp_path / vendor
        cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 6\n")
        assert weight_left_product(cpuinfo) is expected
    assert weight_left_product(tmp_path / "missing") is False


@pytest.mark.parametrize("reuse_grad_buffer", [False, True])
@pytest.mark.parametrize("transposed_storage", [False, True])
@pytest.mark.parametrize("weight_left", [False, True])
def test_speed_options_give_the_default_values_and_gradients(
    reuse_grad_buffer, transposed_storage, weight_left, monkeypatch
):
    monkeypatch.setattr(networks, "weight_left_product", lambda: weight_left)  # either CPU
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
    for batch in (1, 5):  # one row takes the x W product, several rows either form
        x = torch.randn(3, batch, 6)
        torch.testing.assert_close(fast(x), reference(x))
        for model in (fast, reference):
            model.zero_grad(set_to_none=True)
            model(x).square().sum().backward()
            model(2 * x).sum().backward()  # a second backward accumulates
        for p, q in zip(fast.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad)


# --- deferred (low-rank) weight gradients stepped by GroupAdam -------------------------------


def _deferred_pair(transposed_storage: bool, in_features: int = 2048, out_features: int = 512):
    """Two equal float64 networks of 2 agents whose first layer (in x out >= 2^20 weights) is
    deferred in one of them."""
    from skyshare.rl.common.networks import DEFERRED_MIN_WEIGHTS

    assert in_features * out_features >= DEFERRED_MIN_WEIGHTS
    sizes = (in_features, out_features, 8, 3)
    options = {"reuse_grad_buffer": True, "transposed_storage": transposed_storage}
    torch.manual_seed(5)
    dense = GroupMLP(2, sizes, activations="tanh", **options).double()
    deferred = GroupMLP(2, sizes, activations="tanh", deferred_weight_grad=True, **options)
    deferred = deferred.double()
    with torch.no_grad():
        for p, q in zip(deferred.parameters(), dense.parameters(), strict=True):
            p.copy_(q)
    assert deferred.net[0].deferred_weight_grad and not deferred.net[2].deferred_weight_grad
    return dense, deferred


@pytest.mark.parametrize("transposed_storage", [False, True])
def test_deferred_weight_grad_steps_like_the_dense_gradient(transposed_storage):
    """Adam with per-agent clipping (binding), an inactive agent and two backward passes per
    step gives the parameters and moments of the dense-gradient path (float64), while the
    deferred first layer never holds a dense gradient."""
    from skyshare.rl.common.optim import GroupAdam, low_rank_grad

    dense, deferred = _deferred_pair(transposed_storage)
    optimizers = [GroupAdam(m.parameters(), lr=1e-3, max_grad_norm=0.05) for m in (dense, deferred)]
    generator = torch.Generator().manual_seed(0)
    for step in range(4):
        x = torch.randn(2, 10, 2048, generator=generator, dtype=torch.float64)
        active = torch.tensor([True, step % 2 == 0])  # agent 1 skips odd steps
        for model, optimizer in zip((dense, deferred), optimizers, strict=True):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            model(x[:, :3]).sum().backward()  # accumulated: the factors of both passes
            optimizer.step(active)
        first = deferred.net[0].weight
        assert first.grad is None and low_rank_grad(first) is None  # consumed by the step
    # the fused kernel takes the clipping factor as a float32 (relative 6e-8), and the two
    # paths round the norm differently (Gram matrices against dots)
    for p, q in zip(deferred.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-11)
    for p, q in zip(deferred.parameters(), dense.parameters(), strict=True):
        for name in ("exp_avg", "exp_avg_sq", "step"):
            a, b = optimizers[1].state[p][name], optimizers[0].state[q][name]
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-14)
    assert not torch.equal(
        deferred.net[0].weight, _deferred_pair(transposed_storage)[1].net[0].weight
    )


def test_low_rank_grad_norms_rows_and_zero_grad():
    from skyshare.rl.common.optim import GroupAdam, low_rank_grad

    dense, deferred = _deferred_pair(transposed_storage=True)
    x = torch.randn(2, 7, 2048, dtype=torch.float64)
    for model in (dense, deferred):
        model(x).square().sum().backward()
    factors = low_rank_grad(deferred.net[0].weight)
    expected = dense.net[0].weight.grad.transpose(1, 2)  # (A, out, in): the stored orientation
    torch.testing.assert_close(factors.dense(), expected)
    torch.testing.assert_close(factors.squared_norms(), expected.square().sum((1, 2)))
    torch.testing.assert_close(factors.rows_into(1, 100, 164, torch.empty(64, 2048).double()),
                               expected[1, 100:164])  # fmt: skip
    optimizer = GroupAdam(deferred.parameters(), lr=1e-3)
    optimizer.zero_grad()
    assert low_rank_grad(deferred.net[0].weight) is None
    before = deferred.net[0].weight.detach().clone()
    optimizer.step()  # nothing to apply: the first layer does not move
    assert torch.equal(deferred.net[0].weight, before)


def test_deferred_layer_falls_back_to_the_dense_gradient_for_many_rows():
    """Past n (in + out) > in out / 4 rows the factors cost more than the gradient: the layer
    then writes the dense gradient, including the factors it already held."""
    from skyshare.rl.common.optim import low_rank_grad

    dense, deferred = _deferred_pair(transposed_storage=True)
    small = torch.randn(2, 10, 2048, dtype=torch.float64)
    large = torch.randn(2, 120, 2048, dtype=torch.float64)  # 130 (2048 + 512) * 4 > 2048 * 512
    for model in (dense, deferred):
        model(small).sum().backward()
    assert low_rank_grad(deferred.net[0].weight) is not None
    for model in (dense, deferred):
        model(large).square().sum().backward()
    assert low_rank_grad(deferred.net[0].weight) is None
    torch.testing.assert_close(deferred.net[0].weight.grad, dense.net[0].weight.grad)


def test_a_layer_over_the_memory_limit_is_refused_before_allocating(monkeypatch):
    """4 float32 copies per weight (weights, gradient, two Adam moments) against the limit:
    a 3 x 100000 x 100000 layer (480 GB) is refused by size, naming the layer; a small one
    under a small limit is built."""
    from skyshare.errors import ConfigError

    monkeypatch.setenv("SKYSHARE_MEMORY_LIMIT_GB", "0.001")  # 1 MB
    with pytest.raises(ConfigError, match=r"layer of 3 x 100000 x 100000 weights .* 480 GB"):
        GroupLinear(3, 100000, 100000)
    with pytest.raises(ConfigError, match=r"layer of 2 x 200 x 200 weights"):
        GroupLinear(2, 200, 200)  # 16 x 2 x 201 x 200 bytes = 1.29 MB
    GroupLinear(2, 100, 100)  # 0.32 MB


def test_hidden_layers_memory_is_a_lower_bound_checked_before_building(monkeypatch):
    """The hidden-to-hidden layers of one agent: 16 bytes per weight and bias; refused above
    the limit, naming the widths, and equal to what GroupLinear checks for those layers."""
    from skyshare.errors import ConfigError
    from skyshare.rl.common.networks import check_hidden_layers_memory

    monkeypatch.setenv("SKYSHARE_MEMORY_LIMIT_GB", str(16 * (101 * 50 + 51 * 20) / 1e9))
    check_hidden_layers_memory((100, 50, 20), "job x")  # exactly at the limit: accepted
    with pytest.raises(ConfigError, match=r"job x: hidden_sizes \[100, 50, 21\] needs about"):
        check_hidden_layers_memory((100, 50, 21), "job x")
    check_hidden_layers_memory((10**9,), "one hidden layer")  # no hidden-to-hidden layer
