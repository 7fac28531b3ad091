#!/usr/bin/env bash
# Set everything up, boot the bundled test VM and run ryll headless against it.
# Extra arguments go to ryll, e.g.: ./scripts/demo.sh --pedantic
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m ryll.testvm demo --seconds "${RYLL_DEMO_SECONDS:-20}" -- "$@"
