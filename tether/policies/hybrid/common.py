"""What the hybrid fine-tuners share: checked real transitions, env factories with explicit DR, actor warm starts.

Why one place: H2O and RLPD take the same inputs (a policy to start from, real transitions, an env to interact
with) and must refuse the same bad inputs the same way — an empty dataset, arrays that do not fit the policy's
contract, un-normalised actions — with one line naming what was wrong, before any network is built.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from tether.contract import ContractError, IOContract
from tether.errors import TetherError
from tether.policies.base import Policy

REQUIRED_KEYS = ("obs", "action", "reward", "next_obs", "terminal")

# progress(step, total, metrics): called every ``log_every`` env steps and once at the end
ProgressFn = Callable[[int, int, dict[str, float]], None]
EnvLike = str | Callable[[], gym.Env]


def check_transitions(tr: Mapping[str, Any], contract: IOContract, what: str = "real data") -> dict[str, np.ndarray]:
    """float32 copies of ``tr`` after checking keys, emptiness, shapes against ``contract``, finiteness, range."""
    if not isinstance(tr, Mapping):
        raise TetherError(f"{what} is a {type(tr).__name__}; expected a dict of arrays with keys {list(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in tr]
    if missing:
        raise TetherError(f"{what} lacks {missing}; expected keys {list(REQUIRED_KEYS)}")
    out = {k: np.asarray(tr[k], np.float32) for k in REQUIRED_KEYS}
    n = len(out["obs"])
    if n == 0:
        raise TetherError(f"{what} is empty (0 transitions); expected at least one recorded transition")
    o, a = contract.obs_size, contract.action_size
    expect = {"obs": (n, o), "next_obs": (n, o), "action": (n, a), "reward": (n,), "terminal": (n,)}
    for k, shape in expect.items():
        if out[k].shape != shape:
            raise TetherError(f"{what} {k} has shape {out[k].shape}; expected {shape} for the "
                              f"{contract.robot}/{contract.task} contract (obs {o}, action {a})")
        if not np.all(np.isfinite(out[k])):
            raise TetherError(f"{what} {k} contains NaN/inf; expected finite values")
    amax = float(np.abs(out["action"]).max())
    if amax > 1.0 + 1e-4:
        raise TetherError(f"{what} actions reach {amax:.3f}; expected normalised actions in [-1, 1]")
    out["action"] = np.clip(out["action"], -1.0, 1.0)
    return out


def load_real(source: Any, contract: IOContract, *,
              reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(checked transitions, provenance) from a dict of arrays, a Dataset, a dataset directory or a rosbag2.

    The provenance goes into the fine-tuned checkpoint so it always says which real data shaped it.
    """
    if isinstance(source, Mapping):
        tr = check_transitions(source, contract)
        return tr, {"source": "arrays", "transitions": int(len(tr["obs"]))}
    from tether.data.replay import load_transitions

    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise TetherError(f"real data {source} does not exist; expected a dataset directory or a rosbag2 recording")
    try:
        raw = load_transitions(source, contract=contract, reward_fn=reward_fn)
    except ContractError as exc:
        raise TetherError(f"real data {source} does not fit the checkpoint: {exc}") from None
    tr = check_transitions(raw, contract, what=f"real data {source}")
    from tether.data.dataset import Dataset

    path = source.root if isinstance(source, Dataset) else Path(source)
    kind = "dataset" if (path / "meta" / "info.json").is_file() else "rosbag2"
    prov: dict[str, Any] = {"source": str(path.resolve()), "kind": kind, "transitions": int(len(tr["obs"])),
                            "reward_mean": float(tr["reward"].mean())}
    if reward_fn is not None:
        prov["reward"] = "recomputed"
    return tr, prov


def real_buffer(tr: Mapping[str, np.ndarray], *, seed: int = 0) -> Any:
    from tether.policies.buffers import ReplayBuffer

    return ReplayBuffer.from_arrays(tr["obs"], tr["action"], tr["reward"], tr["next_obs"], tr["terminal"], seed=seed)


def is_sac_actor(policy: Policy) -> bool:
    """A tanh-squashed, state-dependent Gaussian: the actor SAC/H2O/RLPD can keep training as is."""
    from tether.policies.gaussian import GaussianPolicy

    return (isinstance(policy, GaussianPolicy) and policy.config["squash"] == "tanh"
            and policy.config["log_std"] == "state_dependent")


def policy_states(env: EnvLike, policy: Policy, steps: int, *, seed: int = 0,
                  env_kwargs: Mapping[str, Any] | None = None) -> np.ndarray:
    """Observations the policy itself visits in ``env`` (what a distilled copy must imitate on)."""
    from tether.policies.rl.common import make_vec_env

    venv, _ = make_vec_env(env, 1, **dict(env_kwargs or {}))
    out = []
    try:
        obs, _ = venv.reset_batch(seed)
        for _ in range(steps):
            out.append(obs[0].copy())
            obs = venv.step_batch(np.asarray(policy.act(obs), np.float32)).obs
    finally:
        venv.close()
    return np.stack(out) if out else np.zeros((0, policy.contract.obs_size), np.float32)


def warm_start_actor(sac: Any, policy: Policy, states: np.ndarray, *, steps: int = 1000, seed: int = 0) -> str:
    """Make ``sac.policy`` start where ``policy`` is; returns how ("weights" or "distilled").

    A SAC-style actor is taken over as is (weights, observation normaliser, config), so fine-tuning starts from
    exactly the deployed behaviour. Any other policy (PPO's clipped Gaussian, diffusion, flow) is distilled:
    the fresh tanh actor regresses onto ``policy.act`` on ``states`` (real and simulated observations), with its
    normaliser fitted to those states (or the parent's normaliser, when it has one). A policy that reads a history
    takes ``states`` as stacked windows (B, history * obs) when the learner reads the same history (robot RL);
    a memoryless learner (H2O, RLPD) copies what it does on a held observation. Targets are kept inside
    ±0.98 so the tanh actor is not asked for saturated pre-activations, whose log-probabilities would swamp
    SAC's entropy terms.
    """
    if policy.contract.obs_size != sac.contract.obs_size or policy.contract.action_size != sac.contract.action_size:
        raise TetherError("policy and learner contracts differ in size; expected the checkpoint's contract")
    history = getattr(policy, "history", 1)
    if history != sac.policy.history and (sac.policy.history != 1 or is_sac_actor(policy)):
        raise TetherError(f"the policy reads {history} observations and the learner's actor "
                          f"{sac.policy.history}; expected the learner built with the policy's history")
    if is_sac_actor(policy):
        actor = copy.deepcopy(policy)
        actor.extra = {}
        sac.policy = actor
        sac.actor_opt = torch.optim.Adam(actor.parameters(), lr=sac.cfg.lr)
        return "weights"
    states = np.asarray(states, np.float32)
    if history > 1 and sac.policy.history == history:  # stacked windows (B, history * obs), read statelessly
        with torch.inference_mode():
            raw = policy.deterministic(torch.from_numpy(states)).numpy()
    else:
        raw = policy.act(states)
    target = np.clip(np.asarray(raw, np.float32), -0.98, 0.98)
    actor = sac.policy
    src_norm = getattr(policy, "obs_norm", None)
    if src_norm is not None and getattr(src_norm, "size", -1) == actor.obs_norm.size and float(src_norm.count) > 0:
        actor.obs_norm.load_state_dict(src_norm.state_dict())  # keep the parent's normalisation exactly
        clip = float(src_norm.clip)
    else:
        actor.obs_norm.update(states.reshape(-1, actor.obs_norm.size))  # per frame, as the actor normalises
        clip = 10.0
    actor.obs_norm.clip = clip
    actor.config["norm_clip"] = clip  # saved with the checkpoint, so a reload normalises the same way
    opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(states), torch.from_numpy(target)
    actor.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(256, len(x)),), generator=gen)
        mean, log_std = actor.dist_params(x[idx])
        loss = ((torch.tanh(mean) - y[idx]) ** 2).mean() + 1e-3 * (log_std + 1.0).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    actor.eval()
    sac.actor_opt = torch.optim.Adam(actor.parameters(), lr=sac.cfg.lr)
    return "distilled"


def critic_warmup(sac: Any, sample: Callable[[], dict[str, torch.Tensor]], updates: int) -> None:
    """Policy evaluation only (actor and temperature frozen) before fine-tuning a loaded actor.

    Why: a checkpoint carries only its actor. Letting a random critic steer that actor from the first update
    undoes what simulation taught it (the offline-to-online "dip"); fitting Q to the loaded policy first avoids it.
    """
    if updates <= 0:
        return
    delay = sac.cfg.actor_delay
    sac.cfg.actor_delay = 1 << 62  # SAC.update calls the actor step only when num_updates % actor_delay == 0
    try:
        for _ in range(updates):
            sac.update(sample())
    finally:
        sac.cfg.actor_delay = delay


def check_run(cfg: Any, total_steps: int, unit: str = "env") -> None:
    """Refuse a run without steps, or a config whose batches leave out the real data or the fresh rollouts."""
    if total_steps < 1:
        raise TetherError(f"steps={total_steps}; expected a positive number of {unit} steps")
    cfg.check()


def fit_to_env(real: Mapping[str, Any], policy: Policy | None, env_contract: IOContract,
               what: str) -> tuple[IOContract, dict[str, np.ndarray]]:
    """(the contract to train under, checked real transitions): the loaded policy's contract when there is one,
    which the env must be compatible with."""
    contract = policy.contract if policy is not None else env_contract
    contract.check_compatible(env_contract, what=what)
    return contract, check_transitions(real, contract)


def start_actor(sac: Any, policy: Policy | None, real: Mapping[str, np.ndarray], env: EnvLike, cfg: Any,
                neutral_action: Any, real_buf: Any, *, seed: int = 0,
                env_kwargs: Mapping[str, Any] | None = None) -> str | None:
    """Start ``sac``'s actor from ``policy`` (see :func:`warm_start_actor`; returns how) and fit the critics to it
    on ``real_buf`` (see :func:`critic_warmup`), or, without a policy, start at the env's neutral action when the
    config asks for it (returns None)."""
    if policy is not None:
        states = real["obs"] if is_sac_actor(policy) else np.concatenate(
            [real["obs"], policy_states(env, policy, cfg.distill_states, seed=seed, env_kwargs=env_kwargs)])
        warm = warm_start_actor(sac, policy, states, seed=seed)
        critic_warmup(sac, lambda: real_buf.sample(cfg.batch_size), cfg.critic_warmup)
        return warm
    if cfg.init_neutral_action:
        from tether.policies.rl.common import set_action_bias

        set_action_bias(sac.policy, neutral_action)
    return None


def train_cli(spec: Any, run: Any, train: Callable[..., Any], algo: str, needs: str) -> Any:
    """``tether train ENV --algo ALGO --dataset REAL``: a hybrid learner from scratch on ``spec``'s env, with
    the dataset as its real data; returns the deployable policy, which records that data's provenance."""
    from tether.policies.envs import env_contract, make_env

    if not spec.dataset:
        raise TetherError(f"--algo {algo} needs {needs}: pass --dataset DATASET_OR_BAG")
    probe = make_env(spec.env_id, backend=spec.backend, dr=spec.dr)
    try:
        contract = env_contract(probe, spec.env_id)
    finally:
        probe.close()
    real, prov = load_real(spec.dataset, contract)

    def progress(step: int, _total: int, metrics: dict[str, float]) -> None:
        run.advance(step)
        run.log(step, metrics)

    run.set_total(spec.steps or 20_000)
    learner = train(spec.env_id, real, run.total, spec.config, seed=spec.seed, progress=progress,
                    env_kwargs={"backend": spec.backend, "dr": spec.dr})
    learner.policy.extra["real_data"] = prov
    return learner.policy


class RunAdapter:
    """Routes ``train_sac``'s run hooks (advance/log/maybe_evaluate/set_policy) to a progress callback."""

    def __init__(self, total: int, progress: ProgressFn | None, offset: int = 0) -> None:
        self.total, self.progress, self.offset = total, progress, offset
        self.step = 0
        self.history: list[dict[str, float]] = []

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy

    def advance(self, step: int) -> None:
        self.step = step

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.history.append({"step": float(step), **metrics})
        if self.progress is not None:
            self.progress(step + self.offset, self.total, dict(metrics))

    def maybe_evaluate(self, step: int, policy: Policy | None = None) -> None:
        return None


__all__ = ["REQUIRED_KEYS", "ProgressFn", "RunAdapter", "check_run", "check_transitions", "critic_warmup",
           "fit_to_env", "is_sac_actor", "load_real", "policy_states", "real_buffer", "start_actor", "train_cli",
           "warm_start_actor"]
