"""`tether train ENV --algo bc-diffusion|bc-flow|bc-mlp|iql|dql|ofql --dataset DIR` end to end on a tiny dataset.

Checks the glue, not learning: a real LeRobot-layout dataset written by DatasetWriter from Pendulum-v1, the
registered trainer found by name, the checkpoint written, reloaded by kind and run on the env's observations.
"""

from __future__ import annotations

import numpy as np
import pytest

from tether.data.dataset import DatasetWriter
from tether.errors import TetherError
from tether.policies.checkpoint import load_policy
from tether.policies.envs import env_contract, make_env
from tether.policies.training import TrainSpec, run_training

ENV = "Pendulum-v1"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[str, object]:
    env = make_env(ENV)
    contract = env_contract(env, ENV)
    root = tmp_path_factory.mktemp("ds") / "pendulum"
    rng = np.random.default_rng(0)
    with DatasetWriter(root, contract) as w:
        for ep in range(3):
            obs, _ = env.reset(seed=ep)
            for t in range(15):
                a = rng.uniform(-1, 1, 1).astype(np.float32)
                nxt, r, term, trunc, _ = env.step(a)
                last = t == 14
                w.add_frame(obs, a, float(r), bool(term), truncated=last and not term)
                obs = nxt
            w.end_episode(final_obs=obs)
    env.close()
    return str(root), contract


@pytest.mark.parametrize("algo,kind", [("bc-diffusion", "diffusion"), ("bc-flow", "flow"), ("bc-mlp", "gaussian_mlp"),
                                       ("iql", "gaussian_mlp"), ("dql", "vgps"), ("ofql", "vgps")])
def test_dataset_algorithms_train_save_and_reload(tmp_path, dataset, algo: str, kind: str) -> None:
    root, contract = dataset
    config = {"hidden": "[16, 16]", "batch_size": "16"}
    if algo in ("dql", "ofql"):
        config.update({"critic_hidden": "[16, 16]", "num_candidates": "4"})
    if algo == "bc-flow":
        config["variant"] = "mean"
    spec = TrainSpec(env_id=ENV, algo=algo, steps=6, out=tmp_path / "run", dataset=root, eval_every=0,
                     config=config, progress=False)
    policy, path = run_training(spec)
    assert path is not None and (tmp_path / "run" / "metrics.csv").is_file()
    loaded = load_policy(path, contract)
    assert loaded.kind == kind and loaded.extra["algo"] == algo
    obs = np.zeros((2, contract.obs_size), np.float32)
    a = loaded.act(obs)
    assert a.shape == (2, contract.action_size) and np.all(np.abs(a) <= 1)


def test_dataset_algorithm_without_dataset_names_the_fix(tmp_path) -> None:
    spec = TrainSpec(env_id=ENV, algo="iql", steps=2, out=None, progress=False, eval_every=0)
    with pytest.raises(TetherError, match="--dataset DIR"):
        run_training(spec)


def test_a_refused_dataset_is_one_line_with_the_progress_bar_on(tmp_path, capsys) -> None:
    """`tether train --dataset` (progress bar on, the default) refusing a dataset of another robot, or one with a
    NaN action, prints the one error line only (the bar starts at the first step), and leaves no run folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tether.cli import main
    from tether.data.demos import record_episodes

    ds = tmp_path / "arm"
    record_episodes("tether/ArmReach-v0", ds, 2, seed=0, max_steps=10)
    nan = tmp_path / "nan"
    record_episodes("tether/ArmReach-v0", nan, 2, seed=0, max_steps=10)
    f = nan / "data/chunk-000/file-000.parquet"
    t = pq.read_table(f)
    rows = t.column("action").to_pylist()
    rows[3] = [float("nan")] * len(rows[3])
    i = t.schema.get_field_index("action")
    pq.write_table(t.set_column(i, "action", pa.array(rows, t.schema.field("action").type)), f)
    for env, data, text in (("tether/QuadrotorHover-v0", ds, "was recorded for another robot or task"),
                            ("tether/ArmReach-v0", nan, "'action' holds NaN")):
        out = tmp_path / "run"
        rc = main(["train", env, "--algo", "iql", "--dataset", str(data), "--steps", "10", "--out", str(out)])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert rc == 2 and len(err) == 1 and text in err[0], err
        assert not out.exists()
