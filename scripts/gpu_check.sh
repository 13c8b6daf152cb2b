#!/usr/bin/env bash
# Issue 3's GPU checks in one command, run from the repository root on the GPU machine after
# scripts/gpu_prepare.sh ran here (it copies the fixtures and open_clip's wheels into .gpu/):
#   1. facts: nvidia-smi, Python, numpy, torch, CUDA, the GPU
#   2. python -m engine check-fixtures .gpu/fixtures --device cuda   (float32, TF32 off)
#   3. python -m engine.bench memory: the predicted peak memory (meta tensors), to compare with 4.
#   4. python -m engine.bench model: FULL-size architecture, 320x512, 64 frames, stride 4, 5 steps,
#      torch fp32 fp16 bf16 (ONNX Runtime on CUDA needs onnxruntime-gpu, which that machine lacks)
# Logs go to $OUT when set (the device tool brings its files back), else .gpu/out. Each step has a time
# limit (it is killed past it); every step runs, a summary ends the output, and the script exits 1
# when any step failed or timed out.
# GPU_CHECK_DRY_RUN=1: the same steps on the CPU at a tiny size (the fixtures' tiny config, 64x128,
# 16 frames, 1 step; fp32 and bf16: torch's CPU fp16 kernels take minutes even there), to run the
# whole script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
FIXTURES=${PARALLAX_GEO4D_FIXTURES:-.gpu/fixtures}
LOGS=${OUT:-.gpu/out}
FIXTURE_LIMIT=${GPU_CHECK_FIXTURE_LIMIT:-150}
BENCH_LIMIT=${GPU_CHECK_BENCH_LIMIT:-330}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ ! -f "$FIXTURES/tiny_config.json" ]; then
  echo "error: no Geo4D fixtures in $FIXTURES; fix: run scripts/gpu_prepare.sh first (and carry .gpu)" >&2
  exit 2
fi
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
  DEVICE=cpu
  BENCH=(--config "$FIXTURES/tiny_config.json" --size 64 128 --frames 16 --stride 4 --steps 1 --precision fp32 bf16)
  PREDICT=(--config "$FIXTURES/tiny_config.json" --size 64 128 --precision fp32 bf16)
else
  DEVICE=cuda
  BENCH=(--size 320 512 --frames 64 --stride 4 --steps 5 --precision fp32 fp16 bf16)
  PREDICT=(--size 320 512 --precision fp32 fp16 bf16)
fi
mkdir -p "$LOGS"

# open_clip (the CLIP towers of the conditioning, end-to-end and manifest checks) from the carried wheels.
if ! "$PY" -c "import open_clip" 2>/dev/null && ls .gpu/wheels/*.whl >/dev/null 2>&1; then
  site=$(mktemp -d /tmp/parallax-site.XXXXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .gpu/wheels/*.whl \
    && export PYTHONPATH="$PYTHONPATH:$site"
fi

summary=()
failed=0
# step NAME LIMIT_S LOG COMMAND...: runs COMMAND under a time limit, its output on screen and in LOG.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
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
  step nvidia-smi 60 "$LOGS/nvidia-smi.txt" nvidia-smi
fi
step facts 120 "$LOGS/facts.txt" "$PY" -c "$FACTS"
step check-fixtures "$FIXTURE_LIMIT" "$LOGS/check_fixtures.txt" \
  "$PY" -m engine check-fixtures "$FIXTURES" --device "$DEVICE"
echo "(ONNX Runtime rows: not run; on CUDA they need onnxruntime-gpu, which this machine does not have)"
# The memory the model benchmark measures, as predicted without a GPU: the two tables side by side.
step bench-memory 120 "$LOGS/bench_memory.txt" "$PY" -m engine.bench memory "${PREDICT[@]}"
step bench-model "$BENCH_LIMIT" "$LOGS/bench_model.txt" \
  "$PY" -m engine.bench model "${BENCH[@]}" --device "$DEVICE" --runtime torch

printf '%s\n' "=== summary (device $DEVICE, logs in $LOGS)" "${summary[@]}" | tee "$LOGS/summary.txt"
exit "$failed"
