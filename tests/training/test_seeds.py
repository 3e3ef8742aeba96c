"""Several seeds in one process: vmapped seeds equal the same seeds run one by one (to float round-off)."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from fidec.training import make_train_config, resume, train
from fidec.training.toy import evaluate_toy, toy_dataset

DATASET = toy_dataset(20)


def _run(run_dir, seeds: str, vmap: bool, steps: int = 50):
    config = make_train_config(
        "fd",
        "toy-point",
        presets=["tiny"],
        overrides={
            "run_dir": str(run_dir),
            "seeds": seeds,
            "vmap_seeds": vmap,
            "steps": steps,
            "progress": False,
            "eval_interval": 0,
        },
    )
    return train(config, dataset=DATASET, evaluator=evaluate_toy, console=False)


def _rows(run_dir, seed):
    rows = [json.loads(line) for line in (run_dir / "metrics/train.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seed"} for r in rows if r["seed"] == seed]


def _assert_close_states(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)


@pytest.fixture(scope="module")
def vmapped(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vmapped") / "run"
    return run_dir, _run(run_dir, "0,1", vmap=True)


def test_vmapped_seeds_equal_sequential_seeds(vmapped, tmp_path):
    run_dir, result = vmapped
    sequential = _run(tmp_path / "sequential", "0,1", vmap=False)
    assert result.summary["seed_mode"] == "vmapped" and sequential.summary["seed_mode"] == "sequential"
    for a, b in zip(result.states, sequential.states, strict=True):
        _assert_close_states(a, b)
    for seed in (0, 1):
        for ra, rb in zip(_rows(run_dir, seed), _rows(tmp_path / "sequential", seed), strict=True):
            assert ra.keys() == rb.keys()
            # The mean Fisher condition number is dominated by nearly singular metrics, where round-off
            # differences are amplified without bound: it is left out of the comparison.
            keys = [k for k in ra if k not in ("phase", "fisher_condition")]
            np.testing.assert_allclose([ra[k] for k in keys], [rb[k] for k in keys], rtol=1e-3)


def test_vmapped_seed_equals_that_seed_trained_alone(vmapped, tmp_path):
    _, result = vmapped
    alone = _run(tmp_path / "alone", "1", vmap=True)
    _assert_close_states(result.states[1], alone.states[0])
    # Different seeds really differ.
    assert not np.allclose(
        np.asarray(jax.tree.leaves(result.states[0].agent.params)[0]),
        np.asarray(jax.tree.leaves(result.states[1].agent.params)[0]),
    )


def test_a_vmapped_checkpoint_resumes_sequentially(vmapped, tmp_path):
    """Checkpoints store the seed-stacked state in both modes, so a run may switch mode on resume."""
    run_dir, _ = vmapped
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    extended = resume(
        copy, {"steps": 75, "vmap_seeds": False}, dataset=DATASET, evaluator=evaluate_toy, console=False
    )
    assert extended.summary["seed_mode"] == "sequential"
    assert [r["step"] for r in _rows(copy, 0)] == [25, 50, 75]
    assert _rows(copy, 0)[:2] == _rows(run_dir, 0)
