#!/usr/bin/env bash
# The test command: set up (idempotent), build, and run the whole GoogleTest suite through ctest.
#   scripts/test.sh            the suite (what CI runs)
#   scripts/test.sh --long     also fuzz the image decoder for 60 s (scripts/fuzz.sh) and run the suite under
#                              AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitize.sh)
# Other arguments go to ctest (e.g. -R Dataset); the Python tests (pytest tests/python) run without them.
set -euo pipefail
cd "$(dirname "$0")/.."
long=0
if [ "${1:-}" = "--long" ]; then long=1; shift; fi
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)" "$@")
# The Python package's tests (tests/python) against the module the build put in build/python; with ctest
# arguments (a focused run) they are left out.
if [ $# -eq 0 ]; then
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/python
fi
if [ $long -eq 1 ]; then
  bash scripts/fuzz.sh 60
  bash scripts/sanitize.sh -E "Pretrained|Vgg16|ZooTransfer"
fi
