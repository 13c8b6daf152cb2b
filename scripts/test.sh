#!/usr/bin/env bash
# The whole test suite from scratch: set up .venv, lint (ruff, configured in pyproject.toml), then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
