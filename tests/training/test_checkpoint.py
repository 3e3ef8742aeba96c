"""Checkpoints: exact round trip, atomic writes, damaged checkpoints detected with fallback, pruning."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec.training.checkpoint import (
    CheckpointError,
    flatten_tree,
    list_checkpoints,
    load_latest_checkpoint,
    read_checkpoint,
    save_checkpoint,
    unflatten_tree,
)


def _tree(value: float):
    return {
        "params": {"w": jnp.full((3, 2), value, jnp.float32), "b": jnp.arange(2, dtype=jnp.float32)},
        "key": jax.random.PRNGKey(int(value)),
        "step": jnp.asarray(int(value), jnp.int32),
    }


def test_round_trip_is_exact(tmp_path):
    tree = _tree(1.5)
    save_checkpoint(tmp_path, 10, flatten_tree(tree, "state"), {"phase": "offline"}, keep=3)
    loaded = read_checkpoint(tmp_path / "step_000000010")
    assert loaded.step == 10 and loaded.meta == {"phase": "offline"}
    restored = unflatten_tree(jax.eval_shape(lambda: tree), loaded.arrays, "state")
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(restored), strict=True):
        assert np.asarray(a).dtype == b.dtype and np.array_equal(np.asarray(a), b)


def test_keeps_only_the_newest(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, flatten_tree(_tree(step)), {}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]


def test_damaged_checkpoint_falls_back_to_the_previous_with_a_message(tmp_path):
    for step in (5, 10):
        save_checkpoint(tmp_path, step, flatten_tree(_tree(step)), {}, keep=5)
    arrays = tmp_path / "step_000000010" / "arrays.npz"
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arrays.write_bytes(bytes(data))
    messages = []
    found = load_latest_checkpoint(tmp_path, report=messages.append)
    assert found is not None and found.step == 5
    assert len(messages) == 1 and "step 10" in messages[0] and "checksum" in messages[0]
    assert "falling back to step 5" in messages[0]


def test_partial_write_is_invisible_and_truncated_files_detected(tmp_path):
    save_checkpoint(tmp_path, 5, flatten_tree(_tree(5)), {}, keep=5)
    # A write killed before the rename leaves only a hidden temporary folder.
    (tmp_path / ".step_000000010.tmp-999").mkdir()
    (tmp_path / ".step_000000010.tmp-999" / "arrays.npz").write_bytes(b"partial")
    assert load_latest_checkpoint(tmp_path).step == 5
    # A checkpoint folder without its manifest (e.g. copied by hand, half done) is skipped.
    (tmp_path / "step_000000020").mkdir()
    messages = []
    assert load_latest_checkpoint(tmp_path, report=messages.append).step == 5
    assert "no manifest.json" in messages[0]
    # The next save cleans leftovers of interrupted writes.
    save_checkpoint(tmp_path, 30, flatten_tree(_tree(30)), {}, keep=5)
    assert not (tmp_path / ".step_000000010.tmp-999").exists()


def test_manifest_tampering_is_detected(tmp_path):
    save_checkpoint(tmp_path, 5, flatten_tree(_tree(5)), {}, keep=5)
    manifest = tmp_path / "step_000000005" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["arrays_bytes"] += 1
    manifest.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="bytes"):
        read_checkpoint(tmp_path / "step_000000005")
    assert load_latest_checkpoint(tmp_path, report=lambda m: None) is None


def test_restoring_into_a_different_layout_names_the_entry(tmp_path):
    save_checkpoint(tmp_path, 1, flatten_tree(_tree(1.0), "state"), {}, keep=1)
    loaded = read_checkpoint(tmp_path / "step_000000001")
    other = {**_tree(1.0), "params": {"w": jnp.zeros((4, 2)), "b": jnp.zeros(2)}}
    with pytest.raises(CheckpointError, match=r"\['params'\]\['w'\].*shape \(3, 2\)"):
        unflatten_tree(other, loaded.arrays, "state")
    with pytest.raises(CheckpointError, match="no checkpoint at step 7"):
        load_latest_checkpoint(tmp_path, step=7)
