#!/usr/bin/env bash
# The whole test suite from scratch, lane by lane: each lane sets up its own venv (scripts/setup_env.sh LANE)
# and runs pytest there (the main lane lints first: ruff, configured in pyproject.toml); at the end, each lane's
# time (setup + tests) and pytest summary line.
#
#   scripts/test.sh [pytest args]            every lane; the args go to each lane's pytest
#   LANES="py313" scripts/test.sh [args]     some lanes only
#
#   main    everything: Python 3.11, bpy 5.0.1 (the add-on in Blender 5.0), torch
#   bpy42   the add-on and importer tests (and the import reliability tests) in bpy 4.2 LTS (Python 3.11, NumPy 1.x)
#   bpy45   the same tests in bpy 4.5 LTS
#   py313   the add-on in bpy 5.2 LTS and the engine without torch on Python 3.13, NumPy 2 (whole suite: the
#           tests that need torch skip with the reason)
set -uo pipefail
cd "$(dirname "$0")/.."
lanes=${LANES:-main bpy42 bpy45 py313}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
failed=0
for lane in $lanes; do
  case "$lane" in
    main)  venv=.venv;       tests=() ;;
    bpy42|bpy45) venv=.venv-$lane; tests=(tests/test_addon_*.py tests/test_import*.py tests/reliability/test_bundles_import.py) ;;
    py313) venv=.venv-py313; tests=() ;;
    *) echo "error: unknown lane '$lane' in LANES (main, bpy42, bpy45, py313)" >&2; exit 2 ;;
  esac
  echo "==> lane $lane"
  start=$SECONDS
  if scripts/setup_env.sh "$lane"; then
    setup=$((SECONDS - start))
    if [ "$lane" = main ] && ! .venv/bin/ruff check .; then
      rc=1 result="ruff check failed"
    else
      "$venv/bin/python" -m pytest "${tests[@]}" "$@" 2>&1 | tee "$logs/$lane"
      rc=${PIPESTATUS[0]}
      result=$(grep -E '^=*.*\b(passed|failed|skipped|deselected|error|errors|no tests ran)\b.* in [0-9.]+s' "$logs/$lane" | tail -1 | tr -d '=')
    fi
  else
    rc=$? setup=$((SECONDS - start)) result="setup failed"
  fi
  # pytest's 5 is "no tests were collected" (e.g. arguments that select nothing in this lane): not a failure.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then failed=1; fi
  total=$((SECONDS - start))
  summary+=("$(printf 'lane %-5s  rc %-3s %3dm%02ds (setup %dm%02ds)  %s' "$lane" "$rc" $((total / 60)) $((total % 60)) \
                 $((setup / 60)) $((setup % 60)) "${result# }")")
done
echo "==> lanes"
printf '%s\n' "${summary[@]}"
exit "$failed"
