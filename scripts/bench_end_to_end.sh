#!/usr/bin/env bash
# The end-to-end rows of docs/BENCHMARKS_ENGINES.md (issue 20's "5x" goal): whole `tlc train --epochs 1` (the
# first pass over the images plus one cached epoch) and `tlc predict DIR` commands, with tlc's old default
# (`--engine torchscript --precision fp32`) against today's default, alternating, ROUNDS times each, on
# COUNT synthetic 500x375 JPEGs (scripts/make_bench_images.py). Also prints how many of the predicted classes the
# two settings share on the same model (the images are synthetic: accuracy itself is chance here; fidelity on
# real images is scripts/engine_fidelity.py's job).
#   scripts/bench_end_to_end.sh BACKBONE.pt [COUNT=1024] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
backbone=${1:?usage: scripts/bench_end_to_end.sh BACKBONE.pt [COUNT] [ROUNDS]}
count=${2:-1024}
rounds=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python scripts/make_bench_images.py "$work/images" --count "$count" > /dev/null
old=(--engine torchscript --precision fp32)
seconds() {  # runs "$@", prints its wall time in seconds; a failure stops the script with its log
  local s e
  s=$(date +%s.%N)
  "$@" > "$work/out" 2> "$work/log" || { cat "$work/log" >&2; exit 1; }
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
declare -A times
for r in $(seq "$rounds"); do
  for mode in old default; do
    flags=()
    [ "$mode" = old ] && flags=("${old[@]}")
    rm -rf "$work/run"
    times[train_$mode]+="$(seconds build/tlc train "$work/images" --backbone "$backbone" --out "$work/run" --epochs 1 \
        "${flags[@]}") "
    if [ "$r" = 1 ]; then grep -h -m1 "engine:" "$work/out" "$work/log" | sed "s/^ */$mode: /" >&2 || true; fi
    times[predict_$mode]+="$(seconds build/tlc predict "$work/run" "$work/images" --csv "${flags[@]}") "
  done
done
# The last run's model (trained by the default), predicted by both settings.
cp "$work/out" "$work/pred_default.csv"
seconds build/tlc predict "$work/run" "$work/images" --csv "${old[@]}" > /dev/null
cp "$work/out" "$work/pred_old.csv"
.venv/bin/python - "$count" "$rounds" "$work/pred_old.csv" "$work/pred_default.csv" \
    "${times[train_old]}" "${times[train_default]}" "${times[predict_old]}" "${times[predict_default]}" <<'EOF'
import csv, statistics, sys
count, rounds, p_old, p_new = sys.argv[1:5]
t = [[float(x) for x in s.split()] for s in sys.argv[5:9]]
fmt = lambda v: " / ".join(f"{x:.2f}" for x in v)
print(f"{count} JPEGs of 500x375, {rounds} rounds (alternating); wall seconds of each round, then the ratio of medians")
print("| job | `--engine torchscript --precision fp32` (the old default) | default | speed-up (medians) |")
print("|---|---|---|---|")
for name, a, b in (("tlc train DIR --epochs 1", t[0], t[1]), ("tlc predict RUN DIR --csv", t[2], t[3])):
    print(f"| `{name}` | {fmt(a)} s | {fmt(b)} s | {statistics.median(a) / statistics.median(b):.1f}x |")
rows = lambda p: {r["path"]: r for r in csv.DictReader(open(p))}
a, b = rows(p_old), rows(p_new)
same = sum(a[k]["label"] == b[k]["label"] for k in a)
classes = [c for c in next(iter(a.values())) if c not in ("path", "label", "probability", "error")]
diff = [abs(float(a[k][c]) - float(b[k][c])) for k in a for c in classes]
print(f"one model (the last default run's) predicted by both settings: the same class for {same} of {len(a)} "
      f"images; probabilities differ by {statistics.mean(diff):.4f} on average, {max(diff):.4f} at most")
EOF
