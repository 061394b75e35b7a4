"""Reference beamformers: MRT power split and per-cell ZF (seed 004 eqs. (3)-(4))."""

import pytest
import torch

from skyshare import metrics
from skyshare.beamforming import mrt_equal_power, per_cell_zero_forcing
from skyshare.errors import ShapeError


def _cn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.complex128)


def test_mrt_splits_power_per_bs_and_aligns_with_channel():
    g = torch.Generator().manual_seed(13)
    B, K, N, M = 3, 7, 3, 4
    H = _cn(g, B, K, N, M)
    serving = metrics.strongest_transmitter(H)
    w = mrt_equal_power(H, serving, p_total=5.0)
    power = (w.abs() ** 2).sum(-1)
    for b in range(B):
        for n in range(N):
            mine = serving[b] == n
            if mine.any():
                assert power[b, mine].sum().item() == pytest.approx(5.0, rel=1e-9)
    h = H[torch.arange(B)[:, None], torch.arange(K), serving]
    cosine = (h.conj() * w).sum(-1).abs() / (h.norm(dim=-1) * w.norm(dim=-1))
    torch.testing.assert_close(cosine, torch.ones_like(cosine))


def test_single_user_mrt_achieves_full_array_gain():
    """One BS, one user: SNR = P ||h||^2 / sigma^2 (the MRT optimum)."""
    g = torch.Generator().manual_seed(1)
    H = _cn(g, 2, 1, 1, 8)
    w = mrt_equal_power(H, torch.zeros(2, 1, dtype=torch.long), p_total=3.0)
    snr = metrics.sinr(metrics.associated_gains(H, w, torch.zeros(2, 1, dtype=torch.long)), 0.5)
    torch.testing.assert_close(snr.sinr[:, 0], 3.0 * (H.abs() ** 2).sum((1, 2, 3)) / 0.5)


def test_per_cell_zf_nulls_intra_cell_interference_with_unit_columns():
    g = torch.Generator().manual_seed(2)
    B, C, U, F, M = 2, 3, 2, 4, 5
    H = _cn(g, B, C * U, C, F, M)
    W = per_cell_zero_forcing(H, U)
    assert W.shape == (B, C, C * U, F, M)
    norms = torch.linalg.vector_norm(W, dim=-1)  # (B, C, K, F)
    for c in range(C):
        own = slice(c * U, (c + 1) * U)
        torch.testing.assert_close(norms[:, c, own], torch.ones_like(norms[:, c, own]))
        others = torch.ones(C * U, dtype=torch.bool)
        others[own] = False
        assert norms[:, c, others].abs().max() == 0
    A = metrics.effective_gains(H, W)  # (B, K, K, F)
    for c in range(C):
        own = slice(c * U, (c + 1) * U)
        block = A[:, own, own]  # users of cell c, streams of cell c
        off_diagonal = block - torch.diag_embed(torch.diagonal(block, dim1=1, dim2=2), 0, 1, 2)
        assert off_diagonal.abs().max() < 1e-12
    # the ZF direction is H (H^H H)^{-1}: check one cell/subchannel against a direct solve
    Hc = H[0, 2:4, 1, 3].T  # cell 1, f = 3: (M, U)
    expected = Hc @ torch.linalg.inv(Hc.conj().T @ Hc)
    expected = expected / expected.norm(dim=0, keepdim=True)
    torch.testing.assert_close(W[0, 1, 2:4, 3].T, expected)


def test_zf_rejects_more_users_than_antennas():
    H = torch.zeros(1, 6, 2, 1, 2, dtype=torch.complex64)
    with pytest.raises(ShapeError, match="U = 3 > M = 2"):
        per_cell_zero_forcing(H, 3)
