"""fidec's benchmark suite: how fast it trains and acts, how close to the hardware's limit, how cost grows,
and how each agent's update compares with its reference code's.

    fidec bench --quick                  # under 5 minutes on 2 idle CPU cores; python -m fidec.bench works too
    fidec bench --quick --reference DIR  # also time each agent against its reference code (checkouts you obtained)
    fidec bench --preset gpu             # the GPU plan (benchmarks/gpu.sh)
    fidec bench                          # the full set

Sections (one module each): dense matmul throughput (:mod:`~fidec.bench.machine`), gradient updates
(:mod:`~fidec.bench.update_speed`), FD's time breakdown (:mod:`~fidec.bench.profile`), each agent against
its reference code (:mod:`~fidec.bench.reference`), the cheaper Fisher estimator (:mod:`~fidec.bench.fisher_estimators`),
fused blocks (:mod:`~fidec.bench.fused`), seeds vmapped or sequential (:mod:`~fidec.bench.seeds`), action
selection (:mod:`~fidec.bench.sampling`), evaluation throughput (:mod:`~fidec.bench.env_speed`), peak
memory (:mod:`~fidec.bench.memory`) and cost growth (:mod:`~fidec.bench.scaling`).  :func:`run_benchmarks`
runs them into one JSON-able dict and :func:`write_result` writes it; the project's page docs/benchmarks.md
is rendered from such files by the repository's ``benchmarks/render_page.py``, not by the package.
"""

from fidec.bench.run import RESULT_KEYS, headline, run_benchmarks, write_result
from fidec.bench.settings import SECTIONS, BenchSettings, settings_for

__all__ = [
    "RESULT_KEYS",
    "SECTIONS",
    "BenchSettings",
    "headline",
    "run_benchmarks",
    "settings_for",
    "write_result",
]
