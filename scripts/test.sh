#!/usr/bin/env bash
# The whole test suite from scratch: set up .venv, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
