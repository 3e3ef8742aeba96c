"""``fidec bench --reference DIR`` (repeatable): every agent whose reference a checkout holds, timed in turns
against it at the settings of the parity check.

The reference code is not part of fidec and not in this repository: the tests write stand-in checkouts with
the real interfaces, one of the official FD code (``agents/fidec.py``, importing its own top-level ``utils``
package as the official code does, with a config that agrees with fidec's on every setting) and the FQL
stand-in of the parity tests (``tests/reference_standin.py``: FQL's ``agents/fql.py``, its parameter names and
its draws).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
import typer
from typer.testing import CliRunner

from benchmark_page import render_page
from fidec.agents import fd, make_agent, rebrac
from fidec.bench.commands import bench_command
from fidec.bench.flops import matmul_flops, update_cycle_flops
from fidec.bench.reference import load_references, update_cycle
from fidec.bench.run import run_benchmarks
from fidec.bench.settings import TINY_SCALE, settings_for
from fidec.errors import EXIT_USER_ERROR
from fidec.parity.check import make_batches
from fidec.parity.load import ReferenceError
from fidec.presets import resolve_agent_config
from reference_standin import write_standin

AGENT = """
import flax
import jax
import jax.numpy as jnp

from utils.mlp import apply_mlp, init_mlp


class FiDecAgent(flax.struct.PyTreeNode):
    params: list
    action_dim: int = flax.struct.field(pytree_node=False, default=1)

    def total_loss(self, batch, grad_params, rng=None):
        inputs = jnp.concatenate([batch["observations"], batch["actions"]], axis=-1)
        value = jnp.mean((apply_mlp(grad_params, inputs)[:, 0] - batch["rewards"]) ** 2)
        return value, {"loss": value}

    @jax.jit
    def update(self, batch):
        (value, info), grads = jax.value_and_grad(self.total_loss, argnums=1, has_aux=True)(batch, self.params)
        params = jax.tree.map(lambda p, g: p - 1e-3 * g, self.params, grads)
        return self.replace(params=params), info

    @jax.jit
    def sample_actions(self, observations, seed=None):
        noise = jax.random.normal(seed, (observations.shape[0], self.action_dim))
        return jnp.tanh(apply_mlp(self.params, jnp.concatenate([observations, noise], axis=-1)))

    @classmethod
    def create(cls, seed, ex_observations, ex_actions, config):
        sizes = [ex_observations.shape[-1] + ex_actions.shape[-1], *config["actor_hidden_dims"], 1]
        return cls(params=init_mlp(jax.random.PRNGKey(seed), sizes), action_dim=ex_actions.shape[-1])


def get_config():
    return dict(CONFIG)
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


def fd_config() -> dict:
    """fidec's FD settings of its first reference case, in the official config's keys: the stand-in agrees."""
    case = next(iter(fd.REFERENCE.cases.values()))
    config = resolve_agent_config("fd", case.env, presets=case.presets, overrides=case.overrides)
    return {**fd.REFERENCE.settings(config), **case.flags}


def write_fd_checkout(root: Path, agent: str = AGENT, **changed: object) -> Path:
    """A stand-in of the official FD code in ``root``; ``changed`` settings differ from fidec's."""
    (root / "agents").mkdir(parents=True)
    (root / "utils").mkdir()
    (root / "agents" / "__init__.py").write_text(
        "raise ImportError('the package __init__ must not be run')\n"
    )
    config = {**fd_config(), **changed}
    (root / "agents" / "fidec.py").write_text(textwrap.dedent(agent) + f"\nCONFIG = {config!r}\n")
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "mlp.py").write_text(textwrap.dedent(MLP))
    return root


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory) -> tuple[Path, Path]:
    """(official FD stand-in, FQL stand-in)."""
    root = tmp_path_factory.mktemp("references")
    return write_fd_checkout(root / "Fisher-Decorator"), write_standin(root / "fql")


def test_each_agent_is_loaded_from_the_checkout_that_holds_its_reference(checkouts):
    official, fql_code = checkouts
    codes = load_references([official, fql_code])
    assert {a: c.root.name for a, c in codes.items()} == {"fd": "Fisher-Decorator", "fql": "fql"}
    assert codes["fd"].agent_file == "agents/fidec.py" and len(codes["fd"].sha256) == 64
    assert codes["fd"].commit is None  # not a git checkout: the result says so rather than guess
    assert list(load_references([fql_code])) == ["fql"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no such folder"),
        (lambda root: root, "holds none of the reference agent files"),
    ],
)
def test_a_folder_that_is_no_checkout_is_refused_in_one_line(tmp_path, make, message):
    with pytest.raises(ReferenceError, match="--reference") as caught:
        load_references([make(tmp_path)])
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert "https://github.com/seohongpark/fql" in text and "Fisher-Decorator" in text


def test_a_checkout_that_does_not_import_says_what_to_install(tmp_path):
    root = write_fd_checkout(tmp_path / "c", "import ml_collections_that_is_missing\n")
    with pytest.raises(ReferenceError, match="'ml_collections_that_is_missing', which is not installed"):
        load_references([root])


def test_rebrac_is_timed_a_critic_only_and_a_full_update_at_a_time_on_both_sides():
    config = rebrac.ReBRACConfig()
    assert update_cycle(rebrac.REFERENCE, config) == [{"full_update": False}, {"full_update": True}]
    assert update_cycle(fd.REFERENCE, resolve_agent_config("fd")) == [{}]
    # fidec's update branches on its step (lax.cond): each update of the cycle is counted with its branch.
    config = resolve_agent_config("rebrac", presets=["tiny-networks"])
    agent = make_agent("rebrac", config, 28, 5)
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batches(1, config.batch_size, 28, 5, 0, jnp.float32)[0]
    critic_only = update_cycle_flops(agent.update_fn, state, batch, 1)
    pair = update_cycle_flops(agent.update_fn, state, batch, 2)
    full = pair - critic_only
    assert critic_only < full == matmul_flops(agent.update_fn, state, batch)  # unknown step: the costlier


def test_a_cond_with_a_constant_index_counts_the_branch_it_takes():
    x = jnp.ones((4, 8))
    heavy = lambda x: (x @ jnp.ones((8, 8))).sum()
    light = lambda x: x.sum()
    assert matmul_flops(lambda x: jax.lax.cond(True, heavy, light, x), x) == 2 * 4 * 8 * 8
    assert matmul_flops(lambda x: jax.lax.cond(False, heavy, light, x), x) == 0
    assert matmul_flops(lambda x: jax.lax.cond(x.sum() > 0, heavy, light, x), x) == 2 * 4 * 8 * 8


@pytest.fixture(scope="module")
def reference_run(checkouts, tmp_path_factory) -> tuple[dict, list[str], str]:
    """``fidec bench --tiny --only reference`` against both stand-ins: the result written, the command's output
    lines and the result file's text."""
    app = typer.Typer()
    app.command()(bench_command)
    out = tmp_path_factory.mktemp("results")
    official, fql_code = checkouts
    args = ["--tiny", "--only", "reference", "--reference", str(official), "--reference", str(fql_code)]
    outcome = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    (written,) = out.iterdir()
    text = written.read_text()
    return json.loads(text), outcome.output.splitlines(), text


@pytest.mark.slow
def test_every_agent_a_checkout_holds_is_timed_in_turns_with_its_reference(reference_run):
    result, logged, _ = reference_run
    assert result["errors"] == {}
    section = result["reference"]
    assert section["errors"] == {}
    assert [e["agent"] for e in section["agents"]] == ["fd", "fql"]
    assert set(section["not_compared"]) == {"iso", "iql", "rebrac", "ifql"}  # no checkout holds theirs
    assert section["hidden"] == list(TINY_SCALE.hidden) and section["batch_size"] == TINY_SCALE.batch_size
    assert [c["folder"] for c in section["checkouts"]] == ["Fisher-Decorator", "fql"]
    windows = result["settings"]["reference_windows"]
    for entry in section["agents"]:
        assert entry["status"] == "timed" and all(s["same"] for s in entry["settings_compared"])
        *ours, theirs = entry["rows"]
        assert theirs["side"] == "reference" and all(r["side"] == "fidec" for r in ours)
        assert all(len(r["window_updates_per_s"]) == windows for r in entry["rows"])
        for row in ours:
            expected = [
                a / b
                for a, b in zip(row["window_updates_per_s"], theirs["window_updates_per_s"], strict=True)
            ]
            assert row["vs_reference"]["windows"] == pytest.approx(expected)
        ratio = ours[0]["vs_reference"]
        assert entry["meets_target"] == (ratio["ratio"] >= section["target_ratio"])
        assert entry["range_includes_1x"] == (ratio["window_min"] <= 1 <= ratio["window_max"])
    fd_entry, fql_entry = section["agents"]
    labels = [r["label"] for r in fd_entry["rows"]]
    assert labels == [
        "fidec fd",
        "fidec fd, fisher.reuse_base_sample=true",
        "Fisher-Decorator agents/fidec.py",
    ]
    fidec_fd, reuse, official = fd_entry["rows"]
    assert fidec_fd["gflop_per_update"] > reuse["gflop_per_update"]  # reuse_base_sample: B fewer rollouts
    # The stand-in built at the tiny sizes (not its own): its work is the hand count of a value_and_grad of a
    # 33 -> 32 -> 32 -> 1 MLP on 32 rows (no input gradient for the first layer).
    layers = [(28 + 5, 32), (32, 32), (32, 1)]
    forward = sum(2 * 32 * m * n for m, n in layers)
    assert official["gflop_per_update"] * 1e9 == pytest.approx(3 * forward - 2 * 32 * 33 * 32)
    assert official["action_gflop"] * 1e9 == pytest.approx(forward)
    # The FQL stand-in computes what fidec's FQL does, plus one logging-only sample_actions call per update.
    ours, theirs = fql_entry["rows"]
    assert theirs["gflop_per_update"] == pytest.approx(ours["gflop_per_update"] + theirs["action_gflop"])
    assert any("fidec fql" in line and "updates/s" in line for line in logged)


@pytest.mark.slow
def test_the_page_and_the_headline_report_the_measured_ratios(reference_run):
    result, _, _ = reference_run
    fd_entry = result["reference"]["agents"][0]
    assert result["headline"]["reference"]["speedup"] == fd_entry["rows"][0]["vs_reference"]["ratio"]
    page = render_page.render_page([{**result, "mode": "quick"}])
    assert "#### Each agent against its reference code (same settings, same batch, timed in turns)" in page
    for entry in result["reference"]["agents"]:
        ratio = entry["rows"][0]["vs_reference"]["ratio"]
        assert f"| {entry['agent']} | " in page and f"**{render_page.times(ratio)}**" in page
    assert "- `rebrac`: not compared: no checkout given holds agents/rebrac.py" in page
    assert "`Fisher-Decorator` (no git commit)" in page

    bare = {**result, "reference": None, "headline": None, "settings": {**result["settings"], "sections": []}}
    assert "Not measured in this run: `fidec bench --reference DIR`" in render_page.render_page([bare])


@pytest.mark.slow
def test_an_agent_whose_settings_differ_is_not_timed(tmp_path):
    official = write_fd_checkout(tmp_path / "Fisher-Decorator", discount=0.9)
    settings = settings_for("tiny", ("reference",), reference_dirs=(str(official),))
    logged: list[str] = []
    section = run_benchmarks(settings, log=logged.append)["reference"]
    (entry,) = section["agents"]
    assert entry["status"] == "settings differ" and entry["differing"] == ["discount"]
    assert "rows" not in entry and not section["all_meet_target"]
    assert any("fd: not timed" in line and "discount" in line for line in logged)


def test_the_command_refuses_a_bad_checkout_in_one_line_before_running(tmp_path):
    app = typer.Typer()
    app.command()(bench_command)
    out = tmp_path / "out"
    outcome = CliRunner().invoke(app, ["--tiny", "--reference", str(tmp_path), "--out", str(out)])
    assert outcome.exit_code == EXIT_USER_ERROR
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --reference") and "seohongpark/fql" in lines[0]
    assert not out.exists()  # nothing ran, nothing written

    only = CliRunner().invoke(app, ["--tiny", "--only", "reference"])
    assert only.exit_code == EXIT_USER_ERROR and "--only reference needs reference code" in only.output


@pytest.mark.slow
def test_the_result_records_the_checkouts_names_and_code_not_their_paths(reference_run, checkouts):
    data, _, text = reference_run
    assert str(checkouts[0].parent) not in text  # the folders' names, not paths of this machine
    assert data["settings"]["reference_dirs"] == ["Fisher-Decorator", "fql"]
    assert [e["checkout"] for e in data["reference"]["agents"]] == ["Fisher-Decorator", "fql"]
    assert all(len(e["agent_file_sha256"]) == 64 for e in data["reference"]["agents"])
