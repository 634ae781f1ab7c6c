#!/usr/bin/env bash
# Configures and builds tlc (library, CLI, tests) in build/ against the LibTorch inside .venv's torch.
# Extra arguments go to CMake's configure step (e.g. -DTLC_WITH_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PREFIX=$(.venv/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)')
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f build/CMakeCache.txt ] || [ $# -gt 0 ]; then
  cmake -S . -B build "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
        -DTLC_PYTHON="$PWD/.venv/bin/python" "$@"
fi
cmake --build build -j"$(nproc)"
