"""skyshare: interference management in integrated aerial/non-terrestrial + terrestrial networks.

Layers (imports only point down the list):
    units, config, errors      conversions, constants, validated configs
    geometry                   layouts, angles, mobility
    channels                   path loss, fading, antenna arrays, OFDM
    metrics                    the SINR kernel and everything derived from it
    scenarios                  one module per seed system (catn, tn_ntn, vhetnet, multiband)
    cli                        the ``skyshare`` command
"""

__version__ = "0.1.0"
