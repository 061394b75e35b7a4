"""Seed 001 TN-NTN game: env throughput, what bounds it, and decision times per scheme.

Env rows: the decomposed game at each paper setting (F, K_max) = (80, 10), (160, 20), (320,
30), B parallel environments, uniform random allowed actions (drawn by the env), all M turns of
a frame (observations, masks, action checks, rates (3), rewards, costs) and the scenario's
frame step (new Gauss-Markov fading for every active user slot: N N F complex values per slot,
about half of the N K_max N F = 86,400 links per environment at (320, 30), since about half of
the K_max slots of a BS hold a user in training mode), with ``reuse_observations=True`` (as the
experiments build the env); one torch thread, and at (320, 30) also two, and one torch thread
with ``draw_ahead=True`` at B = 64 and 128 (the next frame's fading drawn in the scenario's
worker thread while the frame is played: two cores, no intra-op threads competing with it).
"fading draw" times the scenario's complex Gaussian draw for all N K_max N F links of one
frame (complex_normal_planes into a reused buffer: 2 N K_max N F normals, scaled inside the
draw, the real parts from one generator and the imaginary parts from a second, as the
scenario draws them: one after the other on one thread, at the same time on two). torch's CPU
normal_ is serial per generator (about 290 M normals/s on one thread here), so the two
streams are how the draw uses two cores. At large B the env is bound by this draw (on its
active half of the links) and by the passes over the active links that follow it each frame:
the AR(1) update (h(t) of the rows kept from the last frame, updated and written back into the
planes), |H|^2 of the active rows (three passes), the gain features (log1p of the active rows,
written into a reused buffer), each turn's copies of its gain block into the global state and
the observations, and the gather of the served users' gains per turn; with draw_ahead the draw
leaves the main thread and these passes bound it.
Decision rows: wall time of all agents' decisions of one frame (all M turns) at B = 1 and
B = 64 for the untrained learners (networks of the paper's size; training does not change
their cost) and the reference rules, at (160, 20); one thread.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from benchmarks.common import Section, fmt, time_call
from skyshare.channels.fading import complex_normal_planes
from skyshare.envs.tn_ntn import TnNtnEnv
from skyshare.scenarios.tn_ntn import TnNtnScenario
from skyshare.schemes.tn_ntn import TN_NTN_SCHEMES, TnNtnSchemeOptions, scheme_formulation

SETTINGS = ((80, 10), (160, 20), (320, 30))
TWO_THREADS = (320, 30)  # the setting also measured with two torch threads


def _env(
    F: int, K: int, B: int, formulation: str = "decomposed", draw_ahead: bool = False
) -> TnNtnEnv:
    config = TnNtnScenario.config_from("paper", overrides={"n_subchannels": F, "k_max": K})
    scenario = TnNtnScenario(config, batch_size=B, draw_ahead=draw_ahead)
    return TnNtnEnv(scenario, formulation=formulation, reuse_observations=True)


def _frame(env: TnNtnEnv, generator: torch.Generator) -> None:
    if env.done:
        env.reset(None)
    for _ in range(env.n_turns):
        env.observe()
        env.act(env.random_actions(generator))


def _env_rows(section: Section, B: int = 64) -> None:
    pool = ThreadPoolExecutor(max_workers=1)  # the draw's second stream on two threads
    try:
        for F, K in SETTINGS:
            for threads in (1, 2) if (F, K) == TWO_THREADS else (1,):
                torch.set_num_threads(threads)
                _env_setting_rows(section, F, K, B, threads, pool)
    finally:
        pool.shutdown()
        torch.set_num_threads(1)
    F, K = TWO_THREADS
    for batch in (B, 2 * B):  # one torch thread, the next frame's draw in the worker
        env = _env(F, K, batch, draw_ahead=True)
        env.reset(0)
        generator = torch.Generator().manual_seed(0)
        seconds = time_call(
            lambda env=env, generator=generator: _frame(env, generator), repeats=7, min_time_s=2.0
        )
        section.rows.append([f"F={F}, K_max={K} (M={env.n_turns})",
                             "env frame, 1 thread + draw_ahead worker (2 cores)", str(batch),
                             fmt(seconds * 1e3) + " ms", f"{batch / seconds:,.0f}"])  # fmt: skip


def _env_setting_rows(
    section: Section, F: int, K: int, B: int, threads: int, pool: ThreadPoolExecutor
) -> None:
    env = _env(F, K, B)
    env.reset(0)
    generator = torch.Generator().manual_seed(0)
    seconds = time_call(lambda: _frame(env, generator), repeats=7, min_time_s=2.0)
    shape = (B, env.n_users, env.n_bs, F)
    buffer = torch.empty(2, *shape)
    std = math.sqrt((1 - env.scenario.alpha**2) / 2)
    imag = torch.Generator().manual_seed(1)
    executor = pool if threads > 1 else None
    draw = time_call(
        lambda: complex_normal_planes(
            shape, generator, std=std, out=buffer, imag_generator=imag, executor=executor
        ),
        repeats=3,
    )
    label = f"F={F}, K_max={K} (M={env.n_turns})"
    on = f"{threads} thread" + ("s" if threads > 1 else "")
    section.rows.append([label, f"env frame, random actions, {on}", str(B),
                         fmt(seconds * 1e3) + " ms", f"{B / seconds:,.0f}"])  # fmt: skip
    section.rows.append([label, f"fading draw only (all links), {on}", str(B),
                         fmt(draw * 1e3) + " ms", f"{B / draw:,.0f}"])  # fmt: skip


def _decide_frame(env: TnNtnEnv, scheme) -> float:
    """Play one frame with ``scheme``; the seconds spent in its decisions."""
    spent = 0.0
    for _ in range(env.n_turns):
        turn = env.observe()
        start = time.perf_counter()
        actions = scheme.decide(env, turn)
        spent += time.perf_counter() - start
        env.act(actions)
    return spent


def _decision_rows(section: Section, F: int = 160, K: int = 20) -> None:
    for name in TN_NTN_SCHEMES:
        for B in (1, 64):
            if name == "greedy-BR" and B > 1:
                continue  # seconds per frame at B = 64; the B = 1 row says enough
            env = _env(F, K, B, scheme_formulation(name))
            scheme = TN_NTN_SCHEMES.build(name, env, TnNtnSchemeOptions(seed=0))
            env.reset(0)
            _decide_frame(env, scheme)  # warm-up (first calls allocate)
            spent = _decide_frame(env, scheme)
            label = f"F={F}, K_max={K}: {name}"
            section.rows.append([label, "decisions of one frame", str(B),
                                 fmt(spent * 1e3) + " ms", f"{B / spent:,.0f}"])  # fmt: skip


def run() -> Section:
    torch.set_num_threads(1)
    section = Section(
        "tn_ntn",
        "Seed 001 TN-NTN game: env throughput and decision times (tn_ntn)",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        ["setting", "what", "B", "time per frame", "env-frames / s"],
    )
    _env_rows(section)
    _decision_rows(section)
    section.notes.append(
        "env-frames / s = B / time per frame (for the decision rows: frames decided per second)"
    )
    return section
