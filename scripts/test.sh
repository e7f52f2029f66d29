#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, every tier: pure Python,
# host-compiled C, and firmware under QEMU. A missing toolchain fails, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export MCUFLOW_REQUIRE_TOOLCHAIN=1
export MCUFLOW_DATA_DIR=${MCUFLOW_DATA_DIR:-$(cd .. && pwd)/shared/datasets/mnist}
.venv/bin/ruff check mcuflow tests
exec .venv/bin/python -m pytest "$@"
