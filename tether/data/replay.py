"""Datasets and bags → replay-buffer arrays, for offline RL and hybrid (offline + online) fine-tuning.

The buffers live with the learners (``tether.policies.buffers.ReplayBuffer.from_transitions`` reads what this
module loads). Time-limit endings bootstrap (``terminal`` false), true terminals do not — the distinction
``Dataset.to_transitions`` keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError

TRANSITION_KEYS = ("obs", "action", "reward", "next_obs", "terminal", "timeout")


def load_transitions(
    source: Any,
    *,
    contract: IOContract | None = None,
    reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Transitions from a Dataset, a dataset directory, or a rosbag2 recording (converted with the flat
    mapping into a temporary dataset; needs ``contract``). ``reward_fn(obs, action, next_obs)`` replaces the
    stored rewards, e.g. the sim task's reward evaluated on real data."""
    from tether.bag_names import is_bag
    from tether.data.dataset import Dataset

    if isinstance(source, Dataset):
        ds = source
    else:
        path = Path(source)
        if (path / "meta" / "info.json").is_file():
            ds = Dataset(path)
        elif is_bag(path):
            if contract is None:
                raise TetherError(f"{path} is a rosbag2 recording; converting it needs the policy's contract")
            import tempfile

            from tether.data.rosbag_import import convert_bags

            ds = convert_bags([path], contract, Path(tempfile.mkdtemp(prefix="tether-bag-")) / "ds")
        else:
            raise TetherError(f"{path} is neither a dataset (meta/info.json) nor a rosbag2 recording")
    if contract is not None and ds.contract is not None:
        ds.contract.check_compatible(contract, check_rate=True, what="dataset")
    tr = ds.to_transitions()
    if reward_fn is not None and len(tr["obs"]):
        tr["reward"] = np.asarray(reward_fn(tr["obs"], tr["action"], tr["next_obs"]), np.float32).reshape(-1)
    return tr


def concat_transitions(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        raise TetherError("no transitions to concatenate")
    return {k: np.concatenate([p[k] for p in parts]) for k in TRANSITION_KEYS}
