"""The batched TN-NTN game core equals B single environments (issue: "batched core = B single
environments"): realization b of a batch of B plays exactly like an env of batch 1 holding
that realization's users, traces and fading, turn by turn (observations, global states, masks)
and in the frame's outcome (rewards (9)/(10), costs (11), rates, throughput, QoS misses)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from skyshare.envs.tn_ntn import TnNtnEnv
from skyshare.scenarios.tn_ntn import TnNtnScenario

B = 5  # differs from every other leading size of the saved tensors (N = 3, draws = 1, ...)
_GENERATOR_STATES = ("generator", "imag_generator")


def _env(batch: int, formulation: str, dynamic: bool) -> TnNtnEnv:
    overrides: dict[str, Any] = {"horizon_slots": 3}
    if dynamic:  # 1 s frames (as tn-ntn-fig4), users arriving from an empty network
        overrides = {"dynamic_users": True, "frame_s": 1.0, "trace_step_s": 1.0,
                     "arrival_rate_per_min": 5.0, "fading_correlation": 0.0,
                     "horizon_slots": 100}  # fmt: skip
    scenario = TnNtnScenario.from_preset("quick", overrides=overrides, batch_size=batch)
    return TnNtnEnv(scenario, formulation=formulation)


def _realization(saved: Any, b: int) -> Any:
    """``saved`` (a TnNtnEnv.state_dict of a batch of B) cut to realization b, as batch 1:
    every tensor whose leading axis is the batch is sliced (the generator states are not)."""
    if isinstance(saved, dict):
        return {
            key: value if key in _GENERATOR_STATES else _realization(value, b)
            for key, value in saved.items()
        }
    if isinstance(saved, torch.Tensor) and saved.ndim and saved.shape[0] == B:
        return saved[b : b + 1].clone()
    return saved


def _allowed_assignment(env: TnNtnEnv, generator: torch.Generator) -> torch.Tensor:
    """(B, N, F) long: each subchannel off (-1) or one active user slot of its BS, uniformly."""
    allowed = torch.cat([torch.ones_like(env.state.active[..., :1]), env.state.active], -1)
    probs = allowed[:, :, None, :].expand(-1, -1, env.n_subchannels, -1)
    draws = torch.multinomial(probs.reshape(-1, env.n_choices).double(), 1, generator=generator)
    return draws.reshape(env.batch_size, env.n_bs, env.n_subchannels) - 1


@pytest.mark.parametrize("formulation", ["decomposed", "per_bs"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_each_realization_of_a_batch_plays_like_a_single_environment(formulation, dynamic):
    torch.manual_seed(0)
    batched = _env(B, formulation, dynamic)
    batched.reset(11)
    if dynamic:  # 60 frames of random play: the network fills up, users move and leave
        generator = torch.Generator().manual_seed(5)
        for _ in range(60 * batched.n_turns):
            batched.act(batched.random_actions(generator))
    saved = batched.state_dict()
    assert batched.state.active.any(-1).all()  # every realization has users to serve
    assignment = _allowed_assignment(batched, torch.Generator().manual_seed(2))
    assert (assignment >= 0).any()
    turns, result = [], None
    for m in range(batched.n_turns):
        turns.append(batched.observe())
        result = batched.act(assignment[..., batched.block(m)] + 1)
    assert result is not None

    for b in range(B):
        single = _env(1, formulation, dynamic)
        single.load_state_dict({**_realization(saved, b), "batch_size": 1})
        one = None
        for m in range(single.n_turns):
            turn = single.observe()
            expected = turns[m]
            assert turn.turn == expected.turn == m
            torch.testing.assert_close(turn.obs, expected.obs[b : b + 1], rtol=1e-6, atol=0.0)
            torch.testing.assert_close(turn.state, expected.state[b : b + 1], rtol=1e-6, atol=0.0)
            assert torch.equal(turn.action_mask, expected.action_mask[b : b + 1])
            one = single.act(assignment[b : b + 1, :, single.block(m)] + 1)
        assert one is not None
        for field in ("reward", "cost", "user_rate", "throughput"):
            torch.testing.assert_close(
                getattr(one, field), getattr(result, field)[b : b + 1], rtol=1e-6, atol=1e-9
            )
        for field in ("qos_miss", "active", "assignment"):
            assert torch.equal(getattr(one, field), getattr(result, field)[b : b + 1]), field
        assert float(one.throughput[0]) > 0.0  # the frame served someone: a real comparison
