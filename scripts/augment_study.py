#!/usr/bin/env python3
"""Does augmentation help, and what does the K-view feature cache cost? (docs/AUGMENTATION.md)

For each subset size (training images per class) and seed, draws a training subset and a disjoint test
subset of one of two real sets, then trains tlc's estimator (frozen backbone, GAP + Dense head) once per
setting and scores the test images. The sets (all 10 classes, gray turned to RGB as tlc decodes gray files):

  fashion   Debian's dataset-fashion-mnist: 28x28 photos of clothing (train and test drawn from its own splits)
  digits    scikit-learn's load_digits (UCI handwritten digits, shipped in the wheel): 1,797 images of 8x8,
            about 180 per class, so --sizes + --test must stay under 174; train and test never share an image

The settings:

  none, flip                    the baseline and the exactly cached flip
  light/keras/fastai/timm:K     the preset with a pool of K cached views per image (augment_views=K)
  fastai:fresh                  fastai with a fresh view per image per epoch (augment_views=0): the anchors' way
  +tta                          the best setting's model again with tta=4 (0.25 plain + 0.75 augmented)

  .venv/bin/python scripts/augment_study.py --backbone build/tests/test_models/effnet_lite0_imagenet.pt \\
      --sizes 20 50 100 --seeds 3

--store fp32|bf16 trains every head on the estimator's in-memory feature cache (reuse_features=True) and, with
bf16, rounds the cached training features (plain, flipped and the K views) to bfloat16 before the head sees
them: what storing the pool in bf16 would cost in accuracy (docs/AUGMENTATION.md). Compare the two runs.

--fine-tune-blocks N then fine-tunes the backbone's last N blocks (--fine-tune-epochs, --fine-tune-lr) after
the head: the pool of K views goes into the prefix cache, fresh views run the whole backbone.

Prints one line per fit and Markdown tables: accuracy mean (std) per setting and size, fit time, TTA gain.
"""
import argparse
import time

import numpy as np
import torch

import tlc

from engine_fidelity import CLASSES, read_idx  # the same Fashion-MNIST reader (scripts/ is on sys.path)


def rgb(images, labels, names):
    x = np.repeat(images[..., None], 3, axis=3)  # gray -> RGB, as tlc decodes gray files
    return np.ascontiguousarray(x), np.array([names[c] for c in labels])


def picks(labels, counts, rng):
    """Disjoint per-class index draws: one index array per entry of counts (images per class)."""
    out = [[] for _ in counts]
    for c in range(10):
        order = rng.permutation(np.flatnonzero(labels == c))
        if len(order) < sum(counts):
            raise SystemExit(f"class {c} has {len(order)} images; asked for {sum(counts)} (sizes + test)")
        start = 0
        for k, n in enumerate(counts):
            out[k].append(order[start:start + n])
            start += n
    return [np.concatenate(o) for o in out]


def loader(a):
    """A function (size, rng) -> (train x, train y, test x, test y) for the chosen set."""
    if a.dataset == "digits":
        from sklearn.datasets import load_digits
        d = load_digits()
        images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 ink -> 0..255
        names = [str(c) for c in range(10)]

        def draw(size, rng):
            tr, te = picks(d.target, [size, a.test], rng)
            return (*rgb(images[tr], d.target[tr], names), *rgb(images[te], d.target[te], names))
        return draw
    train_x = read_idx(f"{a.data}/train-images-idx3-ubyte.gz")
    train_y = read_idx(f"{a.data}/train-labels-idx1-ubyte.gz")
    test_x = read_idx(f"{a.data}/t10k-images-idx3-ubyte.gz")
    test_y = read_idx(f"{a.data}/t10k-labels-idx1-ubyte.gz")

    def draw(size, rng):
        tr, = picks(train_y, [size], rng)
        te, = picks(test_y, [a.test], rng)
        return (*rgb(train_x[tr], train_y[tr], CLASSES), *rgb(test_x[te], test_y[te], CLASSES))
    return draw


def store_in_bf16():
    """Every feature tensor the estimator's cache hands to the C++ classifier for training goes through bf16."""
    from tlc import _core
    given = _core.Classifier.use_features

    def rounded(self, role, plain, flipped=None, views=None):
        r = [None if t is None else t.to(torch.bfloat16).to(t.dtype) for t in (plain, flipped, views)]
        return given(self, role, *r)
    _core.Classifier.use_features = rounded


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--dataset", choices=["fashion", "digits"], default="fashion")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="the Fashion-MNIST folder")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100], help="training images per class")
    ap.add_argument("--test", type=int, default=50, help="test images per class and seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--views", type=int, default=4, help="K of the cached settings")
    ap.add_argument("--tta", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--settings", nargs="+",
                    default=["none", "flip", "light:K", "keras:K", "fastai:K", "timm:K", "fastai:fresh"])
    ap.add_argument("--store", choices=["fp32", "bf16"], help="train on the feature cache, stored at this precision")
    ap.add_argument("--fine-tune-blocks", type=int, default=0, help="then fine-tune the backbone's last N blocks")
    ap.add_argument("--fine-tune-epochs", type=int, default=5)
    ap.add_argument("--fine-tune-lr", type=float, default=1e-4)
    a = ap.parse_args()
    if a.store == "bf16":
        store_in_bf16()
    draw = loader(a)
    acc, secs, tta_gain = {}, {}, {}
    for size in a.sizes:
        for seed in range(a.seeds):
            rng = np.random.default_rng(1000 * size + seed)
            xtr, ytr, xte, yte = draw(size, rng)
            for s in a.settings:
                aug, _, mode = s.partition(":")
                views = a.views if mode == "K" else 0
                est = tlc.TransferClassifier(backbone=a.backbone, image_size=a.image_size, epochs=a.epochs,
                                             optimizer="adam", lr=1e-3, augment=aug, augment_views=views,
                                             random_state=seed, reuse_features=a.store is not None,
                                             fine_tune_blocks=a.fine_tune_blocks,
                                             fine_tune_epochs=a.fine_tune_epochs if a.fine_tune_blocks else 0,
                                             fine_tune_lr=a.fine_tune_lr)
                t0 = time.perf_counter()
                est.fit(xtr, ytr)
                fit_s = time.perf_counter() - t0
                score = est.score(xte, yte)
                acc.setdefault((s, size), []).append(score)
                secs.setdefault((s, size), []).append(fit_s)
                line = f"size {size} seed {seed} {s}: acc {score:.4f} fit {fit_s:.1f} s"
                if a.tta > 0 and aug != "none" and mode != "fresh":  # TTA on the model trained with that augmentation
                    est.set_params(tta=a.tta)
                    with_tta = est.score(xte, yte)
                    tta_gain.setdefault((s, size), []).append(with_tta - score)
                    line += f", with tta={a.tta}: {with_tta:.4f}"
                print(line, flush=True)
    name = "scikit-learn digits (8x8)" if a.dataset == "digits" else "Fashion-MNIST"
    print(f"\n{a.seeds} seeds; {name}, 10 classes, N training images per class, {a.test} test images per "
          f"class; {a.backbone}; {a.image_size} px; {a.epochs} epochs adam 1e-3, batch 32; K = {a.views}"
          + (f"; training features from the cache, stored in {a.store}" if a.store else "")
          + (f"; then the last {a.fine_tune_blocks} block(s) fine-tuned for {a.fine_tune_epochs} epochs, adam "
             f"{a.fine_tune_lr:g}" if a.fine_tune_blocks else "") + "\n")
    print("| setting | " + " | ".join(f"{n}/class: accuracy, mean (std) | fit s" for n in a.sizes) + " |")
    print("|---|" + "---|---|" * len(a.sizes))
    for s in a.settings:
        cells = []
        for n in a.sizes:
            v, t = np.array(acc[(s, n)]), np.array(secs[(s, n)])
            cells.append(f"{v.mean():.4f} ({v.std():.4f}) | {t.mean():.1f}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    if not tta_gain:
        return
    print(f"\nTTA ({a.tta} views) gain in accuracy points, mean (std):\n")
    print("| setting | " + " | ".join(f"{n}/class" for n in a.sizes) + " |")
    print("|---|" + "---|" * len(a.sizes))
    for s in a.settings:
        if (s, a.sizes[0]) in tta_gain:
            print(f"| {s} | " + " | ".join(f"{100 * np.mean(tta_gain[(s, n)]):+.2f} ({100 * np.std(tta_gain[(s, n)]):.2f})"
                                            for n in a.sizes) + " |")


if __name__ == "__main__":
    main()
