"""Decision and training time of the seed-000 learners (D3QN TU agents, CUP / PPO BS agents).

Paper network (L = 2 AUs, N = 7 BSs, K = 21 TUs, M = 16; BS observation (8) of 3996 values, TU
observation (14) of 25), paper hyper-parameters (§VI): BS networks 512-128-64 for the actor,
reward and cost critics (3 x 14.9 M parameters), B_m^BS = 50 slots, minibatches of 10 slots, up
to 20 epochs per step with the 0.02 KL early stops; D3QN 64-32, batch 200, memory 2000.

Three tables in one section:

(a) per-slot decision time of all 28 agents next to the seed's Table I (which times "the user
    association of all TUs and the beamforming vectors of all BSs of one time slot"): the
    association (greedy D3QN, strongest channel, or DCD), the BS policy (Beta mean, no critic)
    and the beamformers (9) built from the actions; B = 1 and amortised over B = 64; next to
    each scheme, the same with the compact BS policy (:class:`~skyshare.rl.common.compact.
    CompactPolicy`, sparse first layer, fp32 and int8 rows; the BS policies timed interleaved);
(b) training: one CUP update (Algorithm 3) on a real 50-slot trajectory, its gradient steps and
    the Adam memory-traffic floor; one D3QN step; per-slot training time amortised as in
    Algorithm 4 (a D3QN step every slot, a CUP update every 50 slots);
(c) the wall time of the full 6000-slot D3QN-CUP training run through
    :func:`skyshare.schemes.catn_online.run_online`. Only with ``SKYSHARE_BENCH_FULL=1``;
    otherwise a 600-slot run (``SKYSHARE_BENCH_RL_SLOTS`` overrides) is timed and x10 reported
    as an extrapolation, labelled as such.

``SKYSHARE_BENCH_RL_PARTS`` selects parts, e.g. ``a`` for the decision rows alone (a minute;
the whole section takes about half an hour on the 2-core CPU); default ``abc``. The section
written then holds only the selected parts (``benchmarks.run`` replaces a section whole).
"""

from __future__ import annotations

import copy
import itertools
import os
import time
from collections.abc import Callable

import torch

from benchmarks.common import Section, fmt, time_call
from skyshare import metrics
from skyshare.envs import CatnEnv, CatnEnvConfig
from skyshare.rl.common.buffers import Trajectory, TrajectoryCollector
from skyshare.rl.common.compact import CompactPolicy
from skyshare.rl.common.networks import GroupLinear
from skyshare.rl.common.optim import LowRankGrad
from skyshare.rl.cup import CupAgents, CupConfig
from skyshare.rl.d3qn import D3QNAgents, D3QNConfig
from skyshare.rl.ppo_penalty import PpoPenaltyAgents, PpoPenaltyConfig
from skyshare.scenarios import CatnScenario
from skyshare.schemes.catn import bs_obs_baseline, build_scheme
from skyshare.schemes.catn_online import run_online
from skyshare.solvers.association_dcd import associate_dcd

PAPER_TABLE1_MS = {"D3QN-CUP": 82.64, "DCD-CUP": 326.80, "SC-CUP": 63.48, "D3QN-PPO": 78.72}
FULL_RUN_SLOTS = 6000  # seed 000 §VI: the online training run of Figs. 5-8
SHORT_RUN_SLOTS = 600


def _env(batch: int, n_slots: int = FULL_RUN_SLOTS, seed: int = 0, device: str = "cpu") -> CatnEnv:
    scenario = CatnScenario.config_from("paper", overrides={"n_slots": n_slots + 2, "seed": seed})
    # the D3QN agents learn on the env's normalised TU observations (14)
    config = CatnEnvConfig(
        tu_information="d3qn", bs_information="exchange", tu_observation="normalized"
    )
    return CatnEnv(scenario, config, batch_size=batch, device=device)


def _tu_agents(env: CatnEnv, seed: int = 0) -> D3QNAgents:
    return D3QNAgents(env.tu_obs_dim, env.N, env.K, D3QNConfig(seed=seed), device=env.device)


def _cup_agents(env: CatnEnv, seed: int = 0) -> CupAgents:
    dims = (env.bs_obs_dim, env.action_dim, env.N, env.L)
    return CupAgents(*dims, CupConfig(seed=seed), device=env.device)


def _synchronized(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``fn`` followed by a wait for the GPU's queue (CUDA runs asynchronously)."""
    if device.type != "cuda":
        return fn
    return lambda: (fn(), torch.cuda.synchronize(device))


def _trajectory(env: CatnEnv, agents: CupAgents, seed: int = 0) -> Trajectory:
    """50 slots of the paper network with random association and the agents' sampled actions."""
    g = torch.Generator().manual_seed(seed)
    env.reset(seed=seed)
    collector = TrajectoryCollector(agents.config.collector_size)
    previous = None
    while True:
        obs = env.associate(torch.randint(0, env.N, (env.B, env.K), generator=g))
        if previous is not None:
            collector.add(*previous, obs)
            if collector.full:
                return collector.pop()
        actions, _, _ = agents.act(obs)
        outcome = env.beamform(actions)
        previous = (obs, actions, outcome.bs_reward, outcome.cost)


# ---------------------------------------------------------------------------------------------
# (a) decisions
# ---------------------------------------------------------------------------------------------


def _interleaved(
    fns: dict[str, Callable[[], object]], rounds: int, min_time_s: float
) -> dict[str, float]:
    """Median seconds per call of each function, timed in turn, round after round (old and
    new side by side, so a busy machine slows them alike)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, repeats=1, min_time_s=min_time_s / rounds))
    return {name: sorted(values)[len(values) // 2] for name, values in samples.items()}


def _decision_rows(section: Section, batch: int, device: str = "cpu") -> None:
    env = _env(batch, device=device)
    tu_obs = env.reset(seed=0)
    tu_agents = _tu_agents(env)
    cup = _cup_agents(env)
    dims = (env.bs_obs_dim, env.action_dim, env.N, env.L)
    ppo = PpoPenaltyAgents(*dims, PpoPenaltyConfig(), device=env.device)
    H = env.state.H
    associations = {
        "d3qn": lambda: tu_agents.act(tu_obs, explore=False),
        "sc": lambda: metrics.strongest_transmitter(H),
        "dcd": lambda: associate_dcd(H, p_max=env.p_max, n_antennas=env.M).serving,
    }
    bs_obs = env.associate(associations["sc"]())  # turn 1: BS observations (8)
    repeats, min_time = (5, 0.5) if batch == 1 else (3, 1.0)

    def timed(fn: Callable[[], object], min_time_s: float = min_time) -> float:
        return time_call(_synchronized(fn, env.device), repeats=repeats, min_time_s=min_time_s)

    # the BS policies decide on a cycle of distinct slots' observations: the rows a compact
    # policy reads change from slot to slot, as online (one repeated observation would keep
    # its few MB of rows in the cache)
    g = torch.Generator(device=env.device).manual_seed(0)
    observations = [bs_obs]
    for _ in range(63 if batch == 1 else 7):
        env.beamform(torch.rand(env.B, env.N, env.action_dim, generator=g, device=env.device))
        observations.append(env.associate(metrics.strongest_transmitter(env.state.H)))
    cycle = itertools.cycle(observations)
    policies: dict[str, Callable[[], object]] = {}
    weights = ("fp32", "int8") if env.device.type == "cpu" else ("fp32",)  # int8: fbgemm
    for name, agents in (("cup", cup), ("ppo", ppo)):
        policies[name] = lambda a=agents: a.act(next(cycle), deterministic=True, with_values=False)
        for w in weights:
            compact = CompactPolicy(agents, weights=w, baseline=bs_obs_baseline(env))
            policies[f"{name} compact {w}"] = lambda c=compact: c.act(next(cycle))
    bs_seconds = _interleaved(
        {name: _synchronized(fn, env.device) for name, fn in policies.items()},
        rounds=repeats,
        min_time_s=2 * min_time * len(policies),
    )
    actions, _, _ = cup.act(bs_obs, deterministic=True, with_values=False)
    beam_seconds = timed(lambda: env._beamformers(actions), 0.2)
    critic_seconds = timed(lambda: cup.act(bs_obs))
    assoc_seconds = {name: timed(fn) for name, fn in associations.items()}
    for scheme, (assoc, learner) in {
        "D3QN-CUP": ("d3qn", "cup"),
        "DCD-CUP": ("dcd", "cup"),
        "SC-CUP": ("sc", "cup"),
        "D3QN-PPO": ("d3qn", "ppo"),
    }.items():
        for mode in ("", *(f" compact {w}" for w in weights)):
            policy_s = bs_seconds[learner + mode]
            total = assoc_seconds[assoc] + policy_s + beam_seconds
            per_slot_ms = total / batch * 1e3
            speedup = f"; BS policy {bs_seconds[learner] / policy_s:.1f}x fp32's" if mode else ""
            section.rows.append(
                [
                    "(a) decision",
                    f"{scheme}{',' if mode else ''}{mode}",
                    str(batch),
                    f"{fmt(per_slot_ms)} (assoc {fmt(assoc_seconds[assoc] / batch * 1e3)}, "
                    f"BS policy {fmt(policy_s / batch * 1e3)}, "
                    f"beams {fmt(beam_seconds / batch * 1e3)}{speedup})",
                    fmt(PAPER_TABLE1_MS[scheme]),
                    f"{PAPER_TABLE1_MS[scheme] / per_slot_ms:.0f}x",
                ]
            )
    section.notes.append(
        f"B = {batch}: the CUP act() with the reward critic's values (actor + critic, Beta "
        f"sample) takes {fmt(critic_seconds / batch * 1e3)} ms per slot; the decision rows and "
        "run_online use the policy alone (the critic is a training quantity)."
    )


# ---------------------------------------------------------------------------------------------
# (b) training
# ---------------------------------------------------------------------------------------------


def _adam_floor_ms(agents: CupAgents) -> tuple[float, float, float]:
    """Step-1 Adam (3 networks, all 7 agents) on random gradients, the first layers' given as
    rank-10 factors (what a minibatch of 10 slots leaves, ``LowRankGrad``): ms, GB moved,
    GB/s."""
    optimizers = (
        agents.actor_optimizer,
        agents.reward_critic_optimizer,
        agents.cost_critic_optimizer,
    )
    params = [p for o in optimizers for g in o.param_groups for p in g["params"]]
    deferred = [
        m.weight
        for o in (agents.actor, agents.reward_critic, agents.cost_critic)
        for m in o.modules()
        if isinstance(m, GroupLinear) and m.deferred_weight_grad
    ]
    for p in params:
        if not any(p is q for q in deferred):
            p.grad = torch.randn_like(p) * 1e-3
    rows = 10

    def step() -> None:
        for p in deferred:  # (A, out, in) stored: factors dy (A, 10, out) and x (A, 10, in)
            stored = p.transpose(1, 2)
            p.low_rank_grad = LowRankGrad(
                torch.randn(stored.shape[0], rows, stored.shape[1]) * 1e-3,
                torch.randn(stored.shape[0], rows, stored.shape[2]),
            )
        for o in optimizers:
            o.step(active)

    active = torch.ones(agents.n_agents, dtype=torch.bool)
    seconds = time_call(step, repeats=3, min_time_s=1.0)
    n_deferred = sum(p.numel() for p in deferred)
    n_dense = sum(p.numel() for p in params) - n_deferred
    # dense: read p, g, m, v, write p, m, v; from factors: no gradient read (float32)
    gigabytes = (7 * 4 * n_dense + 6 * 4 * n_deferred) / 1e9
    return seconds * 1e3, gigabytes, gigabytes / seconds


def _update_row(threads: int, what: str, seconds: float, stats: dict) -> list[str]:
    """A (b) row: an update's time, its gradient steps and each agent's epochs."""
    improve, project = stats["epochs_improve"], stats["epochs_project"]
    steps = 5 * (int(improve.max()) + int(project.max()))
    return [
        f"(b) training, {threads} thread(s)",
        what,
        "1",
        f"{fmt(seconds * 1e3)} ({steps} gradient steps; epochs per agent: step 1 "
        f"{improve.tolist()}, step 2 {project.tolist()})",
        "-",
        "-",
    ]


def _unconstrained_update_rows(
    section: Section, threads: int, env: CatnEnv, trajectory: Trajectory, start_state: dict
) -> None:
    """The update of the later part of a run: every AU constraint met (the trajectory's costs
    made non-positive) and nu = 0, so loss (7) is the KL to theta'' alone; with the literal
    loop of Algorithm 3 (every step-2 epoch run) and with ``skip_unconstrained_projection``."""
    met = copy.copy(trajectory)
    met.costs = -trajectory.costs.abs()
    state = copy.deepcopy(start_state)
    state["nu"] = torch.zeros_like(state["nu"])
    dims = (env.bs_obs_dim, env.action_dim, env.N, env.L)
    for skip, what in (
        (False, "CUP update, nu = 0 (later updates), literal step 2"),
        (True, "CUP update, nu = 0 (later updates), step 2 skipped (default)"),
    ):
        agents = CupAgents(*dims, CupConfig(seed=0, skip_unconstrained_projection=skip))
        section.rows.append(_update_row(threads, what, *_timed_update(agents, state, met)))


def _timed_update(agents: CupAgents, state: dict, trajectory: Trajectory) -> tuple[float, dict]:
    """Median seconds of three updates on ``trajectory``, each from ``state``; the stats."""
    seconds, stats = [], {}
    for _ in range(3):
        agents.load_state_dict(copy.deepcopy(state))
        start = time.perf_counter()
        stats = agents.update(trajectory)
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[1], stats


def _training_rows(section: Section, threads: int) -> tuple[float, float]:
    """Rows of (b) at ``threads`` intra-op threads; returns (CUP update s, D3QN step s)."""
    torch.set_num_threads(threads)
    env = _env(1)
    agents = _cup_agents(env)
    trajectory = _trajectory(env, agents)
    start_state = copy.deepcopy(agents.state_dict())
    update_s, stats = _timed_update(agents, start_state, trajectory)
    section.rows.append(_update_row(threads, "CUP update (Algorithm 3, 50 slots)", update_s, stats))
    _unconstrained_update_rows(section, threads, env, trajectory, start_state)

    x = agents.normalizer(torch.randn(agents.n_agents, 10, agents.obs_dim))
    acts = torch.rand(agents.n_agents, 10, agents.act_dim).clamp(0.01, 0.99)
    step1 = (agents.actor_optimizer, agents.reward_critic_optimizer, agents.cost_critic_optimizer)
    active = torch.ones(agents.n_agents, dtype=torch.bool)

    def gradient_step(optimizers=step1, critics=True) -> None:
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss = agents.actor(x).log_prob(acts).sum()
        if critics:
            loss = loss + agents.reward_critic(x).sum() + agents.cost_critic(x).sum()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step(active)

    step1_ms = time_call(gradient_step, repeats=3, min_time_s=1.0) * 1e3
    step2_ms = (
        time_call(
            lambda: gradient_step((agents.actor_optimizer,), critics=False),
            repeats=3,
            min_time_s=1.0,
        )
        * 1e3
    )
    adam_ms, adam_gb, adam_rate = _adam_floor_ms(agents)
    section.rows.append(
        [
            f"(b) training, {threads} thread(s)",
            "CUP gradient step (7 agents, minibatch 10 slots)",
            "1",
            f"step 1 (3 networks): {fmt(step1_ms)}; step 2 (actor): {fmt(step2_ms)}; of which "
            f"Adam, 3 networks: {fmt(adam_ms)} ({adam_gb:.2f} GB moved, {adam_rate:.1f} GB/s)",
            "-",
            "-",
        ]
    )

    tu_agents = _tu_agents(env)
    g = torch.Generator().manual_seed(1)
    obs = torch.rand(1, env.K, env.tu_obs_dim, generator=g)
    for _ in range(tu_agents.config.starts):
        tu_agents.observe(
            obs,
            torch.randint(0, env.N, (1, env.K), generator=g),
            torch.rand(1, env.K, generator=g),
            obs,
        )
    d3qn_s = time_call(tu_agents.update, repeats=5, min_time_s=0.5)
    per_slot_ms = (d3qn_s + update_s / agents.config.collector_size) * 1e3
    section.rows.append(
        [
            f"(b) training, {threads} thread(s)",
            "per slot: D3QN step (21 agents, batch 200) + CUP update / 50",
            "1",
            f"{fmt(per_slot_ms)} (D3QN {fmt(d3qn_s * 1e3)} + CUP {fmt(update_s / 50 * 1e3)})",
            "-",
            "-",
        ]
    )
    return update_s, d3qn_s


# ---------------------------------------------------------------------------------------------
# (c) the full training run
# ---------------------------------------------------------------------------------------------


def full_training_run(
    n_slots: int = FULL_RUN_SLOTS, seed: int = 0, device: str = "cpu"
) -> tuple[float, int]:
    """Wall seconds of a D3QN-CUP training run of ``n_slots`` slots with the paper's settings
    (through run_online, B = 1, on ``device``), and the number of CUP updates it made."""
    env = _env(1, n_slots=n_slots, seed=seed, device=device)
    scheme = build_scheme("D3QN-CUP", env, {"seed": seed})  # §VI networks and defaults
    start = time.perf_counter()
    log = run_online(env, scheme, n_slots, seed=seed)
    return time.perf_counter() - start, log.updates


def _full_run_row(section: Section) -> None:
    full = os.environ.get("SKYSHARE_BENCH_FULL") == "1"
    n_slots = FULL_RUN_SLOTS if full else int(os.environ.get("SKYSHARE_BENCH_RL_SLOTS", 0) or 600)
    seconds, updates = full_training_run(n_slots)
    scale = FULL_RUN_SLOTS / n_slots
    if full:
        value = f"{fmt(seconds)} s = {seconds / 60:.1f} min measured ({updates} CUP updates)"
    else:
        value = (
            f"EXTRAPOLATED x{scale:g} from a measured {n_slots}-slot run "
            f"({fmt(seconds)} s, {updates} CUP updates): {fmt(seconds * scale)} s = "
            f"{seconds * scale / 60:.1f} min (set SKYSHARE_BENCH_FULL=1 to measure)"
        )
    section.rows.append(
        [
            f"(c) full run, {torch.get_num_threads()} thread(s)",
            f"D3QN-CUP training, {FULL_RUN_SLOTS} slots (run_online)",
            "1",
            value,
            "-",
            "target < 300 s",
        ]
    )


def run() -> Section:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small per-slot work: one thread is faster and steadier
    section = Section(
        key="rl",
        title="Seed-000 learners: decision and training time (paper network, Table I)",
        description=(
            "CATN paper network (L=2, N=7, K=21, M=16), paper hyper-parameters (§VI), float32 "
            "on the CPU. (a) decision time of all 28 agents per slot (association + BS policy + "
            "beamformers (9)), amortised over B; (b) training cost (Algorithm 3 update on a "
            "real 50-slot trajectory, gradient steps, Adam floor; D3QN step); (c) wall time "
            "of the 6000-slot D3QN-CUP training run through run_online."
        ),
        columns=["part", "what", "B", "ms (per env-slot where amortised)", "Table I ms", "x"],
    )
    parts = os.environ.get("SKYSHARE_BENCH_RL_PARTS", "abc")
    try:
        if "a" in parts:
            for batch in (1, 64):
                _decision_rows(section, batch)
        if "b" in parts:
            for n_threads in (1, 2):
                _training_rows(section, n_threads)
        if "c" in parts:
            for n_threads in sorted({1, os.cpu_count() or 1}):  # jobs side by side; alone
                torch.set_num_threads(n_threads)
                _full_run_row(section)
    finally:
        torch.set_num_threads(threads)
    section.notes += [
        "Target (issue 5): >= 50x faster than Table I per slot; full 6000-slot D3QN-CUP run "
        "< 5 min. (c) with 1 thread is a job beside others (`--workers`, Ray), with every core "
        "a job run alone (`skyshare run`'s default).",
        "Table I was measured on an i7-11700K + RTX 2080 Ti (seed 000 §VI); ours on the CPU "
        "below. A CUP gradient step is bounded by memory traffic: Adam reads p, m, v and "
        "writes p, m, v for every parameter, and reads the gradient of all but the 3996 x 512 "
        "first layers, whose gradient is kept as its rank-10 factors and formed chunk by chunk "
        "in cache (LowRankGrad, docs/rl/cup.md): 1.08 GB per step-1 step (1.25 GB with dense "
        "first-layer gradients); each forward reads the 3 x 57 MB first-layer weights. The "
        "'Adam, 3 networks' figure includes the first layers' chunk GEMMs.",
        "Rows 'nu = 0': the same update with nu = 0 and the trajectory's costs made "
        "non-positive (every AU constraint met), as in the later updates of a run (nu reaches "
        "0 near update 34 of 119): loss (7) is then the KL to theta'' alone and the literal "
        "step 2 runs all 20 epochs (100 actor steps); CupConfig.skip_unconstrained_projection "
        "(the default) skips it (docs/rl/cup.md, 'Step 2 when no constraint is active').",
        "First layers with more than one row: x W on the transposed view on this AMD CPU, "
        "W^T x^T on Intel CPUs (networks.weight_left_product; MKL's faster form differs by "
        "vendor).",
        "Tried earlier for B = 1 (the 7 x 3996 x 512 first layer alone): torch.sparse.addmm on "
        "the non-zero inputs 3.7 ms and gathers 4.3-8.8 ms against 5.8 ms dense, bf16/fp16 "
        "weights 7.6-7.9 ms; the compact rows' embedding_bag over the changed inputs (below) is "
        "what pays.",
        "Compact rows (docs/rl/compact.md): the BS policy through CompactPolicy, the normaliser's "
        "zero-input value folded into the first layer's bias and the rows of the changed inputs "
        "summed by embedding_bag (fp32: exact up to summation order; int8: row-wise int8 "
        "first layer, fbgemm). The policies are untrained (seeded); the compact time depends on "
        "the observation's non-zeros, not on the weights. Every BS-policy call decides on the "
        "next of 64 (B = 1) or 8 (B = 64) distinct slots' observations (strongest-channel "
        "association, random actions), so the rows read change as online. Association and "
        "beams as in the fp32 row of the same scheme.",
    ]
    return section
