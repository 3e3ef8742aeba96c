"""Reports: paper-style tables, learning curves with bootstrap bands, and a Markdown/HTML report.

    report = build_report(["runs/sweeps/tiny"], "runs/sweeps/tiny/report", fmt="md")
    print(report.text)          # the score tables; report.markdown is what to open first

The command line is ``fidec report SWEEP_OR_RUN_DIRS [--format md|csv|latex]``.
"""

from fidec.reports.aggregate import GroupScores, RunData, Stat, collect_runs, group_scores, mean_std
from fidec.reports.curves import bootstrap_ci
from fidec.reports.render import Report, build_report

__all__ = [
    "GroupScores",
    "Report",
    "RunData",
    "Stat",
    "bootstrap_ci",
    "build_report",
    "collect_runs",
    "group_scores",
    "mean_std",
]
