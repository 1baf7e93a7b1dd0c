"""Each heuristic's rule pinned on hand-made views, and the mask contract of every policy."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hierarchy.actions import CLOUD_FIRST_SITE, CLOUD_POOL, CLOUD_REJECT, EDGE_OFFLOAD, EDGE_PLACE
from hierarchy.observation import CloudEncoder, CloudView, EdgeEncoder, EdgeView
from hierarchy.policies import kube_scores
from hierarchy.policies.base import PolicyContext
from hierarchy.policies.heuristics import STATIC_HEADROOM
from hierarchy.policies.registry import POLICY_NAMES, UnknownPolicyError, make_policy

SIZES = (0.5, 0.75, 1.0)
AT_REQUEST = 2
N100 = {"cores": 4.0, "mem": 16.0, "idle": 9.1, "max": 18.5, "sleep": 0.9}
PI5 = {"cores": 4.0, "mem": 8.0, "idle": 2.8, "max": 9.7, "sleep": 1.75}
GIB = 1 << 30


def encoders(nodes: int = 4, sites: int = 1) -> tuple[EdgeEncoder, CloudEncoder]:
    edge = EdgeEncoder(num_sites=sites, nodes=nodes, size_levels=SIZES, headroom_levels=4,
                       max_app_size=8, ref_cores=4.0, ref_mem_gib=16.0)
    return edge, CloudEncoder(num_sites=sites, max_app_size=8, ref_cores=4.0, ref_mem_gib=16.0)


def policy(name: str, nodes: int = 4, sites: int = 1, seed: int = 0):
    edge, cloud = encoders(nodes, sites)
    return make_policy(name, PolicyContext(edge, cloud, seed=seed)), edge


def node_types(*types: dict) -> dict[str, np.ndarray]:
    return {k: np.array([t[k] for t in types]) for k in ("cores", "mem", "idle", "max", "sleep")}


def edge_view(types: tuple[dict, ...] = (N100,) * 4, alloc_cpu=None, alloc_mem=None,
              used_cpu=None, asleep=None, peers=None, **site) -> EdgeView:
    """One site's view with one pending container (0.5 cores, 1 GiB), awake idle nodes."""
    t = node_types(*types)
    m = len(types)
    zeros = np.zeros(m)
    base = {
        "hour": 12.0, "site_index": 0, "site_power_w": 0.0, "site_budget_w": 1000.0,
        "throttle": 1.0, "queue_fill": 0.1, "knob": 0, "wan_rtt_ms": 25.0,
        "cloud_free_frac": 1.0, "pending": True, "cpu_req": 0.5, "mem_req": 1.0,
        "slo_ms": 100.0, "app_size": 3, "k_index": 1, "is_entry": False, "calls": 1.0,
        "peers_here": 0, "peers_cloud": 0, "peers_other": 0, "data_here": False,
        "data_elsewhere": False,
    }
    base.update(site)
    arrays = {k: np.asarray(v) for k, v in base.items()}
    return EdgeView(
        **arrays,
        node_exists=np.ones(m, bool),
        node_asleep=np.zeros(m, bool) if asleep is None else np.asarray(asleep, bool),
        node_cores=t["cores"], node_mem_gib=t["mem"],
        node_alloc_cpu=zeros if alloc_cpu is None else np.asarray(alloc_cpu, float),
        node_alloc_mem=zeros if alloc_mem is None else np.asarray(alloc_mem, float),
        node_used_cpu=zeros if used_cpu is None else np.asarray(used_cpu, float),
        node_peers=np.zeros(m, int) if peers is None else np.asarray(peers),
        node_speed=np.ones(m), node_idle_w=t["idle"], node_max_w=t["max"],
        node_sleep_w=t["sleep"], curves=None,
    )


def decide(name: str, view: EdgeView, seed: int = 0) -> tuple[int, int, int, int]:
    """(kind, node, size, headroom) of `name`'s action on `view`, checked against the mask."""
    pol, enc = policy(name, nodes=np.shape(view.node_cores)[-1], seed=seed)
    mask = enc.mask(view)
    action = int(pol.edge(view, mask, enc.encode(view)))
    assert mask[action] == 1, f"{name} chose an action its mask refuses"
    kind, node, size, head = enc.layout.decode(np.array(action))
    return int(kind), int(node), int(size), int(head)


def placed_on(name: str, view: EdgeView, seed: int = 0) -> int:
    kind, node, size, head = decide(name, view, seed)
    assert kind == EDGE_PLACE, f"{name} did not place"
    assert size == AT_REQUEST and head == STATIC_HEADROOM
    return node


# --- the kube-scheduler and Trimaran formulas --------------------------------------------------


def test_least_allocated_matches_kubernetes_test_values() -> None:
    # least_allocated_test.go "nothing scheduled, resources requested, differently sized
    # machines": pod 3000m / 5000 bytes on nodes of 4000m/10000 and 6000m/10000 -> 37, 50.
    cores = np.array([4.0, 6.0])
    mem = np.array([10000.0, 10000.0]) / GIB
    score = kube_scores.least_allocated_score(np.zeros(2), np.zeros(2), cores, mem,
                                              np.array(3.0), np.array(5000.0 / GIB))
    assert score.tolist() == [37, 50]


def test_most_allocated_and_balanced_match_kubernetes_test_values() -> None:
    cores = np.array([4.0, 6.0])
    mem = np.array([10000.0, 10000.0]) / GIB
    args = (np.zeros(2), np.zeros(2), cores, mem, np.array(3.0), np.array(5000.0 / GIB))
    # most: cpu 3000*100/4000 = 75, mem 50 -> 62; cpu 50, mem 50 -> 50.
    assert kube_scores.most_allocated_score(*args).tolist() == [62, 50]
    # balanced: fractions (0.75, 0.5) -> std 0.125 -> 87; (0.5, 0.5) -> 100.
    assert kube_scores.balanced_allocation_score(*args).tolist() == [87, 100]


def test_target_load_packing_score_follows_trimaran() -> None:
    # Pod 0.2 cores -> predicted 0.3 (1.5 x request); node 4 cores.
    used = np.array([0.0, 1.0, 2.4, 3.0, 3.9])
    score = kube_scores.target_load_packing_score(used, np.full(5, 4.0), np.array(0.2))
    expected = []
    for u in used:
        pct = 100 * (u + 0.3) / 4.0
        if pct > 100:
            expected.append(0)
        elif pct > 40:
            expected.append(math.floor(40 * (100 - pct) / 60 + 0.5))
        else:
            expected.append(math.floor(60 * pct / 40 + 40 + 0.5))
    assert score.tolist() == expected == [51, 89, 22, 12, 0]


# --- edge rules on hand-made states ------------------------------------------------------------


def kube_default_by_hand(alloc_cpu, alloc_mem, cores, mem, cpu, mem_req) -> list[int]:
    out = []
    for ac, am, c, m in zip(alloc_cpu, alloc_mem, cores, mem, strict=True):
        rc, rm = round((ac + cpu) * 1000), round((am + mem_req) * GIB)
        cc, cm = round(c * 1000), round(m * GIB)
        la = (((cc - rc) * 100 // cc) + ((cm - rm) * 100 // cm)) // 2
        std = abs(min(rc / cc, 1) - min(rm / cm, 1)) / 2
        out.append(la + int((1 - std) * 100))
    return out


def test_k8s_default_picks_the_highest_kube_score() -> None:
    alloc_cpu, alloc_mem = [0.5, 1.0, 2.0, 0.0], [12.0, 2.0, 2.0, 14.0]
    view = edge_view(alloc_cpu=alloc_cpu, alloc_mem=alloc_mem)
    by_hand = kube_default_by_hand(alloc_cpu, alloc_mem, [4] * 4, [16] * 4, 0.5, 1.0)
    # A unique best (161), which neither first fit (node 0) nor least CPU (node 3) picks.
    assert by_hand.count(max(by_hand)) == 1 and int(np.argmax(by_hand)) == 1
    for seed in range(5):
        assert placed_on("k8s-default", view, seed) == 1


def test_k8s_default_spreads_onto_the_emptier_node() -> None:
    view = edge_view(alloc_cpu=[2.0, 0.5, 1.0, 3.0], alloc_mem=[4.0, 1.0, 2.0, 6.0])
    assert placed_on("k8s-default", view) == 1


def test_most_allocated_picks_the_fullest_node_that_fits() -> None:
    # Node 3 is fullest but 3.8 + 0.5 cores do not fit in 4; node 1 is next.
    view = edge_view(alloc_cpu=[1.0, 3.0, 2.5, 3.8], alloc_mem=[2.0, 6.0, 5.0, 7.6])
    assert placed_on("most-allocated", view) == 1


def test_first_fit_takes_the_lowest_index_node_that_fits() -> None:
    view = edge_view(alloc_cpu=[3.8, 3.9, 0.0, 0.0])
    assert placed_on("first-fit", view) == 2


def test_target_load_packing_uses_measured_not_requested_load() -> None:
    # Equal allocations; with the pod predicted at 0.75 cores the nodes reach 18.75%,
    # 38.75%, 93.75% and 21.25%: node 1 ends nearest the 40% target from below (score 98).
    view = edge_view(alloc_cpu=[2.0, 2.0, 2.0, 2.0], used_cpu=[0.0, 0.8, 3.0, 0.1])
    assert placed_on("target-load-packing", view) == 1
    # Allocations do not move it.
    view = edge_view(alloc_cpu=[0.0, 3.0, 0.0, 0.0], used_cpu=[0.0, 0.8, 3.0, 0.1])
    assert placed_on("target-load-packing", view) == 1


def test_power_aware_adds_the_fewest_watts_within_budget() -> None:
    types = (N100, N100, PI5)
    # Node 0 asleep (waking adds its idle power); the Pi adds 6.9/4 W per core, the N100 9.4/4.
    view = edge_view(types, asleep=[True, False, False], used_cpu=[0.0, 1.0, 1.0])
    assert placed_on("power-aware", view) == 2
    # 0.9 W below the budget: the Pi's 0.8625 W fits, the awake N100's 1.175 W does not.
    tight = replace(view, site_power_w=np.asarray(20.0), site_budget_w=np.asarray(20.9))
    assert placed_on("power-aware", tight) == 2
    # A full Pi leaves the awake N100 as the cheapest.
    full_pi = edge_view(types, asleep=[True, False, False], used_cpu=[0.0, 1.0, 1.0],
                        alloc_cpu=[0.0, 1.0, 3.8])
    assert placed_on("power-aware", full_pi) == 1


def test_power_aware_resize_slo_keeps_off_slow_nodes_what_missed_its_slo_there() -> None:
    types = (N100, N100, PI5)
    base = edge_view(types, asleep=[True, False, False], used_cpu=[0.0, 1.0, 1.0])
    slow_pi = replace(base, node_speed=np.array([1.0, 1.0, 0.7]))

    def node_of(view: EdgeView) -> int:
        kind, node, _, _ = decide("power-aware-resize-slo", view)
        assert kind == EDGE_PLACE
        return node

    # Never observed, or observed within its SLO on the Pi: power-aware's choice, the Pi.
    assert node_of(slow_pi) == 2
    within = replace(slow_pi, svc_response=np.array([3.0, 0.8, 0.0, 0.0]))
    assert node_of(within) == 2
    # Seen above its SLO on a slow node: the cheapest fast node (the awake N100).
    missed = replace(slow_pi, svc_response=np.array([2.0, 1.4, 0.0, 0.0]))
    assert node_of(missed) == 1
    # No fast node fits: the Pi after all, never an offload while a node fits.
    full = replace(missed, node_alloc_cpu=np.array([3.9, 3.9, 0.0]))
    assert node_of(full) == 2


def test_dependency_aware_goes_to_the_node_with_most_peers() -> None:
    view = edge_view(peers=[0, 1, 2, 0], peers_here=3, alloc_cpu=[0.0, 0.0, 3.0, 0.0])
    assert placed_on("dependency-aware", view) == 2
    # Equal peers: the less loaded node.
    view = edge_view(peers=[0, 1, 1, 0], peers_here=2, alloc_cpu=[0.0, 2.0, 1.0, 0.0])
    assert placed_on("dependency-aware", view) == 2


def test_dependency_aware_offloads_towards_remote_peers() -> None:
    view = edge_view(peers=[0, 1, 0, 0], peers_here=1, peers_cloud=2)
    assert decide("dependency-aware", view)[0] == EDGE_OFFLOAD
    view = edge_view(peers=[0, 1, 0, 0], peers_here=1, peers_cloud=1, data_here=True)
    assert decide("dependency-aware", view)[0] == EDGE_PLACE


def test_cloud_only_always_offloads() -> None:
    assert decide("cloud-only", edge_view())[0] == EDGE_OFFLOAD


def test_edge_only_never_offloads_while_a_node_is_allowed() -> None:
    assert placed_on("edge-only", edge_view()) == 0
    # No node fits 0.5 cores at request size; at size 0.5 (0.25 cores) node 2 fits.
    view = edge_view(alloc_cpu=[3.9, 3.9, 3.7, 3.9])
    kind, node, size, _ = decide("edge-only", view)
    assert (kind, node, SIZES[size]) == (EDGE_PLACE, 2, 0.5)
    # The guard refuses everything: even edge-only offloads (documented).
    full = edge_view(alloc_cpu=[4.0, 4.0, 4.0, 4.0])
    assert decide("edge-only", full)[0] == EDGE_OFFLOAD


@pytest.mark.parametrize("name", [n for n in POLICY_NAMES if n != "cloud-only"])
def test_rules_offload_only_when_no_node_is_allowed(name: str) -> None:
    full = edge_view(alloc_cpu=[4.0, 4.0, 4.0, 4.0])
    assert decide(name, full)[0] == EDGE_OFFLOAD
    assert decide(name, edge_view())[0] == EDGE_PLACE


def test_round_robin_cycles_through_the_allowed_nodes() -> None:
    pol, enc = policy("round-robin")
    view = edge_view(alloc_cpu=[0.0, 4.0, 0.0, 0.0])  # node 1 is full
    chosen = []
    for _ in range(5):
        action = pol.edge(view, enc.mask(view), enc.encode(view))
        chosen.append(int(enc.layout.decode(np.array(action))[1]))
    assert chosen == [0, 2, 3, 0, 2]


def test_random_is_seeded_and_uniform_over_allowed_nodes() -> None:
    view = edge_view(alloc_cpu=[0.0, 4.0, 0.0, 0.0])

    def draws(seed: int) -> list[int]:
        pol, enc = policy("random", seed=seed)
        mask, obs = enc.mask(view), enc.encode(view)
        return [int(enc.layout.decode(np.array(pol.edge(view, mask, obs)))[1])
                for _ in range(300)]

    a = draws(7)
    assert a == draws(7) and a != draws(8)
    counts = np.bincount(a, minlength=4)
    assert counts[1] == 0 and counts[[0, 2, 3]].min() > 70


# --- the shared cloud rule ---------------------------------------------------------------------


def cloud_view(site_fits, pool_fits=True, site_peers=None, pool_peers=0, rtt=None,
               pending=True) -> CloudView:
    s = len(site_fits)
    return CloudView(
        hour=np.asarray(12.0), queue_fill=np.asarray(0.1), pending=np.asarray(pending),
        cpu_req=np.asarray(0.5), mem_req=np.asarray(1.0), slo_ms=np.asarray(100.0),
        app_size=np.asarray(3), is_entry=np.asarray(False), home=np.asarray(0),
        data_site=np.asarray(-1), site_free_cpu_frac=np.full(s, 0.5),
        site_free_mem_frac=np.full(s, 0.5), site_power_headroom=np.full(s, 0.2),
        site_peers=np.zeros(s, int) if site_peers is None else np.asarray(site_peers),
        site_rtt_from_home_ms=np.arange(s) * 5.0 + 6 if rtt is None else np.asarray(rtt),
        site_fits=np.asarray(site_fits, bool), pool_free_cpu_frac=np.asarray(0.9),
        pool_free_mem_frac=np.asarray(0.9), pool_peers=np.asarray(pool_peers),
        pool_rtt_from_home_ms=np.asarray(22.0), pool_fits=np.asarray(pool_fits),
    )


def cloud_decide(view: CloudView) -> int:
    pol, _ = policy("first-fit", sites=3)
    _, enc = encoders(sites=3)
    mask = enc.mask(view)
    action = int(pol.cloud(view, mask, enc.encode(view)))
    assert mask[action] == 1
    return action


def test_cloud_rule_prefers_the_site_holding_the_peers() -> None:
    view = cloud_view([True, True, True], site_peers=[0, 2, 1], pool_peers=1)
    assert cloud_decide(view) == CLOUD_FIRST_SITE + 1
    # The peers' site has no headroom: the pool.
    view = cloud_view([True, False, True], site_peers=[0, 2, 0], pool_peers=0)
    assert cloud_decide(view) == CLOUD_POOL


def test_cloud_rule_uses_the_pool_when_peers_are_there_or_nowhere() -> None:
    assert cloud_decide(cloud_view([True, True, True])) == CLOUD_POOL
    assert cloud_decide(cloud_view([True, True, True], site_peers=[1, 0, 0],
                                   pool_peers=3)) == CLOUD_POOL


def test_cloud_rule_falls_back_to_the_nearest_site_then_rejects() -> None:
    view = cloud_view([False, True, True], pool_fits=False, rtt=[6.0, 20.0, 11.0])
    assert cloud_decide(view) == CLOUD_FIRST_SITE + 2
    assert cloud_decide(cloud_view([False] * 3, pool_fits=False)) == CLOUD_REJECT
    assert cloud_decide(cloud_view([True] * 3, pending=False)) == 0


# --- the contract of every policy --------------------------------------------------------------


def random_views(rng: np.random.Generator, lead: tuple[int, ...], m: int) -> EdgeView:
    base = edge_view((N100,) * m)
    kw = {}
    for f in fields(EdgeView):
        value = getattr(base, f.name)
        if value is None:
            kw[f.name] = None
            continue
        shape = (*lead, m) if f.name.startswith("node_") else lead
        kw[f.name] = np.broadcast_to(value, shape).copy()
    kw["pending"] = rng.random(lead) < 0.7
    kw["cpu_req"] = rng.choice([0.25, 0.5, 1.0, 2.0], lead)
    kw["mem_req"] = kw["cpu_req"] * 2
    kw["node_alloc_cpu"] = rng.uniform(0, 4, (*lead, m))
    kw["node_alloc_mem"] = rng.uniform(0, 16, (*lead, m))
    kw["node_used_cpu"] = kw["node_alloc_cpu"] * rng.uniform(0, 1, (*lead, m))
    kw["node_asleep"] = rng.random((*lead, m)) < 0.3
    kw["node_peers"] = rng.integers(0, 3, (*lead, m))
    for name in ("peers_here", "peers_cloud", "peers_other"):
        kw[name] = rng.integers(0, 3, lead)
    return EdgeView(**kw)


def mask_from_placements(layout, placement_ok: np.ndarray, pending: np.ndarray) -> np.ndarray:
    """A full int8 edge mask from a (..., nodes, sizes) placement mask, laid out as
    hierarchy.actions says: no-op only when nothing is pending, offload always allowed."""
    lead = placement_ok.shape[:-2]
    per_knob = np.concatenate(
        [placement_ok.reshape(*lead, layout.nodes * layout.sizes), np.ones((*lead, 1), bool)],
        axis=-1,
    )
    per_knob &= pending[..., None]
    full = np.concatenate([~pending[..., None], np.tile(per_knob, layout.headrooms)], axis=-1)
    return full.astype(np.int8)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), s=st.integers(1, 3),
       m=st.integers(1, 5))
def test_every_policy_returns_allowed_actions_and_noop_when_idle(seed, b, s, m) -> None:
    rng = np.random.default_rng(seed)
    view = random_views(rng, (b, s), m)
    edge, cloud = encoders(nodes=m, sites=s)
    # Random masks: the guard's placement mask is replaced by noise (offload stays allowed).
    placement_ok = rng.random((b, s, m, len(SIZES))) < 0.4
    mask = mask_from_placements(edge.layout, placement_ok & view.pending[..., None, None],
                                view.pending)
    obs = np.zeros((b, s, 1), np.float32)
    for name in POLICY_NAMES:
        pol = make_policy(name, PolicyContext(edge, cloud, seed=seed))
        actions = pol.edge(view, mask, obs)
        assert actions.shape == (b, s)
        picked = np.take_along_axis(mask, actions[..., None], axis=-1)[..., 0]
        assert (picked == 1).all(), name
        assert (actions[~view.pending] == 0).all(), name


def test_unknown_policy_names_the_known_ones() -> None:
    edge, cloud = encoders()
    with pytest.raises(UnknownPolicyError, match="first-fit.*cloud-only"):
        make_policy("best-fit-ever", PolicyContext(edge, cloud))


def test_policies_run_clean_in_the_simulator() -> None:
    from sim.core import BatchedCore

    core = BatchedCore("small", batch_size=2, seed=3)
    for name in POLICY_NAMES:
        core.reset(3)
        pol = make_policy(name, PolicyContext(core.edge_encoder, core.cloud_encoder, seed=3))
        for _ in range(150):
            core.step(pol.edge(core.edge_view, core.edge_mask, core.edge_obs),
                      pol.cloud(core.cloud_view, core.cloud_mask, core.cloud_obs))
        assert core.st.invalid_actions.sum() == 0, name


def test_rightsized_power_aware_sizes_seen_services_from_their_prediction() -> None:
    from sim.core import BatchedCore

    core = BatchedCore("default", batch_size=2, seed=4, record_metrics=False)
    enc = core.edge_encoder
    assert enc.predicted_size_margin is not None
    rule = make_policy("power-aware-rightsized", PolicyContext(enc, core.cloud_encoder)).edge
    predicted_level = len(enc.size_levels)
    below_request = 0
    for _ in range(3000):
        actions = rule(core.edge_view, core.edge_mask, core.edge_obs)
        kind, _, size, _ = enc.layout.decode(actions)
        placed = kind == EDGE_PLACE
        # Always the predicted level (for a service not seen yet it means the request).
        assert np.all(size[placed] == predicted_level)
        assert np.take_along_axis(core.edge_mask, actions[..., None], -1).all()
        cpu_frac = enc.size_fractions(core.edge_view)[0][..., predicted_level]
        assert np.all((cpu_frac >= 0.1 - 1e-12) & (cpu_frac <= 1.0))
        below_request += int((placed & (cpu_frac < 1.0)).sum())
        core.step(actions, np.full(core.B, 2))
    assert below_request > 20  # services recur, and their prediction sizes them


def test_power_aware_resize_places_small_and_turns_resizing_on() -> None:
    from sim.core import BatchedCore

    core = BatchedCore("small", batch_size=2, seed=3, record_metrics=False)
    enc = core.edge_encoder
    rule = make_policy("power-aware-resize", PolicyContext(enc, core.cloud_encoder)).edge
    plain = make_policy("power-aware", PolicyContext(enc, core.cloud_encoder)).edge
    decided = 0
    for _ in range(1500):
        actions = rule(core.edge_view, core.edge_mask, core.edge_obs)
        kind, node, size, head = enc.layout.decode(actions)
        pending = core.edge_mask[..., 0] == 0
        assert np.all(head[pending] == enc.headroom_levels - 1)
        assert np.all(size[kind == EDGE_PLACE] == int(np.argmin(enc.size_levels)))
        assert np.take_along_axis(core.edge_mask, actions[..., None], -1).all()
        decided += int(pending.sum())
        core.step(actions, np.full(core.B, 2))
    assert decided > 20
    assert plain.headroom == STATIC_HEADROOM
