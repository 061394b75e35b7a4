"""Multi-agent environments: batched tensor cores and PettingZoo adapters."""

from skyshare.envs.catn import CatnEnv, CatnEnvConfig, SlotOutcome
from skyshare.envs.catn_pettingzoo import CatnAECEnv, make_catn_aec

__all__ = ["CatnAECEnv", "CatnEnv", "CatnEnvConfig", "SlotOutcome", "make_catn_aec"]
