#!/usr/bin/env bash
# The GPU plan of fidec's benchmarks (docs/benchmarks.md, "On a GPU"): the quick bench plus fused blocks
# K = 1/10/100/1000 and 1/4/8/16 vmapped seeds at the paper's settings, within 8 minutes, written to
# benchmarks/results/gpu-paper-scale.json, then docs/benchmarks.md rendered from benchmarks/results/.
#
#   bash benchmarks/gpu.sh                      # on a GPU machine (pip install -e ".[gpu]" first)
#   bash benchmarks/gpu.sh --reference DIR      # also time the reference code (repeatable; pip install -e ".[reference]")
#   bash benchmarks/gpu.sh --smoke [--out DIR]  # the same plan at 2 x 32 networks on the CPU (a test runs it);
#                                               # writes only the result, never the page
#
# Other arguments go to `fidec bench` unchanged (a later --out replaces benchmarks/results).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"

if [[ "${1:-}" == "--smoke" ]]; then
  shift
  export JAX_PLATFORMS=cpu
  exec "$python" -m fidec.bench --preset gpu --tiny "$@"
fi

backend="$("$python" -c 'import jax; print(jax.default_backend())')"
if [[ "$backend" != "gpu" ]]; then
  echo "error: JAX sees no GPU (backend: $backend); install the CUDA build with pip install -e \".[gpu]\", check" \
    "python -c \"import jax; print(jax.devices())\", or run bash benchmarks/gpu.sh --smoke on a CPU" >&2
  exit 2
fi
"$python" -c 'import jax; print("devices:", jax.devices())'
status=0
timeout --signal=INT --kill-after=30 "${FIDEC_GPU_BENCH_TIMEOUT:-540}" \
  "$python" -m fidec.bench --preset gpu --out benchmarks/results "$@" || status=$?
"$python" benchmarks/render_page.py  # an interrupted run keeps its sections: render them too
exit "$status"
