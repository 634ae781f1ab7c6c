#!/usr/bin/env python3
"""Fidelity of the frozen-pass engines (docs/ENGINES.md, docs/BENCHMARKS_ENGINES.md): held-out accuracy over seeds and
the features' closeness to the TorchScript fp32 reference, on real images and a real pretrained backbone.

Each seed draws its own subset of Debian's Fashion-MNIST (dataset-fashion-mnist: per class, --train training
and --test test images, gray turned to RGB), trains tlc's estimator (frozen backbone, GAP + Dense head) once per
engine setting on it, and scores the test images. The features of the test images on each setting are compared
with TorchScript fp32's: cosine similarity per image and the largest absolute difference.

  .venv/bin/python scripts/engine_fidelity.py --backbone build/tests/test_models/effnet_lite0_imagenet.pt \\
      --seeds 5 --settings torchscript:fp32 openvino:fp32 auto:auto torchscript:bf16

Prints a Markdown table. Settings are ENGINE:PRECISION as tlc's --engine/--precision take them.
"""
import argparse
import gzip
import time

import numpy as np

import tlc
from tlc._inputs import Images

CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def subset(images, labels, classes, per_class, rng):
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes])
    x = np.repeat(images[idx][..., None], 3, axis=3)  # gray -> RGB, as tlc decodes gray files
    return np.ascontiguousarray(x), np.array([CLASSES[c] for c in labels[idx]])


def features(est, x):
    """The fitted estimator's frozen features of x [N,H,W,3], on its engine: [N,C] float32."""
    clf = est.model_
    image_set, _ = Images(x).image_set(np.zeros(len(x), np.int64), clf.image_size, clf.resize)
    return clf.pooled_features(image_set, False).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--classes", type=int, default=5, help="the first N Fashion-MNIST classes")
    ap.add_argument("--train", type=int, default=40, help="training images per class and seed")
    ap.add_argument("--test", type=int, default=40, help="test images per class and seed")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--settings", nargs="+", default=["torchscript:fp32", "openvino:fp32", "auto:auto"])
    a = ap.parse_args()
    train_x = read_idx(f"{a.data}/train-images-idx3-ubyte.gz")
    train_y = read_idx(f"{a.data}/train-labels-idx1-ubyte.gz")
    test_x = read_idx(f"{a.data}/t10k-images-idx3-ubyte.gz")
    test_y = read_idx(f"{a.data}/t10k-labels-idx1-ubyte.gz")
    classes = list(range(a.classes))
    settings = [tuple(s.split(":")) for s in a.settings]
    acc = {s: [] for s in settings}
    secs = {s: 0.0 for s in settings}
    cos = {s: [] for s in settings}
    maxdiff = {s: 0.0 for s in settings}
    engines = {}
    for seed in range(a.seeds):
        rng = np.random.default_rng(seed)
        xtr, ytr = subset(train_x, train_y, classes, a.train, rng)
        xte, yte = subset(test_x, test_y, classes, a.test, rng)
        ref = None
        for s in settings:
            engine, precision = s
            est = tlc.TransferClassifier(backbone=a.backbone, image_size=a.image_size, epochs=a.epochs,
                                         optimizer="adam", lr=1e-3, engine=engine, precision=precision,
                                         random_state=seed, reuse_features=False)
            t0 = time.perf_counter()
            est.fit(xtr, ytr)
            acc[s].append(est.score(xte, yte))
            secs[s] += time.perf_counter() - t0
            engines[s] = est.model_.engine
            f = features(est, xte)
            if ref is None and s == ("torchscript", "fp32"):
                ref = f
            if ref is not None:
                c = (f * ref).sum(1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(ref, axis=1))
                cos[s].extend(c.tolist())
                maxdiff[s] = max(maxdiff[s], float(np.abs(f - ref).max()))
            print(f"seed {seed} {engine}:{precision}: acc {acc[s][-1]:.4f}", flush=True)
    print(f"\n{a.seeds} seeds; per seed {a.classes} classes x {a.train} train / {a.test} test images; "
          f"{a.backbone}; {a.image_size} px; {a.epochs} epochs adam 1e-3\n")
    print("| setting | engine that ran | test accuracy, mean (std) | vs torchscript:fp32 | min / mean cosine to fp32 features | max abs diff | fit+score time |")
    print("|---|---|---|---|---|---|---|")
    base = np.mean(acc[("torchscript", "fp32")]) if ("torchscript", "fp32") in acc else None
    for s in settings:
        m, sd = np.mean(acc[s]), np.std(acc[s])
        delta = f"{(m - base) * 100:+.2f} points" if base is not None else "-"
        c = f"{min(cos[s]):.6f} / {np.mean(cos[s]):.6f}" if cos[s] else "-"
        print(f"| {s[0]}:{s[1]} | {engines[s].split(' (')[0].replace('engine: ', '')} | {m:.4f} ({sd:.4f}) | {delta} | "
              f"{c} | {maxdiff[s]:.2e} | {secs[s]:.1f} s |")


if __name__ == "__main__":
    main()
