"""Multi-agent environments: batched tensor cores and PettingZoo adapters."""

from skyshare.envs.catn import CatnEnv, CatnEnvConfig, SlotOutcome
from skyshare.envs.catn_pettingzoo import CatnAECEnv, make_catn_aec
from skyshare.envs.catn_sharded import ShardedCatnEnv
from skyshare.envs.multiband import (
    MultibandEnv,
    MultibandEnvConfig,
    MultibandParallelEnv,
    make_multiband_parallel,
)
from skyshare.envs.tn_ntn import TnNtnEnv, TnNtnStepResult, TnNtnTurn
from skyshare.envs.tn_ntn_pettingzoo import TnNtnAECEnv, make_tn_ntn_aec

__all__ = [
    "CatnAECEnv",
    "CatnEnv",
    "CatnEnvConfig",
    "MultibandEnv",
    "MultibandEnvConfig",
    "MultibandParallelEnv",
    "ShardedCatnEnv",
    "SlotOutcome",
    "TnNtnAECEnv",
    "TnNtnEnv",
    "TnNtnStepResult",
    "TnNtnTurn",
    "make_catn_aec",
    "make_multiband_parallel",
    "make_tn_ntn_aec",
]
