"""Named decision rules of every system behind one interface, and their online loops.

* :mod:`skyshare.schemes.base`: the :class:`Registry` and the scheme interface;
* :mod:`skyshare.schemes.catn`: seed 000's association and beamforming components and the
  named schemes of §VI; :mod:`skyshare.schemes.catn_online`: Algorithm 4's online loop.
"""

from skyshare.schemes.base import Registry, RegistryEntry, Stateless

__all__ = ["Registry", "RegistryEntry", "Stateless"]
