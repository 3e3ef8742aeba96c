"""The repository's page renderer, ``benchmarks/render_page.py`` (a script, not part of the package), for the
tests: ``from benchmark_page import render_page``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render_page", ROOT / "benchmarks" / "render_page.py")
assert _spec is not None and _spec.loader is not None
render_page = sys.modules["render_page"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_page)
