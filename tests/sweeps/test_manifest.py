"""The sweep manifest: merging a spec into it, finished-run detection, changed specs, atomic writes, the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fidec.errors import UserError
from fidec.files import LockedError
from fidec.sweeps.manifest import (
    Manifest,
    ManifestError,
    SpecChangedError,
    read_manifest,
    sweep_lock,
)
from fidec.sweeps.spec import parse_spec
from fidec.training.rundir import RunDir

TASK = "cube-single-play-singletask-task1-v0"


def make_spec(out_dir, **changes):
    raw = {
        "agents": ["fd", "iso"],
        "tasks": [TASK],
        "seeds": [0, 1],
        "scale": "tiny",
        "out_dir": str(out_dir),
    }
    return parse_spec({**raw, **changes})


def finish(out_dir, record):
    run = RunDir(out_dir / record.run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    run.write_summary({})


def test_new_manifest_lists_every_trial_pending(tmp_path):
    spec = make_spec(tmp_path)
    manifest = Manifest.open(spec)
    assert list(manifest.trials) == [t.trial_id for t in spec.trials()]
    assert manifest.counts() == {"pending": 4}
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["format"] == 1 and on_disk["spec"]["seeds"] == [0, 1]
    record = on_disk["trials"][f"iso__{TASK}__s1"]
    assert (
        record["run_dir"] == f"runs/iso__{TASK}__s1" and record["label"] == "iso" and record["seeds"] == [1]
    )


def test_reopening_keeps_states_and_trusts_the_run_directory(tmp_path):
    spec = make_spec(tmp_path)
    manifest = Manifest.open(spec)
    ids = list(manifest.trials)
    finish(tmp_path, manifest.trials[ids[0]])  # finished although the manifest still says pending
    manifest.update(ids[1], state="done", attempts=1)  # says done, but its summary is gone
    manifest.update(ids[2], state="running", attempts=1)  # a sweep killed mid-trial
    manifest.update(ids[3], state="failed", attempts=2, error="boom")
    again = Manifest.open(spec)
    assert [again.trials[i].state for i in ids] == ["done", "pending", "running", "failed"]
    assert again.trials[ids[3]].attempts == 2 and again.trials[ids[3]].error == "boom"
    assert read_manifest(tmp_path).trials == again.trials


def test_a_changed_definition_of_a_finished_trial_is_refused(tmp_path):
    manifest = Manifest.open(make_spec(tmp_path))
    finish(tmp_path, next(iter(manifest.trials.values())))
    changed = make_spec(tmp_path, overrides={"agent.lr": 1e-3})
    with pytest.raises(SpecChangedError, match="defines 1 trial"):
        Manifest.open(changed)
    # Untouched trials may change freely; trials no longer in the spec stay recorded.
    smaller = make_spec(tmp_path, agents=["fd"])
    assert len(Manifest.open(smaller).trials) == 4


def test_update_validates_the_state_and_writes_atomically(tmp_path):
    manifest = Manifest.open(make_spec(tmp_path))
    trial_id = next(iter(manifest.trials))
    with pytest.raises(ValueError, match="state must be one of"):
        manifest.update(trial_id, state="finished")
    manifest.update(trial_id, state="running", attempts=1)
    assert read_manifest(tmp_path).trials[trial_id].state == "running"
    assert not list(tmp_path.glob(".manifest.json.*"))  # no temporary file left behind


def test_read_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sweep manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match=r"not valid JSON.*move it away and rerun the sweep"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": 2, "trials": {}}')
    with pytest.raises(ManifestError, match="has format 2; this fidec reads format 1"):
        read_manifest(tmp_path)
    assert issubclass(ManifestError, UserError)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r.pop("run_dir"), "field 'run_dir' is missing"),
        (lambda r: r.update(attempts=None), "field 'attempts' is null, not a whole number >= 0"),
        (lambda r: r.update(attempts=-1), "field 'attempts' is -1"),
        (lambda r: r.update(seeds="0"), "field 'seeds' is \"0\", not a list"),
        (lambda r: r.update(state="lost"), "field 'state' is \"lost\", not one of"),
        (lambda r: r.update(run_dir="../../elsewhere"), "not a folder inside the sweep folder"),
        (lambda r: r.update(resumed="yes"), "field 'resumed' is \"yes\", not true or false"),
        (lambda r: r.update(wall_s="fast"), "field 'wall_s' is \"fast\", not a number or null"),
    ],
    ids=[
        "no-run-dir",
        "attempts-null",
        "attempts-negative",
        "seeds",
        "state",
        "run-dir-outside",
        "resumed",
        "wall",
    ],
)
def test_a_damaged_trial_record_names_the_trial_and_the_field(tmp_path, change, says):
    Manifest.open(make_spec(tmp_path, agents=["fd"], seeds=[0]))
    data = json.loads((tmp_path / "manifest.json").read_text())
    trial_id, record = next(iter(data["trials"].items()))
    change(record)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError) as raised:
        read_manifest(tmp_path)
    assert f"trial {trial_id!r}: " in str(raised.value) and says in str(raised.value)


def test_one_sweep_per_output_directory(tmp_path):
    with sweep_lock(tmp_path):
        with pytest.raises(LockedError, match=r"another fidec sweep holds .*\.sweep\.lock; wait for it"):
            with sweep_lock(tmp_path):
                pass
    with sweep_lock(tmp_path):  # released on exit
        pass


# -- compatibility with sweeps written by earlier fidec -------------------------------------------------

# The manifest of the cpu-study sweep as fidec e0919a6 wrote it (2 trials done, 1 running, 39 pending).
OLD_MANIFEST = Path(__file__).resolve().parents[1] / "fixtures" / "cpu-study-manifest-e0919a6.json"


def test_a_manifest_written_by_earlier_fidec_is_read_and_resumed_unchanged(tmp_path):
    old = json.loads(OLD_MANIFEST.read_text())
    (tmp_path / "manifest.json").write_text(OLD_MANIFEST.read_text())
    done = [trial_id for trial_id, record in old["trials"].items() if record["state"] == "done"]
    for trial_id in done:
        finish(tmp_path, read_manifest(tmp_path).trials[trial_id])

    # The spec as it was when that manifest was written (the manifest records it), read by this fidec.
    spec = parse_spec({**old["spec"], "out_dir": str(tmp_path)})
    # Same trial ids and fingerprints: no finished or started trial reads as changed.
    assert [t.trial_id for t in spec.trials()] == list(old["trials"])
    assert {t.trial_id: t.fingerprint() for t in spec.trials()} == {
        trial_id: record["fingerprint"] for trial_id, record in old["trials"].items()
    }
    manifest = Manifest.open(spec)
    assert {k: r.state for k, r in manifest.trials.items()} == {
        k: r["state"] for k, r in old["trials"].items()
    }

    # What this fidec writes back has the old format: the same keys, the same records.
    again = json.loads((tmp_path / "manifest.json").read_text())
    assert again.keys() == old.keys() and again["format"] == old["format"] == 1
    assert again["trials"] == old["trials"]
    assert again["spec"] == {**old["spec"], "out_dir": str(tmp_path)}
