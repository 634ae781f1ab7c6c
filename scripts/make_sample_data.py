#!/usr/bin/env python3
"""Writes a small, real image set for the quick start and the tests: Fashion-MNIST images as PNG folders.

Source: Debian's `dataset-fashion-mnist` package (Zalando Research, MIT licence), read from
/usr/share/datasets/fashion-mnist. Images are taken from the t10k (test) file in file order, the first
N of each chosen class, so the output is the same on every machine. Needs only the Python standard library.

Usage: make_sample_data.py OUT_DIR [--per-class N] [--classes NAME,NAME,...]
"""
import argparse
import gzip
import os
import struct
import sys
import zlib

NAMES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]
SRC = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def write_png_gray(path, w, h, pixels):
    def chunk(tag, body):
        c = struct.pack(">I", len(body)) + tag + body
        return c + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=80)
    ap.add_argument("--classes", default="T-shirt_top,Trouser,Pullover,Sneaker,Bag")
    args = ap.parse_args()
    img_path = os.path.join(SRC, "t10k-images-idx3-ubyte.gz")
    lbl_path = os.path.join(SRC, "t10k-labels-idx1-ubyte.gz")
    if not os.path.exists(img_path):
        sys.exit(f"error: {img_path} not found; install it with: apt-get install dataset-fashion-mnist")
    (n, h, w), images = read_idx(img_path)
    _, labels = read_idx(lbl_path)
    wanted = args.classes.split(",")
    for name in wanted:
        if name not in NAMES:
            sys.exit(f"error: unknown class '{name}'; choose from {','.join(NAMES)}")
    counts = {name: 0 for name in wanted}
    for i in range(n):
        name = NAMES[labels[i]]
        if name not in counts or counts[name] >= args.per_class:
            continue
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        write_png_gray(os.path.join(d, f"{i:05d}.png"), w, h, images[i * h * w:(i + 1) * h * w])
        counts[name] += 1
    print(f"wrote {sum(counts.values())} images in {len(counts)} classes to {args.out}")


if __name__ == "__main__":
    main()
