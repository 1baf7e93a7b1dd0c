"""Learned policies on the gateway: `edge-agent --policy learned:DIR`, NumPy only.

A tiny policy trained here (MAPPO on `small`, seconds) decides requests that come through a
real Mosquitto, and every decision is the one an independently loaded NumPy actor takes on
the same observation. The edge agent's decision path imports no torch (checked in a fresh
interpreter where importing torch fails), and a policy that cannot be used stops the agent
at start-up with one line and exit status 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from mqtt_fixtures import Broker, Probe, broker_fixture, wait  # noqa: F401

from edge_agent import cli
from edge_agent import decide as decide_module
from edge_agent.agent import EdgeAgent
from edge_agent.backends.sim import SimSiteBackend
from edge_agent.config import EdgeConfig
from edge_agent.decide import load_policy
from hierarchy import protocol as p
from hierarchy.actions import EDGE_PLACE
from hierarchy.observation import OBS_SPEC_VERSION, EdgeEncoder, EdgeView
from hierarchy.policies.base import PolicyContext
from hierarchy.policies.learned import actor_from_file
from hierarchy.policies.policy_file import PolicyFileError, read_policy, write_policy

REPO = Path(__file__).resolve().parent.parent
SCENARIO = "small"
SITE = "edge-0"


def site_backend() -> SimSiteBackend:
    return SimSiteBackend(SCENARIO, SITE)


def context() -> PolicyContext:
    b = site_backend()
    return PolicyContext(b.encoder, b.cloud_encoder)


def numpy_policy(out: Path, encoder: EdgeEncoder, seed: int = 0, hidden: int = 8) -> Path:
    """A policy file written with NumPy alone (random weights), in the exported format."""
    rng = np.random.default_rng(seed)
    dim, n = encoder.spec.dim, encoder.layout.n
    arrays = {"edge.0.weight": rng.normal(size=(hidden, dim)), "edge.0.bias": np.zeros(hidden),
              "edge.1.weight": rng.normal(size=(n, hidden)), "edge.1.bias": np.zeros(n)}
    edge = {"layers": 2, "activation": "tanh", "obs_dim": dim, "n_actions": n,
            "obs_spec_version": OBS_SPEC_VERSION, "obs_spec_hash": encoder.spec.hash}
    write_policy(out, arrays, {"name": "hand-made", "actors": {"edge": edge}})
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MAPPO policy trained on `small` (needs torch: training, not the gateway)."""
    pytest.importorskip("torch")
    from hierarchy.mappo import TrainConfig, Trainer
    from hierarchy.scenario import load_scenario
    from sim.core import BatchedCore

    scenario = load_scenario(SCENARIO, {"time.horizon_s": 600})

    def make_env(batch: int, seed: int) -> BatchedCore:
        return BatchedCore(scenario, batch_size=batch, seed=seed, record_metrics=False)

    out = tmp_path_factory.mktemp("tiny-policy")
    config = TrainConfig(total_steps=64, batch=2, rollout=16, epochs=1, minibatches=1,
                         hidden=(16,), critic_hidden=(16,), threads=1, eval_every=100,
                         eval_copies=1, checkpoint_every=100)
    Trainer(make_env, config, out, meta={"scenario": SCENARIO}).train()
    return out


class Recorder:
    """Wraps the agent's edge decider: records each pending view, observation and mask."""

    def __init__(self, decider) -> None:  # noqa: ANN001
        self.decider = decider
        self.calls: list[tuple[EdgeView, np.ndarray, np.ndarray, int]] = []

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        action = self.decider(view, mask, obs)
        if bool(view.pending):
            self.calls.append((view, obs.copy(), mask.copy(), int(np.asarray(action))))
        return action


def test_a_learned_policy_decides_through_the_broker_as_the_numpy_actor_does(
        broker: Broker, trained: Path, tmp_path: Path) -> None:
    config = EdgeConfig(site=SITE, broker=broker.url, scenario=SCENARIO,
                        policy=f"learned:{trained}", store=tmp_path / "edge.sqlite3",
                        telemetry_interval_s=0.2)
    agent = EdgeAgent(config, backend=site_backend())
    recorder = Recorder(agent.policy.edge)
    agent.policy.edge = recorder
    probe = Probe(broker, [p.decisions_topic(SITE), p.OFFLOAD_TOPIC])
    agent.serve_in_thread()
    n = 40
    try:
        wait(agent.ready.is_set, 10, "the edge agent to connect")
        sizes = {}
        for i in range(n):  # every request has its own CPU, so views map back to requests
            cpu = round(0.05 + 0.07 * i, 3)
            sizes[cpu] = f"r{i}"
            probe.publish(p.requests_topic(SITE), p.Request(
                request_id=f"r{i}", app=f"app{i % 4}", container=f"c{i % 3}", cpu_cores=cpu,
                mem_gib=0.25 + 0.05 * (i % 5), slo_ms=100.0, peers=["c0", "c1", "c2"],
                service=f"svc{i % 2}").to_bytes())
        probe.wait_until(lambda: len(probe.messages[p.decisions_topic(SITE)])
                         + len(probe.messages[p.OFFLOAD_TOPIC]) >= n, 15, f"{n} answers")
    finally:
        agent.shutdown()
        probe.close()

    decisions = {d["request_id"]: d for d in probe.json(p.decisions_topic(SITE))}
    offloads = {o["request"]["request_id"] for o in probe.json(p.OFFLOAD_TOPIC)}
    assert len(decisions) + len(offloads) == n and not set(decisions) & offloads

    # An independent reading of the policy file and a fresh encoder of the same site.
    pf = read_policy(trained)
    actor = actor_from_file(pf.arrays, "edge", pf.meta["actors"]["edge"])
    encoder = site_backend().encoder
    label = f"learned:{trained.name}@{pf.meta['weights_sha256'][:12]}"
    assert len(recorder.calls) == n
    kinds = set()
    for view, obs, mask, action in recorder.calls:
        rid = sizes[round(float(view.cpu_req), 3)]
        obs2, mask2 = encoder.encode_and_mask(view)
        assert np.array_equal(obs2, obs) and np.array_equal(mask2, mask)
        expected = int(actor.act(obs2, mask2))
        assert action == expected
        kind, node, size, _ = (int(x) for x in encoder.layout.decode(np.asarray(expected)))
        if kind == EDGE_PLACE:
            kinds.add("placed")
            d = decisions[rid]
            assert d["outcome"] == "placed" and d["node"] == f"{SITE}.node{node}"
            cpu_frac = encoder.size_fractions(view)[0][size]
            assert d["cpu_cores"] == pytest.approx(float(view.cpu_req) * cpu_frac)
            assert d["policy"] == label
        else:
            kinds.add("offloaded")
            assert rid in offloads
    assert "placed" in kinds


def test_the_decision_path_runs_without_torch(tmp_path: Path) -> None:
    """A fresh interpreter where `import torch` fails loads a learned policy in the edge
    agent, decides a request and never imports torch."""
    policy = numpy_policy(tmp_path / "policy", site_backend().encoder)
    script = textwrap.dedent(f"""
        import importlib.abc, sys

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked on this gateway")
                return None

        sys.meta_path.insert(0, NoTorch())
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker did not block torch")

        import edge_agent.cli  # noqa: F401
        from edge_agent.agent import EdgeAgent
        from edge_agent.config import EdgeConfig
        from hierarchy import protocol as p
        from hierarchy.transport import Incoming

        agent = EdgeAgent(EdgeConfig(site="edge-0", broker="mqtt://127.0.0.1:1",
                                     scenario="small", policy="learned:{policy}",
                                     store="{tmp_path / 'edge.sqlite3'}"))
        req = p.Request(request_id="r1", app="a", container="c", cpu_cores=0.2,
                        mem_gib=0.5, slo_ms=100.0)
        with agent.store.transaction():
            agent._handle(Incoming(p.requests_topic("edge-0"), req.to_bytes(), 1, False, 1),
                          [])
        print(agent.store.outbox_after(0, 10)[0].payload.decode())
        assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
        agent.close()
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    message = json.loads(out.stdout.strip().splitlines()[-1])
    assert message["policy"].startswith("learned:hand-made@")


def _tampered(src: Path, dst: Path) -> Path:
    dst.mkdir()
    (dst / "policy.json").write_text((src / "policy.json").read_text())
    data = bytearray((src / "policy.npz").read_bytes())
    data[-100] ^= 0xFF
    (dst / "policy.npz").write_bytes(bytes(data))
    return dst


def _edited(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001
    dst.mkdir()
    (dst / "policy.npz").write_bytes((src / "policy.npz").read_bytes())
    meta = json.loads((src / "policy.json").read_text())
    edit(meta)
    (dst / "policy.json").write_text(json.dumps(meta))
    return dst


def test_a_policy_that_cannot_be_used_stops_the_agent_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = numpy_policy(tmp_path / "good", site_backend().encoder)
    other = SimSiteBackend("default", SITE).encoder  # another platform: 8 nodes per site

    def drop_layers(meta: dict) -> None:
        del meta["actors"]["edge"]["layers"]

    def other_hash(meta: dict) -> None:
        meta["actors"]["edge"]["obs_spec_hash"] = "0" * 16

    cases = {
        "no such policy directory": f"learned:{tmp_path / 'missing'}",
        "does not match": f"learned:{_tampered(good, tmp_path / 'tampered')}",
        "retrain the policy": f"learned:{_edited(good, tmp_path / 'hash', other_hash)}",
        "malformed policy metadata": f"learned:{_edited(good, tmp_path / 'meta', drop_layers)}",
        "observation spec": f"learned:{numpy_policy(tmp_path / 'other', other)}",
        "unknown policy 'best-fit'": "best-fit",
        "give the policy directory": "learned:",
    }
    for why, spec in cases.items():
        rc = cli.main(["--site", SITE, "--broker", "mqtt://127.0.0.1:1", "--scenario", SCENARIO,
                       "--store", str(tmp_path / "edge.sqlite3"), "--policy", spec,
                       "--log-level", "ERROR"])
        err = capsys.readouterr().err
        assert rc == 2, (spec, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edge-agent: "), err
        assert why in lines[0] and "Traceback" not in err, (why, err)
    assert not (tmp_path / "edge.sqlite3").exists()  # refused before anything was opened


def test_learned_alone_means_the_shipped_policy_for_the_platform(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    models = tmp_path / "models"
    monkeypatch.setattr(decide_module, "SHIPPED_POLICIES_DIR", models)
    with pytest.raises(PolicyFileError, match="no shipped policy in models/"):
        load_policy("learned", ctx)
    # One shipped policy, for another platform shape (default's sites): refused, and the
    # error says what the shipped ones were trained on and what to do instead.
    default_site = SimSiteBackend("default", SITE)
    numpy_policy(models / "default", default_site.encoder)
    with pytest.raises(PolicyFileError, match=r"no shipped policy fits this site's platform"
                       r".*shipped: default.*learned:DIR.*heuristic"):
        load_policy("learned", ctx)
    # A second one, for this platform: `learned` finds it.
    numpy_policy(models / "small", ctx.edge_encoder)
    policy = load_policy("learned", ctx)
    meta = json.loads((models / "small" / "policy.json").read_text())
    assert (policy.name, policy.version) == ("learned:hand-made", meta["weights_sha256"][:12])
    # On default's platform the same word is the other one.
    on_default = load_policy("learned", PolicyContext(default_site.encoder,
                                                      default_site.cloud_encoder))
    default_meta = json.loads((models / "default" / "policy.json").read_text())
    assert on_default.version == default_meta["weights_sha256"][:12] != policy.version
    # The one that fits, damaged: refused for what it is, not passed over.
    (models / "small" / "policy.npz").write_bytes(b"not a policy")
    with pytest.raises(PolicyFileError) as refused:
        load_policy("learned", ctx)
    assert "small" in str(refused.value) and "fits" not in str(refused.value)
    # The agent's default is the shipped learned policy.
    assert EdgeConfig(site=SITE).policy == "learned"


def test_the_repository_ships_a_policy_for_default_and_for_small() -> None:
    for scenario in ("default", "trace-default", "small"):
        site = SimSiteBackend(scenario, SITE)
        policy = load_policy("learned", PolicyContext(site.encoder, site.cloud_encoder))
        assert policy.name.startswith("learned:"), (scenario, policy.name)
