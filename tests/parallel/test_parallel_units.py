"""Microbatching equals one whole-batch step; the pieces of the parallel package (no MPI needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import chainrule.nn.functional as F
from chainrule import nn
from chainrule.optim import SGD, Adam
from chainrule.parallel import Plan, accumulate, balance, buckets, layer_costs, shard, split


def test_shard_and_split_cover_everything() -> None:
    for n in (1, 5, 24, 25):
        for size in (1, 2, 3, 4):
            parts = [shard(n, r, size) for r in range(size)]
            assert [i for p in parts for i in range(n)[p]] == list(range(n))
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    assert len(split(3, 8)) == 3  # never an empty microbatch
    with pytest.raises(ValueError):
        split(4, 0)


def test_balance_minimizes_the_largest_stage() -> None:
    assert balance([1, 1, 1, 1], 2) == [(0, 2), (2, 4)]
    assert balance([10, 1, 1, 1, 1, 1], 2) == [(0, 1), (1, 6)]
    assert balance([1, 2, 3], 3) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="stages"):
        balance([1, 2], 3)
    model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
    costs = layer_costs(model.layers, np.ones((1, 4), np.float32))
    assert costs[0] == 2 * (4 * 64 + 64) * 4 + 64 * 4 and costs[1] == 64 * 4


def test_buckets_keep_order_and_size() -> None:
    ps = [nn.Parameter(np.zeros(n, np.float32)) for n in (10, 10, 100, 1, 1)]
    assert buckets(ps, 80) == [[0, 1], [2], [3, 4]]
    assert buckets(ps, 1 << 20) == [[0, 1, 2, 3, 4]]


def _mlp(seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(20, 32, rng=rng), nn.ReLU(), nn.Linear(32, 32, rng=rng), nn.Tanh(), nn.Linear(32, 7, rng=rng)
    )


@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_microbatches_equal_one_whole_batch_step(k: int, opt_cls: Any) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((29, 20)).astype(np.float32)
    y = rng.integers(0, 7, 29)
    results = []
    for micro in (1, k):
        model = _mlp()
        opt = opt_cls(model.parameters(), 0.05)

        def step(xb: Any, yb: Any, model: nn.Sequential = model) -> Any:
            logits = model(xb)
            J = F.cross_entropy(logits, yb)
            J.backward()
            return J, logits

        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss, logits = accumulate(step, model.parameters(), x, y, micro)
            assert logits.shape == (29, 7)
            losses.append(loss)
            opt.step()
        results.append((losses, model.state_dict()))
    (l1, s1), (lk, sk) = results
    np.testing.assert_allclose(lk, l1, rtol=1e-6)
    for name in s1:
        np.testing.assert_allclose(sk[name], s1[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_plan_validates() -> None:
    assert Plan(microbatches=4, checkpoint_every=2, parallel="pipeline").schedule == "1f1b"
    for bad in ({"microbatches": 0}, {"checkpoint_every": -1}, {"parallel": "tensor"}):
        with pytest.raises(ValueError):
            Plan(**bad)


def test_plan_applies_to_config_and_model() -> None:
    from chainrule.train.config import Config

    plan = Plan(microbatches=3, checkpoint_every=2, parallel="data", schedule="gpipe")
    cfg = Config(model="mlp", **plan.config_fields())  # type: ignore[arg-type]
    assert (cfg.microbatches, cfg.parallel, cfg.pipeline_schedule) == (3, "data", "gpipe")
    model = _mlp()
    plan.apply_to(model)
    assert model.checkpoint_every == 2


@pytest.mark.parametrize("bitgen", [np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.MT19937])
@pytest.mark.parametrize(("rows", "cols"), [(7, 5), (8, 3), (6, 4), (1, 9)])
def test_each_rank_draws_its_rows_of_the_whole_batch_mask(bitgen: Any, rows: int, cols: int) -> None:
    """skip_draws: ranks drawing only their shard's rows get the whole batch's numbers, and end where it ends."""
    from chainrule.nn.functional import skip_draws

    def fresh() -> np.random.Generator:
        g = np.random.Generator(bitgen(7))
        g.random(3, dtype=np.float32)  # an odd count already drawn: half of a 64-bit draw is buffered
        return g

    whole_rng = fresh()
    whole = whole_rng.random((rows, cols), dtype=np.float32)
    after = whole_rng.random(11, dtype=np.float32)
    for size in (2, 3):
        pieces = []
        for r in range(size):
            g = fresh()
            part = shard(rows, r, size)
            skip_draws(g, part.start * cols)
            pieces.append(g.random((part.stop - part.start, cols), dtype=np.float32))
            skip_draws(g, (rows - part.stop) * cols)
            np.testing.assert_array_equal(g.random(11, dtype=np.float32), after)  # in step with the whole batch
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
