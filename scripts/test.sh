#!/usr/bin/env bash
# The whole test suite on a fresh machine: creates .venv if missing, installs, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
.venv/bin/ruff check agentnb tests
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -q "$@"
