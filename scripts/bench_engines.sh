#!/usr/bin/env bash
# The frozen-backbone table of docs/BENCHMARKS_ENGINES.md: for each backbone file and shape, one `tlc bench` run that
# measures tlc's default engine and, in the same run, its peers on the same file, batch, size and threads
# (PyTorch eager TorchScript fp32, which is what tlc ran before it had engines, and OpenVINO's defaults).
#   scripts/bench_engines.sh FILE.pt [FILE.pt ...]        (SHAPES="160:32 224:32 160:1", ITERATIONS=5 to change;
#                                                           FLAGS="--precision int8" adds flags to tlc's side)
# Prints Markdown rows: backbone | px | batch | tlc engine | tlc img/s | PyTorch fp32 | OpenVINO defaults | ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=${SHAPES:-"160:32 224:32 160:1"}
ITERATIONS=${ITERATIONS:-5}
read -r -a EXTRA <<< "${FLAGS:-}"
echo "| backbone | px | batch | tlc engine (default) | tlc img/s | PyTorch eager fp32 img/s | OpenVINO defaults img/s | tlc / PyTorch | tlc / OpenVINO |"
echo "|---|---|---|---|---|---|---|---|---|"
for f in "$@"; do
  for shape in $SHAPES; do
    size=${shape%%:*}
    batch=${shape##*:}
    build/tlc bench --backbone "$f" --image-size "$size" --batch-size "$batch" --iterations "$ITERATIONS" \
        --count 1 --json "${EXTRA[@]}" |
      .venv/bin/python -c '
import json, sys, os
figs = {f["name"]: f for f in json.load(sys.stdin)}
b = figs["backbone"]
t = figs.get("peer_torch_fp32", {}).get("value")
o = figs.get("peer_openvino", {})
engine = b["detail"].split(" on ")[1].split(",")[0]
ov = o.get("value")
fmt = lambda v: f"{v:.1f}" if v else "-"
rate = b["value"]
ratio = lambda v: f"{rate / v:.2f}x" if v else "-"
ovp = o.get("detail", "").split("(")[1].split(")")[0] if o else ""
print(f"| {os.path.basename(sys.argv[1])} | {sys.argv[2]} | {sys.argv[3]} | {engine} | {rate:.1f} | {fmt(t)} | "
      f"{fmt(ov)} ({ovp}) | {ratio(t)} | {ratio(ov)} |")
' "$f" "$size" "$batch"
  done
done
