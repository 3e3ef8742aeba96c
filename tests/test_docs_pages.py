"""The result pages are their templates rendered from the committed data files (benchmarks/pages/render.py), so
every number on them comes from a file, and a prose claim that the files stop supporting stops the rendering."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render = _load(ROOT / "benchmarks" / "pages" / "render.py", "docs_pages_render")
compare = _load(ROOT / "benchmarks" / "parity" / "compare.py", "docs_pages_parity_compare")


@pytest.fixture(scope="module")
def pages() -> dict[Path, str]:
    return render.render_pages(ROOT)


@pytest.mark.parametrize("page", ["docs/results.md", "docs/parity.md", "docs/diagnostics.md", "README.md"])
def test_committed_page_is_its_rendering(pages, page):
    """If this fails, run `python benchmarks/pages/render.py` (after changing a template or a data file) and
    read the diff: the page must say what its files say."""
    assert (ROOT / page).read_text() == pages[ROOT / page], f"{page} differs from its rendering"


def test_every_page_names_its_template_and_no_field_is_left():
    for page, template in render.PAGES.items():
        text = (ROOT / page).read_text()
        assert text.startswith("<!-- Rendered by benchmarks/pages/render.py from benchmarks/pages/templates/")
        assert template in text.splitlines()[0]
        assert "{{" not in text and "{%" not in text
    readme = (ROOT / "README.md").read_text()
    for block in render.README_BLOCKS:
        assert f"<!-- begin rendered: {block} -->" in readme and f"<!-- end rendered: {block} -->" in readme


def test_fields_sets_and_checks():
    text = "{% set X = 2 %}\na {{ X * 3 }} b{{ check(X > 1, 'X is large') }} c {{ [x for x in range(X) if x < X] }}\n"
    assert render.render_template(text, {"check": render.check}, "t") == "a 6 b c [0, 1]\n"
    with pytest.raises(render.RenderError, match="no longer holds for the files: X is small"):
        render.render_template(
            "{% set X = 2 %}\n{{ check(X < 1, 'X is small') }}", {"check": render.check}, "t"
        )
    with pytest.raises(render.RenderError, match="failed: NameError"):
        render.render_template("{{ missing }}", {}, "t")


def test_a_verdict_the_prose_states_is_checked():
    from fidec.stats import compare_groups

    close = compare_groups([0.1, 0.2, 0.3], [0.15, 0.25, 0.35])
    assert render.claim(close, "not distinguished").startswith("+5.0 points, Welch 95% interval")
    with pytest.raises(render.RenderError, match="expected 'distinguished'"):
        render.claim(close, "distinguished")


def _copy_inputs(tmp_path: Path) -> Path:
    """A root holding the files the results page reads."""
    for folder in ("docs/results", "docs/parity", "docs/demo"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copytree(ROOT / "benchmarks" / "parity", tmp_path / "benchmarks" / "parity")
    return tmp_path


def test_tables_follow_the_labels_and_tasks_in_the_files(tmp_path):
    """A new agent in scores.csv (as the study's rerun adds) is a new column of every score table, with its
    comparisons computed from its per-seed values."""
    root = _copy_inputs(tmp_path)
    scores = root / "docs" / "results" / "scores.csv"
    lines = scores.read_text().splitlines()
    extra = [line.replace(",fql,", ",iql,") for line in lines[1:] if ",fql," in line]
    scores.write_text("\n".join(lines + extra) + "\n")
    results = render.Results(root)
    assert results.labels[-1] == "iql"
    table = results.score_table("last3")
    assert table.splitlines()[0].endswith("| bcflow | iql |")
    assert results.cmp("last3", results.tasks[0], "fql", "iql").difference == pytest.approx(0.0)
    assert "iql - fd" in results.comparison_table("last3", [("fd", "iql")])


def test_the_spec_and_the_files_must_agree(tmp_path):
    """The scale table is the spec's; evaluations at other steps than the spec's stop the rendering."""
    root = _copy_inputs(tmp_path)
    spec = root / "docs" / "results" / "study.toml"
    assert "eval_interval = 5000" in spec.read_text()
    spec.write_text(spec.read_text().replace("eval_interval = 5000", "eval_interval = 2000"))
    with pytest.raises(render.RenderError, match="rerun the study or keep the spec"):
        render.Results(root).last3_text()


def test_parity_json_comparisons_are_those_of_its_seed_values():
    """parity.json's stored comparisons are what compare.py computes from the per-seed values it stores (a
    stale file, or a change of the statistics, fails here: run compare.py --rerender docs/parity)."""
    data = json.loads((ROOT / "docs" / "parity" / "parity.json").read_text())
    assert data == json.loads(json.dumps(compare.rerender(data)))
    record = data["tasks"]["cube-single-play-singletask-task1-v0"]["pairs"]["fd"]
    assert record["difference_last3"]["verdict"] == "not distinguished"
    assert record["difference_last3"]["welch"][0] < 0 < record["difference_last3"]["welch"][1]


def test_parity_rerender_reads_the_single_task_layout():
    single = {
        "task": "cube-single-play-singletask-task1-v0",
        "settings": {"steps": 100},
        "pairs": {
            "fql": {
                "fidec_label": "fql",
                "official": {"last3": _stat([0.1, 0.2, 0.3]), "final": _stat([0.1, 0.2, 0.4])},
                "fidec": {"last3": _stat([0.5, 0.6, 0.7]), "final": _stat([0.1])},
            }
        },
    }
    result = compare.rerender(single)
    record = result["tasks"]["cube-single-play-singletask-task1-v0"]["pairs"]["fql"]
    assert record["difference_last3"]["verdict"] == "distinguished"
    assert record["difference_final"]["verdict"] == "not testable"  # one fidec seed
    table = compare.table(result)
    assert "| FQL (last3) |" in table and "| not testable |" in table


def _stat(values):
    from fidec.stats import mean_std

    return mean_std(values).__dict__


def test_the_extended_studys_finished_trials_are_named_from_their_report(tmp_path):
    """docs/results-next/scores.csv (``fidec report`` of the extended study so far) gives each label with the
    seeds finished per task; without it the page says none is reported."""
    root = _copy_inputs(tmp_path)
    assert render.Results(root).next_study_text() == "None of its trials has been reported yet."
    folder = root / "docs" / "results-next"
    folder.mkdir()
    header = "protocol,family,task,label,metric,n_seeds,mean,std,bold,seeds,values"
    rows = [
        "last3,cube-single-play,cube-single-play-singletask-task1-v0,iql,success,3,0.2,0.1,1,0 1 2,0.1 0.2 0.3",
        "last3,puzzle-3x3-play,puzzle-3x3-play-singletask-task1-v0,iql,success,1,0.1,0.0,0,0,0.1",
        "final,cube-single-play,cube-single-play-singletask-task1-v0,iql,success,3,0.2,0.1,1,0 1 2,0.1 0.2 0.3",
        "last3,cube-single-play,cube-single-play-singletask-task1-v0,rebrac,success,2,0.3,0.1,1,0 1,0.2 0.4",
    ]
    (folder / "scores.csv").write_text("\n".join([header, *rows]) + "\n")
    text = render.Results(root).next_study_text()
    assert "iql (cube-single-play 3, puzzle-3x3-play 1) and rebrac (cube-single-play 2)" in text
