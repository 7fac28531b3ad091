#!/usr/bin/env bash
# Fuzz every harness of fuzz/ for SECONDS each (default 600), one after the other, with atheris
# (libFuzzer) when it is installed in .venv, else the dependency-free fallback engine. Prints
# the Markdown summary table the README keeps (inputs, crashes, peak RSS, slowest input); new
# reproducers land in fuzz/crashes/. Exit status 1 if anything crashed.
#   scripts/fuzz.sh [SECONDS] [extra fuzz.driver options, e.g. --seed 3]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-600}"
shift || true
PY=.venv/bin/python
ENGINE=()
if "$PY" -c "import atheris" 2>/dev/null; then
  ENGINE=(--atheris)
fi
exec "$PY" -m fuzz.driver --all --seconds "$SECONDS_EACH" --markdown "${ENGINE[@]}" "$@"
