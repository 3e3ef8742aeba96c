"""One precision's share of ``fidec parity``: ``python -m fidec.parity.worker JOBS.json DONE_DIR``.

Started by :func:`fidec.parity.run.run_precision` with ``JAX_ENABLE_X64`` set for float64.  It loads each
reference once, runs its jobs with the draws recorded, and writes each job's result to its own JSON file in
``DONE_DIR`` the moment it finishes (:func:`fidec.parity.run.job_file`), so a stopped run keeps what it did.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from fidec.agents import get_spec
from fidec.envs.dims import task_dims
from fidec.files import write_json_atomic
from fidec.parity.check import SCALES, run_case
from fidec.parity.load import ReferenceCode, load_reference
from fidec.parity.record import recording
from fidec.parity.run import Job, job_file


def main(jobs_path: str, done_dir: str) -> int:
    spec = json.loads(Path(jobs_path).read_text())
    loaded: dict[tuple[str, str], ReferenceCode] = {}
    with recording() as recorder:
        for job in spec["jobs"]:
            reference = get_spec(job["agent"]).reference
            assert reference is not None
            key = (job["checkout"], reference.agent_file)
            if key not in loaded:
                loaded[key] = load_reference(job["checkout"], reference)
            code = loaded[key]
            dims = task_dims(reference.cases[job["case"]].env)
            start = time.perf_counter()
            print(
                f"  {job['agent']} {job['case']} at the {job['scale']} scale ...", file=sys.stderr, flush=True
            )
            result = run_case(
                job["agent"],
                job["case"],
                SCALES[job["scale"]],
                code,
                recorder,
                updates=int(spec["updates"]),
                obs_dim=int(dims.observation_shape[0]),
                action_dim=dims.action_dim,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
            result["wall_s"] = round(time.perf_counter() - start, 1)
            result["reference"] = {
                "repository": reference.repository,
                "agent_file": reference.agent_file,
                "agent_class": reference.agent_class,
                "checkout": code.root.name,
                "sha256": code.sha256,
                "commit": code.commit,
            }
            write_json_atomic(
                job_file(done_dir, Job(**job), result["precision"], int(spec["updates"])), result
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
