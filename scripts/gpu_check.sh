#!/usr/bin/env bash
# ONE script for the GPU machine (see ../shared/device/README.md and docs/GPU.md): build against the machine's
# LibTorch with the carried bundle, run the `gpu` tests FIRST, then the figures (each against a PyTorch
# reference measured in the same run), then the rest of the suite, each stage under a hard time limit. Writes
# to $OUT (default ./gpu_out): summary.txt (machine, versions, test lines, table of figures with goals),
# figures.json (every figure, its reference and ratio) and the logs. Budget: about 6 minutes.
#
# On this machine, once:   echo /.device/ >> .git/info/exclude; mkdir -p .device
#                          cp ../shared/device/bundle.tar.xz ../shared/device/env.sh .device/
#                          .venv/bin/pip download nvidia-nvjpeg==13.0.3.75 --no-deps -d .device/   (GPU decoding)
# device tool run, carry [".device"] (the bundle is ~47 MiB of the 64 MiB, the nvJPEG wheel 3.6 MiB; the
# EfficientNet weights wheel does not fit beside them, so the pretrained-transfer test is left to the CPU
# suite), timeout_s 420:
#   mkdir -p /tmp/devroot && tar -C /tmp/devroot -xJf .device/bundle.tar.xz && source .device/env.sh && bash scripts/gpu_check.sh
# Stages can be skipped for a second, shorter run: GPU_CHECK_SKIP="figures rest" (names: build gpu figures graphs e2e
# nccl rest).
# A dry run of the plumbing on a CPU machine, at a small scale, with an existing build:
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_IMAGES=64 GPU_CHECK_SIZE=32 GPU_CHECK_BATCH=16 GPU_CHECK_ITERS=2 GPU_CHECK_BUILD=build \
#     GPU_CHECK_SKIP="build gpu rest" \
#     PATH=$PWD/.venv/bin:$PATH bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
SUMMARY="$OUT/summary.txt"
exec > >(tee -a "$LOG") 2>&1
t0=$(date +%s)
NPROC=$(nproc)
B=${GPU_CHECK_BUILD:-build-gpu}
DEV=${GPU_CHECK_DEVICE:-cuda}
COUNT=${GPU_CHECK_IMAGES:-2000}
SIZE=${GPU_CHECK_SIZE:-160}
BATCH=${GPU_CHECK_BATCH:-256}
ITERS=${GPU_CHECK_ITERS:-10}
step() { echo; echo "=== $* ($(( $(date +%s) - t0 )) s)"; }
note() { echo "$*" | tee -a "$SUMMARY"; }
# A stage is skipped when named in GPU_CHECK_SKIP, or when the deadline (GPU_CHECK_DEADLINE seconds after the
# start, default 400: inside the device call's timeout_s of 420) has passed, so the summary is always written.
DEADLINE=${GPU_CHECK_DEADLINE:-400}
skip() {
  case " ${GPU_CHECK_SKIP:-} " in *" $1 "*) return 0;; esac
  if [ $(( $(date +%s) - t0 )) -gt "$DEADLINE" ]; then
    note "skipped stage $1: past the ${DEADLINE} s deadline"; DEADLINE_HIT=1; return 0
  fi
  return 1
}
fail() { note "FAILED: $*"; note "total $(( $(date +%s) - t0 )) s"; exit 1; }
# Wall seconds of a command (its output to a log); the status is kept in $rc.
timed() { local s; s=$(date +%s.%N); "$@"; rc=$?; secs=$(python3 -c "import time; print(round(time.time() - $s, 3))"); }
: > "$SUMMARY"
# The table of figures is written however the script ends (a failed stage, a time limit).
trap 'python3 scripts/gpu_summary.py "$OUT" >> "$SUMMARY" 2>&1 || true' EXIT

step "machine"
note "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo none)"
note "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")' 2>&1)"
note "compiler: $(c++ --version | head -1); $(cmake --version | head -1); cores: $NPROC"

if ! skip build; then
step "configure + build (TORCH_CUDA_ARCH_LIST=9.0, sm_90)"
export TORCH_CUDA_ARCH_LIST=9.0
# nvJPEG from the carried wheel (a zip: header and library under nvidia/cu13), unless the toolkit has one.
NVJPEG_FLAG=""
whl=$(ls .device/nvidia_nvjpeg-*.whl 2>/dev/null | head -1)
if [ -n "$whl" ]; then
  rm -rf /tmp/nvjpeg && python3 -m zipfile -e "$whl" /tmp/nvjpeg && NVJPEG_FLAG="-DTLC_NVJPEG_ROOT=/tmp/nvjpeg/nvidia/cu13"
fi
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DTLC_PYTHON="$(command -v python3)" $NVJPEG_FLAG \
      -DTLC_CUDA_ARCHITECTURES=90 -DTLC_TEST_EFFNET=OFF > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; fail "configure"; }
grep "tlc:" "$OUT/configure.log" | tee -a "$SUMMARY"
grep -q "TLC_WITH_CUDA: ON" "$OUT/configure.log" || fail "configure did not enable CUDA (TLC_WITH_CUDA is not ON): nothing here would run on the GPU"
grep -q "TLC_WITH_NVJPEG: ON" "$OUT/configure.log" || note "WARNING: no nvJPEG (carry its wheel in .device): GPU decoding is not measured"
# -k 0: every compile error, not only the first target's; the first one is printed.
timeout -k 5 300 cmake --build $B -j"$NPROC" -- -k 0 > "$OUT/build.log" 2>&1 || {
  grep -m1 -B3 -A12 "error" "$OUT/build.log"; fail "build (first error above; all in build.log)"; }
note "build: ok ($(( $(date +%s) - t0 )) s since start)"
fi

if ! skip gpu; then
  step "gpu tests (ctest -L gpu), 240 s at most"
  (cd $B && timeout -k 5 240 ctest -L gpu -V --timeout 200) > "$OUT/ctest_gpu.log" 2>&1
  gpu_rc=$?
  grep -E "tests passed|Failed|\*\*\*|Skipped|Timeout" "$OUT/ctest_gpu.log" | tail -20
  note "gpu tests: $(grep -E 'tests passed' "$OUT/ctest_gpu.log" | tail -1) (exit $gpu_rc)"
  grep -q "No tests were found" "$OUT/ctest_gpu.log" && fail "no gpu-labelled test was found"
  # A skip must never read as a pass: on this machine every gpu test must run.
  if grep -qE '\*\*\*Skipped|\[  SKIPPED \]' "$OUT/ctest_gpu.log"; then
    grep -E '\*\*\*Skipped|\[  SKIPPED \]' "$OUT/ctest_gpu.log" | head -5
    fail "a gpu test skipped itself on the GPU machine"
  fi
  grep -m1 "\[ message  \]" "$OUT/ctest_gpu.log" | sed 's/^[0-9]*: //' | tee -a "$SUMMARY"  # the out-of-memory message
  grep "\[gpu-decode\]" "$OUT/ctest_gpu.log" | sed 's/^[0-9]*: //' >> "$SUMMARY"  # decoded pixels vs libjpeg-turbo
  grep "\[cuda-graphs\]" "$OUT/ctest_gpu.log" | sed 's/^[0-9]*: //' >> "$SUMMARY"  # why a failed capture failed
  if [ $gpu_rc -ne 0 ]; then
    # Only the GPU decoder or the CUDA graphs failed: measure everything else without them (the CPU decoder;
    # graphs are opt-in); any other failure stops here.
    failed=$(grep -A40 "tests FAILED" "$OUT/ctest_gpu.log" | grep -E "^\s*[0-9]+ - " || true)
    if [ -n "$failed" ] && ! echo "$failed" | grep -qvE "GpuDecode\.|Gpu\.CudaGraph"; then
      if echo "$failed" | grep -q "GpuDecode\."; then
        note "GPU decoding tests FAILED (the rest of the check decodes on the CPU)"; DECODE=cpu
      fi
      if echo "$failed" | grep -q "Gpu\.CudaGraph"; then
        note "the CUDA-graph test FAILED (they are opt-in, TLC_CUDA_GRAPHS=1: the rest of the check runs without)"
      fi
      note "$failed"
    else
      fail "gpu tests (see ctest_gpu.log)"
    fi
  fi
fi
DECODE=${DECODE:-auto}
# The build decides (a second run with GPU_CHECK_SKIP="build ..." has no configure.log in its fresh $OUT).
grep -q "^NVJPEG_LIBRARY:FILEPATH=/" "$B/CMakeCache.txt" 2>/dev/null || DECODE=cpu

VGG=$B/tests/test_models/vgg16_random.pt
IMAGES=/tmp/bench_images
if ! skip figures || ! skip graphs || ! skip e2e; then
  step "benchmark images: $COUNT JPEGs of 500x375 on $NPROC processes"
  timeout -k 5 60 python3 scripts/make_bench_images.py $IMAGES --count "$COUNT" --jobs "$NPROC" || fail "making benchmark images"
fi

if ! skip figures; then
  step "tlc bench ($DEV, batch $BATCH, ${SIZE} px) and the PyTorch eager reference"
  timeout -k 5 150 ./$B/tlc bench --device $DEV --backbone $VGG --images $IMAGES --count "$COUNT" --batch-size $BATCH \
    --image-size $SIZE --iterations $ITERS --threads "$NPROC" --decode cpu --no-peers --json > "$OUT/tlc_bench.json" || { cat "$OUT/tlc_bench.json"; fail "tlc bench"; }
  timeout -k 5 120 python3 scripts/torch_reference.py --backbone $VGG --batch $BATCH --size $SIZE --device $DEV --iters $((ITERS * 2)) \
    --images $IMAGES --count "$COUNT" > "$OUT/torch_reference.json" || { cat "$OUT/torch_reference.json"; fail "torch_reference.py"; }
  if [ "$DECODE" != cpu ] && [ "$DEV" = cuda ]; then
    # GPU decoding in its own bench run, so that a failure there costs none of the figures above.
    timeout -k 5 90 ./$B/tlc bench --device $DEV --backbone $VGG --images $IMAGES --count "$COUNT" --batch-size $BATCH \
      --image-size $SIZE --iterations 3 --threads "$NPROC" --decode gpu --no-peers --json > "$OUT/tlc_bench_gpu_decode.json" \
      2> "$OUT/tlc_bench_gpu_decode.log" || { note "GPU decoding bench FAILED: $(tail -3 "$OUT/tlc_bench_gpu_decode.log")"; DECODE=cpu; }
  fi
fi

if ! skip graphs; then
  # Graphs are captured for batches of up to 32 images. Batch 32 also runs a first pass over the JPEGs, so the
  # captures happen while the prefetching thread allocates pinned memory and decodes.
  step "CUDA graphs (opt-in: TLC_CUDA_GRAPHS=1): the frozen backbone at batch 1 and 32, with and without them"
  for g in 1 0; do
    for bs in 1 32; do
      files=()
      [ "$bs" = 32 ] && files=(--images "$IMAGES" --count "$COUNT" --decode cpu --threads "$NPROC")
      TLC_CUDA_GRAPHS=$g timeout -k 5 90 ./$B/tlc bench --device $DEV --backbone $VGG --batch-size $bs --image-size $SIZE \
        --iterations $((ITERS * 3)) "${files[@]}" --no-peers --json > "$OUT/tlc_bench_graphs${g}_b$bs.json" \
        2>> "$OUT/tlc_bench_graphs.log" || note "CUDA-graph bench FAILED (TLC_CUDA_GRAPHS=$g, batch $bs): see tlc_bench_graphs.log"
    done
  done  # the table's "CUDA graphs" rows (scripts/gpu_summary.py) compare them
fi

if ! skip e2e; then
  step "end to end: 10 head epochs on $COUNT JPEGs (VGG16, ${SIZE} px), tlc vs PyTorch scripts; fine-tuning block 5"
  E2E="$OUT/e2e.tsv"
  : > "$E2E"
  common="--backbone $VGG --device $DEV --image-size $SIZE --batch-size 128 --no-progress --threads $NPROC --decode $DECODE"
  timed timeout -k 5 120 ./$B/tlc train $IMAGES $common --epochs 10 --val-split 0 --test-split 0 --out /tmp/run_e2e > "$OUT/train_e2e.log" 2>&1
  echo -e "tlc_head10_s\t$secs\t$rc" >> "$E2E"
  for mode in every-epoch cached; do
    timed timeout -k 5 150 python3 scripts/torch_train_reference.py $IMAGES --backbone $VGG --mode $mode --epochs 10 \
      --batch 128 --size $SIZE --workers 16 --device $DEV $([ $DEV = cuda ] && echo --bf16) > "$OUT/torch_$mode.json" 2> "$OUT/torch_$mode.log"
    echo -e "torch_${mode}_s\t$secs\t$rc" >> "$E2E"
  done
  timeout -k 5 60 python3 scripts/torch_train_reference.py $IMAGES --backbone $VGG --mode finetune --layers 3 --batch 128 \
    --size $SIZE --device $DEV > "$OUT/torch_finetune.json" 2> "$OUT/torch_finetune.log"
  # Fine-tuning the last 3 layers (block 5's convolutions... counted as tlc counts layers with parameters) with
  # the frozen prefix cached, and without any cache; bf16 vs fp32 accuracy on the same split.
  for c in auto off; do
    timeout -k 5 120 ./$B/tlc train $IMAGES $common --epochs 1 --fine-tune-layers 3 --fine-tune-epochs 2 --cache-features $c \
      --out /tmp/run_ft_$c > "$OUT/train_ft_$c.log" 2>&1; echo -e "ft_cache_${c}_rc\t$?\t0" >> "$E2E"
  done
  for p in bf16 fp32; do
    timeout -k 5 120 ./$B/tlc train $IMAGES $common --epochs 5 --precision $p --out /tmp/run_acc_$p > "$OUT/train_acc_$p.log" 2>&1
    echo -e "acc_${p}_rc\t$?\t0" >> "$E2E"
  done
fi

if ! skip nccl; then
  step "NCCL through torchrun (1 process, --device cuda): the distributed path's collectives on the GPU"
  # The same job as a plain run (2 head epochs, fine-tuning block 5 with the prefix cache): under torchrun the
  # feature gathers, agreement checks and the final barrier go through NCCL. 2-rank Gloo runs are ctests.
  timed timeout -k 5 120 python3 -m torch.distributed.run --no-python --standalone --nproc-per-node 1 ./$B/tlc train \
    $IMAGES --backbone $VGG --device $DEV --image-size $SIZE --batch-size 128 --no-progress --epochs 2 \
    --fine-tune-layers 3 --fine-tune-epochs 1 --dist-timeout 60 --decode $DECODE --out /tmp/run_nccl > "$OUT/train_nccl.log" 2>&1
  nccl_rc=$rc
  note "NCCL via torchrun: exit $nccl_rc in ${secs} s; $(grep -E '^test:' "$OUT/train_nccl.log" | tail -1)"
  [ $nccl_rc -eq 0 ] || tail -5 "$OUT/train_nccl.log"
fi

if ! skip rest; then
  step "the rest of the suite (not gpu, not the multi-process dist tests), 150 s at most"
  (cd $B && timeout -k 5 150 ctest -LE "gpu|dist" -j"$NPROC" --output-on-failure --timeout 120) > "$OUT/ctest_rest.log" 2>&1
  rest_rc=$?
  grep -E "tests passed|\*\*\*|Failed|Timeout" "$OUT/ctest_rest.log" | tail -15
  note "other tests: $(grep -E 'tests passed' "$OUT/ctest_rest.log" | tail -1) (exit $rest_rc)"
fi

step "summary"
trap - EXIT
python3 scripts/gpu_summary.py "$OUT" | tee -a "$SUMMARY"
note "total $(( $(date +%s) - t0 )) s; logs in $OUT"
# A stage cut by the deadline is not a pass.
[ "${gpu_rc:-0}" -eq 0 ] && [ "${rest_rc:-0}" -eq 0 ] && [ "${nccl_rc:-0}" -eq 0 ] && [ -z "${DEADLINE_HIT:-}" ]
