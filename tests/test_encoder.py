"""The shared encoder: spec and layout agree, compiled and plain-Python runs agree."""

from __future__ import annotations

import numpy as np
import pytest

from hierarchy import encoding
from hierarchy.observation import _power_delta_one_view, placement_fits, power_delta_w
from hierarchy.scenario import load_scenario
from sim.core import BatchedCore


@pytest.fixture(scope="module")
def busy_core() -> BatchedCore:
    """A `default` core some way into an episode, with containers placed everywhere."""
    # The optional response features on, so that every encoder path below covers them too.
    core = BatchedCore(load_scenario("default", {"observation.response_features": True}),
                       batch_size=3, seed=11)
    rng = np.random.default_rng(0)
    for _ in range(400):
        edge = (rng.random(core.edge_mask.shape) * core.edge_mask).argmax(-1)
        cloud = (rng.random(core.cloud_mask.shape) * core.cloud_mask).argmax(-1)
        core.step(edge, cloud)
    return core


def test_spec_names_match_encoded_positions(busy_core: BatchedCore) -> None:
    spec = busy_core.edge_encoder.spec
    names = [f.name for f in spec.features]
    assert busy_core.edge_obs.shape[-1] == spec.dim == len(set(names))
    view = busy_core.edge_view
    obs = busy_core.edge_obs
    np.testing.assert_array_equal(obs[..., names.index("pending")], view.pending)
    np.testing.assert_allclose(obs[..., names.index("queue_fill")], view.queue_fill, atol=1e-6)
    for s in range(busy_core.S):
        assert (obs[:, s, names.index(f"site_{s}")] == 1).all()
    np.testing.assert_array_equal(obs[..., names.index("node0_exists")], view.node_exists[..., 0])
    np.testing.assert_array_equal(obs[..., names.index("node1_asleep")], view.node_asleep[..., 1])
    cloud_names = [f.name for f in busy_core.cloud_encoder.spec.features]
    assert busy_core.cloud_obs.shape[-1] == len(cloud_names)
    np.testing.assert_array_equal(busy_core.cloud_obs[:, cloud_names.index("pending")],
                                  busy_core.cloud_view.pending)


def test_encoding_from_views_equals_fused_kernel(busy_core: BatchedCore) -> None:
    """The simulator's fused path and the encoder on a view give the same bytes."""
    obs, mask = busy_core.edge_encoder.encode_and_mask(busy_core.edge_view)
    np.testing.assert_array_equal(obs, busy_core.edge_obs)
    np.testing.assert_array_equal(mask, busy_core.edge_mask)
    obs, mask = busy_core.cloud_encoder.encode_and_mask(busy_core.cloud_view)
    np.testing.assert_array_equal(obs, busy_core.cloud_obs)
    np.testing.assert_array_equal(mask, busy_core.cloud_mask)


def _one_view(view: object, b: int, s: int, as_python: bool = False) -> object:
    """Position (b, s) of a batched view as one site's view (arrays, or Python scalars)."""
    fields = {}
    for name, value in vars(view).items():
        if value is None or (name == "curves" and np.ndim(value) == 2):
            fields[name] = value  # absent, or shared by every position
            continue
        one = np.array(np.asarray(value)[b, s])  # (ascontiguousarray makes 0-d 1-d)
        fields[name] = one.item() if as_python and one.ndim == 0 else one
    return type(view)(**fields)


@pytest.mark.parametrize("as_python", [False, True])
def test_one_view_encodes_as_in_a_batch(busy_core: BatchedCore, as_python: bool) -> None:
    """The live agent encodes one view at a time (a quicker path for that): the same bytes as
    the same view inside the simulator's batch, from arrays or from plain Python scalars."""
    enc, view = busy_core.edge_encoder, busy_core.edge_view
    for b, s in [(0, 0), (1, 2), (2, busy_core.S - 1)]:
        obs, mask = enc.encode_and_mask(_one_view(view, b, s, as_python))
        np.testing.assert_array_equal(obs, busy_core.edge_obs[b, s])
        np.testing.assert_array_equal(mask, busy_core.edge_mask[b, s])


def test_plain_python_encoder_equals_compiled(busy_core: BatchedCore, monkeypatch) -> None:
    """A gateway without numba runs the same source as Python: same observation and mask."""
    if not hasattr(encoding.edge_encode_flat, "py_func"):
        pytest.skip("numba not installed: everything already runs as plain Python")
    compiled_obs, compiled_mask = busy_core.edge_encoder.encode_and_mask(busy_core.edge_view)
    monkeypatch.setattr("hierarchy.observation.edge_encode_flat",
                        encoding.edge_encode_flat.py_func)
    monkeypatch.setattr("hierarchy.observation.cloud_encode_flat",
                        encoding.cloud_encode_flat.py_func)
    obs, mask = busy_core.edge_encoder.encode_and_mask(busy_core.edge_view)
    np.testing.assert_allclose(obs, compiled_obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(mask, compiled_mask)
    cobs, cmask = busy_core.cloud_encoder.encode_and_mask(busy_core.cloud_view)
    np.testing.assert_allclose(cobs, busy_core.cloud_obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(cmask, busy_core.cloud_mask)


def test_vectorised_guard_agrees_with_the_mask(busy_core: BatchedCore) -> None:
    v = busy_core.edge_view
    # Every size level of the layout, the predicted-p95 one included.
    cpu_frac, mem_frac = busy_core.edge_encoder.size_fractions(v)
    assert cpu_frac.shape[-1] == busy_core.edge_layout.sizes
    cpu = v.cpu_req[..., None, None] * cpu_frac[..., None, :]
    fits = placement_fits(
        v.node_exists, v.node_cores, v.node_mem_gib, v.node_alloc_cpu, v.node_alloc_mem,
        v.node_used_cpu, v.node_asleep, v.node_idle_w, v.node_max_w, v.node_sleep_w, v.curves,
        v.site_power_w, v.site_budget_w, cpu, v.mem_req[..., None, None] * mem_frac[..., None, :],
    ) & v.pending[..., None, None]
    np.testing.assert_array_equal(fits, busy_core.edge_encoder.placement_ok(v))
    delta = power_delta_w(v.node_asleep, v.node_used_cpu, v.node_cores, v.node_idle_w,
                          v.node_max_w, v.node_sleep_w, v.curves, cpu)
    allowed = fits & (v.site_power_w[..., None, None] + delta <= v.site_budget_w[..., None, None])
    np.testing.assert_array_equal(allowed, fits)


def test_power_delta_of_a_sleeping_node_includes_waking() -> None:
    delta = power_delta_w(np.array([True, False]), np.zeros(2), np.full(2, 4.0),
                          np.full(2, 10.0), np.full(2, 20.0), np.full(2, 1.0), None,
                          np.array([[2.0], [2.0]]))
    # Half the cores' worth of load on a linear 10..20 W node adds 5 W; waking adds 9 W.
    np.testing.assert_allclose(delta[:, 0], [14.0, 5.0])


def test_scalar_decode_matches_vector_decode() -> None:
    from hierarchy.actions import EdgeActionLayout

    layout = EdgeActionLayout(nodes=8, sizes=3, headrooms=4)
    vector = layout.decode(np.arange(layout.n))
    for action in range(layout.n):
        one = layout.decode(action)
        assert [int(v) for v in one] == [int(part[action]) for part in vector]


@pytest.mark.parametrize("curved", [False, True])
def test_one_site_power_delta_equals_the_batched_one(busy_core: BatchedCore,
                                                     curved: bool) -> None:
    """The live agent's quicker path (one site's (M,) nodes, one (1, 1) amount) gives the
    batched computation's numbers, bit for bit, with linear and with tabulated power."""
    v = busy_core.edge_view
    rng = np.random.default_rng(3)
    curves = np.sort(rng.random((busy_core.M, 11)), axis=1) if curved else None
    for b, s in [(0, 0), (1, 2), (2, busy_core.S - 1)]:
        fields = [np.ascontiguousarray(a[b, s]) for a in (
            v.node_asleep, v.node_used_cpu, v.node_cores, v.node_idle_w, v.node_max_w,
            v.node_sleep_w)]
        cpu = np.array([[0.25 + b]])
        one = power_delta_w(*fields, curves, cpu)
        assert one.shape == (busy_core.M, 1)
        assert _power_delta_one_view(*fields, curves, cpu) is not None  # the quick path ran
        # The general path: the same site as a batch of one, the amount broadcast.
        batched = power_delta_w(*(f[None] for f in fields),
                                None if curves is None else curves[None], cpu[None])
        np.testing.assert_array_equal(one, batched[0])
        assert np.any(one > 0)
