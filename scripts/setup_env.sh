#!/usr/bin/env bash
# Creates one test lane's venv. Idempotent: re-running only installs what is missing. Used by both README
# commands (the main lane) and by scripts/test.sh (every lane).
#
#   scripts/setup_env.sh [LANE]      LANE: main (default), bpy42, bpy45 or py313
#
#   main    .venv         Python 3.11, bpy 5.0.1, the engine with torch (CPU), ONNX and conversion: everything
#   bpy42   .venv-bpy42   Python 3.11, bpy 4.2 LTS (NumPy 1.x like Blender 4.2), the engine with torch (CPU) and
#                         conversion
#   bpy45   .venv-bpy45   the same with bpy 4.5 LTS
#   py313   .venv-py313   Python 3.13, bpy 5.2 LTS, NumPy 2, the engine's requirements without torch (PyPI's torch
#                         for 3.13 is a multi-GB CUDA build; the tests that need torch skip there, saying so)
set -euo pipefail
cd "$(dirname "$0")/.."
lane=${1:-main}
case "$lane" in
  main)  venv=.venv;       minor=11; bpy=5.0.1;  pyvar=PYTHON ;;
  bpy42) venv=.venv-bpy42; minor=11; bpy=4.2.23; pyvar=PYTHON ;;
  bpy45) venv=.venv-bpy45; minor=11; bpy=4.5.15; pyvar=PYTHON ;;
  py313) venv=.venv-py313; minor=13; bpy=5.2.4;  pyvar=PYTHON313 ;;
  *) echo "error: unknown lane '$lane'" >&2; echo "fix: use main, bpy42, bpy45 or py313" >&2; exit 2 ;;
esac

# The lane's interpreter: $PYTHON (main, bpy42, bpy45) or $PYTHON313, else python3.MINOR on PATH or from pyenv.
is_minor() { "$1" -c "import sys; sys.exit(sys.version_info[:2] != (3, $minor))" 2>/dev/null; }
find_python() {
  local candidate
  for candidate in "$@" "python3.$minor" "$HOME"/.pyenv/versions/3."$minor".*/bin/python3."$minor" python3; do
    if [ -n "$candidate" ] && is_minor "$candidate"; then echo "$candidate"; return 0; fi
  done
  echo "error: lane $lane needs Python 3.$minor and none was found" >&2
  echo "fix: install Python 3.$minor or set \$$pyvar to one" >&2
  return 2
}
if [ ! -x "$venv/bin/python" ]; then
  py=$(find_python "${!pyvar:-}")
  "$py" -m venv "$venv"
fi
V=$venv/bin/python
stamp=$venv/.parallax-setup
want="$(cat pyproject.toml scripts/setup_env.sh tests/constraints-numpy1.txt | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
$V -m pip install -q --upgrade pip
case "$lane" in
  main|bpy42|bpy45)
    # A CPU torch where no CUDA is present (here it comes from a local file); keep a CUDA torch if one is installed.
    $V -c "import torch" 2>/dev/null || $V -m pip install -q "torch==2.13.0"
    # convert: the tests convert the tiny fixture checkpoints (the add-on's end-to-end runs need that model too).
    extras=test,convert
    if [ "$lane" = main ]; then extras=test,convert,onnx; fi
    $V -m pip install -q -c tests/constraints-numpy1.txt -e ".[$extras]" "bpy==$bpy"
    ;;
  py313)
    # pyproject's requirements without torch; the tests put the repository on sys.path themselves.
    mapfile -t requirements < <($V -c '
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
    if re.match(r"[A-Za-z0-9._-]+", requirement).group().lower() != "torch":
        print(requirement)')
    $V -m pip install -q "${requirements[@]}" "bpy==$bpy"
    ;;
esac
if [ "$lane" != py313 ]; then
  # open_clip is needed only by `python -m engine convert` (the CLIP context is computed once there).
  # PyPI's torchvision wheels are CUDA builds whose ops fail to register beside a CPU torch; open_clip
  # only uses torchvision's pure-Python transforms, and 0.15.2 tolerates a missing compiled extension.
  if ! $V -c "import torchvision" 2>/dev/null; then
    $V -m pip install -q --no-deps "torchvision==0.15.2"
  fi
  $V -m pip install -q --no-deps "open_clip_torch==2.22.0"
fi
echo "$want" > "$stamp"
