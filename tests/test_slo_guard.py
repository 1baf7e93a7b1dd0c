"""The SLO guard (`observation.slo_guard`): the edge mask keeps off slow nodes a container
whose service was seen above its SLO on a slow node, while a fast node can take it."""

from __future__ import annotations

import numpy as np
from simhelpers import scenario

from hierarchy.guard import slo_guard
from hierarchy.policies.base import PolicyContext
from hierarchy.policies.registry import make_policy
from sim.core import BatchedCore

NODES, SIZES, KNOBS = 3, 2, 2
SPEED = np.array([[0.7, 1.0, 1.0]])  # node 0 slow
MISSED = np.array([[2.0, 1.3, 0.0, 0.0]])  # 2 samples on a slow node, 1.3 x its SLO


def actions(node: int) -> list[int]:
    """Every action placing on `node` (all knob and size levels)."""
    per_knob = NODES * SIZES + 1
    return [1 + k * per_knob + node * SIZES + s for k in range(KNOBS) for s in range(SIZES)]


def guarded(mask: np.ndarray, response: np.ndarray) -> np.ndarray:
    out = mask.copy()
    slo_guard(out, response, SPEED, NODES, SIZES)
    return out


def test_a_service_that_missed_its_slo_on_a_slow_node_keeps_off_slow_nodes() -> None:
    mask = np.ones((1, 1 + KNOBS * (NODES * SIZES + 1)), dtype=np.int8)
    out = guarded(mask, MISSED)
    assert (out[0, actions(0)] == 0).all()
    keep = np.setdiff1d(np.arange(mask.shape[1]), actions(0))
    assert (out[0, keep] == 1).all()  # fast nodes, offloads and the no-op untouched


def test_nothing_changes_without_evidence_or_without_a_fast_node() -> None:
    mask = np.ones((1, 1 + KNOBS * (NODES * SIZES + 1)), dtype=np.int8)
    for response in ([0.0, 0.0, 0.0, 0.0], [3.0, 0.9, 0.0, 0.0], [0.0, 0.0, 4.0, 1.5]):
        assert (guarded(mask, np.array([response])) == mask).all(), response
    no_fast = mask.copy()
    no_fast[0, actions(1) + actions(2)] = 0  # the fast nodes are full
    assert (guarded(no_fast, MISSED) == no_fast).all()


def test_the_guard_is_part_of_the_spec_and_off_by_default() -> None:
    plain = BatchedCore("default", batch_size=1, seed=0).edge_encoder
    guard = BatchedCore(scenario("default", {"observation.slo_guard": True}), batch_size=1,
                        seed=0).edge_encoder
    assert not plain.slo_guard and plain.spec.mask_rules == ()
    assert guard.spec.mask_rules == ("slo_guard",)
    assert guard.spec.dim == plain.spec.dim and guard.spec.hash != plain.spec.hash


def test_the_simulator_masks_as_the_encoder_and_the_rule_equals_its_baseline() -> None:
    sc = scenario("default", {"observation.slo_guard": True})
    core = BatchedCore(sc, batch_size=2, seed=1011)
    rule = make_policy("power-aware-resize", PolicyContext(core.edge_encoder,
                                                           core.cloud_encoder))
    guarded_steps = 0
    while True:
        obs, mask = core.edge_encoder.encode_and_mask(core.edge_view)
        assert (mask == core.edge_mask).all() and np.allclose(obs, core.edge_obs)
        response = core.edge_view.svc_response
        guarded_steps += int(((response[..., 0] > 0) & (response[..., 1] > 1.0)
                              & core.edge_view.pending).sum())
        out = core.step(rule.edge(core.edge_view, core.edge_mask, core.edge_obs),
                        rule.cloud(core.cloud_view, core.cloud_mask, core.cloud_obs))
        if out.truncated.all():
            break
    assert guarded_steps > 0
    # power-aware-resize within the guard decides as power-aware-resize-slo without it.
    plain = BatchedCore("default", batch_size=2, seed=1011)
    slo = make_policy("power-aware-resize-slo", PolicyContext(plain.edge_encoder,
                                                              plain.cloud_encoder))
    while True:
        out = plain.step(slo.edge(plain.edge_view, plain.edge_mask, plain.edge_obs),
                         slo.cloud(plain.cloud_view, plain.cloud_mask, plain.cloud_obs))
        if out.truncated.all():
            break
    assert np.allclose(core.st.cost_total, plain.st.cost_total)
