"""docs/benchmarks.md from benchmark results: templates/page.md around one section per result.

The page's words are package data (``fidec/bench/templates``); :mod:`fidec.bench.markdown` fills in each
result's tables.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from pathlib import Path

from fidec.bench.markdown import fill, render_result, template_text
from fidec.bench.settings import GPU_TIME_BUDGET_S, TARGET_ROOFLINE, TARGET_SPEEDUP
from fidec.files import write_text_atomic
from fidec.formatting import format_number, format_percent


def _order(result: dict) -> tuple:
    """CPU before other backends, quick before the rest, then by date."""
    return (result["machine"]["backend"] != "cpu", result["mode"] != "quick", result["created"])


def render_markdown(results: Sequence[dict]) -> str:
    """docs/benchmarks.md: the page's text, then one section per result."""
    body = "\n\n".join(render_result(r) for r in sorted(results, key=_order)) or fill("no_results")
    page = string.Template(template_text("page.md")).substitute(
        results=body,
        gpu_budget=format_number(GPU_TIME_BUDGET_S),
        target_roofline=format_percent(TARGET_ROOFLINE),
        target_speedup=f"{format_number(TARGET_SPEEDUP)}x",
    )
    return page.rstrip("\n") + "\n"


def is_result(data: object) -> bool:
    """True for a dict with the layout ``fidec bench`` writes (other JSON files are skipped)."""
    return isinstance(data, dict) and all(k in data for k in ("schema", "mode", "created", "machine"))


def is_smoke_run(result: dict) -> bool:
    """A run at the smoke-test size (``--tiny``, or any plan at its smallest): never rendered from a folder."""
    return result.get("mode") == "tiny" or bool((result.get("settings") or {}).get("smallest"))


def load_results(results_dir: str | Path) -> list[dict]:
    """Every benchmark result JSON in ``results_dir`` except smoke-test runs."""
    results = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if is_result(data) and not is_smoke_run(data):
            results.append(data)
    return results


def render_docs(results_dir: str | Path, docs_path: str | Path, extra: Sequence[dict] = ()) -> Path:
    """Render every result in ``results_dir`` (plus ``extra`` results not saved there) into ``docs_path``."""
    results = load_results(results_dir) if Path(results_dir).is_dir() else []
    seen = {(r["created"], r["mode"], r["machine"]["backend"]) for r in results}
    results += [r for r in extra if (r["created"], r["mode"], r["machine"]["backend"]) not in seen]
    return write_text_atomic(docs_path, render_markdown(results))
