"""The training run around any algorithm: logs (TensorBoard + CSV), progress bar, periodic evaluation, checkpoints.

Why separate from the algorithms: every trainer (PPO, SAC, diffusion BC, offline RL, world-model, hybrid) gets the
same UX and the same output layout for free, and Ctrl-C always leaves a usable checkpoint behind::

    OUT/metrics.csv        one row per log call (columns grow as new metrics appear)
    OUT/tb/                TensorBoard event files
    OUT/checkpoint/        the final (or interrupted) policy checkpoint
    OUT/spec.json          the TrainSpec that produced the run
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import TetherError
from tether.policies.base import Policy


@dataclass
class TrainSpec:
    """What ``tether train`` was asked to do; trainers read their knobs from here (and ``config`` overrides)."""

    env_id: str
    algo: str
    steps: int | None = None  # env steps (online) or gradient steps (offline); None = the algorithm's default
    out: Path | None = None  # None: no files (tests, library use)
    seed: int = 0
    dr: str | None = None
    backend: str | None = None
    eval_every: int | None = None  # in the same unit as steps; None = steps // 5; 0 = never
    eval_episodes: int = 5
    config: dict[str, Any] = field(default_factory=dict)  # algorithm overrides (--set key=value)
    dataset: str | None = None  # offline/imitation algorithms: dataset path
    progress: bool = True
    executor: str = "inprocess"  # where online trainers' batched envs run (tether.sim.vector executors)
    executor_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"address": RAY_ADDRESS}
    init_checkpoint: str | None = None  # continue training this checkpoint (PPO: fine-tuning under another DR)

    def to_json(self) -> str:
        d = asdict(self)
        d["out"] = None if self.out is None else str(self.out)
        return json.dumps(d, indent=2, sort_keys=True, default=str)


class TrainingRun:
    """Owns the output directory, loggers, progress bar and the current policy (for Ctrl-C saves)."""

    def __init__(self, spec: TrainSpec, total: int | None = None) -> None:
        self.spec = spec
        self.total = total or spec.steps or 0
        self.policy: Policy | None = None
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.last_eval: dict[str, float] = {}
        self.last_eval_step: int | None = None
        self._t0 = time.perf_counter()
        self._writer = None
        self._csv_rows: list[dict[str, float]] = []
        self._csv_keys: list[str] = []
        self._csv_file = None
        self._csv_writer: Any = None
        self._bar = None
        self.out = Path(spec.out) if spec.out is not None else None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "spec.json").write_text(spec.to_json())
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.out / "tb"))
            except ImportError:  # tensorboard is a declared dependency; keep training if it is absent
                self._writer = None
        self.eval_every = 0
        self._next_eval: float = math.inf
        self.set_total(self.total)

    def set_total(self, total: int) -> None:
        """The run's length, once known: trainers resolve their own default when ``--steps`` is not given, and
        the progress bar and the evaluation schedule (``steps // 5`` unless set) follow it. Until then no
        periodic evaluation runs (an unknown length once meant one every iteration)."""
        self.total = int(total or 0)
        if self._bar is not None and self.total:
            self._bar.total = self.total
        every = self.spec.eval_every if self.spec.eval_every is not None else self.total // 5
        self.eval_every = int(every)
        self._next_eval = self.eval_every if self.eval_every > 0 else math.inf

    # ------------------------------------------------------------------ state
    def set_policy(self, policy: Policy) -> None:
        self.policy = policy

    def advance(self, step: int) -> None:
        """Set the absolute step count (moves the progress bar, shown from the first step on: a run refused
        while its algorithm reads its options or dataset prints only the one-line error)."""
        if self._bar is None and self.spec.progress and self.total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=f"{self.spec.algo} {self.spec.env_id}", unit="step",
                             dynamic_ncols=True)
        if self._bar is not None:
            self._bar.update(max(step - self._bar.n, 0))
        self.step = step

    # ------------------------------------------------------------------ logging
    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": float(step), "time_s": time.perf_counter() - self._t0}
        row.update({k: float(v) for k, v in metrics.items()})
        self.history.append(row)
        if self._writer is not None:
            for k, v in metrics.items():
                self._writer.add_scalar(k, float(v), step)
        if self.out is not None:
            self._write_csv(row)
        if self._bar is not None:
            shown = {k.replace("rollout/", "").replace("eval/", "eval_"): f"{v:.3g}" for k, v in metrics.items()
                     if k.endswith(("return_mean", "success_rate"))}
            if shown:
                self._bar.set_postfix(shown, refresh=False)

    def _write_csv(self, row: dict[str, float]) -> None:
        assert self.out is not None
        self._csv_rows.append(row)
        new_keys = [k for k in row if k not in self._csv_keys]
        path = self.out / "metrics.csv"
        if new_keys or self._csv_writer is None:
            self._csv_keys.extend(new_keys)
            if self._csv_file is not None:
                self._csv_file.close()
            self._csv_file = open(path, "w", newline="")
            self._csv_writer = csv.DictWriter(self._csv_file, fieldnames=self._csv_keys)
            self._csv_writer.writeheader()
            self._csv_writer.writerows(self._csv_rows)
        else:
            self._csv_writer.writerow(row)
        self._csv_file.flush()

    # ------------------------------------------------------------------ evaluation
    def maybe_evaluate(self, step: int, policy: Policy | None = None, *, force: bool = False) -> dict[str, float] | None:
        """Evaluate every ``eval_every`` steps (deterministic, fresh env, seeds disjoint from training)."""
        if not force and step < self._next_eval:
            return None
        while self._next_eval <= step:
            self._next_eval += self.eval_every
        return self.evaluate(step, policy)

    def evaluate(self, step: int, policy: Policy | None = None) -> dict[str, float]:
        from tether.policies.evaluation import evaluate_policy

        policy = policy if policy is not None else self.policy
        if policy is None or self.spec.eval_episodes < 1:
            return {}
        result = evaluate_policy(policy, self.spec.env_id, episodes=self.spec.eval_episodes,
                                 seed=1_000_000 + self.spec.seed, backend=self.spec.backend, dr=self.spec.dr)
        metrics = result.as_metrics()
        self.last_eval, self.last_eval_step = metrics, step
        self.log(step, metrics)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, policy: Policy | None = None, *, interrupted: bool = False) -> Path | None:
        policy = policy if policy is not None else self.policy
        if self.out is None or policy is None:
            return None
        extra = dict(getattr(policy, "extra", {}) or {})
        extra.update({"algo": self.spec.algo, "env_id": self.spec.env_id, "steps": self.step, "seed": self.spec.seed,
                      "dr": self.spec.dr, "backend": self.spec.backend, "interrupted": interrupted,
                      "last_eval": self.last_eval})
        policy.extra = extra
        path = self.out / "checkpoint"
        policy.save(path)
        return path

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None


def run_training(spec: TrainSpec) -> tuple[Any, Path | None]:
    """Look up the algorithm, train, evaluate once more, save ``OUT/checkpoint``. Ctrl-C saves and re-raises."""
    from tether.policies.algos import get_algorithm

    if spec.steps is not None and spec.steps < 1:
        raise TetherError(f"--steps {spec.steps}; expected a positive number of steps")
    fn = get_algorithm(spec.algo)
    created = spec.out is not None and not Path(spec.out).exists()
    refused = False
    run = TrainingRun(spec)
    try:
        try:
            policy = fn(spec, run)
        except KeyboardInterrupt:
            path = run.save_checkpoint(interrupted=True)
            if path is not None:
                print(f"\ninterrupted at step {run.step}: saved {path}")
            raise
        except TetherError:
            refused = run.policy is None and run.step == 0  # a bad option or dataset, seen before any training
            raise
        run.set_policy(policy)
        if run.eval_every > 0 and spec.eval_episodes > 0 and run.last_eval_step != run.step:
            run.evaluate(run.step, policy)  # unless the loop just evaluated this step (eval/* logged once per step)
        path = run.save_checkpoint(policy)
    finally:
        run.close()
        if refused and created and run.out is not None:  # leave no half-made run folder behind a refusal
            shutil.rmtree(run.out, ignore_errors=True)
    return policy, path
