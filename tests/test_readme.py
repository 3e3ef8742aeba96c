"""The README's "From Python" code runs as written: saved as a script and run in a fresh interpreter, it
generates a dataset, trains, loads the policy and steps a real OGBench environment with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fidec

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_block(section: str) -> str:
    """The first fenced ``python`` block of the README section titled ``section``."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    match = re.search(r"^```python\n(.*?)^```$", text[start : end if end > 0 else None], re.S | re.M)
    assert match, f"README.md's {section!r} section has no python block"
    return match.group(1)


def test_the_from_python_section_shows_the_public_api():
    code = readme_python_block("From Python")
    for name in ("fidec.train(", "fidec.load_policy(", "policy(observation)", "env.step(action)"):
        assert name in code
    assert len(code.strip().splitlines()) <= 16  # about a dozen lines


@pytest.mark.slow
@pytest.mark.env
def test_the_from_python_code_runs_as_a_script(tmp_path):
    script = tmp_path / "from_python.py"
    script.write_text(readme_python_block("From Python"))
    source = str(Path(fidec.__file__).resolve().parents[1])  # the fidec under test
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])]),
        "FIDEC_CACHE_DIR": str(tmp_path / "cache"),  # the dataset is generated afresh, not read from a cache
    }
    done = subprocess.run(
        [sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(
        r"Policy\(agent='fd', mode='onestep', run_dir='runs/.+', step=100, seed=0\) success: ", done.stdout
    )
    assert list(
        (tmp_path / "cache" / "datasets" / "ogbench" / "cube-single-play-v0").glob(
            "*/cube-single-play-v0.npz"
        )
    )
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "checkpoints" / "step_000000100").is_dir()
