"""Seed 004 multiband scenario: channels, ZF gains, eq. (5) budget, rates and eq. (7)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml

from inspect_check import assert_inspect_json_is_the_link_budget
from skyshare import cli
from skyshare.beamforming import per_cell_zero_forcing
from skyshare.errors import ConfigError, ShapeError
from skyshare.metrics import effective_gains
from skyshare.plots import plot_topology
from skyshare.scenarios import SCENARIOS
from skyshare.scenarios.multiband import MultibandConfig, MultibandScenario, MultibandState
from skyshare.solvers.multiband_problem import MultibandProblem

PRESETS = Path(__file__).parents[1] / "src" / "skyshare" / "configs" / "multiband"


def tiny(batch_size: int = 2, **changes) -> MultibandScenario:
    """2 cells, M = 3, U = 2, F = 2, T = 4: small enough for Python loops in the checks."""
    fields = {"n_cells": 2, "n_antennas": 3, "users_per_cell": 2, "n_freq": 2, "n_blocks": 4}
    fields.update(changes)
    return MultibandScenario(MultibandConfig(**fields), batch_size=batch_size, dtype=torch.float64)


def random_power(scenario: MultibandScenario, state: MultibandState, seed: int = 7):
    g = torch.Generator().manual_seed(seed)
    cfg = scenario.config
    shape = (state.H.shape[0], cfg.n_users, cfg.n_freq)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 3.0


def inner(w: torch.Tensor, h: torch.Tensor) -> complex:
    """w^H h of two 1-D vectors as a Python complex, by an explicit sum."""
    return sum(
        complex(a).conjugate() * complex(b) for a, b in zip(w.tolist(), h.tolist(), strict=True)
    )


# ------------------------------------------------------------------------------------------------
# Config and presets
# ------------------------------------------------------------------------------------------------


def test_paper_preset_equals_defaults_and_lists_every_field():
    raw = yaml.safe_load((PRESETS / "paper.yaml").read_text())
    assert set(raw) == set(MultibandConfig.model_fields)
    assert MultibandScenario.config_from("paper") == MultibandConfig()
    cfg = MultibandConfig()
    assert (cfg.n_cells, cfg.n_antennas, cfg.users_per_cell) == (3, 32, 16)
    assert (cfg.n_freq, cfg.n_blocks, cfg.snr_db, cfg.sir_db) == (6, 10, 20.0, 0.0)
    assert cfg.power_budget_total == 10 * 16 * 6


def test_quick_preset_is_small_and_valid():
    cfg = MultibandScenario.config_from("quick")
    assert (cfg.n_antennas, cfg.users_per_cell) == (8, 4)
    scenario = MultibandScenario(cfg, batch_size=4)
    state = scenario.reset()
    assert state.H.shape == (4, 12, 3, 6, 8)


def test_more_users_than_antennas_rejected_naming_both_fields():
    with pytest.raises(ConfigError, match=r"users_per_cell.*n_antennas"):
        MultibandConfig.from_dict({"n_antennas": 8, "users_per_cell": 9})


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_cells", 0), ("n_antennas", 0), ("n_freq", 0), ("n_blocks", 0), ("snr_db", 200.0),
     ("total_power_budget", 0.0), ("total_power_budget", -1.0), ("seed", -1), ("bogus", 1)],
)  # fmt: skip
def test_bad_config_values_rejected_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        MultibandConfig.from_dict({field: value})


def test_total_power_budget_override():
    cfg = MultibandConfig(total_power_budget=123.0)
    assert cfg.power_budget_total == 123.0
    state = MultibandScenario(cfg).reset()
    assert torch.allclose(state.budget, torch.full_like(state.budget, 123.0 / 10))


# ------------------------------------------------------------------------------------------------
# State: shapes, determinism, batch consistency
# ------------------------------------------------------------------------------------------------


def test_state_shapes_and_dtypes():
    scenario = MultibandScenario.from_preset("quick", batch_size=3)
    state = scenario.reset(seed=1)
    B, K, C, F, M = 3, 12, 3, 6, 8
    assert state.t == 0
    assert state.H.shape == (B, K, C, F, M) and state.H.dtype == torch.complex64
    assert state.W.shape == (B, C, K, F, M) and state.W.dtype == torch.complex64
    assert state.gains.shape == (C, C) and state.gains.dtype == torch.float32
    assert state.gain_power.shape == (B, K, K, F) and state.gain_power.dtype == torch.float32
    assert state.direct_gain.shape == (B, K, F)
    assert state.spent.shape == (B, C) and state.budget.shape == (B, C)
    assert torch.equal(state.spent, torch.zeros(B, C))
    # ZF columns have unit norm inside the serving cell and are zero elsewhere.
    norms = torch.linalg.vector_norm(state.W, dim=-1)  # (B, C, K, F)
    serving = torch.arange(C).repeat_interleave(4)
    own = norms[:, serving, torch.arange(K)]
    assert torch.allclose(own, torch.ones_like(own), atol=1e-5)
    assert float(norms.sum()) == pytest.approx(float(own.sum()), rel=1e-6)


def test_float64_precision():
    state = MultibandScenario.from_preset("quick", dtype=torch.float64).reset()
    assert state.H.dtype == torch.complex128 and state.gain_power.dtype == torch.float64


def test_same_seed_same_blocks_different_seed_different():
    a = MultibandScenario.from_preset("quick", batch_size=2)
    b = MultibandScenario.from_preset("quick", batch_size=2)
    assert torch.equal(a.reset(seed=5).H, b.reset(seed=5).H)
    assert torch.equal(a.step().H, b.step().H)
    assert not torch.equal(a.reset(seed=5).H, b.reset(seed=6).H)


def test_blocks_are_independent():
    scenario = MultibandScenario.from_preset("quick", batch_size=64)
    h0 = scenario.reset(seed=3).H
    h1 = scenario.step().H
    assert not torch.equal(h0, h1)
    # Normalised correlation of consecutive blocks ~ 0: n = 64*12*3*6*8 samples, std ~ 1/sqrt(n)
    # = 0.005 for equal-variance entries; 0.03 is > 5 sigma even with the unequal variances.
    rho = (h0.conj() * h1).sum().abs() / (h0.abs().square().sum() * h1.abs().square().sum()).sqrt()
    assert float(rho) < 0.03


def test_batch_member_equals_recomputation_from_its_channels():
    scenario = MultibandScenario.from_preset("quick", batch_size=3, dtype=torch.float64)
    state = scenario.reset(seed=2)
    i = 1
    H = state.H[i : i + 1]
    W = per_cell_zero_forcing(H, 4)
    assert torch.allclose(W, state.W[i : i + 1])
    A = effective_gains(H, W)
    assert torch.allclose(A.abs().square(), state.gain_power[i : i + 1])
    power = random_power(scenario, state)
    assert torch.allclose(
        scenario.rates(state, power)[i],
        scenario.rates(_slice(state, i), power[i : i + 1])[0],
    )


def _slice(state: MultibandState, i: int) -> MultibandState:
    return MultibandState(
        t=state.t,
        H=state.H[i : i + 1],
        gains=state.gains,
        W=state.W[i : i + 1],
        gain_power=state.gain_power[i : i + 1],
        direct_gain=state.direct_gain[i : i + 1],
        spent=state.spent[i : i + 1],
        budget=state.budget[i : i + 1],
    )


# ------------------------------------------------------------------------------------------------
# Channel statistics against the seed's normalisation
# ------------------------------------------------------------------------------------------------


def test_average_channel_power_matches_snr_and_sir():
    cfg = MultibandConfig(n_antennas=8, users_per_cell=4, n_freq=6, snr_db=20.0, sir_db=3.0)
    state = MultibandScenario(cfg, batch_size=200).reset(seed=0)
    a_serving = 10 ** (20.0 / 10)  # a_bb = SNR with sigma^2 = 1 and unit power (eq. (2))
    a_cross = a_serving / 10 ** (3.0 / 10)  # eq. (23)
    assert float(state.gains[0, 0]) == pytest.approx(a_serving, rel=1e-5)
    assert float(state.gains[2, 1]) == pytest.approx(a_cross, rel=1e-5)
    power = state.H.abs().square().mean(dim=(0, 3, 4))  # (C*U, C): (1/M) E||h||^2
    own = torch.arange(3).repeat_interleave(4)
    is_own = own[:, None] == torch.arange(3)[None, :]
    # 200*6*8 = 9600 exponential samples per link: relative std 1%; 4% is 4 sigma.
    assert torch.allclose(power[is_own], torch.full((12,), a_serving), rtol=0.04)
    assert torch.allclose(power[~is_own], torch.full((24,), a_cross), rtol=0.04)


def test_zf_gains_follow_gamma_m_minus_u_plus_1():
    """Unit-norm ZF on i.i.d. CN(0, a I_M): |w^H h|^2 ~ a Gamma(M-U+1, 1), mean a (M-U+1);
    an other-cell beam is independent of the channel, |w^H h|^2 ~ a_cross Exp(1)."""
    M, U = 6, 3
    cfg = MultibandConfig(n_antennas=M, users_per_cell=U, n_freq=4, snr_db=10.0, sir_db=6.0)
    scenario = MultibandScenario(cfg, batch_size=400, dtype=torch.float64)
    state = scenario.reset(seed=4)
    a, a_cross = 10.0, 10.0 / 10**0.6
    n = 400 * 9 * 4
    mean_direct = float(state.direct_gain.mean()) / a
    # Gamma(4) has std 2: std of the mean 2/sqrt(n) ~ 0.017; allow 5 sigma.
    assert mean_direct == pytest.approx(M - U + 1, abs=5 * 2 / math.sqrt(n))
    other = scenario.user_cell[:, None] != scenario.user_cell[None, :]
    same = (scenario.user_cell[:, None] == scenario.user_cell[None, :]) & ~torch.eye(9, dtype=bool)
    cross = state.gain_power[:, other].mean() / a_cross
    assert float(cross) == pytest.approx(1.0, abs=0.03)  # n*6 samples of Exp(1): std 0.004
    assert float(state.gain_power[:, same].max()) < 1e-18  # intra-cell nulled (float64)


# ------------------------------------------------------------------------------------------------
# Eq. (5) power budget
# ------------------------------------------------------------------------------------------------


def test_power_budget_eq5_by_hand():
    scenario = tiny(total_power_budget=100.0)  # T = 4
    spent = torch.tensor([[0.0, 10.0], [40.0, 100.0]], dtype=torch.float64)
    # t = 3 (1-based): P_b(3) = (100 - spent) / (4 - 3 + 1) = (100 - spent) / 2
    expected = torch.tensor([[50.0, 45.0], [30.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(scenario.power_budget(spent, 3), expected)
    # t = 1: nothing spent, P_bar / T.
    assert torch.allclose(scenario.power_budget(torch.zeros(2, 2), 1), torch.full((2, 2), 25.0))
    with pytest.raises(ConfigError, match="t"):
        scenario.power_budget(spent, 0)
    with pytest.raises(ConfigError, match="t"):
        scenario.power_budget(spent, 5)
    with pytest.raises(ShapeError, match="spent_so_far"):
        scenario.power_budget(torch.zeros(2, 3), 1)


def test_budget_rolls_over_the_blocks():
    scenario = tiny(batch_size=1, total_power_budget=100.0)  # C = 2, U = 2, F = 2, T = 4
    state = scenario.reset(seed=0)
    assert state.budget.tolist() == [[25.0, 25.0]]
    # Block 1 (paper t = 1): BS 0 spends 10 (2.5 on each of 4 user-channels), BS 1 spends 25.
    power = torch.tensor([[[2.5, 2.5], [2.5, 2.5], [6.25, 6.25], [6.25, 6.25]]])
    state = scenario.step(power)
    assert state.t == 1
    assert state.spent.tolist() == [[10.0, 25.0]]
    # t = 2: (100 - 10) / 3 = 30, (100 - 25) / 3 = 25.
    assert torch.allclose(state.budget, torch.tensor([[30.0, 25.0]], dtype=torch.float64))
    # No allocation given: the full P_b(t) is charged. t = 3: (100 - 40) / 2 = 30, (50) / 2 = 25.
    state = scenario.step()
    assert torch.allclose(state.budget, torch.tensor([[30.0, 25.0]], dtype=torch.float64))
    # Overspending is refused.
    with pytest.raises(ConfigError, match="P_b"):
        scenario.step(torch.full((1, 4, 2), 10.0))
    scenario.step()
    with pytest.raises(ConfigError, match="n_blocks"):
        scenario.step()


# ------------------------------------------------------------------------------------------------
# Rates, capacity and eq. (7) against direct loops
# ------------------------------------------------------------------------------------------------


def test_rates_and_environmental_function_match_loops():
    scenario = tiny()
    state = scenario.reset(seed=11)
    power = random_power(scenario, state)
    rates = scenario.rates(state, power)
    c = scenario.interference_plus_noise_ratio(state, power)
    capacity = scenario.cell_capacity(rates)
    C, U, F = 2, 2, 2
    for b in range(2):
        for cell in range(C):
            cell_sum = 0.0
            for u in range(U):
                k = cell * U + u
                for f in range(F):
                    # Eq. (1): every stream j of BS cell(j) reaches user k through h_{cell(j),k}.
                    received = []
                    for j in range(C * U):
                        tx = j // U
                        g = inner(state.W[b, tx, j, f], state.H[b, k, tx, f])
                        received.append(power[b, j, f].item() * abs(g) ** 2)
                    signal = received[k]
                    intra = sum(received[j] for j in range(cell * U, cell * U + U) if j != k)
                    ici = sum(received[j] for j in range(C * U) if j // U != cell)
                    sinr = signal / (intra + ici + 1.0)
                    assert rates[b, k, f].item() == pytest.approx(math.log2(1 + sinr), rel=1e-9)
                    # Eq. (7): (ICI + sigma^2) / |w^H h|^2 at unit power.
                    direct = signal / power[b, k, f].item()
                    assert c[b, k, f].item() == pytest.approx((ici + 1.0) / direct, rel=1e-9)
                    cell_sum += math.log2(1 + sinr)
            assert capacity[b, cell].item() == pytest.approx(cell_sum, rel=1e-9)


def test_zf_leaves_no_intra_cell_interference_in_the_rates():
    cfg = MultibandConfig(n_antennas=8, users_per_cell=4, n_freq=3, n_cells=3)
    scenario = MultibandScenario(cfg, batch_size=4)  # float32 as in production
    state = scenario.reset(seed=9)
    power = scenario.equal_power(state) * torch.rand(4, 12, 3, generator=torch.Generator())
    rates = scenario.rates(state, power)
    # Manual SINR with only other-cell interference and noise, from the stored unit gains.
    other = scenario.user_cell[:, None] != scenario.user_cell[None, :]
    ici = (state.gain_power * other[None, :, :, None] * power[:, None, :, :]).sum(2)
    manual = torch.log2(1 + power * state.direct_gain / (ici + 1.0))
    assert torch.allclose(rates, manual, rtol=1e-4, atol=1e-5)
    # And the environmental function gives the same rate: log2(1 + p / c).
    c = scenario.interference_plus_noise_ratio(state, power)
    assert torch.allclose(rates, torch.log2(1 + power / c), rtol=1e-4, atol=1e-5)


def test_single_cell_at_high_power_is_interference_free():
    scenario = tiny(n_cells=1)
    state = scenario.reset(seed=1)
    power = torch.full((2, 2, 2), 4.0, dtype=torch.float64)
    expected = torch.log2(1 + 4.0 * state.direct_gain)  # noise 1, no other cells
    assert torch.allclose(scenario.rates(state, power), expected)
    c = scenario.interference_plus_noise_ratio(state, power)
    assert torch.allclose(c, 1 / state.direct_gain)


def test_problem_holds_the_blocks_tensors_and_evaluates_as_the_scenario():
    scenario = tiny(batch_size=3)
    with pytest.raises(RuntimeError, match="reset"):
        scenario.problem()
    state = scenario.reset(seed=12)
    problem = scenario.problem()  # the current block
    # the block's tensors, not copies; the per-user budget P_b(t) / U of eq. (14) by hand
    assert problem.gain_power is state.gain_power and problem.direct_gain is state.direct_gain
    assert problem.H is state.H and problem.W is state.W
    assert (problem.batch_size, problem.n_users, problem.n_freq) == (3, 4, 2)
    assert (problem.n_cells, problem.users_per_cell, problem.noise) == (2, 2, 1.0)
    assert problem.user_cell.tolist() == [0, 0, 1, 1]
    for b in range(3):
        for k in range(4):
            expected = float(state.budget[b, k // 2]) / 2
            assert float(problem.user_budget[b, k]) == pytest.approx(expected, rel=1e-15)
    # rates, eq. (7) and cell sums: the scenario's, bit for bit
    power = random_power(scenario, state)
    rates = problem.rates(power)
    assert torch.equal(rates, scenario.rates(state, power))
    c = problem.interference_plus_noise_ratio(power)
    assert torch.equal(c, scenario.interference_plus_noise_ratio(state, power))
    assert torch.equal(problem.cell_sum(rates), scenario.cell_capacity(rates))
    assert torch.equal(problem.cell_sum(power), scenario.bs_power(power))
    # without the channels (a hand-built problem) the rates are log2(1 + p / c): ZF nulls the
    # intra-cell term, so they agree with the SINR kernel
    bare = dataclasses.replace(problem, H=None, W=None)
    assert torch.allclose(bare.rates(power), rates, rtol=1e-9, atol=1e-12)
    # another budget, and a subset of the batch
    half = scenario.problem(state, budget=state.budget / 2)
    assert torch.allclose(half.user_budget, problem.user_budget / 2, rtol=0, atol=0)
    picked = problem.subset([2, 0, 2])
    assert torch.equal(picked.gain_power, state.gain_power[[2, 0, 2]])
    assert torch.equal(picked.user_budget, problem.user_budget[[2, 0, 2]])
    assert torch.equal(picked.H, state.H[[2, 0, 2]])


def test_problem_rejects_inconsistent_tensors():
    problem = tiny().problem(tiny().reset(seed=0))
    with pytest.raises(ShapeError, match="n_cells"):
        dataclasses.replace(problem, n_cells=3)
    with pytest.raises(ShapeError, match="gain_power"):
        dataclasses.replace(problem, gain_power=problem.gain_power[..., :1])
    with pytest.raises(ShapeError, match="user_budget"):
        dataclasses.replace(problem, user_budget=problem.user_budget[:, :1])
    with pytest.raises(ShapeError, match="H and W"):
        dataclasses.replace(problem, W=None)
    with pytest.raises(ShapeError, match="direct_gain"):
        MultibandProblem(problem.gain_power, problem.direct_gain[0], problem.user_budget, 1.0, 2, 2)
    with pytest.raises(ShapeError, match="power"):
        problem.check_power(torch.ones(2, 4, 3))
    with pytest.raises(ConfigError, match="power"):
        problem.check_power(torch.full((2, 4, 2), math.inf))


def test_bad_power_rejected():
    scenario = tiny()
    state = scenario.reset()
    with pytest.raises(ShapeError, match="power"):
        scenario.rates(state, torch.ones(2, 3, 2))
    with pytest.raises(ConfigError, match="power"):
        scenario.rates(state, -torch.ones(2, 4, 2))
    with pytest.raises(ShapeError, match="rates"):
        scenario.cell_capacity(torch.ones(2, 4))


# ------------------------------------------------------------------------------------------------
# Link budget, plot and CLI
# ------------------------------------------------------------------------------------------------


def test_link_budget_numbers_against_hand_calculation():
    scenario = MultibandScenario.from_preset("paper", batch_size=8)
    scenario.reset(seed=0)
    rows = scenario.link_budget().as_dict()
    assert all(math.isfinite(v) for v in rows.values())
    assert rows["serving gain a_bb"] == pytest.approx(20.0, abs=1e-4)
    assert rows["cross gain a_b~b"] == pytest.approx(20.0, abs=1e-4)  # SIR 0 dB
    assert rows["P_b(t) per BS"] == pytest.approx(16 * 6, rel=1e-6)  # P_bar / T = U N_f
    expected_zf_db = 10 * math.log10(100 * (32 - 16 + 1))  # a_bb (M - U + 1) = 32.30 dB
    assert rows["expected ZF gain a_bb (M-U+1)"] == pytest.approx(expected_zf_db, abs=1e-4)
    assert rows["direct ZF gain |w^H h|^2"] == pytest.approx(expected_zf_db, abs=0.2)
    # Equal power p = 1: INR = (C-1) U a_cross E|w^H h|^2 = 2 * 16 * 100 -> 35.05 dB.
    inr_db = 10 * math.log10(2 * 16 * 100)
    assert rows["INR from other cells"] == pytest.approx(inr_db, abs=0.3)
    # Interference-free capacity <= U N_f log2(1 + E[gain]) (Jensen) and close to it.
    bound = 16 * 6 * math.log2(1 + 100 * 17)
    assert 0.95 * bound < rows["cell capacity, no ICI"] <= bound
    # With ICI at SIR 0 dB the SINR is about a(M-U+1)/((C-1) U a) = 17/32 (-2.7 dB).
    assert rows["SINR, equal power"] == pytest.approx(10 * math.log10(17 / 32), abs=1.0)
    assert rows["cell capacity, equal power"] < 0.2 * rows["cell capacity, no ICI"]
    # the SINR row exactly, from the channels and ZF beams in float64 (not the kernel):
    # A[k, j, f] = w_j[f]^H h_{cell(j),k}[f]; SINR = p_k |A_kk|^2 / (noise + sum_j!=k p_j |A_kj|^2)
    state = scenario.state
    gains = (
        torch.einsum(
            "bcjfm,bkcfm->bkjf", state.W.to(torch.complex128).conj(), state.H.to(torch.complex128)
        )
        .abs()
        .square()
    )
    power = scenario.equal_power(state).double()  # (B, K, F)
    received = gains * power[:, None, :, :]  # stream j's power at user k
    signal = torch.diagonal(received, dim1=1, dim2=2).transpose(1, 2)  # (B, K, F)
    noise = scenario.problem(state).noise
    sinr_db = 10 * torch.log10(signal / (noise + received.sum(2) - signal))
    lower_median = sinr_db.flatten().sort().values[(sinr_db.numel() - 1) // 2]
    assert rows["SINR, equal power"] == pytest.approx(float(lower_median), abs=1e-4)


@pytest.mark.parametrize(
    ("changes", "expected_db"),
    [
        ({"n_cells": 1}, -math.inf),  # no other cell: no ICI, exactly
        ({"snr_db": -50.0, "sir_db": 80.0}, 10 * math.log10(2 * 16 * 1e-13)),  # (C-1) U a_b~b
    ],
)
def test_link_budget_inr_without_cancellation(changes, expected_db):
    """Regression (fuzzer): the INR row was ``c * gain - noise``, which cancels to rounding
    noise when the ICI is far below the noise (one cell, or SNR -50 dB at SIR 80 dB): a
    negative mean, NaN dB. It is now the ICI itself."""
    fields = {"n_cells": 3, "n_antennas": 32, "users_per_cell": 16, **changes}
    scenario = MultibandScenario(MultibandConfig(**fields), batch_size=4)
    scenario.reset(seed=0)
    inr_db = scenario.link_budget().as_dict()["INR from other cells"]
    assert not math.isnan(inr_db)
    assert inr_db == pytest.approx(expected_db, abs=0.5)


def test_plot_topology_writes_png(tmp_path):
    scenario = MultibandScenario.from_preset("quick")
    out = plot_topology(scenario, tmp_path / "topology.png")
    assert out.exists() and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_inspect(monkeypatch, tmp_path):
    monkeypatch.setitem(SCENARIOS, MultibandScenario.name, MultibandScenario)
    argv = ["inspect", "multiband", "--preset", "quick", "--batch", "2", "--slot", "1"]
    assert cli.main([*argv, "--plot", str(tmp_path / "t.png")]) == 0
    assert cli.main(["inspect", "multiband", "--set", "users_per_cell=40"]) == 2
    assert_inspect_json_is_the_link_budget(
        MultibandScenario, tmp_path, preset="quick", batch=2, seed=5, slot=1
    )
