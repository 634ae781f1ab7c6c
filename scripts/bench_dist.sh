#!/usr/bin/env bash
# Distributed figures on this machine (docs/BENCHMARKS.md, "Scale-out"):
#  1. first pass (decode + frozen features) with 2 ranks x 1 thread vs 1 rank x 2 threads, same images;
#  2. communication share of fine-tuning steps with 2 Gloo ranks (VGG16 block 5: 7.1 M parameters, one
#     all-reduce of ~28 MB per step), from the "s in collectives" each epoch line reports.
# Usage: scripts/bench_dist.sh [IMAGES_DIR] (default: 600 JPEGs of 500x375 made by make_bench_images.py)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=${1:-/tmp/tlc_bench_dist}
[ -d "$IMAGES" ] || .venv/bin/python scripts/make_bench_images.py "$IMAGES" --count 600 --classes 2
TLC=${TLC:-build/tlc}
TORCHRUN=".venv/bin/python -m torch.distributed.run --no-python --standalone"
EFF=build/tests/test_models/effnet_lite0_random.pt
VGG=build/tests/test_models/vgg16_random.pt
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
secs() { local s; s=$(date +%s.%N); "$@" > "$OUT/log.txt" 2>&1 || { cat "$OUT/log.txt"; exit 1; }; python3 -c "import time; print(round(time.time() - $s, 1))"; }
common="$IMAGES --backbone $EFF --image-size 160 --epochs 1 --val-split 0.1 --test-split 0 --device cpu --no-progress"
one=$(OMP_NUM_THREADS=2 secs $TLC train $common --threads 2 --out "$OUT/one")
two=$(OMP_NUM_THREADS=1 secs $TORCHRUN --nproc-per-node 2 $TLC train $common --threads 1 --out "$OUT/two")
echo "first pass + 1 cached epoch, EfficientNet-Lite0 at 160 px, $(find "$IMAGES" -name '*.jpg' | wc -l) JPEGs:"
echo "  1 rank x 2 threads: ${one} s; 2 ranks x 1 thread: ${two} s; ratio (1 rank / 2 ranks): $(python3 -c "print(round($one / $two, 2))")"
ft="$IMAGES --backbone $VGG --image-size 64 --epochs 1 --fine-tune-layers 3 --fine-tune-epochs 2 --batch-size 32
    --val-split 0.1 --test-split 0 --device cpu --no-progress --threads 1 --out $OUT/ft"
echo "fine-tuning VGG16 block 5 at 64 px (prefix cached), 2 Gloo ranks x 1 thread, global batch 32:"
for mb in 0 4; do
  rm -rf "$OUT/ft"
  TLC_GRAD_BUCKET_MB=$mb OMP_NUM_THREADS=1 $TORCHRUN --nproc-per-node 2 $TLC train $ft > "$OUT/ft.txt" 2>&1 || { cat "$OUT/ft.txt"; exit 1; }
  echo "  TLC_GRAD_BUCKET_MB=$mb ($([ $mb = 0 ] && echo 'one all-reduce after backward, the Gloo default' || echo '4 MB buckets during backward, the NCCL default')):"
  grep "fine-tune" "$OUT/ft.txt" | sed 's/^/    /'
done
