#!/usr/bin/env bash
# The main job from scratch: set up .venv, reconstruct CLIP into OUT (bundle + .blend + preview.png).
# Without installed model weights it says so, says how to get them, and runs the weight-free
# pipeline demo instead (simulated predictions from a rendered synthetic scene, labelled as such).
#
#   scripts/run.sh CLIP.mp4 [OUT_DIR] [extra `python -m engine reconstruct` options]
#
# OUT_DIR is optional: an argument starting with "-" is an option, never the output folder (scripts/run_args.sh).
set -euo pipefail
root=$(realpath -- "$(dirname "$0")/..")
source "$root/scripts/run_args.sh"
parse_run_args "$root" "$@" || exit 2
cd "$root"
if [ ! -e "$clip" ]; then
  echo "error: no clip at $clip" >&2
  echo "  fix: pass the path of a video file or an image sequence, e.g. scripts/run.sh ../shared/clips/drift-turn.mp4" >&2
  exit 2
fi
scripts/setup_env.sh
PY=.venv/bin/python
model_dir=${PARALLAX_MODEL_DIR:-$HOME/.cache/parallax/models/geo4d}
if [ -f "$model_dir/manifest.json" ]; then
  mkdir -p "$out"
  $PY -m engine reconstruct "$clip" --out "$out/bundle" --model-dir "$model_dir" ${opts[@]+"${opts[@]}"}
  $PY scripts/bundle_to_blend.py "$out/bundle" "$out/scene.blend" "$out/preview.png" --clip "$clip"
else
  # The user's clip first: what it holds and what reconstructing it would need (a clip that cannot be read
  # stops here, with the engine's error and its fix).
  echo "==> No Geo4D weights in $model_dir. Your clip, as the engine reads it:"
  $PY -m engine inspect "$clip" --model-dir "$model_dir" ${opts[@]+"${opts[@]}"}
  cat <<MSG
==> Get the weights with:   $PY -m engine download geo4d        (then: $PY -m engine convert geo4d ...)
    or read docs/models.md for the manual download and the licences. Set PARALLAX_MODEL_DIR to use another folder.
==> Running the WEIGHT-FREE PIPELINE DEMO instead: a synthetic scene rendered with Blender, window predictions
    SIMULATED from its ground truth (not the model), aligned and imported into Blender. The demo does not use
    $clip: the report above is what the engine found in it.
MSG
  mkdir -p "$out"
  $PY -m engine demo --out "$out/demo"
  $PY scripts/bundle_to_blend.py "$out/demo/bundle" "$out/demo/scene.blend" "$out/demo/preview.png" \
      --clip "$out/demo/clip.mp4"
  out="$out/demo"
fi
echo "==> wrote $out/scene.blend and $out/preview.png (bundle: $out/bundle)"
