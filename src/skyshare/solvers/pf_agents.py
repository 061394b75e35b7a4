"""The BSs of the distributed PFBWD (seed 003 Algorithms 2-3) as agents, and their signaling.

Each BS is a :class:`BsAgent` that holds only its own channels ``h_{t,k}`` (B, K, M_t) and its
budget. The coordinator talks to a group of agents through five calls, and only through them:

    scales()          BS -> coordinator   K reals per BS   ``sqrt(P_t) ||h_{t,k}||`` (once)
    configure(...)    coordinator -> BS   2K reals per BS  the units of UE k's u and iota (at
                                                           the start and every outer iteration)
    initial()         BS -> coordinator   3K reals per BS  (u, iota) of local RZF (once)
    solve(rows, c, d) coordinator -> BS   3K reals per BS  targets; BS -> coordinator: (u, iota)
    beamformers()     the final w_t, read by the simulation to evaluate it (not signaling: each
                      BS transmits with its own w_t; nothing is sent)

Groups: :class:`InProcessAgents` (plain objects in this process; by default one batched block-2
solve over realizations x BSs, which is the same arithmetic as one solve per BS) and
:class:`skyshare.solvers.pf_ray.RayAgents` (one Ray actor per BS). :class:`SignalingProxy`
wraps any group and hands every tensor that crosses to a :class:`SignalingLedger` (kind ``"bs"``,
one row per BS; category ``"down:..."`` for what the BS receives, ``"up:..."`` for what it
sends; one ledger slot per exchange round), so the counts are those of the messages themselves.
:func:`centralized_signaling` counts the centralized scheme the same way: every BS uploads its
channel (K M_t complex) and downloads its beamformers (K M_t complex).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.signaling import SignalingLedger
from skyshare.solvers.cellfree_problem import CellFreeProblem
from skyshare.solvers.pf_local import (
    LocalChannel,
    LocalStepResult,
    local_step,
    local_step_cvxpy,
    reduce_channel,
)

__all__ = [
    "EXECUTORS",
    "LOCAL_SOLVERS",
    "AgentGroup",
    "BsAgent",
    "InProcessAgents",
    "SignalingProxy",
    "bs_agents",
    "centralized_signaling",
    "counted_agents",
    "message_counts",
]

LOCAL_SOLVERS = ("torch", "cvxpy")
EXECUTORS = ("local", "ray")


class BsAgent:
    """One BS: its own channel, its block-2 solver and its warm-start state.

    Args:
        channel: (B, K, M_t) complex, ``h_{t,k}`` (noise-normalised) for the B realizations.
        p_max: the BS's budget P_t in W.
        local_solver: ``"torch"`` (:func:`local_step`) or ``"cvxpy"`` (:func:`local_step_cvxpy`).
        local_tol, local_max_iter, eps: options of :func:`local_step`.
    """

    def __init__(
        self,
        channel: torch.Tensor,
        p_max: float,
        *,
        local_solver: str = "torch",
        local_tol: float = 1e-15,
        local_max_iter: int = 100,
        eps: float = 1e-12,
    ) -> None:
        if not torch.is_tensor(channel) or not channel.is_complex() or channel.ndim != 3:
            raise ShapeError(f"channel must be complex (B, K, M_t), got {_shape(channel)}")
        if local_solver not in LOCAL_SOLVERS:
            raise ConfigError(f"local_solver must be one of {LOCAL_SOLVERS}, got {local_solver!r}")
        if not (math.isfinite(float(p_max)) and float(p_max) > 0):
            raise ConfigError(f"p_max must be a finite budget > 0 W, got {p_max!r}")
        self._h = channel.detach().to(torch.complex128)
        self._sqrt_p = math.sqrt(float(p_max))
        self._solver = local_solver
        self._options = {"tol": local_tol, "max_iter": local_max_iter, "eps": eps}
        self._base = reduce_channel(self._sqrt_p * self._h)  # f_k = sqrt(P_t) h_k, reduced
        self._reduced: LocalChannel | None = None
        self._u_unit: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, K, M_t)."""
        B, K, M = self._h.shape
        return B, K, M

    def scale(self) -> torch.Tensor:
        """(B, K) float64 ``sqrt(P_t) ||h_{t,k}||``: the largest ``|h^H w|`` this BS can give k."""
        return self._sqrt_p * torch.linalg.vector_norm(self._h, dim=-1)

    def configure(self, rows: torch.Tensor, u_unit: torch.Tensor, iota_unit: torch.Tensor) -> None:
        """Receive the units of UE k's coupled values for the realizations ``rows`` (n,):
        ``u = h^H w / u_unit``, ``iota`` in multiples of ``iota_unit`` (noise = 1); both (n, K)
        positive. The beamformers are kept; the interference multipliers are carried over."""
        B, K, _ = self.shape
        rows = torch.as_tensor(rows, dtype=torch.long)
        n = rows.numel()
        for name, unit in (("u_unit", u_unit), ("iota_unit", iota_unit)):
            if tuple(unit.shape) != (n, K) or not bool((unit > 0).all()):
                raise ShapeError(f"{name} must be a positive (n, K) = {(n, K)} tensor")
        u_unit, iota_unit = u_unit.to(torch.float64), iota_unit.to(torch.float64)
        if self._reduced is None:
            base = self._base
            self._u_unit = torch.ones(B, K, dtype=torch.float64)
            self._reduced = LocalChannel(base.basis, base.gains.clone(), torch.ones(B, K).double())
            self.mu = torch.zeros(B, K, dtype=torch.float64)
            self.nu = torch.ones(B, dtype=torch.float64)
            self.q = torch.zeros(B, K, self._base.rank, dtype=torch.complex128)
        self.mu[rows] *= (u_unit / self._u_unit[rows]).square()
        self._u_unit[rows] = u_unit
        self._reduced.gains[rows] = self._base.gains[rows] / u_unit[:, None, :]
        self._reduced.iota_scale[rows] = iota_unit / u_unit.square()

    @property
    def reduced(self) -> LocalChannel:
        """The scaled channel in reduced form (after :meth:`configure`)."""
        if self._reduced is None:
            raise ConfigError("BsAgent: configure(...) must come first")
        return self._reduced

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Local regularised zero-forcing at equal power (``w_k ∝ (sum_j f_j f_j^H + K I)^{-1}
        f_k`` with ``f_k = sqrt(P_t) h_{t,k}``, ``||w_k||^2 = P_t / K``): its (u, iota), (B, K)."""
        F = self._base.gains  # (B, r, K), reduced f_k
        K, r = F.shape[-1], F.shape[-2]
        C = F @ F.mH + K * torch.eye(r, dtype=F.dtype)
        Q = torch.linalg.solve(C, F)  # column k ∝ C^{-1} f_k
        norms = torch.linalg.vector_norm(Q, dim=-2).clamp_min(1e-300)
        self.q = (Q / (norms[:, None, :] * math.sqrt(K))).transpose(-2, -1).contiguous()
        return self.values(torch.arange(self.shape[0]))

    def values(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, iota) of the current beamformers for the realizations ``rows``: (n, K) each."""
        R, s = self.reduced.gains[rows], self.reduced.iota_scale[rows]
        E = torch.einsum("nrk,njr->nkj", R.conj(), self.q[rows])
        K = E.shape[-1]
        off = E * (1.0 - torch.eye(K, dtype=torch.float64))
        return E.diagonal(dim1=1, dim2=2).clone(), off.abs().square().sum(-1) / s

    def solve(
        self, rows: torch.Tensor, target_u: torch.Tensor, target_iota: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 2 for the realizations ``rows`` (n,): targets (n, K) complex / real ->
        (u, iota) (n, K)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        if self._solver == "cvxpy":
            g = self._sqrt_p * self._h[rows] / self._u_unit[rows, :, None]
            result = local_step_cvxpy(
                g, target_u, target_iota, iota_scale=self.reduced.iota_scale[rows]
            )
            result.q = torch.einsum("nmr,njm->njr", self.reduced.basis[rows].conj(), result.V)
        else:
            result = local_step(
                self.reduced.index(rows),
                target_u,
                target_iota,
                mu0=self.mu[rows],
                nu0=self.nu[rows],
                **self._options,
            )
        self.store(rows, result)
        return result.u, result.iota

    def store(self, rows: torch.Tensor, result: LocalStepResult) -> None:
        """Keep a solve's beamformers and multipliers (warm start of the next round)."""
        self.q[rows] = result.q[..., : self.reduced.rank]
        self.mu[rows] = result.mu
        self.nu[rows] = result.nu

    def beamformers(self) -> torch.Tensor:
        """(B, K, M_t) complex128 ``w_{t,k} = sqrt(P_t) Q q_k`` (stays at the BS)."""
        return self._sqrt_p * self.reduced.beamformers(self.q)


def bs_agents(problem: CellFreeProblem, **options) -> list[BsAgent]:
    """One :class:`BsAgent` per transmitter of ``problem`` (each gets only its own channel)."""
    return [
        BsAgent(problem.local_channel(t), float(problem.p_max[t]), **options)
        for t in range(problem.shape[2])
    ]


class AgentGroup(Protocol):
    """What the PFBWD coordinator needs from a group of T BS agents (module docstring).
    Tensors are stacked over BSs on axis 1: (B or n, T, K)."""

    n_agents: int

    def scales(self) -> torch.Tensor: ...

    def configure(
        self, rows: torch.Tensor, u_unit: torch.Tensor, iota_unit: torch.Tensor
    ) -> None: ...

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]: ...

    def solve(
        self, rows: torch.Tensor, target_u: torch.Tensor, target_iota: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def beamformers(self) -> list[torch.Tensor]: ...

    def close(self) -> None: ...


class InProcessAgents:
    """T :class:`BsAgent` objects in this process.

    Args:
        agents: the BSs, in transmitter order.
        batched: solve block 2 of all BSs in one call over (realizations x BSs), their reduced
            channels zero-padded to a common size (exact); False: one call per BS. Agents with
            the CVXPY solver are always solved one by one.
    """

    def __init__(self, agents: list[BsAgent], *, batched: bool = True) -> None:
        if not agents:
            raise ConfigError("InProcessAgents needs at least one BsAgent")
        self.agents = list(agents)
        self.n_agents = len(self.agents)
        self.batched = batched and all(a._solver == "torch" for a in self.agents)

    def scales(self) -> torch.Tensor:
        return torch.stack([a.scale() for a in self.agents], 1)

    def configure(self, rows, u_unit, iota_unit) -> None:
        for agent in self.agents:
            agent.configure(rows, u_unit, iota_unit)

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        u, iota = zip(*(a.initial() for a in self.agents), strict=True)
        return torch.stack(u, 1), torch.stack(iota, 1)

    def solve(self, rows, target_u, target_iota):
        if not self.batched:
            pairs = [
                agent.solve(rows, target_u[:, t], target_iota[:, t])
                for t, agent in enumerate(self.agents)
            ]
            u, iota = zip(*pairs, strict=True)
            return torch.stack(u, 1), torch.stack(iota, 1)
        return self._solve_batched(rows, target_u, target_iota)

    def _solve_batched(self, rows, target_u, target_iota):
        """One :func:`local_step` over (BS, realization) pairs, BS-major."""
        n, T, K = target_u.shape
        r = max(a.reduced.rank for a in self.agents)
        parts = [a.reduced.index(rows).padded(r) for a in self.agents]
        channel = LocalChannel(
            None, torch.cat([p.gains for p in parts]), torch.cat([p.iota_scale for p in parts])
        )
        agent0 = self.agents[0]
        result = local_step(
            channel,
            target_u.transpose(0, 1).reshape(T * n, K),
            target_iota.transpose(0, 1).reshape(T * n, K),
            mu0=torch.cat([a.mu[rows] for a in self.agents]),
            nu0=torch.cat([a.nu[rows] for a in self.agents]),
            **agent0._options,
        )
        for t, agent in enumerate(self.agents):
            part = slice(t * n, (t + 1) * n)
            agent.store(
                rows,
                LocalStepResult(
                    result.q[part], None, result.u[part], result.iota[part],
                    result.objective[part], result.mu[part], result.nu[part],
                    result.iterations[part], result.converged[part],
                ),
            )  # fmt: skip
        return result.u.reshape(T, n, K).transpose(0, 1), result.iota.reshape(T, n, K).transpose(
            0, 1
        )

    def beamformers(self) -> list[torch.Tensor]:
        return [a.beamformers() for a in self.agents]

    def close(self) -> None:
        """Nothing to release in-process."""


def message_counts(
    batch_size: int, rows: torch.Tensor, tensors: list[torch.Tensor]
) -> torch.Tensor:
    """Real scalars per realization of one BS's message: (B,) float64, ``rows`` (n,) get the
    per-row size of ``tensors`` (each (n, ...); complex entries count twice), the rest 0."""
    counts = torch.zeros(batch_size, dtype=torch.float64)
    per_row = 0
    for tensor in tensors:
        if tensor.shape[0] != rows.numel():
            raise ShapeError(f"message of {tensor.shape[0]} rows for {rows.numel()} realizations")
        per_row += tensor[0].numel() * (2 if tensor.is_complex() else 1) if len(tensor) else 0
    counts[rows] = float(per_row)
    return counts


class SignalingProxy:
    """Wraps an agent group; counts every tensor exchanged with each BS in ``ledger``.

    Args:
        group: the agents. ledger: ``SignalingLedger({"bs": T, ...}, B)``.
        record: keep every message in ``self.messages`` (dicts with ``direction``,
            ``category``, ``bs``, ``rows``, ``tensors``), for inspection in tests.
    """

    def __init__(self, group, ledger: SignalingLedger, *, record: bool = False) -> None:
        self.group = group
        self.n_agents = group.n_agents
        self.ledger = ledger
        self.record = record
        self.messages: list[dict] = []
        self.owned = False  # close the group when the run ends (it was built for the run)
        if ledger.agents.get("bs") != self.n_agents:
            raise ConfigError(f"ledger must count kind 'bs' with {self.n_agents} agents")

    def _count(self, category: str, rows: torch.Tensor, stacked: list[torch.Tensor]) -> None:
        """``stacked``: tensors (n, T, ...); BS t's message is the slice [:, t]."""
        B = self.ledger.batch_size
        counts = torch.stack(
            [message_counts(B, rows, [x[:, t] for x in stacked]) for t in range(self.n_agents)],
            1,
        )
        self.ledger.receive_count("bs", category, counts)
        if self.record:
            for t in range(self.n_agents):
                direction, name = category.split(":", 1)
                self.messages.append(
                    {
                        "direction": direction,
                        "category": name,
                        "bs": t,
                        "rows": rows.clone(),
                        "tensors": [x[:, t].clone() for x in stacked],
                    }
                )

    def scales(self) -> torch.Tensor:
        scales = self.group.scales()
        self._count("up:scale", torch.arange(scales.shape[0]), [scales])
        return scales

    def configure(self, rows, u_unit, iota_unit) -> None:
        n, K = u_unit.shape
        per_bs = [x[:, None, :].expand(n, self.n_agents, K) for x in (u_unit, iota_unit)]
        self._count("down:scale", rows, per_bs)  # the same 2K reals broadcast to every BS
        self.group.configure(rows, u_unit, iota_unit)

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        u, iota = self.group.initial()
        self._count("up:local", torch.arange(u.shape[0]), [u, iota])
        self.ledger.close_slot()
        return u, iota

    def solve(self, rows, target_u, target_iota):
        self._count("down:targets", rows, [target_u, target_iota])
        u, iota = self.group.solve(rows, target_u, target_iota)
        self._count("up:local", rows, [u, iota])
        self.ledger.close_slot()
        return u, iota

    def beamformers(self) -> list[torch.Tensor]:
        return self.group.beamformers()

    def close(self) -> None:
        self.group.close()


def counted_agents(
    problem: CellFreeProblem,
    agents=None,
    ledger: SignalingLedger | None = None,
    *,
    local_solver: str = "torch",
    executor: str = "local",
) -> SignalingProxy:
    """The BS agents of ``problem`` behind a :class:`SignalingProxy`.

    ``agents``: a group to wrap (a :class:`SignalingProxy` is returned as it is), or None to
    build one: in-process (``executor="local"``) or one Ray actor per BS (``"ray"``, Ray started
    locally if it is not running); a group built here is marked ``owned`` (close it after).
    ``ledger`` defaults to ``SignalingLedger({"bs": T}, B)``.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if agents is not None and executor != "local":
        raise ConfigError("pass either agents or executor='ray', not both")
    if isinstance(agents, SignalingProxy):
        if ledger is not None and ledger is not agents.ledger:
            raise ConfigError("pass the ledger inside the SignalingProxy, not both")
        return agents
    B, _, T, _ = problem.shape
    ledger = SignalingLedger({"bs": T}, B) if ledger is None else ledger
    owned = agents is None
    if agents is None and executor == "ray":
        from skyshare.solvers.pf_ray import ray_agents

        agents = ray_agents(problem, init=True, local_solver=local_solver)
    elif agents is None:
        agents = InProcessAgents(bs_agents(problem, local_solver=local_solver))
    proxy = SignalingProxy(agents, ledger)
    proxy.owned = owned
    return proxy


def centralized_signaling(
    problem: CellFreeProblem, ledger: SignalingLedger | None = None
) -> SignalingLedger:
    """Count the centralized scheme in a ledger (one slot): every BS t uploads its channel
    ``h_{t,k}`` (K M_t complex) and downloads its beamformers (K M_t complex)."""
    B, _, T, _ = problem.shape
    ledger = SignalingLedger({"bs": T}, B) if ledger is None else ledger
    rows = torch.arange(B)
    W = problem.zeros()
    for category, tensor_of in (
        ("up:channel", lambda t: problem.local_channel(t)),
        ("down:beamformers", lambda t: W[:, t, :, : problem.antennas[t]]),
    ):
        counts = torch.stack([message_counts(B, rows, [tensor_of(t)]) for t in range(T)], 1)
        ledger.receive_count("bs", category, counts)
    ledger.close_slot()
    return ledger


def _shape(x) -> str:
    return f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
