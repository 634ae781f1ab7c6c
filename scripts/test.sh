#!/usr/bin/env bash
# The test command: set up (idempotent), build, and run the whole GoogleTest suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
