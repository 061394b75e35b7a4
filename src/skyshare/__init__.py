"""skyshare: interference management in integrated aerial/non-terrestrial + terrestrial networks.

Layers (imports only point down the list; docs/developers.md, checked by tests/test_layering.py):
    units, config, errors, checks,   conversions, validated configs, errors, argument checks,
    signaling, runtime               the signaling ledger, thread/compute helpers
    geometry                         layouts, angles, mobility
    channels                         path loss, fading, antenna arrays, OFDM
    metrics                          the SINR kernel and everything derived from it
    solvers/*problem, beamforming    the problem objects scenarios build and solvers take; MRT/ZF
    scenarios                        one module per seed system (catn, tn_ntn, vhetnet, multiband)
    solvers                          optimisation algorithms on problem objects
    envs                             multi-agent environments (batched core + PettingZoo adapter)
    rl                               learners (D3QN, CUP, PPO-penalty, MAPPO, TD3-MIX)
    schemes                          named decision rules per system + one online loop per env
    plots                            every figure (matplotlib object API)
    experiments                      one module per paper figure/table, the job runner
    cli, fuzz                        the ``skyshare`` command, the fuzzer
"""

__version__ = "0.1.0"
