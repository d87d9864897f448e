"""Robot RL: fine-tune a deployed policy with whole episodes run on the robot (RLPD's recipe, episodic).

Why episodic: SERL runs the actor on the robot and the learner beside it. A high update-to-data ratio does not
fit between two 20 ms control ticks on a small computer, and an actor that waits on gradient steps misses its
deadlines. So the robot runs one episode of the current actor (with bounded exploration, which the deploy
guard clips like any command), and between episodes, while the robot stands at its start, the learner makes
``utd`` updates per new robot transition. Every batch mixes robot transitions with a share of transitions
simulated under the identified DR (the prior: what the simulator, once identified, predicts), with RLPD's
LayerNorm critic ensemble and a random-subset minimum.

The actor keeps the deployed policy's observation history: transitions hold stacked windows (oldest first,
the first observation repeated at an episode start), exactly as the deployed actor stacks them live, and the
critics read the same windows. A PPO parent (clipped Gaussian) is distilled into SAC's tanh actor on those
windows first; its observation normalisation is kept.

This module knows nothing of ROS: the caller runs the episodes (``tether.pipeline.robot_rl`` deploys them over
DDS and reads them back from the bags) and hands them over as :class:`Episode`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tether.data.robot_runs import Episode
from tether.errors import TetherError
from tether.policies.base import Policy
from tether.policies.buffers import ReplayBuffer, concat_batches, mix
from tether.policies.hybrid.common import EnvLike, ProgressFn, critic_warmup, warm_start_actor
from tether.policies.hybrid.config import HybridConfig
from tether.policies.history import make_windows
from tether.policies.rl.common import config_from_dict, config_to_dict
from tether.policies.rl.sac import SAC

if TYPE_CHECKING:
    from tether.contract import IOContract


@dataclass
class RobotRLConfig(HybridConfig):
    """RLPD's settings for fine-tuning on a robot (LayerNorm critic ensemble), with the actor loosely anchored to
    the deployed policy (:meth:`tether.policies.rl.sac.SAC.anchor_to`) and most of every batch robot data.

    Why these values (hover quadrotor, PPO parent, served-like PyBullet robots; ``benchmarks/RESULTS.md``):
    without the anchor a policy at 100 % on its robot fell to 0 % within ~4000 updates; with a strong one
    (weight 2.5, actor lr 3e-5) nothing moved, on the quadrotor or on a toy robot with a steady drift; weight
    0.1 at lr 3e-4 kept the good policy at 90-100 % and raised a failing one's return 29 -> 120 in three
    rounds (nine robot episodes). Half the batch from the simulator held the actor near what the simulator wanted (the toy's
    gain faded as robot data grew); a tenth leaves the robot's dynamics in charge."""

    utd: int = 5  # updates per new robot transition, made between episodes (~10 ms each on one core)
    num_qs: int = 4
    num_min_qs: int = 2
    critic_hidden: tuple[int, ...] = (128, 128)  # 4 x 128: ~10 ms per update on one core (10 x 256: ~45 ms)
    critic_layer_norm: bool = True
    offline_ratio: float = 0.1  # share of every batch drawn from the simulated prior
    learning_starts: int = 0
    autotune: bool = False
    init_alpha: float = 0.01
    bc_weight: float = 0.1  # weight of staying near the deployed actor's mean action
    actor_lr: float = 3e-4
    critic_warmup: int = 2000  # critic-only updates on the prior before the loaded actor moves
    distill_steps: int = 2000  # regression steps that copy a non-SAC parent into the tanh actor
    max_updates: int = 5_000  # the most updates between two episodes (bounds the wait: ~1 min)
    prior_episodes: int = 30  # episodes simulated under the identified DR: the prior share of every batch
    prior_explore: float = 0.1  # exploration in those episodes (normalised units), so critics see actions nearby

    def check(self) -> None:
        super().check()
        if not (isinstance(self.prior_episodes, int) and 1 <= self.prior_episodes <= 10_000):
            raise TetherError(f"prior_episodes={self.prior_episodes!r}; expected a whole number 1..10000")
        if not 0.0 <= self.prior_explore <= 1.0:
            raise TetherError(f"prior_explore={self.prior_explore!r}; expected a scale in [0, 1]")
        for name in ("utd", "max_updates"):
            if int(getattr(self, name)) < 1:
                raise TetherError(f"{name}={getattr(self, name)!r}; expected a positive whole number")


def stack_history(obs: np.ndarray, history: int) -> np.ndarray:
    """(N, obs) observations of one episode -> (N, history * obs): the window ending at each step, oldest first,
    the first observation repeated before the start (:func:`~tether.policies.history.make_windows`, the
    convention :class:`~tether.policies.history.ObservationHistory` keeps live)."""
    obs = np.asarray(obs, np.float32)
    windows, _ = make_windows(obs, np.zeros((len(obs), 1), np.float32), None, history, 1)
    return windows.reshape(len(obs), history * obs.shape[1])


def episode_transitions(episodes: Sequence[Episode], history: int) -> dict[str, np.ndarray]:
    """Stacked (obs, action, reward, next_obs, terminal) arrays of whole episodes."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminal")}
    for ep in episodes:
        if len(ep) == 0:
            continue
        w = stack_history(ep.obs, history)
        term = np.zeros(len(ep), np.float32)
        term[-1] = float(ep.terminal)
        for k, v in zip(parts, (w[:-1], ep.action, ep.reward, w[1:], term)):
            parts[k].append(v)
    if not parts["obs"]:
        raise TetherError("no transitions: every episode is empty; expected at least one recorded step")
    return {k: np.concatenate(v) for k, v in parts.items()}


def sim_episodes(env: EnvLike, policy: Policy, episodes: int, *, dr: Any = None, explore: float = 0.0,
                 seed: int = 0, backend: str | None = None) -> list[Episode]:
    """``episodes`` episodes of ``policy`` in a simulator (an env id, with ``dr``: a preset, terms or a DR file;
    or a factory), with Gaussian exploration of ``explore`` (normalised units, clipped to [-1, 1]) so the
    critics see actions beside the policy's own."""
    from tether.policies.envs import make_env

    if isinstance(env, str):
        terms = None if dr is None else dr if isinstance(dr, (list, tuple)) else str(dr)
        env = make_env(env, backend=backend, dr=terms)
    else:
        env = env()
    rng = np.random.default_rng(seed)
    out = []
    try:
        for i in range(episodes):
            o, _ = env.reset(seed=seed + i)
            if hasattr(policy, "reset"):
                policy.reset()
            obs, acts, rews, term = [o], [], [], False
            while True:
                a = np.asarray(policy.act(np.asarray(o, np.float32)[None]), np.float32).reshape(-1)
                if explore > 0:
                    a = a + explore * rng.standard_normal(a.shape).astype(np.float32)
                a = np.clip(a, -1.0, 1.0)
                o, r, te, tr, _ = env.step(a)
                obs.append(o), acts.append(a), rews.append(r)
                if te or tr:
                    term = bool(te)
                    break
            out.append(Episode(np.array(obs), np.array(acts), np.array(rews), term))
    finally:
        env.close()
    return out


def load_robot_data(source: Sequence[Episode] | str | Path, contract: IOContract
                    ) -> tuple[list[Episode], dict[str, Any]]:
    """(robot episodes, provenance) from episodes, a deploy bag, or a folder of them (one per deployed episode,
    ``tether deploy --record bags/rl-3``), with the task's reward; a bag that cannot be read is named in the
    provenance's ``skipped`` and left out."""
    from tether.data.robot_runs import bags_under, read_robot_episodes

    if not isinstance(source, (str, Path)):
        eps = list(source)
        if not all(isinstance(e, Episode) for e in eps):
            raise TetherError("robot data is a sequence of something else; expected Episodes, a bag or a folder of bags")
        return eps, {"source": "episodes", "episodes": len(eps), "transitions": sum(map(len, eps))}
    bags = bags_under(source)
    skipped: list[str] = []
    eps = read_robot_episodes(bags, contract, lambda bag, why: skipped.append(f"{bag.name}: {why}"))
    if not eps:
        why = f" ({'; '.join(skipped)})" if skipped else ""
        raise TetherError(f"robot data {str(source)!r}: no episode in {len(bags)} bag(s) in which the robot followed "
                          f"the policy clear of the task's terminal state{why}; expected bags of tether deploy "
                          f"--record with this checkpoint's contract")
    prov = {"source": str(Path(source).resolve()), "kind": "rosbag2", "bags": [b.name for b in bags],
            "episodes": len(eps), "transitions": sum(map(len, eps)), "skipped": skipped}
    return eps, prov


def _check_actor(policy: Policy) -> None:
    from tether.policies.gaussian import GaussianPolicy

    if not isinstance(policy, GaussianPolicy):
        raise TetherError(f"robot RL fine-tunes a Gaussian actor (PPO or SAC); this policy is a "
                          f"{type(policy).__name__}; expected a policy trained with --algo ppo or sac")


class RobotRL:
    """The learner: ``add(episodes)`` from the robot, ``improve()`` between episodes, ``policy`` to deploy next.
    :meth:`with_sim_prior` builds one whose prior is simulated here."""

    def __init__(self, policy: Policy, prior: Sequence[Episode], config: RobotRLConfig | dict[str, Any] | None = None,
                 *, seed: int = 0) -> None:
        _check_actor(policy)
        cfg = config if isinstance(config, RobotRLConfig) else config_from_dict(RobotRLConfig, config, "robot RL")
        cfg.check()
        self.cfg, self.seed, self.history = cfg, seed, policy.history
        self.contract = policy.contract
        self.sac = SAC(policy.contract, cfg.sac_config(history=self.history), seed=seed)
        prior_tr = episode_transitions(prior, self.history)
        self.prior = ReplayBuffer.from_arrays(prior_tr["obs"], prior_tr["action"], prior_tr["reward"],
                                              prior_tr["next_obs"], prior_tr["terminal"], seed=seed)
        self.robot = ReplayBuffer(self.prior.obs_size, self.contract.action_size, 200_000, seed=seed + 1)
        t0 = time.perf_counter()
        self.actor_init = warm_start_actor(self.sac, policy, prior_tr["obs"], steps=cfg.distill_steps, seed=seed)
        self.sac.policy.dr_terms = getattr(policy, "dr_terms", None)
        critic_warmup(self.sac, lambda: self.prior.sample(cfg.batch_size), cfg.critic_warmup)
        self.sac.anchor_to(self.sac.policy, cfg.bc_weight, cfg.actor_lr)
        self.pending = 0  # robot transitions added since the last improve()
        self.updates = 0
        self.update_s = time.perf_counter() - t0

    @classmethod
    def with_sim_prior(cls, policy: Policy, env: EnvLike, config: RobotRLConfig | dict[str, Any] | None = None, *,
                       dr: Any = None, backend: str | None = None, seed: int = 0) -> RobotRL:
        """A learner whose prior is ``config.prior_episodes`` episodes of ``policy`` in ``env`` (an env id under
        ``dr``, the identified DR; or a factory), explored by ``config.prior_explore``."""
        _check_actor(policy)  # before the prior is simulated
        cfg = config if isinstance(config, RobotRLConfig) else config_from_dict(RobotRLConfig, config, "robot RL")
        cfg.check()
        prior = sim_episodes(env, policy, cfg.prior_episodes, dr=dr, explore=cfg.prior_explore, seed=seed + 20_000,
                             backend=backend)
        return cls(policy, prior, cfg, seed=seed)

    def add(self, episodes: Sequence[Episode]) -> int:
        """Add robot episodes; returns the number of transitions added."""
        tr = episode_transitions(episodes, self.history)
        self.robot.add(tr["obs"], tr["action"], tr["reward"], tr["next_obs"], tr["terminal"])
        self.pending += len(tr["obs"])
        return len(tr["obs"])

    def improve(self, updates: int | None = None, progress: ProgressFn | None = None) -> dict[str, float]:
        """``updates`` SAC steps (default: ``utd`` per robot transition added since the last call, at most
        ``max_updates``), each batch ``offline_ratio`` prior and the rest robot data; returns the last metrics.
        ``progress(done, total, metrics)`` hears every 100th."""
        n = min(self.cfg.utd * self.pending, self.cfg.max_updates) if updates is None else int(updates)
        sources = [(self.robot, 1.0 - self.cfg.offline_ratio), (self.prior, self.cfg.offline_ratio)]
        metrics: dict[str, float] = {}
        t0 = time.perf_counter()
        self.sac.policy.train()
        for i in range(n):
            metrics = self.sac.update(concat_batches(*mix(sources, self.cfg.batch_size)))
            if progress is not None and ((i + 1) % 100 == 0 or i + 1 == n):
                progress(i + 1, n, metrics)
        self.sac.policy.eval()
        self.update_s += time.perf_counter() - t0
        self.updates += n
        self.pending = 0
        return metrics

    @property
    def policy(self) -> Any:
        """The actor to deploy next (deterministic ``act``), its provenance in ``extra``."""
        p = self.sac.policy
        p.extra.update({"algo": "robot_rl", "robot_rl_config": config_to_dict(self.cfg), "actor_init": self.actor_init,
                        "robot_transitions": len(self.robot), "prior_transitions": len(self.prior),
                        "gradient_updates": self.updates, "update_time_s": self.update_s})
        return p


__all__ = ["Episode", "RobotRL", "RobotRLConfig", "episode_transitions", "load_robot_data", "sim_episodes",
           "stack_history"]
