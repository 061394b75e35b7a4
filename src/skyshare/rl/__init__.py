"""Learners (PyTorch). Each agent has its own networks, held as batched groups."""

from skyshare.rl.networks import GroupLinear, GroupMLP, activation

__all__ = ["GroupLinear", "GroupMLP", "activation"]
