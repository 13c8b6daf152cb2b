#!/usr/bin/env bash
# The project's GPU measurements in one command (issues 3, 13 and 15), run from the repository root on the GPU
# machine after scripts/gpu_prepare.sh ran here (it packs the fixtures and open_clip's wheels into .gpu/).
# A device session has ~15 minutes in all, so the steps run in the order of what is missing most, within one
# budget (GPU_CHECK_BUDGET, default 500 s): each step's limit is cut to what is left, and a step is skipped
# when under 20 s are left.
#   1. facts: nvidia-smi, Python, numpy, torch, CUDA, the GPU
#   2. bench-geometrycrafter: GeometryCrafter, FULL-size random weights, 576x1024, 110 frames (one window), diff and
#      determ, fp16 (the official README's 1.27 / 1.50 frames/s and ~40 GB; issue 13)
#   3. bench-geo4d: Geo4D, FULL-size, 320x512, 64 frames, stride 4, 5 steps, fp16 and bf16 (issue 15's GPU table;
#      GPU_CHECK_GEO4D_PRECISIONS="fp32 fp16 bf16" adds fp32)
#   4. fixtures-geo4d, 5. fixtures-geometrycrafter: python -m engine check-fixtures DIR --device cuda (float32,
#      TF32 off)
#   6. bench-geometrycrafter-low: 320x576, 110 frames, diff, fp16 (the official ~22 GB and 2.49 frames/s)
# The predicted memory (python -m engine.bench memory [--model geometrycrafter]) needs no GPU: run it here.
# ONNX Runtime on CUDA needs onnxruntime-gpu, which that machine lacks: no ONNX rows.
# Logs go to $OUT when set (the device tool brings its files back), else .gpu/out. Every step runs (or is
# skipped for the budget), a summary ends the output, and the script exits 1 when any step failed, timed out
# or was skipped.
# GPU_CHECK_DRY_RUN=1: the same steps on the CPU at a tiny size (the fixtures' tiny configs, Geo4D 64x128, 16
# frames, 1 step; GeometryCrafter 64x128, 6 frames in windows of 4; bf16: torch's CPU fp16 kernels take
# minutes even there), to run the whole script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOGS=${OUT:-.gpu/out}
BUDGET=${GPU_CHECK_BUDGET:-500}
MIN_STEP=20
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DEADLINE=$((SECONDS + BUDGET))

if [ -f .gpu/fixtures.tar.xz ] && [ ! -d .gpu/fixtures/geometrycrafter ]; then  # Python's tarfile: no xz needed
  "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .gpu/fixtures.tar.xz .gpu/fixtures
fi
GEO4D_FIXTURES=${PARALLAX_GEO4D_FIXTURES:-.gpu/fixtures/geo4d}
CRAFTER_FIXTURES=${PARALLAX_GEOMETRYCRAFTER_FIXTURES:-.gpu/fixtures/geometrycrafter}
for folder in "$GEO4D_FIXTURES" "$CRAFTER_FIXTURES"; do
  if [ ! -f "$folder/tiny_config.json" ]; then  # the benchmarks need no fixtures: they still run
    echo "warning: no fixtures in $folder (its fixture step will fail); fix: run scripts/gpu_prepare.sh first" \
      "and carry .gpu" >&2
  fi
done
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
  DEVICE=cpu
  GEO4D=(--config "$GEO4D_FIXTURES/tiny_config.json" --size 64 128 --frames 16 --stride 4 --steps 1 --precision bf16)
  CRAFTER=(--config "$CRAFTER_FIXTURES/tiny_config.json" --size 64 128 --frames 6 --window 4 --stride 2 --steps 1
           --precision bf16)
  CRAFTER_LOW=("${CRAFTER[@]}" --variant diff)
else
  DEVICE=cuda
  # shellcheck disable=SC2206  # the precisions are words
  GEO4D=(--size 320 512 --frames 64 --stride 4 --steps 5 --precision ${GPU_CHECK_GEO4D_PRECISIONS:-fp16 bf16})
  CRAFTER=(--size 576 1024 --frames 110 --window 110 --steps 5 --precision fp16)
  CRAFTER_LOW=(--size 320 576 --frames 110 --window 110 --steps 5 --precision fp16 --variant diff)
fi
mkdir -p "$LOGS"

# open_clip (the CLIP towers of the Geo4D conditioning, end-to-end and manifest checks) from the carried wheels.
if ! "$PY" -c "import open_clip" 2>/dev/null && ls .gpu/wheels/*.whl >/dev/null 2>&1; then
  site=$(mktemp -d /tmp/parallax-site.XXXXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .gpu/wheels/*.whl \
    && export PYTHONPATH="$PYTHONPATH:$site"
fi

summary=()
failed=0
# step NAME LIMIT_S LOG COMMAND...: runs COMMAND under a time limit (cut to the budget left), its output on screen
# and in LOG.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt "$MIN_STEP" ]; then
    summary+=("$name: SKIPPED (${left} s of the ${BUDGET} s budget left)")
    failed=1
    return
  fi
  if [ "$limit" -gt "$left" ]; then limit=$left; fi
  echo "=== $name (limit ${limit} s) -> $log"
  local start=$SECONDS
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local what="exit $rc"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then what="TIMED OUT (limit ${limit} s)"; fi
  summary+=("$name: $what, $((SECONDS - start)) s")
  if [ "$rc" != 0 ]; then failed=1; fi
}

FACTS='
import platform, sys
import numpy, torch
print("python", platform.python_version(), sys.executable)
print("numpy", numpy.__version__, "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version())
print("CUDA available:", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 1024**3:.1f} GiB, {p.multi_processor_count} SMs, capability {p.major}.{p.minor}")
import onnxruntime
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
from importlib.metadata import version
try:
    import open_clip
    print("open_clip", version("open_clip_torch"), "from", open_clip.__file__)
except ImportError as exc:
    print("open_clip: not importable:", exc)
'
if command -v nvidia-smi >/dev/null; then
  step nvidia-smi 30 "$LOGS/nvidia-smi.txt" nvidia-smi
fi
step facts 60 "$LOGS/facts.txt" "$PY" -c "$FACTS"
step bench-geometrycrafter 230 "$LOGS/bench_geometrycrafter.txt" \
  "$PY" -m engine.bench model --model geometrycrafter "${CRAFTER[@]}" --device "$DEVICE"
step bench-geo4d 170 "$LOGS/bench_geo4d.txt" \
  "$PY" -m engine.bench model "${GEO4D[@]}" --device "$DEVICE" --runtime torch
step fixtures-geo4d 120 "$LOGS/fixtures_geo4d.txt" \
  "$PY" -m engine check-fixtures "$GEO4D_FIXTURES" --device "$DEVICE"
step fixtures-geometrycrafter 90 "$LOGS/fixtures_geometrycrafter.txt" \
  "$PY" -m engine check-fixtures "$CRAFTER_FIXTURES" --device "$DEVICE"
step bench-geometrycrafter-low 100 "$LOGS/bench_geometrycrafter_low.txt" \
  "$PY" -m engine.bench model --model geometrycrafter "${CRAFTER_LOW[@]}" --device "$DEVICE"

printf '%s\n' "=== summary (device $DEVICE, logs in $LOGS, $SECONDS s of the ${BUDGET} s budget)" "${summary[@]}" \
  | tee "$LOGS/summary.txt"
exit "$failed"
