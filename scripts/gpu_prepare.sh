#!/usr/bin/env bash
# Run HERE, before a GPU session's one device call: puts what scripts/gpu_check.sh needs on the GPU
# machine into .gpu/ (ignored; it travels when the call names it in `carry`, 64 MiB at most) and prints that call.
#   .gpu/fixtures.tar.xz  the Geo4D and GeometryCrafter golden fixtures (../shared does not travel; both
#                         uncompressed are over the carry's 64 MiB), unpacked by gpu_check.sh
#   .gpu/wheels/          open_clip_torch 2.22.0 + ftfy + wcwidth (pure Python; the GPU machine lacks them, and the
#                         Geo4D conditioning, end-to-end and manifest checks build open_clip's CLIP)
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY_LIMIT=$((64 * 1024 * 1024))

# find MODEL ENV_VALUE: the fixture folder of MODEL (geo4d, geometrycrafter), from ENV_VALUE or ../shared.
find_fixtures() {
  local model=$1 src=$2
  if [ -z "$src" ]; then
    for candidate in ../shared/fixtures/$model ../../shared/fixtures/$model /work/shared/fixtures/$model; do
      if [ -f "$candidate/tiny_config.json" ]; then src=$candidate; break; fi
    done
  fi
  if [ -z "$src" ] || [ ! -f "$src/tiny_config.json" ]; then
    echo "error: no $model fixture folder found (looked in \$PARALLAX_${model^^}_FIXTURES, ../shared, /work/shared)" >&2
    echo "fix: set PARALLAX_${model^^}_FIXTURES to a folder laid out as ../shared/fixtures/$model" >&2
    exit 2
  fi
  echo "$src"
}
geo4d=$(find_fixtures geo4d "${PARALLAX_GEO4D_FIXTURES:-}")
crafter=$(find_fixtures geometrycrafter "${PARALLAX_GEOMETRYCRAFTER_FIXTURES:-}")
git check-ignore -q .gpu/ || { echo "error: .gpu/ is not ignored by git (see .gitignore)" >&2; exit 2; }
rm -rf .gpu
mkdir -p .gpu/wheels
stage=$(mktemp -d /tmp/parallax-fixtures.XXXXXX)
trap 'rm -rf "$stage"' EXIT
cp -R "$geo4d" "$stage/geo4d"
cp -R "$crafter" "$stage/geometrycrafter"
tar -C "$stage" -cf - geo4d geometrycrafter | xz -T0 -6 > .gpu/fixtures.tar.xz
PY=${PYTHON:-python3}
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 -d .gpu/wheels "open_clip_torch==2.22.0" "ftfy==6.3.1" "wcwidth==0.2.13"
size=$(du -sb .gpu | cut -f1)
if [ "$size" -gt "$CARRY_LIMIT" ]; then
  echo "error: .gpu/ holds $size bytes, over the device call's carry limit of $CARRY_LIMIT" >&2
  exit 2
fi
echo "prepared: $(du -sh .gpu | cut -f1) in .gpu/ (fixtures from $geo4d and $crafter; wheels: $(ls .gpu/wheels | tr '\n' ' '))"
echo "the device call (tool run):"
echo '  command:   PYTHONUNBUFFERED=1 bash scripts/gpu_check.sh'
echo '  carry:     [".gpu"]'
echo '  timeout_s: 560'
