"""How good is a dynamics model: one-step and open-loop multi-step errors against simple baselines.

Why baselines: a raw error number means nothing without a reference. "Nothing changes" and "constant
velocity" (positions advance by velocity × dt, everything else holds) are what a model must beat to be
worth planning with; the open-loop k-step error (the model fed its own predictions and the recorded
actions) is what planning actually relies on, and it is where compounding error shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError

# (position field, velocity field, sign): position' = position + sign * velocity * dt
_KINEMATIC_PAIRS = (("pos_error", "base_lin_vel", -1.0), ("joint_pos", "joint_vel", 1.0))


def consecutive_windows(data: Mapping[str, np.ndarray], horizon: int) -> np.ndarray:
    """Start indices i such that transitions i..i+horizon-1 are consecutive steps of one episode."""
    obs, nxt = np.asarray(data["obs"]), np.asarray(data["next_obs"])
    n = len(obs)
    ends = np.asarray(data.get("done", data.get("terminal", np.zeros(n))), bool).reshape(-1)
    if "timeout" in data:
        ends = ends | np.asarray(data["timeout"], bool).reshape(-1)
    if horizon < 1:
        raise TetherError(f"window horizon {horizon}; expected >= 1")
    if n < horizon:
        return np.zeros(0, np.int64)
    link = np.zeros(n, bool)  # transition j continues into j+1
    if n > 1:
        a = nxt[:-1].reshape(n - 1, -1).astype(np.float32)
        b = obs[1:].reshape(n - 1, -1).astype(np.float32)
        link[:-1] = np.all(np.abs(a - b) <= 1e-5 * (1 + np.abs(b)), axis=1) & ~ends[:-1]
    ok = np.ones(n - horizon + 1, bool)
    for j in range(horizon - 1):
        ok &= link[j : j + len(ok)]
    return np.nonzero(ok)[0]


def constant_velocity(contract: IOContract) -> Callable[[np.ndarray], np.ndarray]:
    """Baseline predictor obs -> next obs: kinematic fields advance by velocity × dt, the rest holds."""
    dt = 1.0 / float(contract.rate_hz)
    pairs = [(contract.obs_slices[p], contract.obs_slices[v], s) for p, v, s in _KINEMATIC_PAIRS
             if p in contract.obs_slices and v in contract.obs_slices]

    def predict(obs: np.ndarray) -> np.ndarray:
        nxt = np.array(obs, np.float32, copy=True)
        for p, v, s in pairs:
            nxt[..., p] = obs[..., p] + s * dt * obs[..., v]
        return nxt

    return predict


def open_loop_errors(model, data: Mapping[str, np.ndarray], horizon: int = 10, *, contract: IOContract | None = None,
                     max_windows: int = 512, seed: int = 0) -> dict[str, float]:
    """Mean absolute error (physical units, all elements) after 1 and ``horizon`` open-loop steps, for the model
    and for the baselines (constant velocity if ``contract`` names kinematic fields, else "no change")."""
    starts = consecutive_windows(data, horizon)
    if len(starts) == 0:
        raise TetherError(f"no run of {horizon} consecutive transitions to evaluate on; expected time-ordered data")
    rng = np.random.default_rng(seed)
    starts = rng.choice(starts, min(max_windows, len(starts)), replace=False)
    idx = starts[:, None] + np.arange(horizon)[None]
    obs = np.asarray(data["obs"], np.float32)
    act = np.asarray(data["action"], np.float32)
    nxt = np.asarray(data["next_obs"], np.float32)
    base = constant_velocity(contract) if contract is not None else (lambda o: np.array(o, copy=True))
    o_m = obs[idx[:, 0]]
    o_b = o_m.copy()
    out: dict[str, float] = {}
    for t in range(horizon):
        o_m = model.step(o_m, act[idx[:, t]], deterministic=True)[0]
        o_b = base(o_b)
        if t == 0 or t == horizon - 1:
            tag = "1" if t == 0 else str(horizon)
            out[f"mae_{tag}"] = float(np.abs(o_m - nxt[idx[:, t]]).mean())
            out[f"baseline_mae_{tag}"] = float(np.abs(o_b - nxt[idx[:, t]]).mean())
    return out
