#!/usr/bin/env python3
"""Writes natural-looking benchmark JPEGs (not noise): smooth gradients, blurred shapes and mild grain, like
photos at cats_vs_dogs size (default 500x375, quality 90), into OUT/<class>/ folders.
Usage: make_bench_images.py OUT [--count 2000] [--classes 2] [--width 500] [--height 375] [--seed 0] [--jobs N]
Each image depends on (seed, index) alone, so the set is the same whatever the number of processes (--jobs,
default: all cores). Needs numpy and Pillow (the project venv has both)."""
import argparse
import multiprocessing
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def make_one(job):
    i, a = job
    rng = np.random.default_rng([a.seed, i])
    yy, xx = np.mgrid[0:a.height, 0:a.width].astype(np.float32)
    c = i % a.classes
    d = os.path.join(a.out, f"class{c}")
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-0.3, 0.3, (3, 2))
    img = np.stack([base[k] + slope[k, 0] * xx + slope[k, 1] * yy for k in range(3)], -1)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(rng.integers(3, 8)):
        x0, y0 = rng.integers(0, a.width), rng.integers(0, a.height)
        r = int(rng.integers(15, 90))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0 - r, y0 - r, x0 + r, y0 + r], fill=fill)
    pil = pil.filter(ImageFilter.GaussianBlur(2))
    arr = np.asarray(pil).astype(np.int16) + rng.integers(-6, 7, (a.height, a.width, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--height", type=int, default=375)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    a = ap.parse_args()
    for c in range(a.classes):
        os.makedirs(os.path.join(a.out, f"class{c}"), exist_ok=True)
    jobs = [(i, a) for i in range(a.count)]
    if a.jobs > 1:
        with multiprocessing.Pool(a.jobs) as pool:
            pool.map(make_one, jobs, chunksize=16)
    else:
        for j in jobs:
            make_one(j)
    print(f"wrote {a.count} JPEGs of {a.width}x{a.height} in {a.classes} classes to {a.out}")


if __name__ == "__main__":
    main()
