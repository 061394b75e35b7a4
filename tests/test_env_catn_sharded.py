"""ShardedCatnEnv: S CatnEnvs stepped on S threads must be exactly those S envs, joined."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from skyshare.envs import CatnEnv, ShardedCatnEnv, SlotOutcome
from skyshare.envs.catn_sharded import shard_seeds
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios import CatnScenario

OUTCOME_FIELDS = [f.name for f in dataclasses.fields(SlotOutcome)]


def _config(seed=5, n_slots=4):
    return CatnScenario.config_from(
        "quick", overrides={"n_tu": 14, "n_slots": n_slots, "seed": seed}
    )


def _actions(env, generator):
    tu = torch.randint(0, env.N, (env.B, env.K), generator=generator)
    bs = torch.rand(env.B, env.N, env.action_dim, generator=generator, dtype=torch.float64)
    return tu, bs


def _standalone(config, sizes, seed, **kwargs):
    """The shards as independent CatnEnvs, seeded as the sharded env seeds them."""
    seeds = shard_seeds(seed, len(sizes))
    return [
        CatnEnv(config.model_copy(update={"seed": s}), batch_size=n, dtype=torch.float64, **kwargs)
        for s, n in zip(seeds, sizes, strict=True)
    ]


def test_shard_seeds_are_independent_reproducible_and_in_range():
    seeds = shard_seeds(7, 4)
    assert seeds == shard_seeds(7, 4)
    assert len(set(seeds)) == 4
    assert all(0 <= s < 2**63 for s in seeds)
    assert shard_seeds(8, 4) != seeds
    # NumPy's SeedSequence, independently
    child = np.random.SeedSequence(7).spawn(4)[2]
    assert seeds[2] == int(child.generate_state(1, dtype=np.uint64)[0]) >> 1


@pytest.mark.parametrize("reuse", [False, True])
@pytest.mark.parametrize("batch,shards", [(5, 2), (6, 3), (3, 1)])
def test_each_shard_plays_exactly_like_its_own_env(batch, shards, reuse):
    config = _config()
    env = ShardedCatnEnv(
        config, batch_size=batch, shards=shards, dtype=torch.float64, reuse_observations=reuse
    )
    assert sum(env.sizes) == batch and len(env.sizes) == shards
    refs = _standalone(config, env.sizes, config.seed)
    g = torch.Generator().manual_seed(1)

    def joined(outputs):
        return torch.cat(outputs)

    kept = []  # with reuse, the previous pair must survive one more call (CatnEnv's rule)
    assert torch.equal(env.reset(), joined([r.reset() for r in refs]))
    for t in range(7):  # over an episode end (n_slots = 4) and a seeded reset
        tu, bs = _actions(env, g)
        obs = env.associate(tu)
        ref_obs = joined([r.associate(p) for r, p in zip(refs, env._split(tu), strict=True)])
        assert torch.equal(obs, ref_obs), t
        kept.append((obs, ref_obs.clone()))
        out = env.beamform(bs)
        ref = [r.beamform(p) for r, p in zip(refs, env._split(bs), strict=True)]
        for name in OUTCOME_FIELDS:
            if name == "truncated":
                assert out.truncated == ref[0].truncated
            else:
                expected = joined([getattr(o, name) for o in ref])
                assert torch.equal(getattr(out, name), expected), (t, name)
        assert torch.equal(env.serving, joined([r.serving for r in refs]))
        assert torch.equal(env.state.H, joined([r.state.H for r in refs]))
        assert torch.equal(env.global_state(), joined([r.global_state() for r in refs]))
        if len(kept) >= 2:
            assert torch.equal(*kept[-2])  # the previous BS observation is still valid
        if out.truncated:
            assert torch.equal(
                env.reset(seed=11),
                joined([r.reset(s) for r, s in zip(refs, shard_seeds(11, shards), strict=True)]),
            )


def test_a_refused_action_names_the_env_of_the_whole_batch_and_moves_no_shard():
    env = ShardedCatnEnv(_config(n_slots=20), batch_size=5, shards=2, dtype=torch.float64)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(2)
    tu, bs = _actions(env, g)
    bad = tu.clone()
    bad[4, 3] = env.N  # env 4 lives in shard 1 as its env 1
    before = env.state_dict()
    with pytest.raises(ValueError, match=r"tu_3 \(env 4\) chose BS 7"):
        env.associate(bad)
    env.associate(tu)
    bad_bs = bs.clone()
    bad_bs[3, 2, 5] = float("nan")
    with pytest.raises(ValueError, match=r"bs_2 \(env 3\) action\[5\]"):
        env.beamform(bad_bs)
    with pytest.raises(ShapeError, match="bs_actions must be"):
        env.beamform(bs[:4])
    out = env.beamform(bs)  # the refused calls left every shard in its turn
    # and the same as an env that never saw the refused actions
    other = ShardedCatnEnv(_config(n_slots=20), batch_size=5, shards=2, dtype=torch.float64)
    other.load_state_dict(before)
    other.associate(tu)
    assert torch.equal(other.beamform(bs).bs_reward, out.bs_reward)


def test_checkpoint_round_trip_continues_exactly():
    env = ShardedCatnEnv(_config(n_slots=30), batch_size=5, shards=2, dtype=torch.float64)
    env.reset(seed=3)
    g = torch.Generator().manual_seed(4)
    for _ in range(2):
        tu, bs = _actions(env, g)
        env.associate(tu)
        env.beamform(bs)
    saved = env.state_dict()
    tu, bs = _actions(env, g)
    expected = (env.associate(tu).clone(), env.beamform(bs).tu_obs.clone())
    fresh = ShardedCatnEnv(_config(n_slots=30), batch_size=5, shards=2, dtype=torch.float64)
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.associate(tu), expected[0])
    assert torch.equal(fresh.beamform(bs).tu_obs, expected[1])
    three = ShardedCatnEnv(_config(n_slots=30), batch_size=5, shards=3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="shard sizes"):
        three.load_state_dict(saved)


def test_inference_mode_reaches_the_worker_threads():
    env = ShardedCatnEnv(_config(), batch_size=4, shards=2, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    with torch.inference_mode():
        obs = env.reset(seed=1)
        tu, bs = _actions(env, g)
        bs_obs = env.associate(tu)
        out = env.beamform(bs)
    assert obs.is_inference() and out.bs_reward.is_inference()
    assert bs_obs.is_inference() and out.tu_obs.is_inference()
    # the same turns on a fresh env outside inference mode give the same numbers
    fresh = ShardedCatnEnv(_config(), batch_size=4, shards=2, dtype=torch.float64)
    assert torch.equal(fresh.reset(seed=1), obs)
    assert torch.equal(fresh.associate(tu), bs_obs)
    ref = fresh.beamform(bs)
    assert not ref.bs_reward.is_inference()
    for name in OUTCOME_FIELDS:
        if name != "truncated":
            assert torch.equal(getattr(out, name), getattr(ref, name)), name


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 1, "shards": 2}, "batch_size must be an integer >= shards"),
        ({"batch_size": 4, "shards": 0}, "shards must be an integer >= 1"),
    ],
)
def test_impossible_sizes_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ShardedCatnEnv(_config(), **kwargs)


@pytest.mark.parametrize("scheme_name", ["D3QN-CUP", "D3QN-WMMSE"])
def test_the_online_loop_runs_a_learned_and_a_solver_scheme_on_the_sharded_env(scheme_name):
    from skyshare.schemes.catn import build_scheme, scheme_env_config
    from skyshare.schemes.catn_online import run_online

    config = CatnScenario.config_from("quick", overrides={"n_slots": 30})
    env = ShardedCatnEnv(config, scheme_env_config(scheme_name), batch_size=4, shards=2)
    scheme = build_scheme(scheme_name, env, {"seed": 0})
    chosen = []  # the associations of every slot
    decide = scheme.association.decide

    def record(env_, obs, *, explore):
        actions = decide(env_, obs, explore=explore)
        chosen.append(actions.clone())
        return actions

    scheme.association.decide = record
    log = run_online(env, scheme, 6, seed=0)
    assert log.slots == list(range(6))
    rates = torch.stack(log.sum_rate)
    assert rates.shape == (6, 4) and bool((rates > 0).all())
    if scheme.beamforming.learns:
        return
    # the solver is deterministic: the shards as standalone CatnEnvs, seeded as the sharded
    # env seeds them and given the same associations, solve to the same joined sum rates
    parts = [env._split(actions) for actions in chosen]
    seeds = shard_seeds(0, env.n_shards)
    joined = []
    for i, (shard_seed, size) in enumerate(
        zip(shard_seeds(config.seed, env.n_shards), env.sizes, strict=True)
    ):
        ref = CatnEnv(
            config.model_copy(update={"seed": shard_seed}),
            scheme_env_config(scheme_name),
            batch_size=size,
        )
        ref_scheme = build_scheme(scheme_name, ref, {"seed": 0})
        replay = _ReplayAssociation([p[i] for p in parts])
        ref_log = run_online(
            ref, dataclasses.replace(ref_scheme, association=replay), 6, seed=seeds[i]
        )
        assert replay.left() == 0
        joined.append(ref_log)
    for name in ("sum_rate", "effective_sum_rate", "au_interference_ratio", "handovers"):
        expected = torch.cat([ref_log.stacked(name) for ref_log in joined], 1)
        torch.testing.assert_close(log.stacked(name), expected, rtol=1e-5, atol=1e-6, msg=name)
    assert torch.equal(
        log.stacked("feasible"), torch.cat([r.stacked("feasible") for r in joined], 1)
    )


class _ReplayAssociation:
    """An association component that plays given actions, slot by slot."""

    learns = False

    def __init__(self, actions):
        self.actions = list(actions)

    def decide(self, env, obs, *, explore):
        return self.actions.pop(0)

    def left(self):
        return len(self.actions)

    def state_dict(self):
        return {}


def test_intra_op_threads_beside_the_shards_are_warned_about():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.warns(RuntimeWarning, match="set_num_threads"):
            ShardedCatnEnv(_config(), batch_size=4, shards=2)
        torch.set_num_threads(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ShardedCatnEnv(_config(), batch_size=4, shards=2)
    finally:
        torch.set_num_threads(threads)


def test_unseeded_resets_continue_each_shards_stream_and_beamform_with_joins():
    config = _config(n_slots=3)
    env = ShardedCatnEnv(
        config, batch_size=5, shards=2, dtype=torch.float64, reuse_observations=True
    )
    refs = _standalone(config, env.sizes, config.seed)
    g = torch.Generator().manual_seed(6)
    tu_pairs = []
    for episode in range(3):  # the first reset seeds from the config, the later ones continue
        obs = env.reset()
        assert torch.equal(obs, torch.cat([r.reset() for r in refs])), episode
        tu_pairs.append((obs, obs.clone()))
        for _ in range(2):
            tu, _ = _actions(env, g)
            env.associate(tu)
            for r, p in zip(refs, env._split(tu), strict=True):
                r.associate(p)
            w = torch.randn(env.B, env.K, env.M, generator=g, dtype=env.cdtype) * 0.1
            out = env.beamform_with(w)
            ref = [r.beamform_with(p) for r, p in zip(refs, env._split(w), strict=True)]
            assert torch.equal(out.tu_obs, torch.cat([o.tu_obs for o in ref]))
            assert torch.equal(out.rates, torch.cat([o.rates for o in ref]))
            assert torch.equal(env.last_beamformers, w)
            assert torch.equal(*tu_pairs[-1])  # the previous TU observation is still valid
            tu_pairs.append((out.tu_obs, out.tu_obs.clone()))
    with pytest.raises(ShapeError, match="complex"):
        env.beamform_with(torch.zeros(env.B, env.K, env.M, dtype=torch.complex64))


@pytest.mark.parametrize("error", [RuntimeError("shard failed"), KeyboardInterrupt()])
def test_a_turn_that_fails_inside_a_shard_waits_for_all_and_asks_for_reset(monkeypatch, error):
    import time

    env = ShardedCatnEnv(_config(n_slots=20), batch_size=4, shards=2, dtype=torch.float64)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(7)
    tu, bs = _actions(env, g)
    env.associate(tu)
    slow, failing = env.shards[1], env.shards[0]
    finished = []
    original = slow.beamform

    def slow_beamform(actions):
        time.sleep(0.3)
        out = original(actions)
        finished.append(slow.scenario.t)
        return out

    def failing_beamform(actions):
        raise error

    monkeypatch.setattr(slow, "beamform", slow_beamform)
    monkeypatch.setattr(failing, "beamform", failing_beamform)
    with pytest.raises(type(error)):
        env.beamform(bs)
    assert finished  # the worker's shard had stopped before the error came back
    with pytest.raises(RuntimeError, match=r"next call must be reset\(\)"):
        env.associate(tu)
    monkeypatch.undo()
    obs = env.reset(seed=1)  # and a reset brings every shard back
    bs_obs = env.associate(tu)
    out = env.beamform(bs)
    # exactly where a fresh env stands after the same seeded reset and turns
    fresh = ShardedCatnEnv(_config(n_slots=20), batch_size=4, shards=2, dtype=torch.float64)
    assert torch.equal(obs, fresh.reset(seed=1))
    assert torch.equal(bs_obs, fresh.associate(tu))
    ref = fresh.beamform(bs)
    for name in OUTCOME_FIELDS:
        if name != "truncated":
            assert torch.equal(getattr(out, name), getattr(ref, name)), name


def test_a_catn_env_state_or_a_bad_seed_is_refused_by_name():
    env = ShardedCatnEnv(_config(), batch_size=4, shards=2, dtype=torch.float64)
    single = CatnEnv(_config(), batch_size=4, dtype=torch.float64)
    single.reset(seed=0)
    with pytest.raises(ConfigError, match="not a sharded catn env state"):
        env.load_state_dict(single.state_dict())
    for seed in (-1, 2**63):
        with pytest.raises(ConfigError, match="seed must be in"):
            env.reset(seed=seed)
    assert env.state_dim == single.state_dim


def test_a_forked_child_starts_its_own_workers():
    """After a fork the child has no worker threads: the env starts new ones instead of
    waiting forever on the parent's (and plays as the parent does)."""
    import os
    import signal

    env = ShardedCatnEnv(_config(n_slots=20), batch_size=4, shards=2, dtype=torch.float64)
    env.reset(seed=2)
    tu, _ = _actions(env, torch.Generator().manual_seed(8))
    env.associate(tu)  # the parent's workers have run
    saved = env.state_dict()
    expected = env.beamform(torch.full((4, env.N, env.action_dim), 0.5, dtype=torch.float64))
    env.load_state_dict(saved)
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when its turn equals the parent's
        signal.alarm(60)
        out = env.beamform(torch.full((4, env.N, env.action_dim), 0.5, dtype=torch.float64))
        os._exit(0 if torch.equal(out.bs_reward, expected.bs_reward) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
