"""Sweeps: agents x tasks x seeds x settings from a spec file, run on Ray, recorded in a manifest.

    spec = load_spec("examples/sweeps/tiny.toml")
    outcome = run_sweep(spec)                 # embedded local Ray; address="auto" joins a cluster
    outcome.counts                            # {"done": 8, "failed": 0, ...}

The command line is ``fidec sweep SPEC``; ``fidec report OUT_DIR`` turns the result into tables and plots.
"""

from fidec.sweeps.manifest import Manifest, TrialRecord, read_manifest
from fidec.sweeps.runner import SweepOutcome, run_sweep, train_trial
from fidec.sweeps.spec import AgentVariant, Resources, SpecError, SweepSpec, Trial, load_spec, parse_spec

__all__ = [
    "AgentVariant",
    "Manifest",
    "Resources",
    "SpecError",
    "SweepOutcome",
    "SweepSpec",
    "Trial",
    "TrialRecord",
    "load_spec",
    "parse_spec",
    "read_manifest",
    "run_sweep",
    "train_trial",
]
