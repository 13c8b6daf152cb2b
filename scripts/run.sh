#!/usr/bin/env bash
# The main job from scratch: set up .venv, reconstruct CLIP into OUT (bundle + .blend + preview.png).
# Without installed model weights it says so, says how to get them, and runs the weight-free
# pipeline demo instead (simulated predictions from a rendered synthetic scene, labelled as such).
#
#   scripts/run.sh CLIP.mp4 [OUT_DIR] [extra `python -m engine reconstruct` options]
set -euo pipefail
clip=${1:?usage: scripts/run.sh CLIP.mp4 [OUT_DIR] [reconstruct options]}
clip=$(realpath -m -- "$clip")  # paths are relative to where the script is called from
root=$(realpath -- "$(dirname "$0")/..")
out=$(realpath -m -- "${2:-$root/out/$(basename "${clip%.*}")}")
shift $(( $# >= 2 ? 2 : 1 ))
cd "$root"
if [ ! -f "$clip" ]; then
  echo "error: no clip at $clip" >&2
  echo "  fix: pass the path of a video file, e.g. scripts/run.sh ../shared/clips/drift-turn.mp4" >&2
  exit 2
fi
scripts/setup_env.sh
PY=.venv/bin/python
model_dir=${PARALLAX_MODEL_DIR:-$HOME/.cache/parallax/models/geo4d}
mkdir -p "$out"
if [ -f "$model_dir/manifest.json" ]; then
  $PY -m engine reconstruct "$clip" --out "$out/bundle" --model-dir "$model_dir" "$@"
  $PY scripts/bundle_to_blend.py "$out/bundle" "$out/scene.blend" "$out/preview.png" --clip "$clip"
else
  cat <<MSG
==> No Geo4D weights in $model_dir.
    Get them with:   $PY -m engine download geo4d        (then: $PY -m engine convert geo4d ...)
    or read docs/models.md for the manual download and the licences. Set PARALLAX_MODEL_DIR to use another folder.
==> Running the WEIGHT-FREE PIPELINE DEMO instead: a synthetic scene rendered with Blender, window predictions
    SIMULATED from its ground truth (not the model), aligned and imported into Blender. $clip is not used.
MSG
  $PY -m engine demo --out "$out/demo"
  $PY scripts/bundle_to_blend.py "$out/demo/bundle" "$out/demo/scene.blend" "$out/demo/preview.png" \
      --clip "$out/demo/clip.mp4"
  out="$out/demo"
fi
echo "==> wrote $out/scene.blend and $out/preview.png (bundle: $out/bundle)"
