#!/usr/bin/env bash
# Builds tlc with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ and runs the unit tests under
# them. LibTorch and OpenCV are not instrumented; leak checking is off because LibTorch keeps global
# allocations alive until exit on purpose. Extra arguments go to ctest (e.g. -R Dataset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
TORCH_PREFIX=$(.venv/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)')
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S . -B build-asan "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
      -DTLC_PYTHON="$PWD/.venv/bin/python" -DTLC_SANITIZE=ON -DTLC_WITH_CUDA=OFF >/dev/null
cmake --build build-asan -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_odr_violation=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan
ctest --output-on-failure -j"$(nproc)" "$@"
