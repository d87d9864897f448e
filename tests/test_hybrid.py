"""Hybrid fine-tuning: H2O's dynamics-gap estimate, H2O vs sim-only and real-only training, RLPD fine-tuning of a
sim checkpoint, and ``finetune`` input checks.

The learning tests use a perturbed-dynamics point mass (numpy, so a learning run fits in tens of seconds on a
loaded 2-core machine): reach the origin from 0.6-1.0 m. The "real" robot has a hidden actuator-frame error —
commands are rotated by 120 degrees while it is in the region x < 0.3 m, which includes the goal (think of a
heading estimate corrupted near a steel structure) — and the simulator does not know it. The real dataset (2000
transitions) comes from a mediocre behaviour policy (noisy, half the time random) that only ever started in the
half-plane x < 0: the operator recorded where the robot misbehaved. So each baseline is wrong somewhere for a
structural reason: sim-only training is wrong where the dynamics differ, real-only offline training has never
seen most of the region x > 0.3; H2O has to use each data source where it is trustworthy (the paper's claim).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.policies.hybrid import finetune
from tether.policies.hybrid.h2o import DynamicsGapClassifier, train_h2o
from tether.policies.offline.common import OfflineData
from tether.policies.offline.iql import IQLConfig, train_iql
from tether.policies.rl.sac import train_sac
from tests._hybrid_support import KEYS, record_transitions

HORIZON, STEP, ROT_DEG, X_PATCH = 25, 0.1, 120.0, 0.3


def toy_contract() -> IOContract:
    return IOContract(robot="pointmass", task="reach", observations=(Field.make("pos_error", 2, "m", "world"),),
                      actions=(Field.make("velocity", 2, "m/s", "world", low=-1.0, high=1.0),),
                      control_mode="ee_delta_pose", rate_hz=10.0)


class PatchEnv(gym.Env):
    """Point mass; ``rot_deg`` rotates the actuator frame where x < X_PATCH (0 = the simulator)."""

    def __init__(self, rot_deg: float = 0.0, start: str = "all") -> None:
        self.contract = toy_contract()
        self.rot = np.deg2rad(rot_deg)
        self.start = start
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        lo, hi = (0.5 * np.pi, 1.5 * np.pi) if self.start == "left" else (0.0, 2 * np.pi)
        ang, rad = self.np_random.uniform(lo, hi), self.np_random.uniform(0.6, 1.0)
        self.s = np.array([rad * np.cos(ang), rad * np.sin(ang)])
        self.t = 0
        return self.s.astype(np.float32), {}

    def gain(self, s: np.ndarray) -> np.ndarray:
        th = self.rot if s[0] < X_PATCH else 0.0
        return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])

    def step(self, action):
        a = np.clip(np.asarray(action, np.float64).reshape(2), -1.0, 1.0)
        self.s = np.clip(self.s + STEP * self.gain(self.s) @ a, -1.5, 1.5)
        self.t += 1
        return self.s.astype(np.float32), 1.0 - float(np.linalg.norm(self.s)), False, self.t >= HORIZON, {}

    def expert(self) -> np.ndarray:
        d = float(np.linalg.norm(self.s))
        v = -self.s / max(d, 1e-6) * min(1.0, d / STEP)
        return (self.gain(self.s).T @ v).astype(np.float32)


def sim_env() -> PatchEnv:
    return PatchEnv(0.0)


def real_env() -> PatchEnv:
    return PatchEnv(ROT_DEG)


def collect_real(episodes: int, seed: int, p_expert: float = 0.5, noise: float = 0.3) -> dict[str, np.ndarray]:
    env = PatchEnv(ROT_DEG, start="left")
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in KEYS}
    for ep in range(episodes):
        o, _ = env.reset(seed=seed * 1000 + ep)
        done = False
        while not done:
            a = env.expert() if rng.random() < p_expert else rng.uniform(-1, 1, 2)
            a = np.clip(a + noise * rng.normal(size=2), -1, 1).astype(np.float32)
            o2, r, te, tr, _ = env.step(a)
            for k, v in zip(KEYS, (o, a, r, o2, te)):
                out[k].append(v)
            o, done = o2, te or tr
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def real_return(policy, episodes: int = 40, seed: int = 500, make_env=None) -> float:
    """Mean return of ``policy`` on the real robot (or on the robot ``make_env`` builds)."""
    env = (make_env or real_env)()
    total = 0.0
    for ep in range(episodes):
        o, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            o, r, te, tr, _ = env.step(policy.act(o))
            total += r
            done = te or tr
    return total / episodes


SMALL = dict(hidden=(64, 64), critic_hidden=(64, 64), batch_size=128, gamma=0.9, init_alpha=0.1)
H2O_CFG = dict(SMALL, learning_starts=250, disc_hidden=(64, 64), cql_actions=4, gap_samples=4)
STEPS = 1500
# measured (data seed 0): sim-only 1.6, IQL 11.0, H2O 12.9 / 12.4 (training seeds 0 / 1), expert 22.2
H2O_MARGIN_SIM = 8.0


@pytest.fixture(scope="module")
def real_data() -> dict[str, np.ndarray]:
    return collect_real(80, seed=0)


@pytest.fixture(scope="module")
def sim_policy():
    torch.set_num_threads(1)
    return train_sac(sim_env, STEPS, dict(SMALL, learning_starts=250), seed=0).policy


def _uniform_transitions(env: PatchEnv, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    s = rng.uniform(-1.0, 1.0, (n, 2))
    a = rng.uniform(-1.0, 1.0, (n, 2))
    s2 = np.stack([np.clip(si + STEP * env.gain(si) @ ai, -1.5, 1.5) for si, ai in zip(s, a)])
    return {"obs": torch.tensor(s, dtype=torch.float32), "action": torch.tensor(a, dtype=torch.float32),
            "next_obs": torch.tensor(s2, dtype=torch.float32)}


def test_gap_classifier_finds_where_the_simulator_is_wrong() -> None:
    """Trained on real vs sim transitions over the same (s, a), the classifiers' dynamics ratio must be near 1
    where the simulator is right (x > X_PATCH) and near 0 where it is wrong, and the KL gap the reverse."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    real, sim = _uniform_transitions(real_env(), 4000, rng), _uniform_transitions(sim_env(), 4000, rng)
    disc = DynamicsGapClassifier(2, 2, (64, 64))
    disc.fit_normalisers(real["obs"].numpy(), real["next_obs"].numpy())
    opt = torch.optim.Adam(list(disc.sa.parameters()) + list(disc.sas.parameters()), lr=3e-3)
    for _ in range(400):
        i = torch.randint(0, 4000, (256,), generator=gen)
        loss, _ = disc.loss({k: v[i] for k, v in real.items()}, {k: v[i] for k, v in sim.items()}, 0.1, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = _uniform_transitions(sim_env(), 2000, rng)
    ratio = disc.log_ratio(test["obs"], test["action"], test["next_obs"]).exp().clamp(1e-5, 1.0).numpy()
    gap = disc.kl_gap(test["obs"], test["action"], test["next_obs"], 8, 0.1, gen).numpy()
    left, right = test["obs"][:, 0].numpy() < X_PATCH - 0.1, test["obs"][:, 0].numpy() > X_PATCH + 0.1
    print("ratio left/right", ratio[left].mean(), ratio[right].mean(), "gap", gap[left].mean(), gap[right].mean())
    assert ratio[right].mean() > 0.6 and ratio[left].mean() < 0.25
    assert gap[left].mean() > 5 * gap[right].mean()


def test_bad_inputs_are_one_line_errors(tmp_path, real_data, sim_policy) -> None:
    good = dict(real_data)
    with pytest.raises(TetherError, match="empty"):
        finetune(sim_policy, {k: v[:0] for k, v in good.items()}, sim_env, steps=10)
    with pytest.raises(TetherError, match=r"obs has shape \(2000, 3\); expected \(2000, 2\)"):
        finetune(sim_policy, {**good, "obs": np.zeros((2000, 3), np.float32)}, sim_env, steps=10)
    with pytest.raises(TetherError, match="lacks \\['reward'\\]"):
        finetune(sim_policy, {k: v for k, v in good.items() if k != "reward"}, sim_env, steps=10)
    with pytest.raises(TetherError, match="expected normalised actions"):
        finetune(sim_policy, {**good, "action": good["action"] * 3}, sim_env, steps=10)
    with pytest.raises(TetherError, match="expected one of h2o, rlpd"):
        finetune(sim_policy, good, sim_env, algo="cql", steps=10)
    with pytest.raises(TetherError, match="does not exist"):
        finetune(sim_policy, tmp_path / "nope", sim_env, steps=10)
    with pytest.raises(TetherError, match="does not record the env"):
        finetune(sim_policy, good, None, steps=10)
    with pytest.raises(TetherError, match="offline_ratio"):
        train_h2o(sim_env, good, 10, {"offline_ratio": 1.0})


def test_h2o_beats_sim_only_training_and_distrusts_the_wrong_simulator(real_data, sim_policy) -> None:
    """Same budget for every arm (1500 env steps / gradient steps, 64-unit nets): SAC in the simulator only and
    H2O on simulator + real data (two training seeds). H2O must beat sim-only on the real robot, and its learned
    importance weights must distrust simulated transitions where the real data shows the simulator is wrong
    (where there is no real data the ratio is not identifiable; the classifier unit test covers that case).

    Real-only IQL is printed for reference but not asserted against: over training seeds 0-5 H2O scored 12.9,
    12.4, 7.7, 9.7, 18.8, 16.0 against IQL's 11.0 (and at 3000 steps 11.7, 10.3, 6.8 against 12.3), so on this
    toy H2O is not reliably better than learning from the real data alone."""
    torch.set_num_threads(1)
    sim_only = real_return(sim_policy)
    data = OfflineData(real_data["obs"], real_data["action"], real_data["reward"], real_data["next_obs"],
                       real_data["terminal"])
    iql = train_iql(toy_contract(), data, IQLConfig(steps=STEPS, hidden=(64, 64), batch_size=128, gamma=0.9),
                    seed=0).policy
    agents = [train_h2o(sim_env, real_data, STEPS, H2O_CFG, seed=seed) for seed in (0, 1)]
    h2o = float(np.mean([real_return(a.policy) for a in agents]))
    sb = agents[0].sim_buffer.arrays()
    o, a, n = (torch.from_numpy(np.ascontiguousarray(sb[k])) for k in ("obs", "action", "next_obs"))
    w = agents[0].disc.log_ratio(o, a, n).exp().clamp(1e-5, 1.0).numpy()
    wrong = sb["obs"][:, 0] < X_PATCH - 0.1
    print(f"real return: sim-only {sim_only:.2f}  real-only (IQL) {real_return(iql):.2f}  H2O (2 seeds) {h2o:.2f}; "
          f"mean sim weight where the sim is wrong {w[wrong].mean():.3f}")
    assert h2o > sim_only + H2O_MARGIN_SIM, (h2o, sim_only)
    assert w[wrong].mean() < 0.2
    assert agents[0].policy.extra["algo"] == "h2o" and agents[0].policy.extra["sim_steps"] == STEPS


QUAD = "tether/QuadrotorHover-v0"
TINY = ["--set", "hidden=[32,32]", "--set", "critic_hidden=[32,32]", "--set", "batch_size=64"]


def test_finetune_cli_round_trip(tmp_path, capsys) -> None:
    """sim checkpoint (MuJoCo, default DR) → real data from a heavier-thrust-loss "real" quadrotor → `tether
    finetune` (h2o, then rlpd) → a checkpoint that loads, keeps the contract and says where it came from."""
    from tether.cli import main
    from tether.data.demos import record_episodes
    from tether.data.dataset import Dataset, DatasetWriter
    from tether.policies.checkpoint import load_checkpoint, load_policy
    from tether.policies.envs import make_env
    from tether.policies.evaluation import evaluate_policy
    from tether.sim.randomization import DRTerm

    torch.set_num_threads(1)
    run = tmp_path / "sim"
    assert main(["train", QUAD, "--algo", "sac", "--steps", "200", "--dr", "default", "--out", str(run),
                 "--eval-every", "0", "--no-progress", "--set", "learning_starts=100", *TINY]) == 0
    parent = load_checkpoint(run / "checkpoint")
    policy = load_policy(run / "checkpoint")
    real = make_env(QUAD, dr=[DRTerm("actuator_gain", "uniform", "scale", (0.8, 0.8))])
    record_episodes(real, tmp_path / "real", 2, act=policy.act, max_steps=60)
    real.close()

    out = tmp_path / "ft"
    assert main(["finetune", str(run / "checkpoint"), "--real", str(tmp_path / "real"), "--algo", "h2o",
                 "--steps", "120", "--out", str(out), "--no-progress", "--set", "disc_hidden=[32,32]",
                 "--set", "cql_actions=2", "--set", "gap_samples=2", "--set", "critic_warmup=10",
                 "--set", "actor_freeze=30", "--set", "distill_states=50", "--set", "select_every=0", *TINY[:2],
                 *TINY[4:]]) == 0
    ck = load_checkpoint(out / "checkpoint")
    assert ck.kind == "gaussian_mlp" and ck.contract == parent.contract
    assert ck.config == parent.config  # the deployed actor's architecture and normalisation settings are kept
    assert ck.dr_terms == parent.dr_terms and ck.dr_terms  # trained under the checkpoint's own DR terms
    assert ck.extra["algo"] == "h2o" and ck.extra["env_id"] == QUAD and ck.extra["actor_init"] == "weights"
    assert ck.extra["finetuned_from"]["weights_sha256"] == parent.weights_sha256
    n_real = len(Dataset(tmp_path / "real").to_transitions()["obs"])
    assert ck.extra["real_data"]["kind"] == "dataset" and ck.extra["real_data"]["transitions"] == n_real > 50
    assert ck.weights_sha256 != parent.weights_sha256
    assert (out / "metrics.csv").is_file() and any((out / "tb").iterdir())
    res = evaluate_policy(load_policy(out / "checkpoint"), QUAD, episodes=1, seed=3)
    assert np.isfinite(res.return_mean)

    out2 = tmp_path / "ft-rlpd"
    assert main(["finetune", str(out / "checkpoint"), "--real", str(tmp_path / "real"), "--algo", "rlpd",
                 "--steps", "60", "--out", str(out2), "--no-progress", "--set", "utd=2", "--set", "num_qs=2",
                 "--set", "critic_warmup=10", *TINY[2:]]) == 0
    ck2 = load_checkpoint(out2 / "checkpoint")
    assert ck2.contract == parent.contract and ck2.extra["algo"] == "rlpd"
    assert ck2.extra["finetuned_from"]["weights_sha256"] == ck.weights_sha256
    assert "saved" in capsys.readouterr().out

    # a dataset of another robot, and an empty dataset: one line each, exit code 2
    record_episodes(PatchEnv(), tmp_path / "toy", 1, act=lambda o: np.zeros(2, np.float32), max_steps=5)
    DatasetWriter(tmp_path / "empty", parent.contract, parent.contract.rate_hz).close()
    for bad, msg in ((tmp_path / "toy", "does not fit the checkpoint"), (tmp_path / "empty", "is empty"),
                     (tmp_path / "missing", "does not exist")):
        capsys.readouterr()
        assert main(["finetune", str(run / "checkpoint"), "--real", str(bad), "--steps", "10",
                     "--out", str(tmp_path / "x"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
    assert main(["finetune", str(run / "checkpoint"), "--real", str(tmp_path / "real"), "--algo", "ppo",
                 "--no-progress"]) == 2

    # the provenance of a Path / Dataset source names the dataset
    from tether.policies.hybrid.common import load_real

    for src in (tmp_path / "real", Dataset(tmp_path / "real")):
        tr, prov = load_real(src, parent.contract)
        assert prov["kind"] == "dataset" and prov["source"] == str((tmp_path / "real").resolve())
        assert prov["transitions"] == len(tr["obs"]) == n_real

    # `tether train SIM --algo h2o --dataset REAL` trains from scratch with the same learner
    assert main(["train", QUAD, "--algo", "h2o", "--dataset", str(tmp_path / "real"), "--steps", "80",
                 "--out", str(tmp_path / "h2o-scratch"), "--eval-every", "0", "--no-progress",
                 "--set", "learning_starts=40", "--set", "disc_hidden=[32,32]", "--set", "cql_actions=2", *TINY]) == 0
    ck3 = load_checkpoint(tmp_path / "h2o-scratch" / "checkpoint")
    assert ck3.contract == parent.contract and ck3.extra["algo"] == "h2o"
    assert ck3.extra["real_data"]["kind"] == "dataset"


def test_rlpd_finetuning_improves_a_sim_checkpoint_on_the_real_robot(tmp_path, real_data, sim_policy) -> None:
    """Offline-to-online: the sim-trained actor, the real dataset and online interaction with the real robot
    (50/50 batches, LayerNorm critic ensemble with a random-subset minimum) must raise the real return."""
    torch.set_num_threads(1)
    sim_policy.save(tmp_path / "sim")  # through a checkpoint directory, as the pipeline does
    before = real_return(sim_policy)
    calls: list[int] = []
    tuned = finetune(tmp_path / "sim", real_data, sim_env, online_env=real_env, algo="rlpd", steps=RLPD_STEPS,
                     seed=0, out=tmp_path / "ft", progress=lambda s, t, m: calls.append(s),
                     config=dict(SMALL, utd=2, num_qs=4, num_min_qs=2, critic_warmup=200))
    after = real_return(tuned)
    print(f"real return: sim checkpoint {before:.2f} -> rlpd {after:.2f}")
    assert after > before + RLPD_GAIN, (before, after)
    assert calls and calls[-1] == RLPD_STEPS
    assert tuned.contract == sim_policy.contract and tuned.extra["algo"] == "rlpd"
    assert tuned.extra["real_data"] == {"source": "arrays", "transitions": len(real_data["obs"])}
    assert tuned.extra["actor_init"] == "weights" and (tmp_path / "ft" / "checkpoint" / "checkpoint.json").is_file()


RLPD_STEPS = 600
RLPD_GAIN = 4.0


def test_non_sac_checkpoints_are_distilled_into_the_fine_tuning_actor(real_data) -> None:
    """A PPO/IQL-style actor (clipped Gaussian) cannot be trained by SAC as is; it is distilled into a tanh
    actor that must then act like it, with the parent's observation normalisation kept."""
    from tether.policies.hybrid.common import warm_start_actor
    from tether.policies.rl.sac import SAC, SACConfig

    torch.set_num_threads(1)
    data = OfflineData(real_data["obs"], real_data["action"], real_data["reward"], real_data["next_obs"],
                       real_data["terminal"])
    parent = train_iql(toy_contract(), data, IQLConfig(steps=200, hidden=(32, 32), batch_size=64), seed=0).policy
    assert parent.config["squash"] == "clip"
    sac = SAC(toy_contract(), SACConfig(hidden=(64, 64), critic_hidden=(32, 32)), seed=0)
    assert warm_start_actor(sac, parent, real_data["obs"], steps=400, seed=0) == "distilled"
    err = np.abs(sac.policy.act(real_data["obs"]) - parent.act(real_data["obs"])).mean()
    assert err < 0.1, err
    torch.testing.assert_close(sac.policy.obs_norm.mean, parent.obs_norm.mean)
    assert sac.policy.config["norm_clip"] == parent.config["norm_clip"]



# A perturbed-dynamics quadrotor: the checkpoint is trained in MuJoCo under the default DR preset; the "real"
# robot is PyBullet, 25 % heavier, with motors twice as slow and one step of action latency (the robot the
# pipeline serves is of this kind). The checkpoint hovers there but sags far below the set point.
GUARD_MARGIN = 0.01  # share of the parent's real return the fine-tuned policy may lose (evaluation is seeded)


def _quad_real_terms():
    from tether.sim.randomization import DRTerm

    return [DRTerm("body_mass", "uniform", "scale", (1.25, 1.25)),
            DRTerm("motor_time_constant", "uniform", "scale", (2.0, 2.0)),
            DRTerm("action_latency", "uniform", "abs", (1, 1))]


def _quad_parent():
    """A PPO-style (clipped Gaussian, tanh MLP, observation normaliser) hover policy cloned from the geometric
    controller sized for the nominal vehicle (what flies from observations alone, not the task's privileged
    expert) in MuJoCo under default DR: the kind of checkpoint `tether train --algo ppo` writes, in seconds."""
    from tether.policies.envs import make_env
    from tether.policies.gaussian import GaussianPolicy
    from tests._sysid_support import QuadrotorExpertPolicy

    env = make_env(QUAD, dr="default")
    expert = QuadrotorExpertPolicy(env.unwrapped.contract)
    rng = np.random.default_rng(0)
    obs_l, act_l = [], []
    for ep in range(12):
        o, _ = env.reset(seed=ep)
        for _ in range(200):
            a = expert.act(o).astype(np.float32)
            obs_l.append(o)
            act_l.append(a)
            o, _, te, tr, _ = env.step(np.clip(a + 0.1 * rng.normal(size=a.shape), -1, 1).astype(np.float32))
            if te or tr:
                break
    contract, terms = env.unwrapped.contract, [t.to_dict() for t in env.unwrapped.dr_terms]
    env.close()
    x, y = torch.tensor(np.array(obs_l)), torch.tensor(np.array(act_l))
    torch.manual_seed(0)
    pol = GaussianPolicy(contract, {"net": {"hidden": [64, 64], "act": "tanh", "layer_norm": False},
                                    "squash": "clip", "log_std": "state_independent", "log_std_init": -1.0},
                         dr_terms=terms, extra={"algo": "bc", "env_id": QUAD})
    pol.obs_norm.update(x.numpy())
    opt = torch.optim.Adam(pol.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(1500):
        i = torch.randint(0, len(x), (256,), generator=gen)
        loss = ((pol.dist_params(x[i])[0] - y[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return pol.eval()


def test_h2o_finetuning_of_a_quadrotor_checkpoint_does_not_degrade_it_on_the_real_robot(tmp_path) -> None:
    """finetune()'s checkpoint defaults on the sim-to-real hover gap: 500 real transitions, H2O with the MuJoCo
    simulator. Unguarded, the actor steps the critic asks for lower the real return (measured on a PPO hover
    checkpoint: 202 -> 170-197), and a distilled copy of this parent alone drops it from 143 to 88; the
    BC-anchored actor plus the held-out real-data selection (falling back to the parent itself) must not lose
    more than GUARD_MARGIN of it, and the record must say how the policy was chosen. (H2O did not raise the
    return in this setting; see benchmarks/RESULTS.md.)"""
    from tether.policies.envs import make_env
    from tether.policies.evaluation import evaluate_policy

    torch.set_num_threads(1)
    parent = _quad_parent()
    real_terms = _quad_real_terms()
    real = record_transitions(make_env(QUAD, backend="pybullet", dr=real_terms), parent, 2)

    def real_eval(pol):
        return evaluate_policy(pol, QUAD, episodes=4, seed=500, backend="pybullet", dr=real_terms)

    before = real_eval(parent)
    parent.save(tmp_path / "parent")
    tuned = finetune(tmp_path / "parent", real, QUAD, algo="h2o", steps=1200, seed=0,
                     config={"critic_warmup": 400, "actor_freeze": 400, "freeze_max": 600, "select_every": 200})
    after = real_eval(tuned)
    sel = tuned.extra["selection"]
    print(f"real return {before.return_mean:.2f} -> {after.return_mean:.2f}; selection {sel}")
    assert after.return_mean >= before.return_mean * (1.0 - GUARD_MARGIN), (before.return_mean, after.return_mean)
    assert sel["held_out"] == 100 and sel["chosen"] in {"parent", "final"} | {f"step {s}" for s in range(1201)}
    assert len(sel["scores"]) >= 2  # snapshots after the actor was unfrozen, and the final actor
    assert tuned.extra["actor_init"] == "distilled" and 400 <= tuned.extra["actor_unfrozen_at"] <= 600
