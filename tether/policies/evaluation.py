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
from tether.policies.envs import env_contract, episode_success, make_env


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


def evaluate_policy(
    policy: Any,
    env: str | gym.Env,
    *,
    episodes: int = 10,
    seed: int = 0,
    backend: str | None = None,
    dr: str | None = None,
    video: str | Path | None = None,
    check_contract: bool = True,
    env_kwargs: dict[str, Any] | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes with ``policy.act`` (deterministic); seeds are ``seed, seed+1, ...``."""
    if episodes < 1:
        raise TetherError(f"episodes={episodes}; expected >= 1")
    own_env = isinstance(env, str)
    if own_env:
        env = make_env(env, backend=backend, dr=dr, render_mode="rgb_array" if video else None, **(env_kwargs or {}))
    assert isinstance(env, gym.Env)
    if check_contract and getattr(policy, "contract", None) is not None:
        spec_id = env.spec.id if env.spec is not None else None
        policy.contract.check_compatible(env_contract(env, spec_id), what="env")
    frames: list[np.ndarray] = []
    returns, lengths, successes = [], [], []
    final_scalars: dict[str, list[float]] = {}
    any_success_flag = False
    try:
        for ep in range(episodes):
            obs, info = env.reset(seed=seed + ep)
            if hasattr(policy, "reset"):
                policy.reset()
            total, steps, done = 0.0, 0, False
            success: bool | None = None
            while not done:
                action = np.asarray(policy.act(np.asarray(obs, dtype=np.float32)[None]))[0]
                obs, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                steps += 1
                done = bool(terminated or truncated)
                if video is not None:
                    frame = env.render()
                    if frame is not None:
                        frames.append(np.asarray(frame))
            success = episode_success(info)
            any_success_flag |= success is not None
            for k, v in info.items():  # task diagnostics at episode end (final distance, position error, ...)
                if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
                    final_scalars.setdefault(k, []).append(float(v))
            returns.append(total)
            lengths.append(steps)
            successes.append(bool(success))
    finally:
        if own_env:
            env.close()
    if video is not None:
        _write_video(Path(video), frames, fps=float(getattr(policy, "contract", None).rate_hz
                                                     if getattr(policy, "contract", None) else 30.0))
    final_mean = {k: float(np.mean(v)) for k, v in final_scalars.items() if len(v) == len(returns)}
    return EvalResult(np.asarray(returns), np.asarray(lengths),
                      np.asarray(successes) if any_success_flag else None, {"final_info_mean": final_mean})


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    if not frames:
        raise TetherError(f"no frames rendered for {path}; the env returned None from render()")
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(str(path), frames, fps=min(max(fps, 1.0), 60.0), macro_block_size=1)
