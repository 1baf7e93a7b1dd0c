"""MAPPO training on short runs: determinism, export, the NumPy actor, resume, the runner.

Runs are tiny (a `small` platform with a 20-minute horizon, 4 copies, 16-step rollouts) so the
whole file takes seconds; they check mechanics, not learning quality (benchmarks/training.py
and the README's tables measure that).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hierarchy.mappo import TrainConfig, Trainer, TrainingError  # noqa: E402
from hierarchy.mappo.model import EdgeShape, MappoModel  # noqa: E402
from hierarchy.mappo.rollout import Collector, Rollout, gae  # noqa: E402
from hierarchy.policies.base import PolicyContext  # noqa: E402
from hierarchy.policies.learned import load_learned_policy  # noqa: E402
from hierarchy.policies.policy_file import PolicyFileError, read_policy, sha256_of  # noqa: E402
from hierarchy.scenario import load_scenario  # noqa: E402
from sim.core import BatchedCore  # noqa: E402
from sim.evaluate import evaluate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SCENARIO = load_scenario("small", {"time.horizon_s": 1200})


def make_env(batch: int, seed: int) -> BatchedCore:
    return BatchedCore(SCENARIO, batch_size=batch, seed=seed, record_metrics=False)


def tiny(**kw) -> TrainConfig:
    base = dict(total_steps=4 * 16 * 3, batch=4, rollout=16, epochs=2, minibatches=2,
                hidden=(32, 32), critic_hidden=(32, 32), threads=1, eval_every=2,
                eval_copies=2, checkpoint_every=1)
    base.update(kw)
    return TrainConfig(**base)


def train(out: Path, **kw) -> tuple[Trainer, dict]:
    trainer = Trainer(make_env, tiny(**kw), out, meta={"scenario": SCENARIO.name})
    return trainer, trainer.train()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mappo")
    train(out)
    return out


def test_same_seed_gives_the_same_run(trained, tmp_path) -> None:
    train(tmp_path)
    first = (trained / "train.csv").read_text().splitlines()
    second = (tmp_path / "train.csv").read_text().splitlines()
    # Wall-clock columns differ; everything learned must not.
    keep = [i for i, name in enumerate(first[0].split(","))
            if name not in ("seconds", "agent_steps_per_s")]
    strip = [[row.split(",")[i] for i in keep] for row in first]
    assert strip == [[row.split(",")[i] for i in keep] for row in second]
    assert sha256_of(trained / "policy.npz") == sha256_of(tmp_path / "policy.npz")


def test_another_seed_gives_another_policy(trained, tmp_path) -> None:
    train(tmp_path, seed=1)
    assert sha256_of(trained / "policy.npz") != sha256_of(tmp_path / "policy.npz")


def test_export_records_what_a_gateway_needs(trained) -> None:
    meta = json.loads((trained / "policy.json").read_text())
    core = make_env(1, 0)
    assert meta["actors"]["edge"]["obs_spec_hash"] == core.edge_encoder.spec.hash
    assert meta["actors"]["cloud"]["obs_spec_hash"] == core.cloud_encoder.spec.hash
    assert meta["actors"]["edge"]["n_actions"] == core.edge_layout.n
    assert meta["scenario"] == "small" and meta["seed"] == 0
    assert meta["training"]["algo"] == "mappo"
    assert (trained / "policy.npz").stat().st_size < 1_000_000


@pytest.fixture(scope="module")
def trained_node_scoring(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mappo-node")
    train(out, edge_arch="node-scoring")
    return out


@pytest.mark.parametrize("arch", ["mlp", "node-scoring"])
def test_numpy_actor_agrees_with_the_torch_actor(arch, trained, trained_node_scoring) -> None:
    trained = trained if arch == "mlp" else trained_node_scoring
    trainer = Trainer(make_env, tiny(edge_arch=arch), trained)
    assert trainer.load_checkpoint()
    trainer.model.load_state_dict(trainer.best_state)
    assert json.loads((trained / "policy.json").read_text())["actors"]["edge"]["arch"] == arch
    core = make_env(8, 123)
    policy = load_learned_policy(trained, PolicyContext(core.edge_encoder, core.cloud_encoder))
    checked = 0
    for _ in range(200):
        edge = policy.edge(core.edge_view, core.edge_mask, core.edge_obs)
        cloud = policy.cloud(core.cloud_view, core.cloud_mask, core.cloud_obs)
        with torch.no_grad():
            for actor, obs, mask, got in (
                (trainer.model.edge_actor, core.edge_obs, core.edge_mask, edge),
                (trainer.model.cloud_actor, core.cloud_obs, core.cloud_mask, cloud),
            ):
                deciding = mask[..., 0] == 0
                if not deciding.any():
                    continue
                t_logits = actor.masked_logits(torch.from_numpy(obs[deciding]),
                                               torch.from_numpy(mask[deciding] == 1)).numpy()
                n_logits = policy.edge.actor.logits(obs[deciding]) if actor is \
                    trainer.model.edge_actor else policy.cloud.actor.logits(obs[deciding])
                allowed = mask[deciding] == 1
                np.testing.assert_allclose(n_logits[allowed], t_logits[allowed], atol=1e-5)
                assert np.array_equal(got[deciding], t_logits.argmax(-1))
                checked += int(deciding.sum())
        core.step(edge, cloud)
    assert checked > 50


def test_learned_policy_only_takes_allowed_actions(trained) -> None:
    ev = evaluate(SCENARIO, [f"learned:{trained}"], episodes=1, seed=77, progress=False)
    result = ev.results[f"learned:{trained}"]
    assert result.episodes[0].metrics["cost"] > 0
    core = make_env(4, 9)
    policy = load_learned_policy(trained, PolicyContext(core.edge_encoder, core.cloud_encoder))
    for _ in range(300):
        edge = policy.edge(core.edge_view, core.edge_mask, core.edge_obs)
        cloud = policy.cloud(core.cloud_view, core.cloud_mask, core.cloud_obs)
        assert np.take_along_axis(core.edge_mask, edge[..., None], -1).all()
        assert np.take_along_axis(core.cloud_mask, cloud[..., None], -1).all()
        core.step(edge, cloud)
    assert int(core.st.invalid_actions.sum()) == 0


def test_tampered_weights_are_refused(trained, tmp_path) -> None:
    bad = tmp_path / "policy"
    shutil.copytree(trained, bad)
    data = bytearray((bad / "policy.npz").read_bytes())
    data[-100] ^= 0xFF
    (bad / "policy.npz").write_bytes(bytes(data))
    with pytest.raises(PolicyFileError, match="does not match"):
        read_policy(bad)


def test_a_policy_file_needing_pickle_is_refused(trained, tmp_path) -> None:
    bad = tmp_path / "policy"
    shutil.copytree(trained, bad)
    np.savez(bad / "policy.npz", edge=np.array([{"x": 1}], dtype=object))
    meta = json.loads((bad / "policy.json").read_text())
    meta["weights_sha256"] = sha256_of(bad / "policy.npz")  # a consistent but hostile file
    (bad / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyFileError, match="unpickling"):
        read_policy(bad)


def test_a_policy_for_another_observation_is_refused(trained) -> None:
    other = BatchedCore("default", batch_size=1, seed=0)
    ctx = PolicyContext(other.edge_encoder, other.cloud_encoder)
    with pytest.raises(PolicyFileError, match="observation spec"):
        load_learned_policy(trained, ctx)


def test_runner_refuses_a_missing_policy_before_running(tmp_path) -> None:
    from sim.evaluate import EvaluationError

    with pytest.raises(EvaluationError, match="no such policy file"):
        evaluate(SCENARIO, [f"learned:{tmp_path}"], episodes=1, progress=False)


def test_resume_goes_on_from_the_checkpoint(tmp_path) -> None:
    trainer, _ = train(tmp_path, total_steps=4 * 16 * 2)
    assert trainer.update_index == 2
    resumed = Trainer(make_env, tiny(total_steps=4 * 16 * 4), tmp_path)
    resumed.train()
    assert resumed.update_index == 4
    rows = (tmp_path / "train.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]


def test_resume_with_other_settings_is_refused(tmp_path) -> None:
    train(tmp_path, total_steps=4 * 16)
    with pytest.raises(TrainingError, match="other settings"):
        Trainer(make_env, tiny(lr=1e-3), tmp_path).train()


@pytest.mark.parametrize("variant", [{"algo": "ippo"}, {"cloud": "rule"}, {"local_reward": 0.5}])
def test_ablation_variants_train_and_export(variant, tmp_path) -> None:
    _, summary = train(tmp_path, total_steps=4 * 16 * 2, **variant)
    meta = json.loads((tmp_path / "policy.json").read_text())
    assert meta["training"][next(iter(variant))] == next(iter(variant.values()))
    assert ("cloud" in meta["actors"]) == (variant.get("cloud", "learned") == "learned")
    assert np.isfinite(summary["best_eval_cost"])


def test_gae_discounts_per_tick_not_per_decision_round() -> None:
    # Two rounds at one instant (no tick), then a tick with cost 1, then the end.
    T, B = 3, 1
    z = np.zeros((T, B, 1), np.float32)
    reward = np.array([[0.0], [0.0], [-1.0]], np.float32)
    buf = Rollout(None, None, None, z.copy(), reward, reward[..., None],
                  np.array([[1.0], [1.0], [0.5]], np.float32),
                  np.array([[1.0], [1.0], [1.0]], np.float32),
                  np.array([[False], [False], [True]]), np.zeros((B, 1), np.float32))
    adv, ret = gae(buf)
    # With zero values and lambda 1 the advantage is the undiscounted sum inside the instant.
    assert np.allclose(adv[:, 0, 0], [-1.0, -1.0, -1.0])


def test_train_command_writes_a_policy_and_refuses_to_overwrite(tmp_path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hierarchy", "train", "--scenario", "small", "--set",
           "time.horizon_s=600", "--total-steps", "64", "--batch", "2", "--rollout", "16",
           "--hidden", "16", "--eval-copies", "1", "--threads", "1", "--out", str(out),
           "--no-progress"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "best evaluation cost" in done.stdout
    meta = json.loads((out / "policy.json").read_text())
    assert meta["command"].startswith("hierarchy train --scenario small")
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr


def test_imitation_copies_the_heuristic_before_ppo(tmp_path) -> None:
    trainer = Trainer(make_env, tiny(imitate="power-aware-resize", imitate_steps=200,
                                     imitate_epochs=30, critic_warmup=2,
                                     total_steps=4 * 16 * 2), tmp_path)
    trainer.warm_start()
    # The actors now mostly take the heuristic's action (far above chance among ~40).
    assert trainer.imitation["edge"] > 0.8
    before = [p.detach().clone() for p in trainer.model.edge_actor.parameters()]
    buf = trainer.collector.collect()
    from hierarchy.mappo.update import ppo_update

    ppo_update(trainer.model, trainer.optimizers, buf, trainer.cfg, trainer.gen,
               train_actors=False)
    after = list(trainer.model.edge_actor.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_imitating_an_unknown_heuristic_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown heuristic"):
        tiny(imitate="no-such-rule").validate()


def test_local_reward_gives_each_edge_agent_its_share_of_its_site() -> None:
    env = make_env(2, 5)
    model = MappoModel(tiny(local_reward=0.25), env.edge_obs.shape[-1], env.edge_mask.shape[-1],
                       env.cloud_obs.shape[-1], env.cloud_mask.shape[-1],
                       env.global_state().shape[-1], env.S, EdgeShape.of(env.edge_encoder))
    assert model.value_heads == env.S + 1
    collector = Collector(env, model, tiny(local_reward=0.25), torch.Generator().manual_seed(0))
    buf = collector.collect()
    # The split by location sums to the team's cost, step by step.
    rewards = buf.agent_reward
    assert rewards.shape == (*buf.reward.shape, env.S + 1)
    assert np.allclose(rewards[..., env.S], buf.reward)  # the cloud level: the team's
    assert not np.allclose(rewards[..., 0], buf.reward)  # an edge agent: its own share too
    out = env.step(np.zeros((2, env.S), np.int64), np.zeros(2, np.int64))
    assert np.allclose(out.site_cost.sum(axis=1), out.cost)


@pytest.mark.parametrize("shaping", ["committed", "committed-slo", "power"])
def test_shaping_telescopes_to_the_change_of_potential(shaping) -> None:
    # With gamma 1 the shaping terms of a stretch without an episode's end sum to
    # potential(end) - potential(start): they move credit between steps, never add any.
    cfg = tiny(gamma=1.0, shaping=shaping)
    env = make_env(3, 11)
    model = MappoModel(cfg, env.edge_obs.shape[-1], env.edge_mask.shape[-1],
                       env.cloud_obs.shape[-1], env.cloud_mask.shape[-1],
                       env.global_state().shape[-1], env.S, EdgeShape.of(env.edge_encoder))
    collector = Collector(env, model, cfg, torch.Generator().manual_seed(0))
    start = collector._potential()[:, 0]
    buf = collector.collect()
    end = collector._potential()[:, 0]
    assert not buf.done.any()
    shaping = (buf.agent_reward[..., 0] - buf.reward).sum(axis=0)
    assert np.allclose(shaping, end - start, atol=1e-4)
    assert np.abs(shaping).max() > 0  # the platform's draw did change


def test_shaping_scale_multiplies_the_committed_potential() -> None:
    env = make_env(2, 5)
    rng = np.random.default_rng(0)
    for _ in range(30):  # some containers placed, so some awake time is committed
        env.step((rng.random(env.edge_mask.shape) * env.edge_mask).argmax(-1),
                 (rng.random(env.cloud_mask.shape) * env.cloud_mask).argmax(-1))
    potentials = []
    for scale in (1.0, 0.5):
        cfg = tiny(shaping="committed", shaping_scale=scale)
        model = MappoModel(cfg, env.edge_obs.shape[-1], env.edge_mask.shape[-1],
                           env.cloud_obs.shape[-1], env.cloud_mask.shape[-1],
                           env.global_state().shape[-1], env.S, EdgeShape.of(env.edge_encoder))
        potentials.append(Collector(env, model, cfg, torch.Generator().manual_seed(0))._potential())
    assert np.abs(potentials[0]).max() > 0
    np.testing.assert_allclose(potentials[1], 0.5 * potentials[0])
    with pytest.raises(ValueError, match="shaping_scale"):
        tiny(shaping_scale=-1.0).validate()
