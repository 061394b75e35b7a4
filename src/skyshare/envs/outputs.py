"""Where a batched environment writes its observations: a new tensor per call, or two
tensors per kind used in turn (``reuse_observations``)."""

from __future__ import annotations

import torch

__all__ = ["ObservationOutputs"]


class ObservationOutputs:
    """The output tensors of an environment's observations, per kind ("tu", "bs", ...).

    With ``reuse=False`` every call returns a new tensor, which the caller may keep. With
    ``reuse=True`` the two tensors of a kind (allocated on first use) are returned in turn, so
    the output returned before the previous one is overwritten: an (observation, next
    observation) pair stays valid together, and a large observation does not cost its
    first-touch page faults at every call.

    Args:
        reuse: two tensors per kind in turn instead of a new one per call.
        dtype, device: of the tensors.
    """

    def __init__(self, reuse: bool, dtype: torch.dtype, device: torch.device | str) -> None:
        self.reuse, self.dtype, self.device = bool(reuse), dtype, device
        # kind -> ([tensor 0, tensor 1], index of the tensor the next call returns)
        self._pairs: dict[str, tuple[list[torch.Tensor], int]] = {}

    def next(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        """The tensor the next observation of ``kind`` (shape ``shape``) goes into."""
        if not self.reuse:
            return torch.empty(shape, dtype=self.dtype, device=self.device)
        pair, turn = self._pairs.get(kind, (None, 0))
        if pair is None or tuple(pair[0].shape) != tuple(shape):
            pair = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(2)]
            turn = 0
        self._pairs[kind] = (pair, 1 - turn)
        return pair[turn]
