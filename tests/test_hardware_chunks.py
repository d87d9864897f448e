"""Chunk execution: ACT temporal-ensembling weights and bookkeeping, and receding horizon."""

import numpy as np
import pytest

from tether.errors import TetherError
from tether.hardware.chunks import ChunkExecutor, ensemble_weights


def test_weights_match_act_formula() -> None:
    w = ensemble_weights(4, 0.01)
    expected = np.exp(-0.01 * np.arange(4))
    np.testing.assert_allclose(w, expected / expected.sum())
    assert w[0] > w[-1]  # k > 0: the oldest prediction weighs most
    np.testing.assert_allclose(ensemble_weights(3, 0.0), [1 / 3] * 3)
    assert ensemble_weights(3, -1.0)[-1] > ensemble_weights(3, -1.0)[0]


def test_ensemble_averages_every_chunk_covering_the_tick() -> None:
    H, k = 4, 0.5
    ex = ChunkExecutor(H, 1, mode="ensemble", k=k)
    # chunk queried at tick s predicts value 10*s + j for tick s + j
    outs = []
    for s in range(8):
        assert ex.needs_chunk()
        ex.add_chunk(np.array([[10.0 * s + j] for j in range(H)]))
        outs.append(ex.next_action()[0])
    # at tick t the covering chunks started at max(0, t-H+1)..t and predict 10*s + (t-s), oldest first
    for t, got in enumerate(outs):
        starts = np.arange(max(0, t - H + 1), t + 1)
        preds = 10.0 * starts + (t - starts)
        assert got == pytest.approx(ensemble_weights(len(preds), k) @ preds)


def test_ensemble_with_sparse_queries_and_identical_chunks_is_exact() -> None:
    ex = ChunkExecutor(5, 2, mode="ensemble", k=0.01, query_every=2)
    traj = np.stack([np.linspace(0, 1, 20), np.linspace(1, 0, 20)], axis=1)
    got = []
    for t in range(15):
        if ex.needs_chunk():
            ex.add_chunk(traj[t : t + 5])  # every chunk agrees with the same trajectory
        got.append(ex.next_action())
    np.testing.assert_allclose(np.array(got), traj[:15])


def test_receding_horizon_executes_then_requeries() -> None:
    ex = ChunkExecutor(4, 1, mode="receding", execute_steps=3)
    queried, outs = [], []
    for t in range(9):
        if ex.needs_chunk():
            queried.append(t)
            ex.add_chunk(np.array([[100 * t + j] for j in range(4)], dtype=float))
        outs.append(ex.next_action()[0])
    assert queried == [0, 3, 6]
    assert outs == [0, 1, 2, 300, 301, 302, 600, 601, 602]


def test_bad_use_is_a_clear_error() -> None:
    with pytest.raises(TetherError, match="chunk mode"):
        ChunkExecutor(4, 1, mode="average")
    ex = ChunkExecutor(4, 2)
    with pytest.raises(TetherError, match=r"expected \(4, 2\)"):
        ex.add_chunk(np.zeros((3, 2)))
    with pytest.raises(TetherError, match="no action chunk"):
        ex.next_action()
