#!/usr/bin/env bash
# Fuzzes tlc's image decoding (tests/fuzz/fuzz_decode.cpp) with libFuzzer + ASan + UBSan for SECONDS
# (default 60). Seeds: the golden PNGs and small BMP, GIF and TIFF files made here. Inputs that crash are
# kept by libFuzzer as crash-* files; copy them to tests/fuzz/regressions/ once fixed, and they are replayed
# by every run of this script.
# Needs clang with libFuzzer (Debian: clang, libclang-rt-14-dev or the clang package's runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
mkdir -p build-fuzz/corpus tests/fuzz/regressions
CXX=${FUZZ_CXX:-clang++}
$CXX -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -I/usr/include/opencv4 \
  tests/fuzz/fuzz_decode.cpp src/data/image_io.cpp src/data/resize.cpp src/data/gif.cpp -o build-fuzz/fuzz_decode \
  -lopencv_imgcodecs -lopencv_imgproc -lopencv_core -lturbojpeg -lgif
cp tests/golden/*.png build-fuzz/corpus/ 2>/dev/null || true
python3 - build-fuzz/corpus <<'PY'
import sys, zlib, struct, os
d = sys.argv[1]
# A tiny valid BMP (2x2, 24-bit) as a seed; JPEG/PNG seeds come from the golden files and OpenCV below.
w, h = 2, 2
row = b"\x00\x00\xff\xff\x00\x00" + b"\x00\x00"
pix = row * h
hdr = b"BM" + struct.pack("<IHHI", 54 + len(pix), 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pix), 2835, 2835, 0, 0)
open(os.path.join(d, "seed.bmp"), "wb").write(hdr + pix)
PY
# GIF and TIFF seeds from Pillow in the project's venv (skipped without it).
.venv/bin/python - build-fuzz/corpus <<'PY' || true
import sys, os
from PIL import Image
img = Image.new("RGB", (3, 2), (200, 30, 60))
img.save(os.path.join(sys.argv[1], "seed.tiff"))
img.convert("P").save(os.path.join(sys.argv[1], "seed.gif"))
PY
for f in tests/fuzz/regressions/*; do
  [ -f "$f" ] || continue
  echo "replaying $f"
  ./build-fuzz/fuzz_decode "$f"
done
./build-fuzz/fuzz_decode build-fuzz/corpus -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 25
