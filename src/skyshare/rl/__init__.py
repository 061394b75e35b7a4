"""Learners (PyTorch). Each agent has its own networks, held as batched groups.

D3QN for the TU agents and CUP / PPO-penalty for the BS agents of seed 000; the building blocks
(GroupMLP, GAE, Beta policies, replay memory) are shared with the other learners.
"""

from skyshare.rl.cup import CupAgents, CupConfig
from skyshare.rl.d3qn import D3QNAgents, D3QNConfig
from skyshare.rl.gae import gae, gae_targets
from skyshare.rl.mixing import QMixer
from skyshare.rl.networks import GroupLinear, GroupMLP, activation
from skyshare.rl.policies import IndependentBeta, Trajectory, TrajectoryCollector
from skyshare.rl.ppo_penalty import PpoPenaltyAgents, PpoPenaltyConfig
from skyshare.rl.replay import ReplayMemory
from skyshare.rl.td3_mix import TD3Mix, TD3MixConfig

__all__ = [
    "CupAgents",
    "CupConfig",
    "D3QNAgents",
    "D3QNConfig",
    "GroupLinear",
    "GroupMLP",
    "IndependentBeta",
    "PpoPenaltyAgents",
    "PpoPenaltyConfig",
    "QMixer",
    "ReplayMemory",
    "TD3Mix",
    "TD3MixConfig",
    "Trajectory",
    "TrajectoryCollector",
    "activation",
    "gae",
    "gae_targets",
]
