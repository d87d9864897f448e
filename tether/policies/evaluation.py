"""Evaluate a policy in an env: success rate, return mean ± std, optional video.

Why the contract check comes first: evaluating a checkpoint on a different backend (MuJoCo → PyBullet) is the
sim-to-sim test of transfer, and it is only meaningful when the env's contract is the one the policy was trained
with; a mismatch is an error naming each difference, never a silently misread observation vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from tether.errors import TetherError
from tether.policies.base import Actor


@dataclass(frozen=True)
class EvalResult:
    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray | None  # None when the env reports no success flag
    extra: dict[str, Any] = field(default_factory=dict)  # "final_info_mean": mean of numeric end-of-episode infos

    @property
    def return_mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def return_std(self) -> float:
        return float(np.std(self.returns))

    @property
    def success_rate(self) -> float | None:
        return None if self.successes is None else float(np.mean(self.successes))

    def summary(self) -> str:
        sr = "n/a (env reports no success)" if self.success_rate is None else f"{100 * self.success_rate:.1f}%"
        return (f"episodes {len(self.returns)}  success rate {sr}  return {self.return_mean:.2f} ± "
                f"{self.return_std:.2f}  length {np.mean(self.lengths):.1f}")

    def as_metrics(self, prefix: str = "eval/") -> dict[str, float]:
        m = {f"{prefix}return_mean": self.return_mean, f"{prefix}return_std": self.return_std,
             f"{prefix}length_mean": float(np.mean(self.lengths))}
        if self.success_rate is not None:
            m[f"{prefix}success_rate"] = self.success_rate
        return m


MAX_BATCH = 32  # episodes evaluated side by side in one batch


def evaluate_policy(
    policy: Actor,
    env: str | gym.Env,
    *,
    episodes: int = 10,
    seed: int = 0,
    backend: str | None = None,
    dr: Any = None,
    video: str | Path | None = None,
    check_contract: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    executor: str = "inprocess",
    executor_options: dict[str, Any] | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes with ``policy.act`` (deterministic); episode ``k`` starts from seed ``seed + k``.

    Episodes run side by side on the batched envs (up to ``MAX_BATCH`` at once, one episode per env), so the
    policy sees batched observations; a video shows the first episode. ``executor``: where those envs step
    (``tether.sim.vector``; ``"ray"`` with ``{"address": ...}`` puts them on a cluster, the policy stays here).
    """
    from tether.policies.rl.common import make_vec_env

    if episodes < 1:
        raise TetherError(f"episodes={episodes}; expected >= 1")
    if isinstance(env, gym.Env):  # an env object: its episodes one after another
        source: Any = lambda: env  # noqa: E731
        kwargs: dict[str, Any] = {}
    else:
        source = env
        kwargs = {"backend": backend, "dr": dr, "autoreset": False, "executor": executor,
                  "executor_options": executor_options, **(env_kwargs or {})}
    returns, lengths, successes = [], [], []
    final: dict[str, list[float]] = {}
    frames: list[np.ndarray] = []
    flag = False
    done_eps = 0
    while done_eps < episodes:
        n = min(MAX_BATCH, episodes - done_eps) if not isinstance(env, gym.Env) else 1
        venv, info = make_vec_env(source, n, **kwargs)
        try:
            if check_contract and getattr(policy, "contract", None) is not None:
                policy.contract.check_compatible(info.contract, what="env")
            r, l, s, f = _run_batch(policy, venv, seed + done_eps, frames if video is not None and done_eps == 0
                                    else None)
        finally:
            if not isinstance(env, gym.Env):
                venv.close()
        flag |= venv.reports_success
        returns += r
        lengths += l
        successes += s
        for k, v in f.items():
            final.setdefault(k, []).extend(v)
        done_eps += n
    if video is not None:
        _write_video(Path(video), frames, fps=float(getattr(policy, "contract", None).rate_hz
                                                     if getattr(policy, "contract", None) else 30.0))
    final_mean = {k: float(np.mean(v)) for k, v in final.items() if len(v) == len(returns)}
    return EvalResult(np.asarray(returns), np.asarray(lengths), np.asarray(successes) if flag else None,
                      {"final_info_mean": final_mean})


def _run_batch(policy: Actor, venv: Any, seed: int, frames: list[np.ndarray] | None
               ) -> tuple[list[float], list[int], list[bool], dict[str, list[float]]]:
    """One episode per env of ``venv``: returns, lengths, successes, end-of-episode task metrics."""
    n = venv.num_envs
    obs, _ = venv.reset_batch(seed)
    if hasattr(policy, "reset"):
        policy.reset()
    total, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    success = np.zeros(n, dtype=bool)
    live = np.ones(n, dtype=bool)
    final: dict[str, np.ndarray] = {}
    while live.any():
        action = np.asarray(policy.act(np.asarray(obs, dtype=np.float32)), dtype=np.float32)
        res = venv.step_batch(action)
        total += np.where(live, res.reward, 0.0)
        length += live
        if frames is not None and live[0]:
            frame = venv.render(0)
            if frame is not None:
                frames.append(np.asarray(frame))
        ended = live & res.done
        for i in np.nonzero(ended)[0]:
            success[i] = res.success[i]
            for k, v in res.metrics.items():
                final.setdefault(k, np.full(n, np.nan))[i] = float(v[i])
        live &= ~res.done
        obs = res.obs
    numeric = {k: v.tolist() for k, v in final.items() if v.dtype.kind == "f"}
    return total.tolist(), length.tolist(), success.tolist(), numeric


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    if not frames:
        raise TetherError(f"no frames rendered for {path}; the env returned None from render()")
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(str(path), frames, fps=min(max(fps, 1.0), 60.0), macro_block_size=1)
