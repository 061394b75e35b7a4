"""What the learners share (:mod:`skyshare.rl`): one module per concept.

* :mod:`~skyshare.rl.common.distributions`: the independent Beta action distribution and the
  masked multi-head categorical (seed 001's subchannel assignment);
* :mod:`~skyshare.rl.common.optim`: :class:`GroupAdam`, per-agent Adam with an active mask;
* :mod:`~skyshare.rl.common.normalizers`: running per-agent observation normalisation;
* :mod:`~skyshare.rl.common.buffers`: the FIFO :class:`ReplayBuffer` (per-agent or joint
  queues) and the on-policy :class:`TrajectoryCollector` / :class:`Trajectory`;
* :mod:`~skyshare.rl.common.networks`: group networks (weights (A, in, out), one ``bmm``),
  initialisers, the Beta actor and critic groups;
* :mod:`~skyshare.rl.common.compact`: the compact, decision-only form of the on-policy BS
  policies (sparse first layer, optional int8 rows);
* :mod:`~skyshare.rl.common.mixing`: QMIX mixing networks;
* :mod:`~skyshare.rl.common.gae`: generalised advantage estimation;
* :mod:`~skyshare.rl.common.onpolicy`: the on-policy config and agents base (CUP, PPO) with
  the one KL-stopped epoch loop and PPO's minibatch step;
* :mod:`~skyshare.rl.common.td3`: TD3's target smoothing, clipped double-Q target, Polyak
  averaging;
* :mod:`~skyshare.rl.common.config`: :class:`LearnerConfig`, the base of the learners' configs;
* :mod:`~skyshare.rl.common.lagrangian`: per-user Lagrange multipliers, their sub-gradient step
  and the shaped reward (seed 001 §III-D).
"""

from skyshare.rl.common.buffers import (
    ReplayBuffer,
    Trajectory,
    TrajectoryCollector,
    from_agent_major,
    to_agent_major,
)
from skyshare.rl.common.config import LearnerConfig
from skyshare.rl.common.distributions import IndependentBeta, MaskedMultiCategorical
from skyshare.rl.common.gae import gae, gae_targets
from skyshare.rl.common.lagrangian import LagrangeMultipliers, multiplier_step, shaped_reward
from skyshare.rl.common.mixing import QMixer
from skyshare.rl.common.networks import GroupLinear, GroupMLP, activation
from skyshare.rl.common.normalizers import ObservationNormalizer
from skyshare.rl.common.optim import GroupAdam

__all__ = [
    "GroupAdam",
    "GroupLinear",
    "GroupMLP",
    "IndependentBeta",
    "LagrangeMultipliers",
    "LearnerConfig",
    "MaskedMultiCategorical",
    "ObservationNormalizer",
    "QMixer",
    "ReplayBuffer",
    "Trajectory",
    "TrajectoryCollector",
    "activation",
    "from_agent_major",
    "gae",
    "gae_targets",
    "multiplier_step",
    "shaped_reward",
    "to_agent_major",
]
