#!/usr/bin/env bash
# Installs what tlc needs on Debian 12: the C++ libraries from Debian's packages, and torch (with the LibTorch
# inside it) into the project-local virtual environment .venv. Safe to run again: it installs only what is
# missing. The CUDA toolkit (nvcc) is optional; when present the CUDA kernels are compiled too.
set -euo pipefail
cd "$(dirname "$0")/.."

# OpenCV: only the three modules tlc uses (libopencv-dev would pull every module, VTK and GDAL: 211 packages
# and 675 MB instead of 66 and 179 MB for this whole list; see docs/BUILD.md, "Set-up cost"). ccache makes rebuilds
# cheap; giflib decodes GIF (optional in CMake); gloo's headers let tlc use c10d's ProcessGroupGloo; cpp-httplib
# is the HTTP library of `tlc serve` (optional in CMake, docs/SERVING.md); libb64 is a runtime library of Triton's
# perf_analyzer (below).
APT_PACKAGES=(build-essential cmake ninja-build pkg-config python3 python3-venv python3-pip python3-dev ccache
              libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
              libcli11-dev libgtest-dev libgmock-dev nlohmann-json3-dev libturbojpeg0-dev libgif-dev libgloo-dev
              libcpp-httplib-dev dataset-fashion-mnist libb64-0d)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
if ! .venv/bin/python - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
want = {l.split("==")[0].split("[")[0]: (l.split("==")[1] if "==" in l else None)
        for l in (x.strip() for x in open("requirements.txt")) if l and not l.startswith("#")}
for name, ver in want.items():
    have = md.version(name)
    if ver and have.split("+")[0] != ver:
        sys.exit(1)
PY
then
  echo "setup: installing Python packages into .venv (torch is large; this takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
fi
# Triton's perf_analyzer, the C++ load generator tests/python/test_serve_perf_analyzer.py runs against `tlc serve`:
# the binary inside PyPI's tritonclient 2.44.0 wheel (the last one built for Debian 12's glibc; later wheels need
# glibc 2.38, and PyPI's "perf-analyzer" is a placeholder), with the libcudart.so.12 it links (PyPI's CUDA
# runtime wheel; nothing runs on a GPU), unpacked into .venv/tools/perf_analyzer.
PA_DIR=.venv/tools/perf_analyzer
if [ ! -x "$PA_DIR/perf_analyzer" ] || [ ! -f "$PA_DIR/libcudart.so.12" ]; then
  echo "setup: fetching Triton's perf_analyzer (tritonclient 2.44.0) into $PA_DIR"
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps -d "$tmp" tritonclient==2.44.0 nvidia-cuda-runtime-cu12==12.4.127
  .venv/bin/python - "$tmp" "$PA_DIR" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1:]
os.makedirs(dest, exist_ok=True)
for wheel, member, name in (("tritonclient-*.whl", "/bin/perf_analyzer", "perf_analyzer"),
                            ("nvidia_cuda_runtime_cu12-*.whl", "/lib/libcudart.so.12", "libcudart.so.12")):
    with zipfile.ZipFile(glob.glob(os.path.join(tmp, wheel))[0]) as z:
        src = next(n for n in z.namelist() if n.endswith(member))
        with z.open(src) as f, open(os.path.join(dest, name), "wb") as out:
            shutil.copyfileobj(f, out)
os.chmod(os.path.join(dest, "perf_analyzer"), 0o755)
PY
  rm -rf "$tmp"
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
