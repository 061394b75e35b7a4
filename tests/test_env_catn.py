"""The CATN game (seed 000 §V): dimensions, ledger, observations, rewards, costs, errors."""

import dataclasses
import math

import pytest
import torch

from skyshare.channels.arrays import compress_channel, compressed_features
from skyshare.envs import CatnEnv, CatnEnvConfig
from skyshare.errors import ShapeError
from skyshare.scenarios import CatnScenario


def _env(batch=2, env_overrides=None, **scenario_overrides):
    scenario = {"n_tu": 14, "n_slots": 50, **scenario_overrides}
    config = CatnScenario.config_from("quick", overrides=scenario)
    return CatnEnv(
        config, CatnEnvConfig(**(env_overrides or {})), batch_size=batch, dtype=torch.float64
    )


def _table1_exchange(N, K, L, Nc, b_in, b_in_pri, k_in, k_out):
    return (3 * Nc * K + K + 2) * b_in * k_in + (K + 6) * b_in_pri * L + 3 * k_out * b_in + 2 * L


def test_paper_dimensions_and_table1_signaling():
    env = CatnEnv(batch_size=1)
    assert env.action_dim == 2 * 21 + 2 + 2
    assert env.tu_obs_dim == 3 * 7 + 4
    blocks = env.bs_obs_blocks()
    assert blocks["o_in"] == ((1 + 3 * 4 * 21 + 21 + 1) * 4 + 1) * 3
    assert env.bs_obs_dim == sum(blocks.values())
    env.reset(seed=0)
    bs_obs = env.associate(torch.zeros(1, 21, dtype=torch.long))
    assert bs_obs.shape == (1, 7, env.bs_obs_dim)
    env.beamform(torch.full((1, 7, env.action_dim), 0.5))
    per_kind = env.ledger.per_kind_per_slot()
    assert per_kind["bs"] == 3610  # seed 000 Table I / §VI
    assert per_kind["tu"] == 7  # D3QN: N


@pytest.mark.parametrize(
    ("N", "K", "L", "rows", "cols", "Nc", "b_in", "b_in_pri", "k_in", "k_out"),
    [
        (7, 14, 2, 2, 2, 4, 4, 5, 3, 3),
        (7, 21, 1, 2, 4, 2, 3, 2, 2, 2),
        (1, 4, 3, 2, 2, 3, 1, 1, 1, 2),
    ],
)
def test_ledger_measures_the_closed_forms(N, K, L, rows, cols, Nc, b_in, b_in_pri, k_in, k_out):
    M = rows * cols
    scenario = {"n_bs": N, "n_tu": K, "n_au": L, "ura_rows": rows, "ura_cols": cols}
    counts = {}
    for tu_info, bs_info in [("d3qn", "exchange"), ("dcd", "global_csi"), ("sc", "exchange")]:
        env_cfg = {
            "n_compress": Nc,
            "b_in": b_in,
            "b_in_pri": b_in_pri,
            "k_in": k_in,
            "k_out": k_out,
            "tu_information": tu_info,
            "bs_information": bs_info,
        }
        env = _env(batch=2, env_overrides=env_cfg, **scenario)
        env.reset(seed=1)
        for _ in range(2):
            env.associate(torch.randint(0, N, (2, K)))
            env.beamform(torch.rand(2, N, env.action_dim, dtype=torch.float64))
        counts[(tu_info, bs_info)] = env.ledger.per_agent_per_slot()
    exchange = _table1_exchange(N, K, L, Nc, b_in, b_in_pri, k_in, k_out)
    d3qn = counts[("d3qn", "exchange")]
    assert sum(v for (kind, _), v in d3qn.items() if kind == "bs") == exchange
    assert d3qn[("tu", "association")] == N
    dcd = counts[("dcd", "global_csi")]
    assert dcd[("tu", "association")] == N * (K - 1)
    global_csi = dcd[("bs", "global_csi")] + dcd.get(("bs", "global_csi_au"), 0.0)
    assert global_csi == 2 * M * (N - 1) * K + 2 * M * (N - 1) * L
    assert ("tu", "association") not in counts[("sc", "exchange")]


def _loop_beta(H, w, serving):
    """beta[j][k] = sum_{i in K_j, i != k} |h_{j,k}^H w_i|^2 by explicit loops."""
    K, N = H.shape[0], H.shape[1]
    beta = [[0.0] * K for _ in range(N)]
    for k in range(K):
        for i in range(K):
            if i != k:
                j = int(serving[i])
                beta[j][k] += abs(complex((H[k, j].conj() * w[i]).sum())) ** 2
    return beta


def test_observations_rewards_and_costs_equal_direct_recomputation():
    torch.manual_seed(0)
    env = _env(batch=1)
    env.reset(seed=3)
    K, N, L, M = env.K, env.N, env.L, env.M
    g = torch.Generator().manual_seed(5)
    serving = torch.randint(0, N, (1, K), generator=g)
    env.associate(serving)
    H = env.state.H[0].clone()  # (K, N, M) at slot t
    G = env.state.G[0].clone()
    w = torch.randn(K, M, generator=g, dtype=torch.complex128) * 2.0
    out = env.beamform_with(w[None])
    s = serving[0]

    # rates, costs by loops
    beta = _loop_beta(H, w, s)
    signal = [abs(complex((H[k, s[k]].conj() * w[k]).sum())) ** 2 for k in range(K)]
    total = [sum(beta[j][k] for j in range(N)) + 1.0 for k in range(K)]
    rate = [math.log2(1 + signal[k] / total[k]) for k in range(K)]
    torch.testing.assert_close(out.rates[0], torch.tensor(rate, dtype=torch.float64))
    rho = [
        sum(abs(complex((G[l_, s[k]].conj() * w[k]).sum())) ** 2 for k in range(K))
        for l_ in range(L)
    ]
    for l_ in range(L):
        expected = rho[l_] / env.i_max - 1
        assert float(out.cost[0, 0, l_]) == pytest.approx(expected, rel=1e-9)
        assert (float(out.cost[0, 3, l_]) < 0) == (rho[l_] < env.i_max)

    # BS reward (10) with U_n^out = the K_out B_in TUs with the largest beta_{n,i}
    size = env.config.k_out * env.config.b_in
    for n in range(N):
        out_set = sorted(range(K), key=lambda i, n=n: -beta[n][i])[:size]
        if sum(beta[n]) == 0:
            continue
        penalty = sum(math.log2(1 + signal[i] / (total[i] - beta[n][i])) - rate[i] for i in out_set)
        expected = sum(rate[k] for k in range(K) if s[k] == n) - penalty
        assert float(out.bs_reward[0, n]) == pytest.approx(expected, rel=1e-9, abs=1e-9)

    # TU reward (15)-(16)
    previous_serving = env.previous.serving  # record of slot t (just played)
    for k in range(K):
        n = int(s[k])
        out_set = sorted(range(K), key=lambda i, n=n: -beta[n][i])[:size]
        handover = bool(env.handover[0, k])
        r_tilde = env.config.handover_factor * rate[k] if handover else rate[k]
        penalty = 0.0
        for i in out_set:
            if i == k:
                continue
            leak = abs(complex((H[i, n].conj() * w[k]).sum())) ** 2
            penalty += math.log2(1 + signal[i] / (total[i] - leak)) - rate[i]
        assert float(out.tu_reward[0, k]) == pytest.approx(r_tilde - penalty, rel=1e-9, abs=1e-9)
    assert torch.equal(previous_serving[0], s)

    # next slot: BS observation blocks from the recorded slot t
    new_serving = torch.randint(0, N, (1, K), generator=g)
    obs = env.associate(new_serving)[0]
    H_next = env.state.H[0]
    blocks = env.bs_obs_blocks()
    Nc = env.config.n_compress
    offsets = {}
    start = 0
    for name, size_ in blocks.items():
        offsets[name] = (start, start + size_)
        start += size_
    for n in [0, 2, 5]:
        a, b = offsets["o_loc"]
        o_loc = obs[n, a:b]
        chi = (new_serving[0] == n).double()
        torch.testing.assert_close(o_loc[:K], chi)
        idx, coef = compress_channel(H_next[:, n], env.codebook, Nc)
        hc = compressed_features(idx, coef) * chi[:, None]
        torch.testing.assert_close(o_loc[K : K + 3 * Nc * K], hc.flatten())
        mine = (s == n).double()
        power = (w.abs() ** 2).sum(-1)
        rest = o_loc[K + 3 * Nc * K :].view(4, K)
        torch.testing.assert_close(rest[0], power * mine)
        torch.testing.assert_close(rest[1], torch.tensor(rate, dtype=torch.float64) * mine)
        torch.testing.assert_close(rest[2], torch.tensor(signal, dtype=torch.float64) * mine)
        torch.testing.assert_close(rest[3], torch.tensor(beta[n], dtype=torch.float64) * mine)

        # o_in: K_in most interfered own users of t-1, each with its B_in strongest interferers
        a, b = offsets["o_in"]
        o_in = obs[n, a:b].view(env.config.k_in, -1)
        own_users = sorted([k for k in range(K) if s[k] == n], key=lambda k: -total[k])
        for slot, k in enumerate(own_users[: env.config.k_in]):
            assert int(o_in[slot, 0]) == k + 1
            entries = o_in[slot, 1:].view(env.config.b_in, -1)
            interferers = sorted(range(N), key=lambda j, k=k: -beta[j][k])[: env.config.b_in]
            for e, j in enumerate(interferers):
                assert int(entries[e, 0]) == j + 1
                assert float(entries[e, -1]) == pytest.approx(beta[j][k], rel=1e-9, abs=1e-12)
                p_j = power * (s == j).double()
                torch.testing.assert_close(entries[e, 1 + 3 * Nc * K : -1], p_j)
        for slot in range(len(own_users), env.config.k_in):
            assert torch.all(o_in[slot] == 0)  # zero padding

        # o_out: the interfered TUs of BS n in t-1
        a, b = offsets["o_out"]
        o_out = obs[n, a:b].view(size, 4)
        expected_set = sorted(sorted(range(K), key=lambda i, n=n: -beta[n][i])[:size])
        if sum(beta[n]) > 0:
            assert [int(x) - 1 for x in o_out[:, 0]] == expected_set
            for row, i in zip(o_out, expected_set, strict=True):
                assert float(row[1]) == pytest.approx(rate[i], rel=1e-9)
                assert float(row[2]) == pytest.approx(beta[n][i], rel=1e-9, abs=1e-12)
                assert float(row[3]) == pytest.approx(beta[n][i] / total[i], rel=1e-9, abs=1e-12)

        # o_out_pri: rho_l(t-1) / I_max and BS n's measured share
        a, b = offsets["o_out_pri"]
        o_out_pri = obs[n, a:b].view(L, 4)
        for l_ in range(L):
            share = sum(
                abs(complex((G[l_, n].conj() * w[k]).sum())) ** 2 for k in range(K) if s[k] == n
            )
            assert float(o_out_pri[l_, 1]) == pytest.approx(rho[l_] / env.i_max, rel=1e-9)
            assert float(o_out_pri[l_, 2]) == pytest.approx(share, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("mode", ["raw", "normalized"])
def test_tu_observation_14_equals_loops_over_every_field(mode):
    """Every entry of the TU observation (14) of slot t+1, field by field, from the slot-t
    association, beamformers and rates and the slot-(t+1) channels, by explicit loops; with
    ``tu_observation="normalized"`` also the fixed normalisation, applied by hand."""
    env = _env(batch=1, env_overrides={"tu_observation": mode})
    env.reset(seed=7)
    K, N = env.K, env.N
    g = torch.Generator().manual_seed(11)
    serving = torch.randint(0, N, (1, K), generator=g)
    env.associate(serving)
    H = env.state.H[0].clone()
    w = torch.randn(K, env.M, generator=g, dtype=torch.complex128)
    obs = env.beamform_with(w[None]).tu_obs[0]  # (K, 3N + 4) of slot t+1
    H_next = env.state.H[0]
    s = serving[0]
    beta = _loop_beta(H, w, s)
    load = [sum(1 for k in range(K) if int(s[k]) == n) for n in range(N)]
    for k in range(K):
        signal = abs(complex((H[k, s[k]].conj() * w[k]).sum())) ** 2
        total = sum(beta[j][k] for j in range(N)) + 1.0
        expected = [float(x) for x in load]
        expected += [1.0 if int(s[k]) == n else 0.0 for n in range(N)]
        expected += [float((H_next[k, n].abs() ** 2).sum()) for n in range(N)]  # ||h_{n,k}||^2
        expected += [float((w[k].abs() ** 2).sum()), math.log2(1 + signal / total), signal, total]
        if mode == "normalized":
            mean_load = sum(load) / N
            expected = (
                [x / mean_load for x in expected[:N]]
                + expected[N : 2 * N]
                + [math.log10(1 + x) for x in expected[2 * N : 3 * N]]
                + [math.log10(1 + expected[3 * N] / 1e-3), expected[3 * N + 1]]
                + [math.log10(1 + x) for x in expected[3 * N + 2 :]]
            )
        torch.testing.assert_close(obs[k], torch.tensor(expected, dtype=obs.dtype))


def test_no_interference_makes_penalties_vanish():
    """Only one stream on: every interference term is zero, so (10) = R_k and (15) = R~_k."""
    env = _env(batch=1)
    env.reset(seed=2)
    serving = torch.arange(env.K)[None] % env.N
    env.associate(serving)
    w = torch.zeros(1, env.K, env.M, dtype=torch.complex128)
    w[0, 4] = env.state.H[0, 4, serving[0, 4]] / env.state.H[0, 4, serving[0, 4]].norm()
    out = env.beamform_with(w)
    n = int(serving[0, 4])
    assert float(out.bs_reward[0, n]) == pytest.approx(float(out.rates[0, 4]), rel=1e-12)
    torch.testing.assert_close(out.tu_reward[0], out.effective_rates[0])
    others = [j for j in range(env.N) if j != n]
    assert torch.all(out.bs_reward[0, others] == 0)


def test_handover_discount_applied_exactly_when_association_changes():
    env = _env(batch=2)
    env.reset(seed=4)
    first = torch.randint(0, env.N, (2, env.K))
    env.associate(first)
    env.beamform(torch.rand(2, env.N, env.action_dim, dtype=torch.float64))
    second = first.clone()
    second[:, ::3] = (second[:, ::3] + 1) % env.N
    env.associate(second)
    out = env.beamform(torch.rand(2, env.N, env.action_dim, dtype=torch.float64))
    changed = second != first
    torch.testing.assert_close(out.effective_rates[changed], 0.4 * out.rates[changed])
    torch.testing.assert_close(out.effective_rates[~changed], out.rates[~changed])
    assert out.handovers.tolist() == changed.sum(-1).tolist()


def test_action_mapping_and_power_budget():
    env = _env(batch=1)
    env.reset(seed=0)
    serving = torch.randint(0, env.N, (1, env.K))
    env.associate(serving)
    actions = torch.rand(1, env.N, env.action_dim, dtype=torch.float64)
    actions[0, :, 0] = 0.5  # q_total
    par = env.action_parameters(actions)
    owner = torch.nn.functional.one_hot(serving[0], env.N).T.double()
    loaded = owner.sum(-1) > 0
    torch.testing.assert_close(
        par["q"][0].sum(-1)[loaded], torch.ones(int(loaded.sum()), dtype=torch.float64)
    )
    assert torch.all(par["q"][0][owner == 0] == 0)
    w = env._beamformers(actions)
    bs_power = torch.zeros(env.N, dtype=torch.float64)
    bs_power.index_add_(0, serving[0], (w[0].abs() ** 2).sum(-1))
    torch.testing.assert_close(
        bs_power[loaded], torch.full((int(loaded.sum()),), 10.0, dtype=torch.float64)
    )
    # x = 0 -> alpha = mu = 0 and eta = eta_min; x = 1 -> the upper ends
    edge = torch.zeros(1, env.N, env.action_dim, dtype=torch.float64)
    par0 = env.action_parameters(edge)
    assert torch.all(par0["alpha"] == 0) and torch.all(par0["mu"] == 0)
    torch.testing.assert_close(par0["eta"], torch.full_like(par0["eta"], 1e-3))
    par1 = env.action_parameters(torch.ones_like(edge))
    torch.testing.assert_close(par1["mu"], torch.full_like(par1["mu"], 1e4))
    # beamformer direction: D~^{-1} h for the serving BS (eta only: MRT direction)
    only_eta = edge.clone()
    only_eta[..., 0] = 1.0
    w = env._beamformers(only_eta)[0]
    h = env.state.H[0, torch.arange(env.K), serving[0]]
    cosine = (h.conj() * w).sum(-1).abs() / (h.norm(dim=-1) * w.norm(dim=-1))
    torch.testing.assert_close(cosine, torch.ones_like(cosine))


def _slice(obj, b):
    fields = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        fields[f.name] = (
            value[b : b + 1] if isinstance(value, torch.Tensor) and value.ndim else value
        )
    return dataclasses.replace(obj, **fields)


def test_batch_of_b_equals_b_environments_of_one():
    full = _env(batch=3)
    full.reset(seed=6)
    actions_tu = torch.randint(0, full.N, (3, full.K))
    actions_bs = torch.rand(3, full.N, full.action_dim, dtype=torch.float64)
    state, previous = full.state, full.previous
    obs = full.associate(actions_tu)
    out = full.beamform(actions_bs)
    for b in range(3):
        one = _env(batch=1)
        one.reset(seed=0)
        one.state, one.previous = _slice(state, b), _slice(previous, b)
        torch.testing.assert_close(one.associate(actions_tu[b : b + 1]), obs[b : b + 1])
        single = one.beamform(actions_bs[b : b + 1])
        for name in ("tu_reward", "bs_reward", "cost", "rates"):
            torch.testing.assert_close(getattr(single, name), getattr(out, name)[b : b + 1])


@pytest.mark.parametrize("tu_observation", ["raw", "normalized"])
def test_reused_observation_buffers_equal_fresh_tensors_and_follow_the_overwrite_rule(
    tu_observation,
):
    """``reuse_observations=True``: every observation and outcome equals the default
    (fresh-tensor) env's bit for bit, across a truncation and reset; an observation is still
    unchanged when the next one of its kind (BS: ``associate``; TU: ``reset`` and
    ``beamform``) is returned, and that call after it returns the same buffer with new values.
    The default env never overwrites a returned observation."""
    config = CatnScenario.config_from("quick", overrides={"n_tu": 14, "n_slots": 4})
    env_config = CatnEnvConfig(tu_observation=tu_observation)
    envs = {
        name: CatnEnv(config, env_config, batch_size=2, reuse_observations=name == "reused")
        for name in ("fresh", "reused")
    }
    # kind -> env -> [(returned tensor, its values when returned)]
    kept = {kind: {name: [] for name in envs} for kind in ("tu", "bs")}

    def returned(kind, name, tensor):
        earlier = kept[kind][name]
        if earlier:  # the previous observation of this kind is still valid
            assert torch.equal(earlier[-1][0], earlier[-1][1])
        earlier.append((tensor, tensor.clone()))

    g = torch.Generator().manual_seed(3)
    for episode in range(2):
        for name, env in envs.items():
            returned("tu", name, env.reset(seed=episode))
        for _ in range(config.n_slots - 1):
            tu = torch.randint(0, envs["fresh"].N, (2, envs["fresh"].K), generator=g)
            bs = torch.rand(2, envs["fresh"].N, envs["fresh"].action_dim, generator=g)
            outs = {}
            for name, env in envs.items():
                returned("bs", name, env.associate(tu))
                outs[name] = env.beamform(bs)
                returned("tu", name, outs[name].tu_obs)
            for field in dataclasses.fields(outs["fresh"]):
                got, want = getattr(outs["reused"], field.name), getattr(outs["fresh"], field.name)
                assert torch.equal(got, want) if torch.is_tensor(want) else got == want, field
    for kind, count in (("tu", 8), ("bs", 6)):
        fresh, reused = kept[kind]["fresh"], kept[kind]["reused"]
        assert len(fresh) == len(reused) == count
        for (_, want), (_, got) in zip(fresh, reused, strict=True):
            assert torch.equal(got, want)  # values at return: identical in both modes
        assert all(torch.equal(tensor, values) for tensor, values in fresh)  # never overwritten
        for i, (tensor, values) in enumerate(reused[:-2]):
            # overwritten in place by the return after the next: same memory, new values
            assert reused[i + 1][0].data_ptr() != tensor.data_ptr()
            assert reused[i + 2][0].data_ptr() == tensor.data_ptr()
            assert not torch.equal(tensor, values)
        assert all(torch.equal(tensor, values) for tensor, values in reused[-2:])


def test_determinism():
    a, b = _env(batch=2), _env(batch=2)
    torch.testing.assert_close(a.reset(seed=9), b.reset(seed=9))
    acts = torch.randint(0, a.N, (2, a.K))
    torch.testing.assert_close(a.associate(acts), b.associate(acts))
    assert not torch.equal(a.reset(seed=9), b.reset(seed=10))


def test_bad_actions_name_the_agent_and_field():
    env = _env(batch=2)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="out of turn"):
        env.beamform(torch.zeros(2, env.N, env.action_dim))
    with pytest.raises(ShapeError, match=r"tu_actions must be \(B, K\)"):
        env.associate(torch.zeros(2, 3, dtype=torch.long))
    bad = torch.zeros(2, env.K, dtype=torch.long)
    bad[1, 5] = env.N
    with pytest.raises(ValueError, match=r"tu_5 \(env 1\) chose BS 7; allowed range: \[0, 6\]"):
        env.associate(bad)
    env.associate(torch.zeros(2, env.K, dtype=torch.long))
    actions = torch.full((2, env.N, env.action_dim), 0.5)
    actions[0, 3, 1 + env.K + 2] = float("nan")
    with pytest.raises(ValueError, match=r"bs_3 \(env 0\) action\[17\] \(alpha_2\) is nan"):
        env.beamform(actions)
    actions = torch.full((2, env.N, env.action_dim), 0.5)
    actions[1, 0, 0] = 1.5
    with pytest.raises(ValueError, match=r"bs_0 \(env 1\) action\[0\] \(q_total\) = 1.5"):
        env.beamform(actions)


def test_episode_truncates_at_the_horizon():
    env = _env(batch=1, n_slots=4)
    env.reset(seed=0)
    truncated = []
    for _ in range(3):
        env.associate(torch.zeros(1, env.K, dtype=torch.long))
        truncated.append(env.beamform(torch.full((1, env.N, env.action_dim), 0.5)).truncated)
    assert truncated == [False, False, True]
    with pytest.raises(RuntimeError, match="reset"):
        env.associate(torch.zeros(1, env.K, dtype=torch.long))


def test_reward_loss_weight_scales_the_rate_loss_term_of_10():
    """(10) = own users' rates - weight x rate loss caused to U_n^out: weight 0 leaves the own
    rates alone, and the reward is affine in the weight."""
    rewards, rates, owners = {}, None, None
    g = torch.Generator().manual_seed(2)
    serving = torch.randint(0, 7, (1, 14), generator=g)
    actions = torch.rand(1, 7, 2 * 14 + 2 + 2, generator=g, dtype=torch.float64)
    for weight in (0.0, 0.5, 1.0):
        env = _env(batch=1, env_overrides={"reward_loss_weight": weight})
        env.reset(seed=4)
        env.associate(serving)
        out = env.beamform(actions)
        rewards[weight] = out.bs_reward[0]
        rates = out.rates[0]
        owners = serving[0]
    own = torch.stack([rates[owners == n].sum() for n in range(7)])
    torch.testing.assert_close(rewards[0.0], own)
    assert bool((rewards[1.0] <= own + 1e-12).all()) and not torch.equal(rewards[1.0], own)
    torch.testing.assert_close(rewards[0.5], (rewards[0.0] + rewards[1.0]) / 2)
    with pytest.raises(Exception, match="reward_loss_weight"):
        CatnEnvConfig(reward_loss_weight=-1.0)


# ---------------------------------------------------------------------------------------------
# The optimised slot against the pre-optimisation implementation (tests/catn_reference.py)
# ---------------------------------------------------------------------------------------------

_RANDOM_NETWORKS = [
    {},  # the quick preset with 14 TUs
    {"n_tu": 9, "n_au": 3, "ura_rows": 2, "ura_cols": 3, "shadow_fading": True},
    {"n_bs": 1, "n_tu": 4, "n_au": 1, "los_frozen": False, "au_steering_normalized": False},
    {"n_au": 0},
]


@pytest.mark.parametrize("overrides", _RANDOM_NETWORKS)
def test_scenario_state_equals_the_library_functions_exactly(overrides):
    from catn_reference import reference_state

    for dtype in (torch.float32, torch.float64):
        config = CatnScenario.config_from("quick", overrides={"n_slots": 20, **overrides})
        scenario = CatnScenario(config, batch_size=3, dtype=dtype)
        scenario.reset(seed=11)
        for _ in range(4):
            expected = reference_state(scenario)
            for field in dataclasses.fields(expected):
                got, want = getattr(scenario.state, field.name), getattr(expected, field.name)
                if isinstance(want, torch.Tensor):
                    assert got.dtype == want.dtype and torch.equal(got, want), field.name
                else:
                    assert got == want, field.name
            scenario.step()


@pytest.mark.parametrize("overrides", _RANDOM_NETWORKS)
@pytest.mark.parametrize("env_overrides", [{}, {"tu_information": "dcd", "b_in": 2, "k_in": 2}])
def test_optimised_slot_equals_the_reference_on_random_instances(overrides, env_overrides):
    """Whole episodes of random actions (BS actions and external beamformers): observations,
    rewards, costs, beamformers and ledger counts equal the pre-optimisation implementation
    (float64, so that the reordered sums cannot flip a top-k selection)."""
    from catn_reference import ReferenceCatnEnv

    config = CatnScenario.config_from("quick", overrides={"n_slots": 8, **overrides})
    env_config = CatnEnvConfig(**env_overrides)
    for seed in range(2):
        envs = [
            cls(config, env_config, batch_size=3, dtype=torch.float64)
            for cls in (CatnEnv, ReferenceCatnEnv)
        ]
        new, ref = envs
        torch.testing.assert_close(new.reset(seed=seed), ref.reset(seed=seed))
        g = torch.Generator().manual_seed(100 + seed)
        truncated = False
        while not truncated:
            tu = torch.randint(0, new.N, (3, new.K), generator=g)
            torch.testing.assert_close(new.associate(tu), ref.associate(tu))
            if bool(torch.rand(1, generator=g) < 0.5):
                actions = torch.rand(3, new.N, new.action_dim, generator=g, dtype=torch.float64)
                outs = [env.beamform(actions) for env in envs]
            else:
                w = torch.randn(3, new.K, new.M, generator=g, dtype=torch.complex128)
                outs = [env.beamform_with(w) for env in envs]
            torch.testing.assert_close(new.last_beamformers, ref.last_beamformers)
            for field in dataclasses.fields(outs[0]):
                got, want = getattr(outs[0], field.name), getattr(outs[1], field.name)
                if isinstance(want, torch.Tensor):
                    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=field.name)
                else:
                    assert got == want
            truncated = outs[0].truncated
        assert new.ledger.per_agent_per_slot() == ref.ledger.per_agent_per_slot()


@pytest.mark.parametrize("batch", [8, 128])
def test_optimised_beamformers_match_float64_reference_in_float32(batch):
    """float32 (the default precision): the optimised beamformers are as close to a float64
    evaluation of the reference formula as the reference's own float32 evaluation; B = 128 is
    above GROUPED_SOLVE_MIN_USERS (the grouped solve, D~ in two chunks), B = 8 below it."""
    from catn_reference import _beamformers as reference_beamformers
    from skyshare.envs import catn_actions
    from skyshare.envs.catn_actions import beamformers

    env = CatnEnv(batch_size=batch)  # the paper network, float32
    grouped = batch * env.K >= catn_actions.GROUPED_SOLVE_MIN_USERS
    assert grouped == (batch == 128)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    env.associate(torch.randint(0, env.N, (batch, env.K), generator=g))
    par = env.action_parameters(torch.rand(batch, env.N, env.action_dim, generator=g))
    H, G, s = env.state.H, env.state.G, env.serving
    wide = {k: v.double() for k, v in par.items()}
    exact = reference_beamformers(
        wide, H.to(torch.complex128), G.to(torch.complex128), s, env.p_max, cdtype=torch.complex128
    )

    def error(w):
        return ((w.to(exact.dtype) - exact).norm(dim=-1) / exact.norm(dim=-1)).max()

    ours = beamformers(par, H, G, s, env.p_max, cdtype=env.cdtype)
    theirs = reference_beamformers(par, H, G, s, env.p_max, cdtype=env.cdtype)
    assert error(ours) <= 2 * error(theirs) + 1e-5


def test_two_stage_codeword_selection_equals_topk():
    """The N_c strongest codewords in two stages (large batches) are ``topk``'s: the same
    indices in the same order on random scores, on all-zero channels (the tie offsets of
    ``compress_channel`` make the lowest indices win) and with the strongest codewords
    crowded into one of the four interleaved groups."""
    from skyshare.envs.catn_observations import TWO_STAGE_TOPK_MIN_ELEMENTS, _top_codewords

    g = torch.Generator().manual_seed(0)
    rows = TWO_STAGE_TOPK_MIN_ELEMENTS // 128 + 1
    tie_offset = torch.arange(128, dtype=torch.float32) * torch.finfo(torch.float32).tiny
    scores = torch.rand(rows, 128, generator=g)
    scores[:5] = 0.0  # silent channels
    scores[5:10, 32:36] += 2.0  # the top four all in group 1, adjacent columns
    scores[10:15, 7::32] += 2.0  # the top four in the same column of every group
    for count in (1, 4, 32):
        want = (scores - tie_offset).topk(count, dim=-1, sorted=True).indices
        assert torch.equal(_top_codewords(scores - tie_offset, count), want)
    assert torch.equal(_top_codewords(scores - tie_offset, 4)[:5], torch.arange(4).expand(5, 4))
    small = torch.rand(2, 3, 128, generator=g)  # below the threshold: one topk
    assert torch.equal(_top_codewords(small, 4), small.topk(4, dim=-1).indices)
    odd = torch.rand(rows, 130, generator=g)  # C not a multiple of 4: one topk
    assert torch.equal(_top_codewords(odd, 4), odd.topk(4, dim=-1).indices)
