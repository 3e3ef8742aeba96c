"""The update-level parity check against a stand-in reference written by the test (tests/parity/standin.py):
the tree mapping covers both trees, draws are recorded in order and replayed, the unchanged stand-in agrees
to float64 rounding, and a stand-in changed by one line is caught."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec.agents import fql, make_agent
from fidec.agents.base import Draw, ReferenceCase
from fidec.parity.check import ParityError, Scale, assign_draws, case_configs, fidec_tree, run_case
from fidec.parity.load import ReferenceError, load_reference
from fidec.parity.record import RecordedDraw, recording
from fidec.parity.trees import MappingError, flatten, map_leaves
from reference_standin import write_standin

TINY = Scale("tiny", (16, 16), 8)
TESTS = Path(__file__).resolve().parents[1]


def standin_reference(normalize: bool = False):
    """FQL's declared reference with one small case (normalisation on when asked, on both sides)."""
    case = ReferenceCase(
        fql.CUBE,
        ("official",),
        {"alpha": 3.0, "normalize_q_loss": normalize},
        "test",
        overrides={"normalize_q_loss": normalize, "alpha": 3.0},
    )
    return dataclasses.replace(fql.REFERENCE, cases={"case": case})


def test_the_declared_mapping_covers_every_leaf_of_both_trees(tmp_path):
    """fql's declared mapping against the stand-in's real parameter tree: every leaf paired once, shapes equal."""
    code = load_reference(write_standin(tmp_path), fql.REFERENCE)
    fidec_config, ref_config, _ = case_configs("fql", "case", TINY, code, standin_reference())
    ref_agent = code.create(0, np.zeros((1, 28), np.float32), np.zeros((1, 5), np.float32), ref_config)
    agent = make_agent("fql", fidec_config, 28, 5)
    ours, theirs = fidec_tree(agent.init(jax.random.PRNGKey(0))), flatten(ref_agent.network.params)
    pairs = map_leaves(theirs, ours, fql.REFERENCE.params)
    assert sorted(b for _, b in pairs) == sorted(ours)
    assert sorted(a for a, _ in pairs) == sorted(theirs)
    assert {b.split("/")[1] for _, b in pairs} == {"flow", "critic", "onestep"}
    assert any(b.startswith("target_params/critic/") for _, b in pairs)


def test_map_leaves_names_what_is_left_out_matched_twice_or_misshapen():
    ours = {"params/a/w": np.zeros((2, 3)), "params/b/w": np.zeros(4), "params/log_alpha": np.zeros(())}
    theirs = {"ra/w": np.zeros((2, 3)), "rb/w": np.zeros(4), "alpha/value": np.zeros(1)}
    rules = (("ra", "params/a"), ("rb", "params/b"), ("alpha/value", "params/log_alpha"))
    assert len(map_leaves(theirs, ours, rules)) == 3  # (1,) against () is the same leaf
    with pytest.raises(MappingError, match=r"fidec leaves without a reference counterpart: \['params/b/w'\]"):
        map_leaves({k: v for k, v in theirs.items() if k != "rb/w"}, ours, rules)
    with pytest.raises(MappingError, match="reference leaves without a fidec counterpart"):
        map_leaves({**theirs, "extra/w": np.zeros(1)}, ours, rules)
    with pytest.raises(MappingError, match="differ in shape"):
        map_leaves({**theirs, "rb/w": np.zeros(5)}, ours, rules)


def test_the_recorder_sees_every_draw_in_program_order_under_jit_and_grad():
    def loss(p, key):
        k1, k2, k3 = jax.random.split(key, 3)
        a = jax.random.normal(k1, (3,))
        t = jax.random.uniform(k2, (2, 1), minval=0.85, maxval=0.9)
        b = jax.random.normal(k3, (3,))
        return jnp.sum(p * a) + jnp.sum(t) + jnp.sum(p * b)

    with recording() as recorder:
        step = jax.jit(jax.grad(loss))
        with recorder.listen() as draws:
            step(jnp.ones(3), jax.random.PRNGKey(0))
        with recorder.listen() as again:
            step(jnp.ones(3), jax.random.PRNGKey(1))  # the compiled program reports its draws every time
    assert [(d.kind, d.shape) for d in draws] == [("normal", (3,)), ("uniform", (2, 1)), ("normal", (3,))]
    assert draws[1].low == pytest.approx(0.85) and draws[1].high == pytest.approx(0.9)
    assert np.all((draws[1].value >= 0.85) & (draws[1].value < 0.9))
    expected = jax.random.normal(jax.random.split(jax.random.PRNGKey(0), 3)[0], (3,))
    np.testing.assert_array_equal(draws[0].value, expected)
    assert not np.array_equal(again[0].value, draws[0].value)
    assert jax.random.normal is not None and "record" not in repr(jax.random.normal)


def test_recorded_draws_replace_fidecs_by_name_shape_and_distribution():
    wanted = {"x0": Draw((2, 3)), "t": Draw((2, 3, 1), "uniform", 0.85, 0.9)}
    recorded = [
        RecordedDraw("normal", (6, 3), 0.0, 1.0, np.arange(18.0).reshape(6, 3)),
        RecordedDraw("normal", (2, 3), 0.0, 1.0, np.ones((2, 3))),
        RecordedDraw("uniform", (6, 1), 0.85, 0.9, np.full((6, 1), 0.87)),
    ]
    draws = assign_draws(recorded[1:], ["x0", "t"], wanted, "test")
    assert draws["t"].shape == (2, 3, 1)
    with pytest.raises(ParityError, match="made 3 random draws"):
        assign_draws(recorded, ["x0", "t"], wanted, "test")
    with pytest.raises(ParityError, match="uniform"):
        assign_draws(recorded[1:], ["t", "x0"], wanted, "test")
    wrong_range = [recorded[1], dataclasses.replace(recorded[2], low=0.8)]
    with pytest.raises(ParityError, match=r"uniform\[0.8"):
        assign_draws(wrong_range, ["x0", "t"], wanted, "test")
    with pytest.raises(ParityError, match=r"needs the draws \['t'\]"):
        assign_draws(recorded[1:2], ["x0"], wanted, "test")


def test_a_setting_the_two_codes_disagree_on_is_reported_before_anything_runs(tmp_path):
    code = load_reference(write_standin(tmp_path), fql.REFERENCE)
    reference = standin_reference()
    case = dataclasses.replace(
        reference.cases["case"], flags={"alpha": 30.0}
    )  # the reference gets another alpha
    reference = dataclasses.replace(reference, cases={"case": case})
    with recording() as recorder:
        result = run_case("fql", "case", TINY, code, recorder, updates=1, reference=reference)
    assert result["status"] == "settings differ"
    assert result["failures"] == ["alpha"]


def test_loading_a_folder_that_is_not_a_checkout_says_what_to_do(tmp_path):
    with pytest.raises(
        ReferenceError, match=r"no agents/fql.py there.*git clone https://github.com/seohongpark/fql"
    ):
        load_reference(tmp_path, fql.REFERENCE)
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "fql.py").write_text("def get_config():\n    return {}\n")
    with pytest.raises(ReferenceError, match="has no get_config\\(\\) and FQLAgent"):
        load_reference(tmp_path, fql.REFERENCE)


DRIVER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from fidec.parity.check import Scale, run_case
    from fidec.parity.load import load_reference
    from fidec.parity.record import recording
    from fidec.agents import fql
    from test_check import standin_reference
    out = {}
    with recording() as recorder:
        for name, folder, normalize in json.loads(sys.argv[1]):
            code = load_reference(folder, fql.REFERENCE)
            result = run_case("fql", "case", Scale("tiny", (16, 16), 8), code, recorder, updates=3,
                              reference=standin_reference(normalize))
            out[name] = result["failing_at_float64_tolerance"]
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_float64_agreement_on_the_standin_and_failure_when_it_differs_by_one_line(tmp_path):
    """In float64 the unchanged stand-in agrees to 1e-9 everywhere; a post-update target, or a
    normalize_q_loss the reference ignores, is caught, and in the quantities it changes."""
    variants = [
        ("same", str(write_standin(tmp_path / "same")), False),
        ("same, normalised", str(write_standin(tmp_path / "same-normalised")), True),
        ("target", str(write_standin(tmp_path / "target", "target")), False),
        ("normalize", str(write_standin(tmp_path / "normalize", "normalize")), True),
    ]
    env = {
        **os.environ,
        "JAX_ENABLE_X64": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS / "parity"), str(TESTS)]),
    }
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(variants), str(TESTS / "parity")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    failing = json.loads(process.stdout.strip().splitlines()[-1])
    assert failing["same"] == [] and failing["same, normalised"] == []
    assert any("target critic" in q for q in failing["target"]), failing["target"]
    assert any("gradient onestep" in q for q in failing["normalize"]), failing["normalize"]
    assert any("metric actor/q_loss" in q for q in failing["normalize"]), failing["normalize"]


def test_fidec_tree_holds_params_and_targets():
    state = fql.SPEC.init(fql.FQLConfig(), fql.build(fql.FQLConfig(), 2), jax.random.PRNGKey(0), 3, 2)
    tree = fidec_tree(state)
    assert any(k.startswith("target_params/critic/") for k in tree)
    assert set(flatten(state.params)) == {k.removeprefix("params/") for k in tree if k.startswith("params/")}


def test_a_finished_comparison_is_kept_and_reused_and_a_lost_worker_says_how_to_go_on(tmp_path, monkeypatch):
    """Each comparison lands in OUT/comparisons/ when it finishes; a second run with the same folder reuses
    it (no worker started) and runs only what is missing; a worker that dies keeps what it finished."""
    from fidec.files import write_json_atomic
    from fidec.parity import run as parity_run

    checkout = tmp_path / "fql-checkout"
    checkout.mkdir()
    done = tmp_path / "comparisons"
    jobs = [parity_run.Job("fql", "cube", s, str(checkout)) for s in ("cpu", "paper")]
    started: list[list[str]] = []

    def fake_worker(command, env, **kwargs):
        spec = json.loads(Path(command[-2]).read_text())
        started.append([j["scale"] for j in spec["jobs"]])
        first = parity_run.Job(**spec["jobs"][0])
        result = {"agent": "fql", "scale": first.scale, "precision": "float32", "status": "compared"}
        result["reference"] = {"checkout": Path(first.checkout).name}
        write_json_atomic(parity_run.job_file(command[-1], first, "float32", 5), result)
        return subprocess.CompletedProcess(command, 0 if len(spec["jobs"]) == 1 else 1)

    monkeypatch.setattr(parity_run.subprocess, "run", fake_worker)
    with pytest.raises(parity_run.ParityRunError, match="run the same command again to go on"):
        parity_run.run_precision(jobs, "float32", 5, done, log=lambda _: None)
    assert started == [["cpu", "paper"]] and parity_run.job_file(done, jobs[0], "float32", 5).exists()
    logged: list[str] = []
    results = parity_run.run_precision(jobs, "float32", 5, done, log=logged.append)
    assert started[-1] == ["paper"] and [r["scale"] for r in results] == ["cpu", "paper"]
    assert any("1 comparison(s) reused" in line for line in logged)
    started.clear()
    assert parity_run.run_precision(jobs, "float32", 5, done, log=lambda _: None) == results
    assert started == []  # everything reused: no worker
    other = [parity_run.Job("fql", "cube", "cpu", str(tmp_path / "another-checkout"))]
    (tmp_path / "another-checkout").mkdir()
    parity_run.run_precision(other, "float32", 5, done, log=lambda _: None)
    assert started == [["cpu"]]  # a result from another checkout folder is not reused


def test_a_torn_comparison_file_is_run_again_not_trusted(tmp_path, monkeypatch):
    from fidec.files import write_json_atomic
    from fidec.parity import run as parity_run

    checkout = tmp_path / "fql-checkout"
    checkout.mkdir()
    job = parity_run.Job("fql", "cube", "cpu", str(checkout))
    path = parity_run.job_file(tmp_path / "done", job, "float64", 3)
    path.parent.mkdir()
    path.write_text('{"agent": "fql", "status": "comp')  # cut off mid-write by hand
    started = []

    def fake_worker(command, env, **kwargs):
        started.append(env["JAX_ENABLE_X64"])
        write_json_atomic(path, {"status": "compared", "reference": {"checkout": checkout.name}})
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(parity_run.subprocess, "run", fake_worker)
    (result,) = parity_run.run_precision([job], "float64", 3, tmp_path / "done", log=lambda _: None)
    assert started == ["1"] and result["status"] == "compared"
