"""The settings every hybrid (real data + interaction) learner shares, on top of SAC's.

Why a base class: H2O and RLPD start from the same place (a loaded actor, real transitions mixed into every
batch by ``offline_ratio``) and need the same warm-up knobs with the same defaults; declaring them once keeps
the two from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from tether.errors import TetherError
from tether.policies.rl.sac import SACConfig


@dataclass
class HybridConfig(SACConfig):
    """SACConfig plus the warm start used when fine-tuning a loaded policy with real data."""

    init_alpha: float = 0.1  # small: a loaded actor must not be pushed to maximum entropy first
    critic_warmup: int = 1000  # critic-only updates on real data before the loaded actor is trained
    distill_states: int = 2000  # env steps of a non-SAC parent policy whose states its distillation uses

    def sac_config(self, **overrides: object) -> SACConfig:
        """The plain SAC settings of this config (the learner's own), with ``overrides`` (e.g. ``history``)."""
        return SACConfig(**{**{f.name: getattr(self, f.name) for f in fields(SACConfig)}, **overrides})

    def check(self) -> None:
        """Refuse settings that leave either data source out of the batches."""
        if not 0.0 < self.offline_ratio < 1.0:
            raise TetherError(f"offline_ratio={self.offline_ratio}; expected a share of real data strictly between "
                              "0 and 1")


__all__ = ["HybridConfig"]
