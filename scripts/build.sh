#!/usr/bin/env bash
# Configures and builds tlc (library, CLI, tests) in build/ against the LibTorch inside .venv's torch.
# Extra arguments go to CMake's configure step (e.g. -DTLC_WITH_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PREFIX=$(.venv/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)')
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# ccache, when installed, makes rebuilds (and builds in other checkouts of the tree) cheap; paths under the
# checkout are hashed relative to it so that two checkouts share the cache.
LAUNCH=()
if command -v ccache >/dev/null; then
  LAUNCH=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
if [ ! -f build/CMakeCache.txt ] || [ $# -gt 0 ]; then
  cmake -S . -B build "${GEN[@]}" "${LAUNCH[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
        -DTLC_PYTHON="$PWD/.venv/bin/python" "$@"
fi
cmake --build build -j"$(nproc)"
# The venv imports the package from this build (like `pip install -e`): a .pth file in its site-packages
# names build/python. A `pip install .` of the package, in site-packages itself, comes first on sys.path.
if compgen -G "build/python/tlc/_core*.so" >/dev/null; then
  SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$PWD/build/python" > "$SITE/tlc-build.pth"
fi
