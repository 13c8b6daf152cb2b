#!/usr/bin/env bash
# Creates .venv (Python 3.11) with the engine, its test tools and bpy. Idempotent: re-running
# only installs what is missing. Used by both README commands and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
V=.venv/bin/python
stamp=.venv/.parallax-setup
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
$V -m pip install -q --upgrade pip
# A CPU torch where no CUDA is present (here it comes from a local file); keep a CUDA torch if one is installed.
$V -c "import torch" 2>/dev/null || $V -m pip install -q "torch==2.13.0"
$V -m pip install -q -e ".[test,convert]"
# open_clip is needed only by `python -m engine convert` (the CLIP context is computed once there).
# PyPI's torchvision wheels are CUDA builds whose ops fail to register beside a CPU torch; open_clip
# only uses torchvision's pure-Python transforms, and 0.15.2 tolerates a missing compiled extension.
if ! $V -c "import torchvision" 2>/dev/null; then
  $V -m pip install -q --no-deps "torchvision==0.15.2"
fi
$V -m pip install -q --no-deps "open_clip_torch==2.22.0"
echo "$want" > "$stamp"
