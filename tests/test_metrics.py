"""The SINR kernel against direct loop implementations, invariances and special cases."""

import math

import pytest
import torch

from skyshare import metrics
from skyshare.beamforming import per_cell_zero_forcing
from skyshare.errors import ShapeError


def _cn(g, *shape, dtype=torch.complex128):
    return torch.randn(*shape, generator=g, dtype=dtype)


def _loop_sinr(H, W, noise):
    """Textbook SINR by explicit loops: H (K,T,M), W (T,J,M) -> (K,) with J == K."""
    K, T, _ = H.shape
    out = []
    for k in range(K):
        amplitudes = []
        for j in range(K):
            a = 0j
            for t in range(T):
                a += complex((H[k, t].conj() * W[t, j]).sum())
            amplitudes.append(a)
        signal = abs(amplitudes[k]) ** 2
        interference = sum(abs(amplitudes[j]) ** 2 for j in range(K) if j != k)
        out.append(signal / (interference + noise))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_free_kernel_matches_loop(seed):
    g = torch.Generator().manual_seed(seed)
    B, K, T, M = 3, 4, 3, 2
    H, W = _cn(g, B, K, T, M), _cn(g, B, T, K, M)
    result = metrics.sinr(metrics.effective_gains(H, W), noise=0.7)
    for b in range(B):
        torch.testing.assert_close(result.sinr[b], _loop_sinr(H[b], W[b], 0.7))
    torch.testing.assert_close(result.rate, torch.log2(1 + result.sinr))


def test_associated_gains_equal_masked_full_w():
    g = torch.Generator().manual_seed(3)
    B, K, N, M = 2, 5, 3, 4
    H, w = _cn(g, B, K, N, M), _cn(g, B, K, M)
    serving = torch.randint(0, N, (B, K), generator=g)
    W = torch.zeros(B, N, K, M, dtype=w.dtype)
    for b in range(B):
        for k in range(K):
            W[b, serving[b, k], k] = w[b, k]
    torch.testing.assert_close(
        metrics.associated_gains(H, w, serving), metrics.effective_gains(H, W)
    )


def test_seed000_sinr_definition_by_hand():
    """Seed 000 eq. (1): |h_{rho_k,k}^H w_k|^2 / (sum_{i!=k} |h_{rho_i,k}^H w_i|^2 + sigma^2)."""
    g = torch.Generator().manual_seed(4)
    K, N, M = 3, 2, 2
    H, w = _cn(g, 1, K, N, M), _cn(g, 1, K, M)
    serving = torch.tensor([[0, 1, 1]])
    s2 = 0.3
    result = metrics.sinr(metrics.associated_gains(H, w, serving), s2)
    for k in range(K):
        amp = lambda i, k=k: complex((H[0, k, serving[0, i]].conj() * w[0, i]).sum())  # noqa: E731
        signal = abs(amp(k)) ** 2
        interference = sum(abs(amp(i)) ** 2 for i in range(K) if i != k)
        assert result.sinr[0, k].item() == pytest.approx(signal / (interference + s2), rel=1e-12)


def test_subchannel_kernel_matches_per_subchannel_calls():
    g = torch.Generator().manual_seed(5)
    B, K, T, F, M = 2, 3, 2, 4, 1
    H, W = _cn(g, B, K, T, F, M), _cn(g, B, T, K, F, M)
    full = metrics.sinr(metrics.effective_gains(H, W), noise=1.0)
    assert full.sinr.shape == (B, K, F)
    for f in range(F):
        one = metrics.sinr(metrics.effective_gains(H[:, :, :, f], W[:, :, :, f]), noise=1.0)
        torch.testing.assert_close(full.sinr[..., f], one.sinr)


def test_scalar_ofdm_orthogonal_within_bs():
    """Seed 001 eq. (3): one user per subchannel per BS -> only other BSs interfere."""
    g = torch.Generator().manual_seed(6)
    K, N, F = 2, 2, 3  # user 0 at BS 0, user 1 at BS 1
    h = _cn(g, 1, K, N, F, 1)
    p = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.5, 0.0]], dtype=torch.float64)  # (K, F)
    W = torch.zeros(1, N, K, F, 1, dtype=h.dtype)
    W[0, 0, 0, :, 0] = p[0].sqrt()
    W[0, 1, 1, :, 0] = p[1].sqrt()
    noise = 0.1
    result = metrics.sinr(metrics.effective_gains(h, W), noise)
    gain = h[0, ..., 0].abs() ** 2  # (K, N, F)
    expected_user0 = gain[0, 0] * p[0] / (gain[0, 1] * p[1] + noise)
    torch.testing.assert_close(result.sinr[0, 0], expected_user0)


def test_zero_forcing_single_cell_has_no_interference():
    """Per-cell ZF (seed 004 eq. (3)) is a kernel special case: one cell -> no interference."""
    g = torch.Generator().manual_seed(7)
    U, M = 3, 5
    H = _cn(g, 1, U, 1, 1, M)  # (B, K=U, T=1, F=1, M)
    result = metrics.sinr(metrics.effective_gains(H, per_cell_zero_forcing(H, U)), 1.0)
    assert result.interference.abs().max() < 1e-20


def test_invariance_scaling_powers_and_noise_together():
    g = torch.Generator().manual_seed(8)
    H, W = _cn(g, 2, 4, 3, 2), _cn(g, 2, 3, 4, 2)
    base = metrics.sinr(metrics.effective_gains(H, W), 0.5).sinr
    scaled = metrics.sinr(metrics.effective_gains(H, W * math.sqrt(7.0)), 3.5).sinr
    torch.testing.assert_close(base, scaled)


def test_invariance_permuting_users():
    g = torch.Generator().manual_seed(9)
    H, W = _cn(g, 1, 5, 2, 3), _cn(g, 1, 2, 5, 3)
    perm = torch.tensor([3, 0, 4, 1, 2])
    base = metrics.sinr(metrics.effective_gains(H, W), 1.0).sinr
    permuted = metrics.sinr(metrics.effective_gains(H[:, perm], W[:, :, perm]), 1.0).sinr
    torch.testing.assert_close(permuted, base[:, perm])


def test_batch_of_b_equals_b_batches_of_one():
    g = torch.Generator().manual_seed(10)
    H, W = _cn(g, 4, 3, 2, 2), _cn(g, 4, 2, 3, 2)
    full = metrics.sinr(metrics.effective_gains(H, W), 1.0).rate
    for b in range(4):
        one = metrics.sinr(metrics.effective_gains(H[b : b + 1], W[b : b + 1]), 1.0).rate
        torch.testing.assert_close(full[b : b + 1], one)


def test_interference_split_sums_to_total_interference():
    g = torch.Generator().manual_seed(11)
    B, K, N, M = 2, 6, 3, 2
    H, w = _cn(g, B, K, N, M), _cn(g, B, K, M)
    serving = torch.randint(0, N, (B, K), generator=g)
    A = metrics.associated_gains(H, w, serving)
    beta = metrics.split_by_transmitter(A.abs() ** 2, serving, N, exclude_own=True)
    assert beta.shape == (B, N, K)
    torch.testing.assert_close(beta.sum(1), metrics.sinr(A, 1.0).interference)
    # beta_{j,k} by the definition of seed 000 §V-C-2, for one entry
    b, j, k = 1, 2, 4
    expected = sum(
        abs(complex((H[b, k, j].conj() * w[b, i]).sum())) ** 2
        for i in range(K)
        if serving[b, i] == j and i != k
    )
    assert beta[b, j, k].item() == pytest.approx(expected, rel=1e-12)


def test_primary_interference_and_per_bs_split():
    g = torch.Generator().manual_seed(12)
    B, K, N, L, M = 1, 4, 2, 2, 3
    G, w = _cn(g, B, L, N, M), _cn(g, B, K, M)
    serving = torch.tensor([[0, 1, 0, 1]])
    rho = metrics.primary_interference(G, w, serving)
    for l_ in range(L):
        expected = sum(
            abs(complex((G[0, l_, serving[0, k]].conj() * w[0, k]).sum())) ** 2 for k in range(K)
        )
        assert rho[0, l_].item() == pytest.approx(expected, rel=1e-12)
    rho_n = metrics.split_by_transmitter(
        metrics.associated_gains(G, w, serving).abs() ** 2, serving, N
    )
    torch.testing.assert_close(rho_n.sum(1), rho)


def test_derived_metrics():
    rate = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    torch.testing.assert_close(metrics.sum_rate(rate), torch.tensor([6.0, 6.0]))
    torch.testing.assert_close(
        metrics.sum_rate(rate, bandwidth_hz=10.0), torch.tensor([60.0, 60.0])
    )
    torch.testing.assert_close(
        metrics.proportional_fair_utility(rate), torch.tensor([math.log(6.0), 3 * math.log(2.0)])
    )
    jain = metrics.jain_fairness(rate)
    assert jain[0].item() == pytest.approx(36 / (3 * 14))
    assert jain[1].item() == pytest.approx(1.0)
    prev = torch.tensor([[0, 1, 2], [1, 1, 1]])
    new = torch.tensor([[0, 2, 2], [0, 0, 1]])
    assert metrics.handover_count(prev, new).tolist() == [1, 2]


def test_strongest_transmitter():
    g = torch.Generator().manual_seed(13)
    H = _cn(g, 3, 7, 3, 4)
    strength = (H.abs() ** 2).sum(-1)
    torch.testing.assert_close(metrics.channel_strength(H), strength)
    assert torch.equal(metrics.strongest_transmitter(H), strength.argmax(-1))


def test_bad_shapes_are_named():
    with pytest.raises(ShapeError, match="H"):
        metrics.effective_gains(torch.zeros(2, 3, dtype=torch.complex64), torch.zeros(1, 1, 1, 1))
    with pytest.raises(ShapeError, match="disagree"):
        metrics.effective_gains(
            torch.zeros(1, 2, 3, 4, dtype=torch.complex64),
            torch.zeros(1, 2, 2, 4, dtype=torch.complex64),
        )
    with pytest.raises(ShapeError):
        metrics.sinr(torch.zeros(1, 2, 3, dtype=torch.complex64))


# ------------------------------------------------------------------ scalar OFDM (seed 001)


def test_ofdm_link_sinr_equals_the_general_kernel_on_random_schedules():
    """The gathered OFDM kernel against effective_gains + sinr with explicit W (B P^2 F)."""
    g = torch.Generator().manual_seed(3)
    B, N, k_max, F = 3, 3, 4, 6
    P = N * k_max
    H = torch.complex(torch.randn(B, P, N, F, generator=g), torch.randn(B, P, N, F, generator=g))
    H = H.to(torch.complex128)
    assignment = torch.randint(-1, k_max, (B, N, F), generator=g)
    power = torch.rand(B, N, F, generator=g, dtype=torch.float64) * 3
    W = torch.zeros(B, N, P, F, 1, dtype=torch.complex128)
    for b in range(B):
        for n in range(N):
            for f in range(F):
                if assignment[b, n, f] >= 0:
                    W[b, n, n * k_max + assignment[b, n, f], f, 0] = power[b, n, f].sqrt()
    reference = metrics.sinr(metrics.effective_gains(H.unsqueeze(-1), W), noise=0.5)
    links = metrics.ofdm_link_sinr(H.abs().square(), assignment, power, k_max, noise=0.5)
    for b in range(B):
        for n in range(N):
            for f in range(F):
                p = n * k_max + int(assignment[b, n, f])
                if assignment[b, n, f] < 0:
                    assert float(links.sinr[b, n, f]) == 0.0
                else:
                    expected = float(reference.sinr[b, p, f])
                    assert float(links.sinr[b, n, f]) == pytest.approx(expected, rel=1e-12)
    active = torch.rand(B, P, generator=g) > 0.3
    rates = metrics.ofdm_user_rates(links, P, active)
    served = W.abs().sum((1, 4)) > 0  # (B, P, F): slot p is served on f
    expected_rates = (reference.rate * served).sum(-1) * active
    torch.testing.assert_close(rates, expected_rates, rtol=1e-12, atol=1e-12)


def test_ofdm_link_sinr_rejects_mismatched_shapes():
    gain = torch.rand(1, 6, 3, 4)
    with pytest.raises(ShapeError, match="P = N k_max"):
        metrics.ofdm_link_sinr(gain, torch.zeros(1, 3, 4, dtype=torch.long), torch.ones(1, 3, 4), 3)
    with pytest.raises(ShapeError):
        metrics.ofdm_link_sinr(gain, torch.zeros(1, 3, 4, dtype=torch.long), torch.ones(3, 4), 2)
