#!/usr/bin/env bash
# Set everything up and run the whole test suite (unit and end-to-end against the test VM),
# then the linters.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
.venv/bin/ruff check src tests bench fuzz
.venv/bin/mypy
