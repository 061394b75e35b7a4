"""The PFBWD BSs as Ray actors: one actor per BS, each holding only its own channel.

``pfbwd(problem, agents=ray_agents(problem))`` runs the same coordinator as the in-process
default; every round the coordinator sends BS t its targets (3K real scalars per realization),
the T actors solve their block-2 problems in parallel and return (u, iota) (3K). The driver
builds each actor with that BS's channel (the simulation's stand-in for the BS measuring it);
after that no channel coefficient leaves an actor. The arithmetic is the in-process
:class:`~skyshare.solvers.pf_agents.BsAgent`'s, so results agree with the in-process run up to
rounding (the in-process default batches all BSs in one call).

Ray is an optional dependency (``pip install -e '.[ray]'``), imported only here, when called.
"""

from __future__ import annotations

import torch

from skyshare.errors import ConfigError
from skyshare.solvers.cellfree_problem import CellFreeProblem
from skyshare.solvers.pf_agents import BsAgent

__all__ = ["RayAgents", "ray_agents"]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "Ray agents need Ray, an optional dependency: pip install -e '.[ray]'"
        ) from None
    return ray


class _ActorAgent(BsAgent):
    """A :class:`BsAgent` that runs single-threaded inside its actor process."""

    def __init__(self, *args, threads: int = 1, **kwargs) -> None:
        torch.set_num_threads(threads)
        super().__init__(*args, **kwargs)


class RayAgents:
    """T BS agents as Ray actors, with the agent-group interface of
    :class:`~skyshare.solvers.pf_agents.InProcessAgents` (stacked over BSs on axis 1).

    Args:
        channels: per BS its channel (B, K, M_t) complex. p_max: per BS its budget in W.
        num_cpus: CPUs Ray reserves per actor (default: the cluster's CPUs shared by the T
            actors, at most 1, so that all of them can be placed). options: :class:`BsAgent`
            options.

    Ray must be initialised (``ray.init(...)``) unless ``init=True``, which starts a local
    instance (``include_dashboard=False``) that :meth:`close` shuts down again.
    """

    def __init__(
        self,
        channels: list[torch.Tensor],
        p_max: list[float],
        *,
        num_cpus: float | None = None,
        init: bool = False,
        **options,
    ) -> None:
        ray = _import_ray()
        self._started = False
        if not ray.is_initialized():
            if not init:
                raise ConfigError("RayAgents: call ray.init(...) first, or pass init=True")
            ray.init(include_dashboard=False, log_to_driver=False)
            self._started = True
        if num_cpus is None:
            num_cpus = min(1.0, float(ray.cluster_resources().get("CPU", 1.0)) / len(channels))
        actor = ray.remote(num_cpus=num_cpus)(_ActorAgent)
        self.actors = [
            actor.remote(channel.detach().cpu().clone(), float(p), **options)
            for channel, p in zip(channels, p_max, strict=True)
        ]
        self.n_agents = len(self.actors)

    def _all(self, method: str, *per_actor_args) -> list:
        ray = _import_ray()
        calls = []
        for t, agent in enumerate(self.actors):
            args = [arg(t) if callable(arg) else arg for arg in per_actor_args]
            calls.append(getattr(agent, method).remote(*args))
        return ray.get(calls)

    def scales(self) -> torch.Tensor:
        return torch.stack(self._all("scale"), 1)

    def configure(self, rows, u_unit, iota_unit) -> None:
        self._all("configure", rows, u_unit, iota_unit)

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        u, iota = zip(*self._all("initial"), strict=True)
        return torch.stack(u, 1), torch.stack(iota, 1)

    def solve(self, rows, target_u, target_iota):
        """Targets (n, T, K): actor t gets only its slice [:, t] and the realization indices."""
        pairs = self._all(
            "solve",
            rows,
            lambda t: target_u[:, t].contiguous(),
            lambda t: target_iota[:, t].contiguous(),
        )
        u, iota = zip(*pairs, strict=True)
        return torch.stack(u, 1), torch.stack(iota, 1)

    def beamformers(self) -> list[torch.Tensor]:
        return self._all("beamformers")

    def close(self) -> None:
        """End the actors (and Ray, if this object started it)."""
        ray = _import_ray()
        for agent in self.actors:
            ray.kill(agent)
        self.actors = []
        if self._started:
            ray.shutdown()
            self._started = False


def ray_agents(problem: CellFreeProblem, **options) -> RayAgents:
    """One Ray actor per transmitter of ``problem``, each built with only its own channel.

    Args:
        problem: the instances. options: :class:`RayAgents` options (``num_cpus``, ``init``)
            and :class:`BsAgent` options (``local_solver``, ``local_tol``, ...).
    """
    T = problem.shape[2]
    channels = [problem.local_channel(t) for t in range(T)]
    return RayAgents(channels, [float(problem.p_max[t]) for t in range(T)], **options)
