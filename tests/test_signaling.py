"""The signaling ledger: counts of received real scalars, uniform and per-agent counts mixed."""

from __future__ import annotations

import pytest
import torch
from benchmarks.opcount import count_ops

from skyshare.signaling import SignalingLedger


def test_counts_per_slot_and_kind_from_the_delivered_tensors():
    ledger = SignalingLedger({"bs": 3, "tu": 4}, batch_size=2)
    ledger.receive("bs", "csi", torch.zeros(2, 3, 5, dtype=torch.complex64))  # 10 per BS
    ledger.receive("bs", "csi", torch.zeros(2, 3, 2))  # + 2
    ledger.receive("tu", "load", torch.zeros(2, 4))  # 1 per TU (no trailing axis)
    first = ledger.close_slot()
    assert set(first) == {("bs", "csi"), ("tu", "load")}
    assert first[("bs", "csi")].dtype == torch.float64
    assert torch.equal(first[("bs", "csi")], torch.full((2, 3), 12.0, dtype=torch.float64))
    assert torch.equal(first[("tu", "load")], torch.ones(2, 4, dtype=torch.float64))
    ledger.receive("bs", "csi", torch.zeros(2, 3, 6))  # 6 in the second slot
    ledger.close_slot()
    assert ledger.per_agent_per_slot() == {("bs", "csi"): 9.0, ("tu", "load"): 0.5}
    assert ledger.per_kind_per_slot() == {"bs": 9.0, "tu": 0.5}


def test_uniform_and_per_agent_counts_add_up():
    ledger = SignalingLedger({"bs": 3}, batch_size=2)
    per_agent = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    ledger.receive("bs", "x", torch.zeros(2, 3, 10))
    ledger.receive_count("bs", "x", per_agent)
    assert torch.equal(ledger.close_slot()[("bs", "x")], (10.0 + per_agent).double())
    ledger.receive_count("bs", "x", per_agent)
    ledger.receive("bs", "x", torch.zeros(2, 3, 1))  # uniform after per-agent
    assert torch.equal(ledger.close_slot()[("bs", "x")], (1.0 + per_agent).double())
    ledger.receive("bs", "x", torch.zeros(2, 3, 4))
    ledger.close_slot()  # totals: tensor + uniform
    total = (10.0 + per_agent) + (1.0 + per_agent) + 4.0
    assert ledger.per_agent_per_slot()[("bs", "x")] == pytest.approx(float(total.mean()) / 3)


def test_fixed_layout_messages_dispatch_no_tensor_operation():
    ledger = SignalingLedger({"bs": 7}, batch_size=1)
    delivered = torch.zeros(1, 7, 3610)
    counted = count_ops(lambda: ledger.receive("bs", "o_in", delivered))
    assert counted.kernels == 0, counted.by_op


def test_state_dict_round_trip_keeps_counts_and_their_shapes():
    ledger = SignalingLedger({"bs": 3}, batch_size=2)
    ledger.receive("bs", "a", torch.zeros(2, 3, 7))
    ledger.close_slot()
    ledger.receive("bs", "a", torch.zeros(2, 3, 5))
    ledger.receive_count("bs", "b", torch.ones(2, 3))
    state = ledger.state_dict()
    assert torch.equal(state["totals"]["bs/a"], torch.full((2, 3), 7.0, dtype=torch.float64))
    assert torch.equal(state["current"]["bs/a"], torch.full((2, 3), 5.0, dtype=torch.float64))
    restored = SignalingLedger({"bs": 3}, batch_size=2)
    restored.load_state_dict(state)
    for book in (ledger, restored):
        book.receive("bs", "a", torch.zeros(2, 3, 1))
        book.close_slot()
    assert (
        restored.per_agent_per_slot()
        == ledger.per_agent_per_slot()
        == {
            ("bs", "a"): 6.5,
            ("bs", "b"): 0.5,
        }
    )
    with pytest.raises(ValueError, match="counts were recorded for"):
        restored.receive_count("bs", "a", torch.ones(2, 4))
    with pytest.raises(ValueError, match="must be \\(B, n\\)"):
        restored.load_state_dict({"slots": 1, "current": {}, "totals": {"bs/a": torch.ones(3)}})


def test_refuses_an_unknown_kind_and_a_wrong_shape():
    ledger = SignalingLedger({"bs": 3}, batch_size=2)
    with pytest.raises(KeyError, match="unknown agent kind 'uav'"):
        ledger.receive("uav", "x", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="delivered must be"):
        ledger.receive("bs", "x", torch.zeros(2, 4))
    with pytest.raises(ValueError, match="counts must be"):
        ledger.receive_count("bs", "x", torch.zeros(6))
