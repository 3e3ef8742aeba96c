"""``fidec bench --reference DIR``: loading the official agent from a checkout, and timing it against fidec's.

The official code is not part of fidec and not in this repository: the tests write a small stand-in
checkout with the same interface (``agents/fidec.py``: ``get_config()``, ``FiDecAgent.create(seed,
ex_observations, ex_actions, config)``, ``agent.update(batch) -> (agent, info)``, importing its own
top-level ``utils`` package as the official one does).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import typer
from typer.testing import CliRunner

from benchmark_page import render_page
from fidec.agents import default_config
from fidec.bench.commands import bench_command
from fidec.bench.reference import ReferenceError, load_reference, reference_config
from fidec.bench.run import run_benchmarks
from fidec.bench.settings import settings_for
from fidec.errors import EXIT_USER_ERROR
from fidec.presets import resolve_agent_config

AGENT = """
import flax
import jax
import jax.numpy as jnp

from utils.mlp import apply_mlp, init_mlp


class FiDecAgent(flax.struct.PyTreeNode):
    params: list
    hidden: tuple = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False, default=1)

    @jax.jit
    def update(self, batch):
        def loss(params):
            inputs = jnp.concatenate([batch["observations"], batch["actions"]], axis=-1)
            return jnp.mean((apply_mlp(params, inputs)[:, 0] - batch["rewards"]) ** 2)

        value, grads = jax.value_and_grad(loss)(self.params)
        params = jax.tree.map(lambda p, g: p - 1e-3 * g, self.params, grads)
        return self.replace(params=params), {"loss": value}

    @jax.jit
    def sample_actions(self, observations, seed=None):
        noise = jax.random.normal(seed, (observations.shape[0], self.action_dim))
        return jnp.tanh(apply_mlp(self.params, jnp.concatenate([observations, noise], axis=-1)))

    @classmethod
    def create(cls, seed, ex_observations, ex_actions, config):
        sizes = [ex_observations.shape[-1] + ex_actions.shape[-1], *config["actor_hidden_dims"], 1]
        params = init_mlp(jax.random.PRNGKey(seed), sizes)
        return cls(params=params, hidden=tuple(config["actor_hidden_dims"]), action_dim=ex_actions.shape[-1])


def get_config():
    return dict(
        batch_size=7, actor_hidden_dims=(3,), value_hidden_dims=(3,), num_fisher_samples=1, flow_steps=1,
        lr=3e-4, discount=0.9, grad_clip=5.0,
    )
"""

MLP = """
import jax
import jax.numpy as jnp


def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (m, n)) / m**0.5, jnp.zeros(n)) for k, m, n in zip(keys, sizes, sizes[1:])]


def apply_mlp(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.gelu(x)
    return x
"""


def write_checkout(root: Path, agent: str = AGENT) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "utils").mkdir()
    (root / "agents" / "__init__.py").write_text(
        "raise ImportError('the package __init__ must not be run')\n"
    )
    (root / "agents" / "fidec.py").write_text(textwrap.dedent(agent))
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "mlp.py").write_text(textwrap.dedent(MLP))
    return root


@pytest.fixture
def checkout(tmp_path) -> Path:
    return write_checkout(tmp_path / "official")


def test_the_agent_loads_without_leaving_its_modules_behind(checkout, monkeypatch):
    other_utils = ModuleType("utils")  # another package named utils, imported before
    monkeypatch.setitem(sys.modules, "utils", other_utils)
    path_before = list(sys.path)
    code = load_reference(checkout)
    assert sys.modules["utils"] is other_utils  # restored: the checkout's utils shadows nothing
    assert not any(name.startswith("utils.") for name in sys.modules)
    assert sys.path == path_before
    assert hasattr(code.module.FiDecAgent, "update") and len(code.sha256) == 64
    # The loaded code keeps its own utils (bound at import).
    assert code.module.init_mlp.__module__ == "utils.mlp"


def test_the_official_config_gets_fidecs_sizes_and_the_shared_settings_are_compared(checkout):
    code = load_reference(checkout)
    config = resolve_agent_config("fd", presets=["tiny-networks", "official"])
    ref, compared = reference_config(code, config)
    assert ref["batch_size"] == config.batch_size == 32
    assert ref["actor_hidden_dims"] == ref["value_hidden_dims"] == (32, 32)
    assert ref["num_fisher_samples"] == config.fisher.num_samples and ref["flow_steps"] == config.flow_steps
    by_key = {c["key"]: c for c in compared}
    assert set(by_key) == {"lr", "discount", "grad_clip"}  # the keys this stand-in's config has
    assert by_key["lr"]["same"] and by_key["grad_clip"]["same"]
    assert by_key["discount"] == {"key": "discount", "fidec": 0.99, "reference": 0.9, "same": False}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> tuple[dict, list[str]]:
    """A tiny run of the reference section against the stand-in checkout, and its log."""
    checkout = write_checkout(tmp_path_factory.mktemp("reference") / "official")
    settings = settings_for("tiny", ("reference",), reference_dir=str(checkout))
    logged: list[str] = []
    return run_benchmarks(settings, log=logged.append), logged


@pytest.mark.slow
def test_reference_section_times_the_official_update_in_turns_with_fidecs(reference_run):
    result, logged = reference_run
    assert result["errors"] == {}
    section = result["reference"]
    fidec, reuse, official = section["rows"]
    assert official["label"] == "official code" and fidec["label"] == "fidec fd"
    windows = result["settings"]["reference_windows"]
    assert all(len(r["window_updates_per_s"]) == windows for r in section["rows"])
    # The stand-in built at fidec's tiny sizes (not its own 3-wide default): its work is the hand count
    # of a value_and_grad of a 33 -> 32 -> 32 -> 1 MLP on 32 rows (no input gradient for the first layer).
    layers = [(28 + 5, 32), (32, 32), (32, 1)]
    forward = sum(2 * 32 * m * n for m, n in layers)
    assert official["gflop_per_update"] * 1e9 == pytest.approx(3 * forward - 2 * 32 * 33 * 32)
    assert official["sample_actions_gflop"] * 1e9 == pytest.approx(forward)  # one forward pass of 32 rows
    assert section["sizes"]["actor_hidden_dims"] == [32, 32] and section["sizes"]["batch_size"] == 32
    assert fidec["gflop_per_update"] > reuse["gflop_per_update"]  # reuse_base_sample: B fewer rollouts
    ratio = section["speedup"]
    expected = [
        f / o for f, o in zip(fidec["window_updates_per_s"], official["window_updates_per_s"], strict=True)
    ]
    assert ratio["windows"] == pytest.approx(expected)
    assert ratio["ratio_of_medians"] == pytest.approx(fidec["updates_per_s"] / official["updates_per_s"])
    assert section["meets_target"] == (ratio["ratio"] >= section["target_speedup"])
    assert any("fidec / official" in line for line in logged)
    assert any("discount" in line for line in logged)  # a setting that differs is pointed out


@pytest.mark.slow
def test_a_run_with_the_reference_reports_the_measured_ratio_and_without_says_not_measured(reference_run):
    result, _ = reference_run
    assert result["headline"]["reference"]["speedup"] == result["reference"]["speedup"]["ratio"]
    page = render_page.render_page([{**result, "mode": "quick"}])
    assert "#### FD's update against the official code (same shapes, same settings, timed in turns)" in page
    assert f"**{result['reference']['speedup']['ratio']:.3g}x (" in page  # the ratio, then its window range
    assert "| discount | 0.9 | 0.99 | **no** |" in page

    bare = {**result, "reference": None, "headline": None, "settings": {**result["settings"], "sections": []}}
    assert "Not measured in this run: `fidec bench --reference DIR`" in render_page.render_page([bare])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no such folder"),
        (lambda root: root, "no agents/fidec.py there, so it is not a checkout of the official code"),
        (
            lambda root: write_checkout(root / "c", "import ml_collections_that_is_missing\n"),
            "needs the module 'ml_collections_that_is_missing', which is not installed; install the official "
            "code's dependencies with `pip install 'fidec[reference]'`",
        ),
        (lambda root: write_checkout(root / "c", "def get_config():\n    return {}\n"), "interface"),
        (lambda root: write_checkout(root / "c", "raise RuntimeError('boom')\n"), "RuntimeError: boom"),
    ],
)
def test_a_folder_that_is_not_an_official_checkout_is_refused_clearly(tmp_path, make, message):
    with pytest.raises(ReferenceError, match="--reference") as caught:
        load_reference(make(tmp_path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_config_without_the_official_keys_is_refused(tmp_path):
    agent = AGENT.replace("batch_size=7, ", "")
    code = load_reference(write_checkout(tmp_path / "c", agent))
    with pytest.raises(ReferenceError, match="has no batch_size"):
        reference_config(code, default_config("fd"))


def test_the_command_refuses_a_bad_checkout_in_one_line_before_running(tmp_path):
    app = typer.Typer()
    app.command()(bench_command)
    out = tmp_path / "out"
    outcome = CliRunner().invoke(app, ["--tiny", "--reference", str(tmp_path), "--out", str(out)])
    assert outcome.exit_code == EXIT_USER_ERROR
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --reference") and "official FD code" in lines[0]
    assert not out.exists()  # nothing ran, nothing written

    only = CliRunner().invoke(app, ["--tiny", "--only", "reference"])
    assert only.exit_code == EXIT_USER_ERROR and "--only reference needs the official code" in only.output


@pytest.mark.slow
def test_the_command_writes_the_comparison_into_an_existing_out_folder(checkout, tmp_path):
    app = typer.Typer()
    app.command()(bench_command)
    out = tmp_path / "results"
    out.mkdir()
    args = ["--tiny", "--only", "reference", "--reference", str(checkout), "--out", str(out)]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    (written,) = out.iterdir()
    data = json.loads(written.read_text())
    assert data["reference"]["checkout"] == checkout.name  # the folder's name, not a path of this machine
    assert (
        data["reference"]["agent_file"] == "agents/fidec.py"
        and len(data["reference"]["agent_file_sha256"]) == 64
    )
