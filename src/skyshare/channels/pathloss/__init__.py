"""Large-scale propagation: path loss, line-of-sight probability and log-normal shadowing.

Models (one module of this package and one documentation page each under ``docs/channels/``):

* 3GPP TR 38.901 V17.0.0 urban macro (UMa): path loss of Table 7.4.1-1 and LoS probability of
  Table 7.4.2-1 (``uma_*``, module ``uma``). Seed 000 uses it for terrestrial BS-user links.
* Free-space path loss, TR 38.811 §6.6.2 eq. (6.6-2), used by TR 38.876 for air-to-ground links
  (``fspl_db``, module ``fspl``). Seed 000 uses it for BS-airplane links, seed 003 for MBS-UE
  links.
* WINNER II D1.1.2 (v1.2, 2007) scenario C2, typical urban macro-cell: path loss of Table 4-4 and
  LoS probability of Table 4-7 (``winner2_c2_*``, module ``winner2``). Seed 001 names "Winner II"
  path loss.
* Probabilistic air-to-ground LoS model of Al-Hourani, Kandeepan and Lardner, "Optimal LAP
  altitude for maximum coverage", IEEE WCL 3(6), 2014 (``a2g_*``, module
  ``air_to_ground``). Seed 001's UAV-user links.
* Random large-scale states (module ``draws``): LoS flags drawn from a LoS probability
  (``draw_los``) and log-normal shadowing, Gaussian samples in dB (``lognormal_shadowing_db``).

Every function works elementwise on tensors of any shape, typically ``(B, R, T)`` (batch,
receiver, transmitter), and broadcasts its arguments against each other. Scalars (Python floats)
are accepted anywhere a tensor is. The result dtype is the promoted floating dtype of the tensor
arguments (float64 in, float64 out), float32 when no argument is a floating tensor. Distances are
in metres, carrier frequencies in hertz, losses in dB (a positive number: received power is
transmitted power minus path loss).
"""

from skyshare.channels.pathloss._common import BREAKPOINT_PROPAGATION_SPEED_M_S, TensorLike
from skyshare.channels.pathloss.air_to_ground import (
    A2G_ENVIRONMENTS,
    AirToGroundEnvironment,
    a2g_environment,
    a2g_los_probability,
    a2g_mean_pathloss_db,
    a2g_pathloss_db,
)
from skyshare.channels.pathloss.draws import draw_los, lognormal_shadowing_db
from skyshare.channels.pathloss.fspl import FSPL_CONSTANT_DB, fspl_db
from skyshare.channels.pathloss.uma import (
    UMA_MIN_D2D_M,
    uma_breakpoint_distance_m,
    uma_los_probability,
    uma_pathloss_db,
    uma_pathloss_los_db,
    uma_pathloss_nlos_db,
    uma_shadow_fading_std_db,
)
from skyshare.channels.pathloss.winner2 import (
    WINNER2_MIN_D_M,
    winner2_c2_breakpoint_distance_m,
    winner2_c2_los_probability,
    winner2_c2_pathloss_db,
    winner2_c2_shadow_fading_std_db,
)

__all__ = [
    "A2G_ENVIRONMENTS",
    "BREAKPOINT_PROPAGATION_SPEED_M_S",
    "FSPL_CONSTANT_DB",
    "UMA_MIN_D2D_M",
    "WINNER2_MIN_D_M",
    "AirToGroundEnvironment",
    "TensorLike",
    "a2g_environment",
    "a2g_los_probability",
    "a2g_mean_pathloss_db",
    "a2g_pathloss_db",
    "draw_los",
    "fspl_db",
    "lognormal_shadowing_db",
    "uma_breakpoint_distance_m",
    "uma_los_probability",
    "uma_pathloss_db",
    "uma_pathloss_los_db",
    "uma_pathloss_nlos_db",
    "uma_shadow_fading_std_db",
    "winner2_c2_breakpoint_distance_m",
    "winner2_c2_los_probability",
    "winner2_c2_pathloss_db",
    "winner2_c2_shadow_fading_std_db",
]
