"""The CATN scheme registry and Algorithm 4's online loop (skyshare.schemes)."""

import re

import pytest
import torch

from skyshare.envs import CatnEnv, CatnEnvConfig
from skyshare.errors import ConfigError, UnknownNameError
from skyshare.rl import CupAgents, CupConfig, D3QNAgents, D3QNConfig, PpoPenaltyAgents
from skyshare.rl.ppo_penalty import PpoPenaltyConfig
from skyshare.scenarios import CatnScenario
from skyshare.schemes.catn import (
    ASSOCIATIONS,
    BEAMFORMERS,
    SCHEMES,
    CatnScheme,
    D3QNAssociation,
    LearnedBeamforming,
    build_catn_env,
    build_scheme,
    scheme_env_config,
)
from skyshare.schemes.catn_online import OnlineLog, run_online
from spy import returns_of


def _scenario(n_slots=200):
    return CatnScenario.config_from(
        "quick", overrides={"n_tu": 7, "ura_rows": 2, "ura_cols": 2, "n_slots": n_slots}
    )


def _env(name, batch=2, n_slots=200):
    return build_catn_env(name, _scenario(n_slots), {"k_out": 1}, batch_size=batch)


def _learned(name, batch=2, seed=3, collector=5, **cup):
    """A fresh env and a small learned scheme, as a restarted process would build them."""
    env = _env(name, batch)
    small = {"hidden_sizes": (16, 8, 8), "epochs": 2, "minibatch_size": 5, "seed": seed, **cup}
    tu = D3QNAgents(env.tu_obs_dim, env.N, env.K, D3QNConfig(batch_size=8, memory_size=64, seed=5))
    dims = (env.bs_obs_dim, env.action_dim, env.N, env.L)
    if name.endswith("cup"):
        bs = CupAgents(*dims, CupConfig(**small))
    else:
        bs = PpoPenaltyAgents(*dims, PpoPenaltyConfig(penalty=5.0, **small))
    scheme = CatnScheme(name, D3QNAssociation(tu), LearnedBeamforming(bs, collector))
    return env, scheme


def test_registry_names_the_papers_schemes_and_their_components():
    assert set(SCHEMES) >= {"D3QN-CUP", "DCD-CUP", "SC-CUP", "D3QN-PPO", "SC-WMMSE", "DCD-DFP"}
    assert SCHEMES.entry("SC-WMMSE").factory == ("sc", "wmmse-lite")
    assert ASSOCIATIONS.names(learns=False) == ["sc", "dcd"]
    assert BEAMFORMERS.names(learns=True) == ["cup", "ppo"]
    # what the ledger counts follows from the components (Table I)
    config = scheme_env_config("D3QN-WMMSE")
    assert (config.tu_information, config.bs_information) == ("d3qn", "global_csi")
    assert scheme_env_config("dcd+cup").bs_information == "exchange"
    with pytest.raises(UnknownNameError, match=r"available: .*D3QN-CUP"):
        SCHEMES.entry("D3QN-TD3")
    with pytest.raises(UnknownNameError, match="catn beamforming 'mrt'"):
        scheme_env_config("sc+mrt")
    with pytest.raises(ConfigError, match="already registered"):
        SCHEMES.register("SC-CUP", ("sc", "cup"))


def test_build_scheme_refuses_an_env_that_lacks_the_schemes_information():
    env = CatnEnv(_scenario(), CatnEnvConfig(k_out=1, bs_information="exchange"))
    with pytest.raises(ConfigError, match="build_catn_env"):
        build_scheme("SC-WMMSE", env)


def test_d3qn_cup_trains_through_algorithm_4():
    env, scheme = _learned("d3qn+cup", collector=10)
    cup = scheme.beamforming.agents
    d3qn = scheme.association.agents
    nu0 = cup.nu.clone()
    played = returns_of(env, "beamform")  # every slot's outcome, as the env returned it
    log = run_online(env, scheme, 25, seed=0)
    assert len(log.slots) == 25 and log.au_interference_ratio[0].shape == (2, env.L)
    assert log.updates == 2  # slots 2..11 and 12..21 fill the collector of 10 twice
    assert not torch.equal(cup.nu, nu0)  # the nu update of Algorithm 3 ran
    assert d3qn.n_updates > 0 and d3qn.epsilon < 0.3
    assert all(r >= 0 for r in log.mean("sum_rate"))
    # the logged sum rate is the env's, recomputed from the per-environment records
    assert log.stacked("sum_rate").shape == (25, 2)
    assert len(played) == 25  # one beamforming turn per slot (horizon 200: no reset)
    for t, outcome in enumerate(played):
        assert torch.equal(log.sum_rate[t], outcome.rates.sum(-1)), t
        assert torch.equal(log.effective_sum_rate[t], outcome.effective_rates.sum(-1)), t
        assert torch.equal(log.au_interference_ratio[t], outcome.au_interference / env.i_max), t
        assert torch.equal(log.tu_reward[t], outcome.tu_reward.mean(-1)), t
    assert log.iterations == [0] * 25  # a policy has no solver iterations


def _solve_calls(scheme):
    """Spy on the solver of a SolverBeamforming: the list of (serving, start, result)."""
    calls = []
    solve = scheme.beamforming.solve

    def spy(problem, **kwargs):
        result = solve(problem, **kwargs)
        start = {k: v.clone() for k, v in kwargs.items() if k.endswith("0")}
        calls.append((problem.serving.clone(), start, result))
        return result

    scheme.beamforming.solve = spy
    return calls


def test_solver_scheme_keeps_the_constraints_and_warm_starts_cut_iterations():
    logs, calls = {}, {}
    for warm in (True, False):
        env = _env("SC-WMMSE", batch=2)
        scheme = build_scheme("SC-WMMSE", env, {"warm_start": warm})
        calls[warm] = _solve_calls(scheme)
        log = logs[warm] = run_online(env, scheme, 6, seed=1)
        assert float(log.stacked("au_interference_ratio").max()) <= 1.0 + 1e-3
        assert bool(log.stacked("feasible").all())
        assert bool(scheme.beamforming.previous) == warm
        # the log's iterations are the solver's, slot by slot
        assert log.iterations == [int(result.iterations) for _, _, result in calls[warm]]
        if warm:  # the solver state is the warm-start point: tensors only
            state = scheme.state_dict()["beamforming"]["previous"]
            assert set(state) == {"w", "serving", "multiplier_mu"}
            serving, _, last = calls[warm][-1]  # the last decision's beams and multipliers
            assert torch.equal(state["w"], last.w) and torch.equal(state["serving"], serving)
            assert torch.equal(state["multiplier_mu"], last.multipliers["mu"])
            assert torch.equal(serving, env.serving)
    # cold: every slot starts from scratch; warm: from the previous slot's solution where a
    # TU kept its BS (zero, i.e. MRT, for the others) and from the previous multipliers
    assert all(start == {} for _, start, _ in calls[False])
    assert calls[True][0][1] == {}
    for (serving0, _, before), (serving, start, _) in zip(
        calls[True][:-1], calls[True][1:], strict=True
    ):
        assert set(start) == {"w0", "mu0"}
        kept = (serving == serving0)[..., None].expand_as(before.w)
        assert torch.equal(start["w0"][kept], before.w[kept])
        assert bool((start["w0"][~kept] == 0).all())
        assert torch.equal(start["mu0"], before.multipliers["mu"])
    # same first slot; from the second on the warm start needs fewer iterations in total
    warm_iterations, cold_iterations = logs[True].iterations, logs[False].iterations
    assert warm_iterations[0] == cold_iterations[0]
    assert sum(warm_iterations[1:]) < sum(cold_iterations[1:]), (warm_iterations, cold_iterations)


def test_warm_and_cold_solve_the_same_slots():
    """Warm starts change where the solver starts, not the channels: both runs see the same
    slots (same association, identical first slot). wmmse-lite stops after 10 outer iterations,
    so a warm start, which continues from the last slot's solution, ends higher on average."""
    logs = {}
    for warm in (True, False):
        env = _env("SC-WMMSE", batch=2)
        logs[warm] = run_online(env, build_scheme("SC-WMMSE", env, {"warm_start": warm}), 5)
    warm, cold = logs[True].stacked("sum_rate"), logs[False].stacked("sum_rate")
    assert torch.equal(logs[True].stacked("handovers"), logs[False].stacked("handovers"))
    assert torch.equal(warm[0], cold[0])
    assert float(warm[1:].mean()) > float(cold[1:].mean())


def test_evaluate_every_plays_silent_slots_and_refuses_learners():
    env = _env("DCD-DFP", batch=1)
    log = run_online(env, build_scheme("DCD-DFP", env, {"max_iter": 3}), 9, evaluate_every=4)
    assert log.slots == [0, 4, 8]
    env, scheme = _learned("d3qn+cup")
    with pytest.raises(ConfigError, match="evaluate_every"):
        run_online(env, scheme, 4, evaluate_every=2)


def _comparable(log: OnlineLog):
    """Everything but the wall-clock times and the last update's statistics."""
    state = log.state_dict()
    for key in ("association_time_s", "beamforming_time_s", "stats"):
        state.pop(key)
    return {k: v.tolist() if torch.is_tensor(v) else v for k, v in state.items()}


@pytest.mark.parametrize("name", ["d3qn+cup", "d3qn+ppo"])
def test_interrupted_run_resumes_exactly(tmp_path, name):
    """A run that crashes in slot 14 (checkpoints every 4 slots, the last after slot 12) and
    is restarted in fresh objects gives exactly the log, networks, epsilon and ledger of an
    uninterrupted run with the same seeds; the checkpoint loads with weights_only=True."""
    n = 22
    env, scheme = _learned(name)
    reference = run_online(env, scheme, n, seed=0)
    assert reference.updates == 4  # the collector of 5 fills after slots 6, 11, 16, 21

    path = tmp_path / "run.pt"
    env1, scheme1 = _learned(name)
    transmit, calls = env1.beamform, []

    def crash_in_slot_14(actions):
        calls.append(1)
        if len(calls) == 14:
            raise KeyboardInterrupt("simulated interruption")
        return transmit(actions)

    env1.beamform = crash_in_slot_14
    with pytest.raises(KeyboardInterrupt):
        run_online(env1, scheme1, n, seed=0, checkpoint_path=path, checkpoint_every=4)
    assert torch.load(path, weights_only=True)["next_slot"] == 12

    env2, scheme2 = _learned(name)  # the restarted process
    resumed = run_online(env2, scheme2, n, seed=0, checkpoint_path=path, checkpoint_every=4)
    assert _comparable(resumed) == _comparable(reference)
    bs, bs2 = scheme.beamforming.agents, scheme2.beamforming.agents
    tu, tu2 = scheme.association.agents, scheme2.association.agents
    for a, b in zip(bs2.actor.parameters(), bs.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(tu2.online.parameters(), tu.online.parameters(), strict=True):
        assert torch.equal(a, b)
    assert tu2.epsilon == tu.epsilon and bs2.n_updates == bs.n_updates
    assert env2.ledger.slots == env.ledger.slots == n
    assert env2.ledger.per_kind_per_slot() == env.ledger.per_kind_per_slot()

    # a finished run "resumes" to its end without playing a slot; a shorter one is refused
    env3, scheme3 = _learned(name)
    again = run_online(env3, scheme3, n, seed=0, checkpoint_path=path)
    assert _comparable(again) == _comparable(reference) and env3.ledger.slots == n
    with pytest.raises(ConfigError, match="beyond n_slots"):
        run_online(env3, scheme3, 5, checkpoint_path=path)


def test_cup_checkpoints_record_the_step_2_rule(tmp_path):
    """A checkpoint of the literal step-2 loop (as every one written before the option) resumes
    only with the literal loop; the scheme option reaches CUP's config."""
    path = tmp_path / "c.pt"
    env, scheme = _learned("d3qn+cup", skip_unconstrained_projection=False)
    run_online(env, scheme, 6, seed=0, checkpoint_path=path)
    state = torch.load(path, weights_only=True)  # as written before the option: no such field
    del state["scheme"]["beamforming"]["agents"]["config"]["skip_unconstrained_projection"]
    torch.save(state, path)
    env, scheme = _learned("d3qn+cup")  # the default: skip
    rule = r"skip_unconstrained_projection \(checkpoint: absent, this run: True\)"
    with pytest.raises(ConfigError, match=rf"was written by another run \({rule}\)"):
        run_online(env, scheme, 8, seed=0, checkpoint_path=path)
    env, scheme = _learned("d3qn+cup", skip_unconstrained_projection=False)
    assert len(run_online(env, scheme, 8, seed=0, checkpoint_path=path).slots) == 8
    options = {"hidden_sizes": (8, 8, 8), "skip_unconstrained_projection": False}
    built = build_scheme("D3QN-CUP", _env("D3QN-CUP", batch=1), options)
    assert built.beamforming.agents.config.skip_unconstrained_projection is False
    built = build_scheme("D3QN-CUP", _env("D3QN-CUP", batch=1), {"hidden_sizes": (8, 8, 8)})
    assert built.beamforming.agents.config.skip_unconstrained_projection is True


def test_checkpoint_of_another_scheme_or_config_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    env = _env("SC-WMMSE", batch=1)
    run_online(env, build_scheme("SC-WMMSE", env), 2, checkpoint_path=path, seed=0)
    env = _env("DCD-WMMSE", batch=1)
    with pytest.raises(ConfigError, match="was written by"):
        run_online(env, build_scheme("DCD-WMMSE", env), 3, checkpoint_path=path, seed=0)
    env = _env("SC-WMMSE", batch=2)
    with pytest.raises(ConfigError, match="another configuration"):
        run_online(env, build_scheme("SC-WMMSE", env), 3, checkpoint_path=path, seed=0)
    env = _env("SC-WMMSE", batch=1)
    resumed = run_online(env, build_scheme("SC-WMMSE", env), 4, checkpoint_path=path, seed=0)
    env = _env("SC-WMMSE", batch=1)
    reference = run_online(env, build_scheme("SC-WMMSE", env), 4, seed=0)
    assert resumed.mean("sum_rate") == reference.mean("sum_rate")


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    """A checkpoint.pt that would execute code when unpickled (weights_only=False) is refused
    with a clear error; the planted command never runs."""
    import os

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "c.pt"
    torch.save({"format": 2, "identity": Payload()}, path)
    env = _env("SC-WMMSE", batch=1)
    with pytest.raises(ConfigError, match="refused without running"):
        run_online(env, build_scheme("SC-WMMSE", env), 3, checkpoint_path=path, seed=0)
    assert not marker.exists()


# --- checkpoints that do not fit the run -----------------------------------------------------


@pytest.fixture(scope="module")
def cup_checkpoint(tmp_path_factory):
    """A real checkpoint of d3qn+cup after 3 of 6 slots (the BS experience of slot 2 pending)."""
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    env, scheme = _learned("d3qn+cup")
    run_online(env, scheme, 3, seed=0, checkpoint_path=path)
    return torch.load(path, weights_only=True)


def _tamper_shape(state):
    actor = state["scheme"]["beamforming"]["agents"]["actor"]
    key = next(k for k, v in actor.items() if v.ndim >= 2)
    shape = tuple(actor[key].shape)
    wrong = (shape[0], shape[1] + 1, *shape[2:])
    actor[key] = torch.zeros(wrong)
    shapes = re.escape(f"shape {shape} expected, got {wrong}")
    return rf"scheme\.beamforming\.agents\.actor\.{re.escape(key)} {shapes}"


def _tamper_missing_actor(state):
    del state["scheme"]["beamforming"]["agents"]["actor"]
    return r"missing key 'actor' in scheme\.beamforming\.agents"


def _tamper_missing_log(state):
    del state["log"]
    return r"missing key 'log'"


def _tamper_nu(state):  # loads without complaint, fails in the next update
    state["scheme"]["beamforming"]["agents"]["nu"] = torch.zeros(1)
    return r"scheme\.beamforming\.agents\.nu shape \(\d+, \d+\) expected, got \(1,\)"


def _tamper_env(state):
    state["env"]["serving"] = state["env"]["serving"][:, :-1]
    return r"env\.serving shape \(2, 7\) expected, got \(2, 6\)"


def _tamper_short_log(state):  # slot 2 missing from every series, next_slot still 3
    log = state["log"]
    for key, value in log.items():
        if isinstance(value, (list, torch.Tensor)):
            log[key] = value[:-1]
    return r"next_slot 3 expects a log of 3 slots \[0, 1, 2\], got 2 slots \[0, 1\]"


def _tamper_short_series(state):  # the slot list intact, one series shortened
    state["log"]["sum_rate"] = state["log"]["sum_rate"][:-1]
    return r"log sum_rate shape \(3, 2\) expected for 3 slots, got \(2, 2\)"


def _tamper_short_times(state):
    state["log"]["beamforming_time_s"] = state["log"]["beamforming_time_s"][:1]
    return r"log beamforming_time_s must hold 3 values \(one per slot\), got 1 values"


def _tamper_negative_slot(state):
    state["next_slot"] = -5
    return r"next_slot -5 outside \[0, n_slots = 6\]"


def _tamper_slot_behind_log(state):
    state["next_slot"] = 2
    return r"next_slot 2 expects a log of 2 slots \[0, 1\], got 3 slots \[0, 1, 2\]"


def _tamper_float_slot(state):
    state["next_slot"] = 3.0
    return r"next_slot must be an int, got a float"


def _tamper_nan_observation(state):
    state["tu_obs"][0, 0, 0] = float("nan")
    return r"tu_obs holds non-finite values"


def _tamper_inf_experience(state):
    state["previous"]["obs"][0, 1, 2] = float("inf")
    return r"previous\.obs holds non-finite values"


def _tamper_nan_weight(state):
    weight = state["scheme"]["beamforming"]["agents"]["actor"]["net.net.0.weight"]
    weight[0, 0, 0] = float("nan")
    return r"scheme\.beamforming\.agents\.actor\.net\.net\.0\.weight holds non-finite values"


def _tamper_bad_phase(state):
    state["env"]["phase"] = "bogus"
    return r"env\.phase is 'bogus'; a checkpoint is written between slots \('associate'\)"


def _tamper_slot_index(state):  # the channels one slot ahead of the run: a shifted horizon
    state["env"]["scenario"]["t"] += 1
    return (
        r"env\.scenario\.t is 5; next_slot 3 with \d+ slots per episode \(scenario n_slots - 1\) "
        r"expects t = 4"
    )


def _tamper_slot_past_the_horizon(state):
    state["env"]["scenario"]["t"] = 10**6
    return r"env\.scenario\.t is 1000000; next_slot 3 .* expects t = 4"


def _tamper_mid_slot_phase(state):
    state["env"]["phase"] = "beamform"
    return r"env\.phase is 'beamform'; a checkpoint is written between slots"


def _tamper_serving_index(state):
    state["env"]["serving"][0, 0] = 99
    return r"serving BS indices must lie in \[0, 6\]"  # 7 BSs


@pytest.mark.parametrize(
    "tamper",
    [
        _tamper_nan_observation,
        _tamper_inf_experience,
        _tamper_nan_weight,
        _tamper_bad_phase,
        _tamper_serving_index,
        _tamper_slot_index,
        _tamper_slot_past_the_horizon,
        _tamper_mid_slot_phase,
        _tamper_shape,
        _tamper_missing_actor,
        _tamper_missing_log,
        _tamper_nu,
        _tamper_env,
        _tamper_short_log,
        _tamper_short_series,
        _tamper_short_times,
        _tamper_negative_slot,
        _tamper_slot_behind_log,
        _tamper_float_slot,
    ],
)
def test_an_inconsistent_checkpoint_is_refused_before_anything_runs(
    tmp_path, cup_checkpoint, tamper
):
    """A checkpoint whose agent state has another shape or lacks a key, whose log is shorter
    than its next_slot, or whose next_slot is outside [0, n_slots], is refused when loaded
    with a ConfigError naming the file and the problem: no slot runs, nothing is written."""
    import copy

    state = copy.deepcopy(cup_checkpoint)
    problem = tamper(state)
    path = tmp_path / "checkpoint.pt"
    torch.save(state, path)
    written = path.read_bytes()
    env, scheme = _learned("d3qn+cup")
    with pytest.raises(ConfigError) as error:
        run_online(env, scheme, 6, seed=0, checkpoint_path=path, checkpoint_every=1)
    message = str(error.value)
    assert f"checkpoint {str(path)!r} is inconsistent" in message
    assert re.search(problem, message), message
    assert message.endswith("delete it to restart the job")
    assert path.read_bytes() == written and sorted(tmp_path.iterdir()) == [path]


def test_the_untampered_checkpoint_resumes(tmp_path, cup_checkpoint):
    """The fixture's checkpoint itself passes the checks (and gives the uninterrupted run)."""
    path = tmp_path / "checkpoint.pt"
    torch.save(cup_checkpoint, path)
    env, scheme = _learned("d3qn+cup")
    resumed = run_online(env, scheme, 6, seed=0, checkpoint_path=path)
    env, scheme = _learned("d3qn+cup")
    assert _comparable(resumed) == _comparable(run_online(env, scheme, 6, seed=0))


def test_a_checkpoint_logged_every_few_slots_resumes_and_is_checked(tmp_path):
    """With evaluate_every = 2, next_slot 5 goes with the log of slots 0, 2, 4."""
    path = tmp_path / "checkpoint.pt"
    env = _env("SC-WMMSE", batch=1)
    run_online(
        env, build_scheme("SC-WMMSE", env), 5, seed=0, evaluate_every=2, checkpoint_path=path
    )
    state = torch.load(path, weights_only=True)
    assert (state["next_slot"], state["log"]["slots"]) == (5, [0, 2, 4])
    env = _env("SC-WMMSE", batch=1)
    resumed = run_online(
        env, build_scheme("SC-WMMSE", env), 8, seed=0, evaluate_every=2, checkpoint_path=path
    )
    env = _env("SC-WMMSE", batch=1)
    reference = run_online(env, build_scheme("SC-WMMSE", env), 8, seed=0, evaluate_every=2)
    assert resumed.slots == [0, 2, 4, 6] and resumed.mean("sum_rate") == reference.mean("sum_rate")
    state["next_slot"] = 4  # slots 0, 2 expected
    torch.save(state, path)
    env = _env("SC-WMMSE", batch=1)
    with pytest.raises(ConfigError, match=r"next_slot 4 expects a log of 2 slots \[0, 2\], got 3"):
        run_online(env, build_scheme("SC-WMMSE", env), 8, evaluate_every=2, checkpoint_path=path)


def test_a_checkpoint_pickled_with_another_protocol_is_refused_without_a_warning(tmp_path):
    """A crafted file of pickle protocol 4 is refused with the clean message alone (torch's
    'Detected pickle protocol' UserWarning is not printed before it)."""
    import os
    import pickle
    import warnings

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"format": 2, "x": Payload()}, protocol=4))
    env = _env("SC-WMMSE", batch=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match="refused without running"):
            run_online(env, build_scheme("SC-WMMSE", env), 3, checkpoint_path=path, seed=0)
    assert not marker.exists()


def test_env_state_dict_round_trips_and_continues_identically():
    env = CatnEnv(_scenario(), CatnEnvConfig(k_out=1), batch_size=2)
    env.reset(seed=4)
    generator = torch.Generator().manual_seed(0)

    def play(e, slots):
        outs = []
        for _ in range(slots):
            e.associate(torch.randint(0, e.N, (e.B, e.K), generator=generator))
            outs.append(e.beamform(torch.rand(e.B, e.N, e.action_dim, generator=generator)))
        return outs

    play(env, 3)
    import io

    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    twin = CatnEnv(_scenario(), CatnEnvConfig(k_out=1), batch_size=2)
    twin.load_state_dict(state)
    g_state = generator.get_state()
    a = play(env, 3)
    generator.set_state(g_state)
    b = play(twin, 3)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.tu_obs, y.tu_obs) and torch.equal(x.bs_reward, y.bs_reward)
    assert twin.ledger.per_agent_per_slot() == env.ledger.per_agent_per_slot()
    other = CatnEnv(_scenario(), CatnEnvConfig(k_out=1, b_in=3), batch_size=2)
    with pytest.raises(ConfigError, match="another env configuration"):
        other.load_state_dict(state)


def test_a_scheme_registered_in_a_test_runs_through_run_and_solve(tmp_path, capsys):
    """Adding a scheme is one registration: a maximum-ratio beamformer and the pair SC-MRT
    run through `skyshare solve` and `skyshare run catn-fig4` without touching another file."""
    import json

    from skyshare.beamforming import mrt_equal_power
    from skyshare.cli import main
    from skyshare.schemes.base import Stateless
    from skyshare.schemes.catn import BeamformDecision

    class FullPowerMrt(Stateless):
        def decide(self, env, obs, *, explore):
            return BeamformDecision(w=mrt_equal_power(env.state.H, env.serving, p_total=env.p_max))

    BEAMFORMERS.register(
        "mrt-test", lambda env, options: FullPowerMrt(), learns=False,
        env={"bs_information": "global_csi"},
    )  # fmt: skip
    SCHEMES.register("SC-MRT-TEST", ("sc", "mrt-test"))
    tiny = tmp_path / "tiny.yaml"  # on top of the quick preset
    tiny.write_text("n_slots: 6\nscenario: {n_tu: 14, ura_rows: 2, ura_cols: 2}\n")
    try:
        report = tmp_path / "solve.json"
        argv = ["solve", "catn", "--beamforming", "mrt-test", "--association", "sc"]
        assert main([*argv, "--preset", "quick", "--slots", "3", "--json", str(report)]) == 0
        solved = json.loads(report.read_text())["summary"]
        # full-power MRT ignores I_max: the seed's motivation, interference far above the limit
        assert solved["max AU interference / I_max"] > 1.0
        out = tmp_path / "run"
        argv = ["run", "catn-fig4", "--config", str(tiny), "--out", str(out)]
        assert main([*argv, "--schemes", "SC-MRT-TEST", "SC-WMMSE"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        by_scheme = {r["scheme"]: r for r in summary["results"].values()}
        assert by_scheme["SC-MRT-TEST"]["slots"] == 6
        assert max(by_scheme["SC-MRT-TEST"]["mean_rho_over_imax_last"]) > 1.0
        assert max(by_scheme["SC-WMMSE"]["mean_rho_over_imax_last"]) <= 1.0 + 1e-3
        assert (out / "fig4.png").exists()
    finally:
        SCHEMES.unregister("SC-MRT-TEST")
        BEAMFORMERS.unregister("mrt-test")
    with pytest.raises(SystemExit) as exit_info:  # gone again: argparse refuses the choice
        main(["solve", "catn", "--beamforming", "mrt-test"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
