"""Learners (PyTorch). Each agent has its own networks, held as batched groups.

One file per algorithm, each with a pydantic config (the paper's defaults and a ``seed``) and an
agents class of one shape, ``XAgents(<dims>, config=None, *, device="cpu")`` with ``act``,
``update -> stats``, ``state_dict`` / ``load_state_dict``:

* :mod:`skyshare.rl.d3qn`: D3QN for the TU agents of seed 000 (user association);
* :mod:`skyshare.rl.cup`: CUP safe RL for the BS agents of seed 000 (beamforming);
* :mod:`skyshare.rl.ppo_penalty`: PPO with a fixed cost penalty (seed 000's benchmark);
* :mod:`skyshare.rl.td3_mix`: TD3-MIX and TD3-MIX+FLWF for seed 004 (power allocation);
* :mod:`skyshare.rl.mappo`: MAPPO / IPPO with per-user Lagrange multipliers for seed 001
  (subchannel assignment; ``train(env, frames)`` runs the turn-based collection loop).

:mod:`skyshare.rl.common` holds what they share: distributions, optimisers, normalisers,
buffers, group networks, GAE, the on-policy base and its PPO-epoch loop, TD3 pieces, QMIX,
Lagrange multipliers.
"""

from skyshare.rl.common import (
    GroupAdam,
    GroupLinear,
    GroupMLP,
    IndependentBeta,
    LagrangeMultipliers,
    MaskedMultiCategorical,
    ObservationNormalizer,
    QMixer,
    ReplayBuffer,
    Trajectory,
    TrajectoryCollector,
    activation,
    gae,
    gae_targets,
)
from skyshare.rl.cup import CupAgents, CupConfig
from skyshare.rl.d3qn import D3QNAgents, D3QNConfig
from skyshare.rl.mappo import MappoAgents, MappoConfig, ippo_config
from skyshare.rl.ppo_penalty import PpoPenaltyAgents, PpoPenaltyConfig
from skyshare.rl.td3_mix import TD3MixAgents, TD3MixConfig

__all__ = [
    "CupAgents",
    "CupConfig",
    "D3QNAgents",
    "D3QNConfig",
    "GroupAdam",
    "GroupLinear",
    "GroupMLP",
    "IndependentBeta",
    "LagrangeMultipliers",
    "MappoAgents",
    "MappoConfig",
    "MaskedMultiCategorical",
    "ObservationNormalizer",
    "PpoPenaltyAgents",
    "PpoPenaltyConfig",
    "QMixer",
    "ReplayBuffer",
    "TD3MixAgents",
    "TD3MixConfig",
    "Trajectory",
    "TrajectoryCollector",
    "activation",
    "gae",
    "gae_targets",
    "ippo_config",
]
