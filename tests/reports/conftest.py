"""The report tests' synthetic run directories (fixture ``runs``; see tests/report_runs.py)."""

from report_runs import runs  # noqa: F401  (a fixture)
