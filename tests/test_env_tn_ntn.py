"""The seed-001 TN-NTN game core (skyshare.envs.tn_ntn): dimensions, rates (3), costs (11) and
rewards (9)/(10) against explicit loops, the decomposition identity (Claim 1 / Assumption 2),
Psi accumulated in agent order, observations, action checks, training and dynamic users,
checkpoints and the signaling ledger."""

from __future__ import annotations

import io
import math

import pytest
import torch

from skyshare.envs.tn_ntn import TnNtnEnv, TnNtnStepResult, TnNtnTurn
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.tn_ntn import TnNtnConfig, TnNtnScenario
from skyshare.signaling import SignalingLedger

# quick preset: N = 3 BSs (2 TBSs + 1 UAV), F = 80, K_max = 10, S = 40 (M = 2)
QUICK = {"horizon_slots": 3}


def _env(
    batch: int = 2, formulation: str = "decomposed", reuse_observations=False, **overrides
) -> TnNtnEnv:
    scenario = TnNtnScenario.from_preset(
        "quick", overrides={**QUICK, **overrides}, batch_size=batch
    )
    return TnNtnEnv(scenario, formulation=formulation, reuse_observations=reuse_observations)


def _play_frame(env: TnNtnEnv, assignment: torch.Tensor) -> TnNtnStepResult:
    """Play one frame from a full (B, N, F) assignment (-1 off) in the env's turns."""
    result = None
    for m in range(env.n_turns):
        assert env.turn == m
        result = env.act(assignment[..., env.block(m)] + 1)
        assert (result is None) == (m + 1 < env.n_turns)
    return result


def _random_assignment(env: TnNtnEnv, generator: torch.Generator) -> torch.Tensor:
    """(B, N, F) long: every subchannel off or one active user slot of its BS, uniformly."""
    allowed = torch.cat([torch.ones_like(env.state.active[..., :1]), env.state.active], -1)
    probs = allowed[:, :, None, :].expand(-1, -1, env.n_subchannels, -1).reshape(-1, env.n_choices)
    draws = torch.multinomial(probs.double(), 1, generator=generator)
    return draws.reshape(env.batch_size, env.n_bs, env.n_subchannels) - 1


# ------------------------------------------------------------------------------ structure


@pytest.mark.parametrize(
    ("F", "K", "dims"),
    [
        # (obs, state) for decomposed (S = 40) and per_bs (S = F), N = 3, P = 3 K
        (80, 10, ((535, 3752), (934, 7351))),
        (160, 20, ((1067, 7504), (3464, 29101))),
        (320, 30, ((1601, 11258), (9994, 86851))),
    ],
)
def test_dimensions_follow_the_block_formulas(F, K, dims):
    config = TnNtnConfig(n_subchannels=F, k_max=K)
    N, P, M = 3, 3 * K, F // 40
    for formulation, (obs_dim, state_dim), S, turns in (
        ("decomposed", dims[0], 40, M),
        ("per_bs", dims[1], F, 1),
    ):
        env = TnNtnEnv(TnNtnScenario(config), formulation=formulation)
        assert (env.n_bs, env.k_max, env.n_choices) == (N, K, K + 1)
        assert (env.block_size, env.n_turns, env.batch_size) == (S, turns, 1)
        assert env.obs_blocks() == {
            "gain": S * K,
            "pathloss": P * N,
            "accumulated": K,
            "active": P,
            "srb": turns,
            "bs": N,
        }
        assert env.state_blocks() == {
            "gain": S * P * N,
            "pathloss": P * N,
            "accumulated": N * K,
            "active": P,
            "turn": turns,
        }
        assert (env.obs_dim, env.state_dim) == (obs_dim, state_dim)


def test_turn_shapes_dtypes_and_masks():
    env = _env(batch=3)
    env.reset(seed=1)
    turn = env.observe()
    assert isinstance(turn, TnNtnTurn) and turn.turn == 0 and env.turn == 0
    assert turn.obs.shape == (3, 3, env.obs_dim) and turn.obs.dtype == torch.float32
    assert turn.state.shape == (3, env.state_dim) and turn.state.dtype == torch.float32
    assert turn.action_mask.shape == (3, 3, 40, 11) and turn.action_mask.dtype == torch.bool
    assert bool(turn.action_mask[..., 0].all())  # off always allowed
    expected = env.state.active[:, :, None, :].expand(3, 3, 40, 10)
    assert torch.equal(turn.action_mask[..., 1:], expected)
    for _ in range(5):
        actions = env.random_actions()
        assert actions.shape == (3, 3, 40) and actions.dtype == torch.long
        assert bool(torch.gather(turn.action_mask, 3, actions[..., None]).all())

    env64 = TnNtnEnv(TnNtnScenario.from_preset("quick", overrides=QUICK, dtype=torch.float64))
    env64.reset(seed=1)
    assert env64.observe().obs.dtype == torch.float32
    result = _play_frame(env64, _random_assignment(env64, torch.Generator().manual_seed(0)))
    assert result.reward.dtype == torch.float64 and result.reward.shape == (1, 2)


def test_constructor_checks_its_arguments():
    scenario = TnNtnScenario.from_preset("quick")
    with pytest.raises(ConfigError, match="formulation must be one of decomposed, per_bs"):
        TnNtnEnv(scenario, formulation="rl2")
    with pytest.raises(ConfigError, match="inactive_action must be one of error, off"):
        TnNtnEnv(scenario, inactive_action="skip")
    with pytest.raises(ConfigError, match="TnNtnScenario"):
        TnNtnEnv(scenario.config)
    with pytest.raises(ConfigError, match="ledger must count a 'bs' kind of N = 3"):
        TnNtnEnv(scenario, ledger=SignalingLedger({"bs": 2}, 1))
    env = TnNtnEnv(scenario)
    with pytest.raises(RuntimeError, match="reset"):
        env.observe()
    with pytest.raises(RuntimeError, match="reset"):
        env.act(torch.zeros(1, 3, 40, dtype=torch.long))


# ------------------------------------------------------------------------------ formulas


def test_rates_costs_and_rewards_equal_explicit_loops():
    """Eq. (3) with the power rule of §III-C-2, cost (11), rewards (10) and (9), recomputed for
    every realization of a B = 3 batch with Python loops over b, n, f and the interferers."""
    env = _env(batch=3)
    env.reset(seed=5)
    sc, cfg = env.scenario, env.scenario.config
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):  # frame 0 and frame 1 (fading evolved)
        state = env.state
        assignment = _random_assignment(env, generator)
        assignment[0, 1, :40] = -1  # one SRB entirely off (no power there)
        result = _play_frame(env, assignment)

        H = state.H.tolist()
        active = state.active.tolist()
        asg = assignment.tolist()
        B, N, K, F, S, M = 3, 3, 10, 80, 40, 2
        W, p_max, eta = sc.subchannel_bandwidth_hz, sc.p_max_w, cfg.min_rate_mbps * 1e6
        for b in range(B):
            power = [[0.0] * F for _ in range(N)]
            for n in range(N):
                for m in range(M):
                    on = [f for f in range(m * S, (m + 1) * S) if asg[b][n][f] >= 0]
                    for f in on:
                        power[n][f] = p_max / M / len(on)
            user_rate = [[0.0] * K for _ in range(N)]
            group = [0.0] * M
            for n in range(N):
                for f in range(F):
                    k = asg[b][n][f]
                    if k < 0:
                        continue
                    p = n * K + k
                    signal = abs(H[b][p][n][f]) ** 2 * power[n][f]
                    interference = sum(
                        abs(H[b][p][j][f]) ** 2 * power[j][f] for j in range(N) if j != n
                    )
                    rate = W * math.log2(1 + signal / (interference + 1.0))
                    user_rate[n][k] += rate
                    group[f // S] += rate
            n_active = max(sum(map(sum, active[b])), 1)
            for n in range(N):
                for k in range(K):
                    assert float(result.user_rate[b, n, k]) == pytest.approx(
                        user_rate[n][k], rel=1e-4, abs=1.0
                    )
                    cost = max(eta - user_rate[n][k], 0.0) / 1e6 if active[b][n][k] else 0.0
                    assert float(result.cost[b, n, k]) == pytest.approx(cost, rel=1e-4, abs=1e-5)
            for m in range(M):
                assert float(result.reward[b, m]) == pytest.approx(
                    group[m] / 1e6 / n_active, rel=1e-4
                )
            assert float(result.throughput[b]) == pytest.approx(sum(group), rel=1e-4)
            misses = sum(
                1 for n in range(N) for k in range(K) if active[b][n][k] and user_rate[n][k] < eta
            )
            assert int(result.qos_miss[b]) == misses
        assert torch.equal(result.assignment, assignment)
        assert torch.equal(result.active, state.active)
        assert not bool(result.done.any())


def test_group_rewards_add_up_to_the_per_bs_reward_and_do_not_interfere():
    """Claim 1 / Assumption 2: sum_m r_m = r of (9) on the same assignment, and group m's
    reward does not depend on the actions of the other groups."""
    decomposed, per_bs = _env(batch=2), _env(batch=2, formulation="per_bs")
    probe = _env(batch=2)
    for env in (decomposed, per_bs, probe):
        env.reset(seed=3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        assignment = _random_assignment(decomposed, generator)
        r_dec = _play_frame(decomposed, assignment)
        r_bs = _play_frame(per_bs, assignment)
        assert r_bs.reward.shape == (2, 1) and r_dec.reward.shape == (2, 2)
        assert torch.allclose(r_dec.reward.sum(-1, keepdim=True), r_bs.reward, rtol=1e-5)
        assert torch.allclose(r_dec.user_rate, r_bs.user_rate, rtol=1e-5)
        assert torch.allclose(r_dec.cost, r_bs.cost, rtol=1e-5, atol=1e-6)
        changed = assignment.clone()
        changed[..., 40:] = _random_assignment(probe, generator)[..., 40:]
        r_probe = _play_frame(probe, changed)
        assert torch.equal(r_probe.reward[:, 0], r_dec.reward[:, 0])


def test_accumulated_rates_follow_the_agent_order():
    """Psi_{n,m} of the turn-m observation is the rate (3) of BS n's users over SRBs 0..m-1,
    computed here with the scenario's own rate method on the earlier SRBs only."""
    env = _env(batch=2, n_subchannels=120)  # M = 3 SRBs of 40
    env.reset(seed=2)
    sc, state = env.scenario, env.state
    assignment = _random_assignment(env, torch.Generator().manual_seed(3))
    start = env.obs_blocks()["gain"] + env.obs_blocks()["pathloss"]
    K, N, eta = env.k_max, env.n_bs, sc.min_rate_bps
    state_start = sum(list(env.state_blocks().values())[:2])
    for m in range(3):
        turn = env.observe()
        earlier = torch.full_like(assignment, -1)
        earlier[..., : 40 * m] = assignment[..., : 40 * m]
        expected = sc.user_rates(state, earlier, sc.equal_power(earlier)).reshape(2, N, K)
        psi = turn.obs[..., start : start + K]
        assert torch.allclose(psi, (expected / eta).float(), rtol=1e-5, atol=1e-5)
        psi_state = turn.state[:, state_start : state_start + N * K].reshape(2, N, K)
        assert torch.allclose(psi_state, psi)
        if m == 0:
            assert not bool(psi.any())
        srb = turn.obs[..., start + K + N * K : start + K + N * K + 3]
        assert torch.equal(srb, torch.eye(3)[m].expand(2, N, 3))
        assert torch.equal(turn.state[:, -3:], torch.eye(3)[m].expand(2, 3))
        env.act(assignment[..., env.block(m)] + 1)


def test_observation_and_state_blocks_hold_the_documented_values():
    env = _env(batch=2)
    env.reset(seed=4)
    sc, state = env.scenario, env.state
    env.act(env.random_actions(torch.Generator().manual_seed(0)))  # go to turn 1
    turn = env.observe()
    N, K, S, P = 3, 10, 40, 30
    p_ref = sc.p_max_w / 80
    ref_db = 10 * math.log10(p_ref / sc.noise_w)
    active = state.active.reshape(2, P)
    gain = state.H.abs().square()
    b, n, k, s = 1, 2, 0, 7
    k = int(state.active[b, n].nonzero()[0]) if bool(state.active[b, n].any()) else 0
    p = n * K + k
    obs = turn.obs[b, n]
    own = obs[: S * K].reshape(S, K)
    expected = math.log10(1 + float(gain[b, p, n, 40 + s]) * p_ref) * bool(active[b, p])
    assert float(own[s, k]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    inactive = ~state.active[b, n]
    assert not bool(own[:, inactive].any())  # inactive slots read 0
    pathloss = obs[S * K : S * K + P * N].reshape(P, N)
    expected_pl = (ref_db - state.pathloss_db[b]) / 10 * active[b, :, None]
    assert torch.allclose(pathloss, expected_pl.float(), atol=1e-5)
    start = S * K + P * N + K
    assert torch.equal(obs[start : start + P], active[b].float())
    assert torch.equal(obs[-N:], torch.eye(N)[n])
    # state: every link of block m = 1, [p, l, s]
    block_gain = turn.state[b, : S * P * N].reshape(P, N, S)
    expected_state = torch.log10(1 + gain[b, :, :, 40:] * p_ref) * active[b, :, None, None]
    assert torch.allclose(block_gain, expected_state.float(), rtol=1e-5)
    assert torch.equal(turn.state[b, S * P * N : S * P * N + P * N], pathloss.flatten())


# ------------------------------------------------------------------------------ actions


def test_actions_are_checked_with_named_errors():
    env = _env(batch=2)
    env.reset(seed=1)
    active = env.state.active
    b, n, k = (~active).nonzero()[0].tolist()  # an inactive user slot
    good = torch.zeros(2, 3, 40, dtype=torch.long)
    with pytest.raises(ShapeError, match=r"shape \(B, N, S\) = \(2, 3, 40\)"):
        env.act(torch.zeros(2, 3, 80, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"integer .* got dtype torch\.float32;"):
        env.act(good.float())
    with pytest.raises(ShapeError, match="holding NaN"):
        env.act(torch.full((2, 3, 40), float("nan")))
    with pytest.raises(ShapeError, match=r"torch\.bool"):
        env.act(good.bool())
    bad = good.clone()
    bad[1, 2, 5] = 11
    with pytest.raises(
        ConfigError,
        match=r"actions\[1, 2, 5\] = 11 \(agent bs2_srb0, subchannel 5, env 1\): "
        r"allowed range \[0, K_max=10\]",
    ):
        env.act(bad)
    bad[1, 2, 5] = -1
    with pytest.raises(ConfigError, match="allowed range"):
        env.act(bad)
    chosen = good.clone()
    chosen[b, n, 3] = k + 1
    with pytest.raises(ConfigError, match=f"user slot {k} of BS {n}, which is inactive"):
        env.act(chosen)
    assert env.turn == 0  # nothing happened
    assert env.act(good.int()) is None  # other integer dtypes are fine
    with pytest.raises(ConfigError, match=f"agent bs{n}_srb1, subchannel 43"):
        env.act(chosen)

    # inactive_action="off": the inactive choice is the same as choosing 0
    results = []
    for actions in (chosen, good):
        off = TnNtnEnv(
            env.scenario.__class__.from_preset("quick", overrides=QUICK, batch_size=2),
            inactive_action="off",
        )
        off.reset(seed=1)
        off.act(actions)
        results.append(off.act(good))
    assert results[0].assignment[b, n, 3] == -1
    assert torch.equal(results[0].reward, results[1].reward)


# ------------------------------------------------------------------------------ users, episodes


def test_training_mode_users_fixed_in_an_episode_and_redrawn_on_reset():
    env = _env(batch=2, horizon_slots=3)
    env.reset()
    first_active, first_users = env.state.active.clone(), env.state.user_positions.clone()
    first_H = env.state.H.clone()
    generator = torch.Generator().manual_seed(0)
    for frame in range(3):
        assert env.frame == frame
        assert torch.equal(env.state.active, first_active)
        assert torch.equal(env.state.user_positions, first_users)
        result = _play_frame(env, _random_assignment(env, generator))
        assert bool(result.done.all()) == (frame == 2)
        if frame == 0:
            assert not torch.equal(env.state.H, first_H)  # the fading evolves
    assert env.done
    with pytest.raises(RuntimeError, match="call reset"):
        env.act(torch.zeros(2, 3, 40, dtype=torch.long))
    assert env.observe().turn == 0  # the final frame can still be observed

    env.reset()  # no seed: a fresh draw, not the config's seed again
    assert not torch.equal(env.state.user_positions, first_users)
    again = _env(batch=2)
    again.reset()
    assert torch.equal(again.state.user_positions, first_users)
    again.reset(seed=11)
    env.reset(seed=11)
    assert torch.equal(again.state.H, env.state.H) and torch.equal(
        again.state.active, env.state.active
    )


def test_dynamic_mode_follows_the_scenario_traces():
    overrides = {
        "dynamic_users": True,
        "horizon_slots": 6,
        "trace_step_s": 0.01,
        "arrival_rate_per_min": 3000.0,
        "mean_holding_s": 0.03,
    }
    env = _env(batch=2, **overrides)
    reference = TnNtnScenario.from_preset("quick", overrides={**QUICK, **overrides}, batch_size=2)
    env.reset(seed=7)
    states = [reference.reset(seed=7)] + [reference.step() for _ in range(5)]
    generator = torch.Generator().manual_seed(0)
    actives = []
    for frame in range(6):
        assert torch.equal(env.state.active, states[frame].active)
        assert torch.allclose(env.state.H, states[frame].H)
        result = _play_frame(env, _random_assignment(env, generator))
        assert torch.equal(result.active, states[frame].active)
        actives.append(result.active)
    assert bool(result.done.all())  # the horizon ends the episode without stepping past it
    assert any(not torch.equal(actives[0], a) for a in actives[1:])


# ------------------------------------------------------------------------------ checkpoints, ledger


@pytest.mark.parametrize("dynamic", [False, True])
def test_state_dict_round_trip_continues_exactly(dynamic):
    overrides = {"dynamic_users": True, "trace_step_s": 0.01} if dynamic else {}
    env, twin = _env(batch=2, **overrides), _env(batch=2, **overrides)
    env.reset(seed=9)
    generator = torch.Generator().manual_seed(0)
    _play_frame(env, _random_assignment(env, generator))
    env.act(env.random_actions(generator))  # mid-frame: turn 1 of frame 1
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    assert (twin.turn, twin.frame) == (1, 1)
    assert torch.equal(twin.observe().obs, env.observe().obs)
    for _ in range(2):
        actions = env.random_actions(generator)
        if env.turn == 0:
            assert env.act(actions) is None and twin.act(actions) is None
            actions = env.random_actions(generator)
        a, b = env.act(actions), twin.act(actions)
        assert torch.equal(a.reward, b.reward) and torch.equal(a.cost, b.cost)
        assert torch.equal(a.assignment, b.assignment)
    assert env.ledger.per_agent_per_slot() == twin.ledger.per_agent_per_slot()
    with pytest.raises(ConfigError, match="formulation"):
        _env(batch=2, formulation="per_bs", **overrides).load_state_dict(env.state_dict())


def test_state_dict_restores_the_second_fading_stream():
    """The imaginary fading planes come from the scenario's second generator: a mid-frame
    resume restores its state too, and the fading continues bit for bit (with two torch
    threads on one side, one on the other: the draws do not depend on it; a batch large
    enough for concurrent draws)."""
    env, twin = _env(batch=16, horizon_slots=6), _env(batch=16, horizon_slots=6)
    env.reset(seed=4)
    generator = torch.Generator().manual_seed(1)
    _play_frame(env, _random_assignment(env, generator))
    env.act(env.random_actions(generator))
    saved = env.state_dict()
    assert torch.equal(saved["scenario"]["imag_generator"], env.scenario.imag_generator.get_state())
    twin.scenario.imag_generator.manual_seed(123)  # overwritten by the load
    twin.load_state_dict(saved)
    assert torch.equal(
        twin.scenario.imag_generator.get_state(), saved["scenario"]["imag_generator"]
    )
    threads = torch.get_num_threads()
    try:
        for _ in range(2):  # the rest of frame 1 and all of frame 2
            a = b = None
            while a is None:
                actions = env.random_actions(generator)
                torch.set_num_threads(2)
                a = env.act(actions)
                torch.set_num_threads(1)
                b = twin.act(actions)
            assert torch.equal(a.reward, b.reward)
            assert torch.equal(env.scenario.small_scale, twin.scenario.small_scale)
    finally:
        torch.set_num_threads(threads)
    assert env.scenario._ahead._pool is not None and env.frame == 3
    # A state from before the second generator: it is seeded as at a reset, deterministically.
    del saved["scenario"]["imag_generator"]
    old, again = _env(batch=16, horizon_slots=6), _env(batch=16, horizon_slots=6)
    old.load_state_dict(saved)
    again.load_state_dict(saved)
    assert torch.equal(
        old.scenario.imag_generator.get_state(), again.scenario.imag_generator.get_state()
    )
    assert torch.equal(old.scenario.generator.get_state(), saved["scenario"]["generator"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"horizon_slots": 4},
        {  # arrivals at some trace steps (no prefetch there), departures at others
            "horizon_slots": 12,
            "dynamic_users": True,
            "trace_step_s": 0.02,
            "arrival_rate_per_min": 1500.0,
            "mean_holding_s": 0.05,
        },
    ],
    ids=["training", "dynamic"],
)
def test_prefetched_fading_draws_replay_the_one_thread_run(overrides):
    """With ``draw_ahead`` the next frame's fading is drawn in a worker thread while the
    agents act (``TnNtnScenario._launch_prefetch``). The run is the run without it: over
    episode ends (reset(None) draws its seed from the scenario's generator), a reset in the
    middle of an episode and a checkpoint taken mid-episode (the run goes on from it in a new
    env, or goes on in the same env, which draws ahead again)."""

    def make(draw_ahead=False):
        scenario = TnNtnScenario.from_preset(
            "quick", overrides=overrides, batch_size=16, draw_ahead=draw_ahead
        )
        return TnNtnEnv(scenario)

    def play(env, threads, generator, frames, resume_at=None):
        results, prefetched = [], 0
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            env.reset(seed=3)
            for frame in range(frames):
                if env.done or frame == 5:  # an episode end, and a reset mid-episode
                    env.reset(None)
                if frame == resume_at:  # a checkpoint: go on in a new env from it, or go on
                    twin = make(draw_ahead=True)
                    twin.load_state_dict(env.state_dict())
                    env = twin if threads == 2 else env
                result = None
                while result is None:
                    result = env.act(env.random_actions(generator))
                results.append((result.reward, env.scenario.small_scale, env.state.gain))
                prefetched += env.scenario._ahead.task is not None
        finally:
            torch.set_num_threads(previous)
        return results, prefetched

    one, none = play(make(), 1, torch.Generator().manual_seed(0), 14)
    assert none == 0
    for threads in (1, 2):  # the draw ahead on one torch thread, and beside two
        ahead, some = play(make(draw_ahead=True), threads, torch.Generator().manual_seed(0), 14, 9)
        assert some >= 5  # the run did draw ahead
        for (r1, h1, g1), (r2, h2, g2) in zip(one, ahead, strict=True):
            assert torch.equal(r1, r2) and torch.equal(h1, h2) and torch.equal(g1, g2)


def test_reused_observation_buffers_hold_the_same_values_and_alternate():
    """``reuse_observations=True``: every turn's obs and state equal the fresh tensors of an
    env without it; the buffers of one observe() are those of the one after next."""
    fresh, reused = _env(batch=3), _env(batch=3, reuse_observations=True)
    for env in (fresh, reused):
        env.reset(seed=2)
    generator = torch.Generator().manual_seed(4)
    pointers = []
    for _ in range(6):  # three frames of two turns, over an episode end (horizon 3)
        if fresh.done:
            fresh.reset(None)
            reused.reset(None)
        a, b = fresh.observe(), reused.observe()
        assert torch.equal(a.obs, b.obs) and torch.equal(a.state, b.state)
        pointers.append((b.obs.data_ptr(), b.state.data_ptr()))
        actions = fresh.random_actions(generator)
        fresh.act(actions)
        reused.act(actions)
    assert pointers[0] == pointers[2] == pointers[4] != pointers[1] == pointers[3]
    with pytest.raises(ConfigError, match="reuse_observations"):
        _env(reuse_observations="yes")


def test_ledger_counts_the_other_bss_path_losses_and_psi_per_frame():
    ledger = SignalingLedger({"bs": 3}, 2)
    scenario = TnNtnScenario.from_preset("quick", overrides=QUICK, batch_size=2)
    env = TnNtnEnv(scenario, ledger=ledger)
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        _play_frame(env, _random_assignment(env, generator))
    N, K = 3, 10
    assert ledger.slots == 3
    assert ledger.per_agent_per_slot() == {
        ("bs", "pathloss"): (N - 1) * K * N,  # the other BSs' users, from every BS
        ("bs", "psi"): (N - 1) * K,
    }
