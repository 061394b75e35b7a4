"""Multi-agent environments: batched tensor cores and PettingZoo adapters."""

from skyshare.envs.catn import CatnEnv, CatnEnvConfig, SlotOutcome

__all__ = ["CatnEnv", "CatnEnvConfig", "SlotOutcome"]
