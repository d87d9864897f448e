"""DAgger (Ross et al. 2011) for a policy that imitates a task's scripted expert.

Why: a policy cloned from the expert's own flights only ever saw the states the expert reaches; its first small
error takes it somewhere it has no data for, and it compounds. A diffusion policy cloned from 300 quadrotor
waypoint flights crashed in every episode. In each DAgger round the policy drives, the expert labels every state
it reached with what it would do there, and the policy trains on everything gathered so far; one round took
that policy to 91 % under the quadrotor's ``wide`` DR, two to 100 % (benchmarks/RESULTS.md, "Waypoints through
the loop by imitation with DAgger"). The expert labels with the simulator's privileged state (each world's mass and rotor
gain), so a student with an observation history learns to infer what the expert was told.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tether.errors import TetherError

if TYPE_CHECKING:
    from tether.policies.gaussian import GaussianPolicy
    from tether.policies.generative import GenerativeChunkPolicy

DAGGER_KEYS = {"dagger_rounds": "rounds", "dagger_episodes": "episodes", "dagger_steps": "steps"}  # --set names


@dataclass
class DaggerConfig:
    """How much DAgger: ``rounds`` of ``episodes`` episodes driven by the policy, each followed by ``steps``
    gradient steps at ``lr`` on everything gathered (a third of behaviour cloning's rate: it goes on from the
    cloned weights)."""

    rounds: int = 0
    episodes: int = 64
    steps: int = 8000
    lr: float = 3e-4

    def __post_init__(self) -> None:
        for name, lo in (("rounds", 0), ("episodes", 1), ("steps", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise TetherError(f"DAgger {name} is {value!r}; expected a whole number >= {lo}")
        if not (isinstance(self.lr, (int, float)) and np.isfinite(self.lr) and self.lr > 0):
            raise TetherError(f"DAgger lr is {self.lr!r}; expected a number > 0")

    @classmethod
    def pop_from(cls, overrides: dict[str, Any]) -> DaggerConfig:
        """The DAgger settings among ``--set`` overrides (``dagger_rounds=2`` ...), removed from them."""
        found = {}
        for key, name in DAGGER_KEYS.items():
            if key in overrides:
                value = overrides.pop(key)
                try:
                    found[name] = int(value)
                except (TypeError, ValueError):
                    raise TetherError(f"--set {key}={value!r}; expected a whole number") from None
        return cls(**found)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> DaggerConfig:
        """The settings a checkpoint was trained with (none: no DAgger); checked, as anything read from a file."""
        from tether.validation import expect_dict, expect_int, expect_number

        d = expect_dict(extra.get("dagger") or {}, "checkpoint extra.dagger", allowed=cls.__dataclass_fields__)
        return cls(**{k: expect_number(v, f"checkpoint extra.dagger.{k}") if k == "lr"
                      else expect_int(v, f"checkpoint extra.dagger.{k}") for k, v in d.items()})

    def as_extra(self) -> dict[str, Any]:
        return asdict(self)

    def check_env(self, env_id: str) -> None:
        """Refuse rounds in an env without a scripted expert to label them, before any training runs."""
        if self.rounds and not env_id.startswith("tether/"):
            raise TetherError(f"--set dagger_rounds needs a tether/ env, whose task's scripted expert labels the "
                              f"states; got {env_id!r}")


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def dagger(policy: GaussianPolicy | GenerativeChunkPolicy, env_id: str, data: Arrays | None, cfg: DaggerConfig,
           out: Path, *, dr: str | Path | None, backend: str | None = None, seed: int = 0,
           log: Callable[[str], None] | None = None,
           until: Callable[[int, GaussianPolicy | GenerativeChunkPolicy], bool] | None = None) -> Arrays:
    """``cfg.rounds`` rounds of DAgger on ``policy`` (any policy with ``fit``: a
    :class:`~tether.policies.generative.GenerativeChunkPolicy` or a :class:`~tether.policies.gaussian.GaussianPolicy`,
    trained in place) in ``env_id`` under ``dr``, starting from ``data`` (observations, normalised actions,
    episode ids: what it was cloned from; None: nothing, for a policy that learned otherwise, by RL). Round
    ``r``'s episodes are written as a dataset to ``out/round-r``; ``until(rounds done, policy)``, called after
    each, stops the rounds early when it returns True. Returns all the data, the rounds' appended."""
    from tether.data.demos import WIDE_BATCH, record_episodes

    if data is None:
        c = policy.contract
        data = (np.zeros((0, c.obs_size), np.float32), np.zeros((0, c.action_size), np.float32), np.zeros(0, np.int64))
    obs, actions, episodes = data
    kwargs = {"dr": None if dr is None else str(dr), **({"backend": backend} if backend else {})}
    for r in range(cfg.rounds):
        first = seed + 100_000 * (r + 1)
        ds = record_episodes(env_id, Path(out) / f"round-{r}", cfg.episodes, act=policy.act, reset=policy.reset,
                             label="expert", seed=first, env_kwargs=kwargs, batch=WIDE_BATCH,
                             metadata={"source": "dagger", "env_id": env_id, "round": r, "seed": first,
                                       "dr": kwargs["dr"] or "none", "policy": "driving", "label": "expert"})
        o, a, e = ds.episode_arrays()
        obs, actions = np.concatenate([obs, o]), np.concatenate([actions, a])
        episodes = np.concatenate([episodes, e + (episodes.max() + 1 if len(episodes) else 0)])
        drove = float(np.mean([bool(x.success) for x in ds.episodes]))
        policy.fit(obs, actions, episodes, steps=cfg.steps, lr=cfg.lr, seed=seed + r)
        if log:
            log(f"      DAgger round {r + 1}/{cfg.rounds}: the policy succeeded in {drove:.0%} of {cfg.episodes} "
                f"episodes, labelled by the expert; {cfg.steps:,} steps on {len(obs):,} samples")
        if until is not None and until(r + 1, policy):
            break
    return obs, actions, episodes
