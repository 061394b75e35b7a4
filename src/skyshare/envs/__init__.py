"""Multi-agent environments: batched tensor cores and PettingZoo adapters."""

from skyshare.envs.catn import CatnEnv, CatnEnvConfig, SlotOutcome
from skyshare.envs.catn_pettingzoo import CatnAECEnv, make_catn_aec
from skyshare.envs.multiband import (
    MultibandEnv,
    MultibandEnvConfig,
    MultibandParallelEnv,
    make_multiband_parallel,
)

__all__ = [
    "CatnAECEnv",
    "CatnEnv",
    "CatnEnvConfig",
    "MultibandEnv",
    "MultibandEnvConfig",
    "MultibandParallelEnv",
    "SlotOutcome",
    "make_catn_aec",
    "make_multiband_parallel",
]
