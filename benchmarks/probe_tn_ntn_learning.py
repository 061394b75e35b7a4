"""Learning probes on the seed 001 TN-NTN game: train one learner configuration per argument
and play the trained policy both ways (sampled and greedy) on the same fresh frames.

Not part of ``benchmarks.run`` (minutes per configuration); the tables of docs/rl/mappo.md
were made with it, e.g.::

    python -m benchmarks.probe_tn_ntn_learning --frames 3000 \\
        '{}' '{"lambda_lr": 1.0, "lambda_average": "active"}'

Each positional argument is a JSON object of ``MappoConfig`` overrides on top of ``--base``
(default: the quick presets' learning rates). One thread, seed 0, B = 8 environments.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from skyshare.envs.tn_ntn import TnNtnEnv
from skyshare.rl.mappo import MappoAgents, MappoConfig
from skyshare.scenarios.tn_ntn import TnNtnScenario
from skyshare.schemes.tn_ntn import TN_NTN_SCHEMES, TnNtnSchemeOptions, run_tn_ntn


def _chunks(values: list[float], parts: int = 6) -> list[float]:
    """Means of ``parts`` consecutive chunks of equal size (the remainder joins the last)."""
    k = max(1, len(values) // parts)
    starts = list(range(0, len(values), k))[:parts]
    ends = [*starts[1:], len(values)]
    return [round(sum(values[a:b]) / (b - a), 2) for a, b in zip(starts, ends, strict=True)]


def _played(name: str, run) -> str:
    return (
        f"  {name}: reward {float(run.reward.mean()):.2f}, cost {float(run.cost.mean()):.2f}, "
        f"throughput {float(run.throughput.mean()) / 1e6:.1f} Mbit/s, "
        f"misses {float(run.qos_miss.mean()):.2f}"
    )


class _Trained:
    """Trained agents as a scheme: sampled or greedy decisions, no statistics update."""

    learns = False

    def __init__(self, agents: MappoAgents, greedy: bool) -> None:
        self.agents, self.greedy = agents, greedy

    def decide(self, env: TnNtnEnv, turn) -> torch.Tensor:
        return self.agents.act(turn, deterministic=self.greedy, update_statistics=False)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="JSON MappoConfig overrides, one per run")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--subchannels", type=int, default=80)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--formulation", default="decomposed", choices=["decomposed", "per_bs"])
    parser.add_argument("--base", default='{"lr_actor": 3e-4, "lr_critic": 1e-3}')
    parser.add_argument("--play-frames", type=int, default=100)
    parser.add_argument("--references", action="store_true", help="also play random, greedy-BR")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = TnNtnScenario.config_from(
        "paper", overrides={"n_subchannels": args.subchannels, "k_max": args.k_max}
    )

    def env() -> TnNtnEnv:
        return TnNtnEnv(TnNtnScenario(config, batch_size=8), formulation=args.formulation)

    if args.references:
        for name in ("random", "greedy-BR"):
            e = env()
            rule = TN_NTN_SCHEMES.build(name, e, TnNtnSchemeOptions(seed=0))
            print(_played(name, run_tn_ntn(e, rule, args.play_frames, seed=0)), flush=True)
    for overrides in args.configs:
        learner = {**json.loads(args.base), **json.loads(overrides)}
        train_env = env()
        agents = MappoAgents.for_env(train_env, MappoConfig(seed=0, **learner))
        start = time.perf_counter()
        log = agents.train(train_env, args.frames, seed=0)
        print(
            f"{learner} ({args.formulation}, F={args.subchannels}, K_max={args.k_max}): "
            f"{time.perf_counter() - start:.0f} s; reward {_chunks(log.reward)}; "
            f"cost {_chunks(log.cost)}; multipliers {_chunks(log.lambda_mean)}",
            flush=True,
        )
        for play in ("sample", "greedy"):
            run = run_tn_ntn(env(), _Trained(agents, play == "greedy"), args.play_frames, seed=0)
            print(_played(f"played ({play})", run), flush=True)


if __name__ == "__main__":
    main()
