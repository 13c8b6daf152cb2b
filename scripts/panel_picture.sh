#!/usr/bin/env bash
# Draw docs/images/panel_quality.png: the Parallax panel of Blender 4.3.2 (Debian trixie's package) under Xvfb,
# after importing the weight-free demo's bundle as Reconstruct does: its message, the solve quality and the engine's
# log under it, wrapped to the default sidebar width; and docs/images/preferences_wrapped.png: the add-on's
# preferences in a Preferences editor 577 px wide, their texts wrapped to it. A docs tool, not part of CI.
#
#   sudo PYTHON=.venv/bin/python scripts/panel_picture.sh          (as root: it uses chroot)
#
# Headless bpy (PyPI) draws no UI, so this needs a real Blender with a window. Debian bookworm's blender (3.4) is
# too old for the extension (4.2+), and trixie's packages must not go into a bookworm system: they live in an
# isolated trixie root instead, made once (about 1 GB, a few minutes):
#
#   apt-get install -y debootstrap
#   debootstrap --variant=minbase trixie /work/trixie http://deb.debian.org/debian
#   mount -t proc proc /work/trixie/proc && mount --bind /dev /work/trixie/dev
#   cp /etc/resolv.conf /work/trixie/etc/resolv.conf
#   chroot /work/trixie apt-get install -y --no-install-recommends blender xvfb xauth x11-apps imagemagick \
#       libgl1-mesa-dri python3-numpy                  # mesa's llvmpipe draws Blender's OpenGL in software
#
# TRIXIE_ROOT names another such root. PYTHON (default .venv/bin/python) builds the add-on zip and runs the demo.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${TRIXIE_ROOT:-/work/trixie}
PY=${PYTHON:-$REPO/.venv/bin/python}
if [ ! -x "$ROOT/usr/bin/blender" ] || [ ! -x "$ROOT/usr/bin/xvfb-run" ]; then
    echo "error: no Blender and Xvfb in the trixie root $ROOT" >&2
    echo "  fix: make it with the steps at the top of $0, or set TRIXIE_ROOT" >&2
    exit 2
fi

INSIDE=/tmp/panel_picture  # the work folder as the chroot sees it
WORK=$ROOT$INSIDE
rm -rf "$WORK"
mkdir -p "$WORK"
"$PY" "$REPO/build_addon.py" --out "$WORK"
# A project's folder, so the panel's message names a path as long as a real one (the wrapping is part of the picture).
DEMO=projects/demo_shot/parallax
PYTHONPATH="$REPO" "$PY" -m engine demo --out "$WORK/$DEMO"
# The engine's log line about this bundle's solve quality, as a reconstruct logs it (in the plate's pixels: the
# demo's clip is its maps' size), for the panel to list as it lists a job's log.
PYTHONPATH="$REPO" "$PY" - "$WORK/$DEMO/bundle" > "$WORK/log.txt" <<'EOF'
import sys

from engine.alignment import quality_note
from engine.formats.bundle import read_bundle

bundle = read_bundle(sys.argv[1])
plate = bundle.metadata.get("clip_size") or bundle.image_size
print(quality_note(bundle.metadata, [frame.frame for frame in bundle.frames], plate[1]))
EOF
cp "$REPO/scripts/panel_picture.py" "$REPO/scripts/prefs_picture.py" "$WORK/"
ZIP=$(cd "$WORK" && ls parallax-*.zip)

MOUNTED=()
cleanup() { for m in "${MOUNTED[@]}"; do umount "$m"; done; }
trap cleanup EXIT
if ! mountpoint -q "$ROOT/proc"; then mount -t proc proc "$ROOT/proc"; MOUNTED+=("$ROOT/proc"); fi
if ! mountpoint -q "$ROOT/dev"; then mount --bind /dev "$ROOT/dev"; MOUNTED+=("$ROOT/dev"); fi

chroot "$ROOT" env HOME=/root BLENDER_USER_RESOURCES="$INSIDE/profile" \
    xvfb-run -a -s "-screen 0 1600x1200x24" \
    blender --factory-startup --python "$INSIDE/panel_picture.py" -- \
    "$INSIDE/$ZIP" "$INSIDE/$DEMO/bundle" "$INSIDE/$DEMO/clip.mp4" "$INSIDE/log.txt" "$INSIDE/panel_quality.png"
cp "$WORK/panel_quality.png" "$REPO/docs/images/panel_quality.png"
echo "wrote $REPO/docs/images/panel_quality.png (the whole window: $WORK/panel_quality_window.xwd)"

# The preferences with no engine environment yet in a shared folder as long as a real one (its problem, fix and
# path wrap), in a window as narrow as a Preferences window.
chroot "$ROOT" env HOME=/root BLENDER_USER_RESOURCES="$INSIDE/profile-prefs" \
    PARALLAX_DATA_DIR=/home/artist/.local/share/parallax-studio/blender-shared/engine-environments \
    xvfb-run -a -s "-screen 0 900x1650x24" \
    blender --factory-startup --python "$INSIDE/prefs_picture.py" -- "$INSIDE/$ZIP" "$INSIDE/preferences_wrapped.png"
cp "$WORK/preferences_wrapped.png" "$REPO/docs/images/preferences_wrapped.png"
echo "wrote $REPO/docs/images/preferences_wrapped.png"
