#!/usr/bin/env bash
# Run HERE, before a GPU session's one device call: puts what scripts/gpu_check.sh needs on the GPU
# machine into .gpu/ (ignored; it travels when the call names it in `carry`) and prints that call.
#   .gpu/fixtures/  a copy of the Geo4D golden fixtures (../shared does not travel)
#   .gpu/wheels/    open_clip_torch 2.22.0 + ftfy + wcwidth (pure Python; the GPU machine lacks them, and the
#                   conditioning, end-to-end and manifest checks build open_clip's CLIP)
set -euo pipefail
cd "$(dirname "$0")/.."
src=${PARALLAX_GEO4D_FIXTURES:-}
if [ -z "$src" ]; then
  for candidate in ../shared/fixtures/geo4d ../../shared/fixtures/geo4d /work/shared/fixtures/geo4d; do
    if [ -f "$candidate/tiny_config.json" ]; then src=$candidate; break; fi
  done
fi
if [ -z "$src" ] || [ ! -f "$src/tiny_config.json" ]; then
  echo "error: no Geo4D fixture folder found (looked in \$PARALLAX_GEO4D_FIXTURES, ../shared, /work/shared)" >&2
  echo "fix: set PARALLAX_GEO4D_FIXTURES to a folder laid out as ../shared/fixtures/geo4d" >&2
  exit 2
fi
git check-ignore -q .gpu/ || { echo "error: .gpu/ is not ignored by git (see .gitignore)" >&2; exit 2; }
rm -rf .gpu
mkdir -p .gpu/fixtures .gpu/wheels
cp -R "$src"/. .gpu/fixtures/
chmod -R u+w .gpu/fixtures
PY=${PYTHON:-python3}
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 -d .gpu/wheels "open_clip_torch==2.22.0" "ftfy==6.3.1" "wcwidth==0.2.13"
echo "prepared: $(du -sh .gpu | cut -f1) in .gpu/ (fixtures from $src; wheels: $(ls .gpu/wheels | tr '\n' ' '))"
echo "the device call (tool run):"
echo '  command:   PYTHONUNBUFFERED=1 bash scripts/gpu_check.sh'
echo '  carry:     [".gpu"]'
echo '  timeout_s: 540'
