#!/usr/bin/env python3
"""Writes natural-looking benchmark JPEGs (not noise): smooth gradients, blurred shapes and mild grain, like
photos at cats_vs_dogs size (default 500x375, quality 90), into OUT/<class>/ folders.
Usage: make_bench_images.py OUT [--count 2000] [--classes 2] [--width 500] [--height 375] [--seed 0]
Needs numpy and Pillow (the project venv has both)."""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--height", type=int, default=375)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    yy, xx = np.mgrid[0:a.height, 0:a.width].astype(np.float32)
    for i in range(a.count):
        c = i % a.classes
        d = os.path.join(a.out, f"class{c}")
        os.makedirs(d, exist_ok=True)
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
    print(f"wrote {a.count} JPEGs of {a.width}x{a.height} in {a.classes} classes to {a.out}")


if __name__ == "__main__":
    main()
