"""Reports: paper-style tables, the interquartile mean across tasks, learning curves with bootstrap bands,
and a Markdown/HTML report.

    report = build_report(["runs/sweeps/tiny"], "runs/sweeps/tiny/report", fmt="md")
    print(report.text)          # the score tables; report.markdown is what to open first

The command line is ``fidec report SWEEP_OR_RUN_DIRS [--format md|csv|latex]``.
"""

from fidec.reports.aggregate import (
    AggregateInterval,
    GroupScores,
    RunData,
    collect_runs,
    group_scores,
    iqm_interval,
    iqm_results,
)
from fidec.reports.render import Report, build_report

__all__ = [
    "AggregateInterval",
    "GroupScores",
    "Report",
    "RunData",
    "build_report",
    "collect_runs",
    "group_scores",
    "iqm_interval",
    "iqm_results",
]
