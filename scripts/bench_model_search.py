#!/usr/bin/env python3
"""Times a GridSearchCV over tlc.TransferClassifier with and without the in-process feature cache
(docs/BENCHMARKS.md): 6 candidates (lr x epochs) x 3 folds + the refit on a folder of class sub-folders.

    PYTHONPATH=build/python .venv/bin/python scripts/bench_model_search.py --backbone B.pt --data DIR [--image-size S]
"""
import argparse
import os
import platform
import time

import torch
from sklearn.model_selection import GridSearchCV

import tlc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--data", default="data/fashion_mnist_sample")
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--cv", type=int, default=3)
    args = ap.parse_args()
    folder = tlc.ImageFolder(args.data)
    grid = {"lr": [1e-4, 1e-3, 1e-2], "epochs": [3, 6]}
    print(f"{len(folder)} images, {len(folder.classes)} classes, backbone {args.backbone} at {args.image_size} px, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{platform.processor() or platform.machine()}")
    results = {}
    for reuse in (False, True):
        tlc.clear_feature_cache()
        est = tlc.TransferClassifier(backbone=args.backbone, image_size=args.image_size, batch_size=32, device="cpu",
                                     reuse_features=reuse)
        t0 = time.perf_counter()
        search = GridSearchCV(est, grid, cv=args.cv).fit(folder.paths, folder.y)
        results[reuse] = time.perf_counter() - t0
        info = tlc.feature_cache_info()
        print(f"reuse_features={reuse}: {results[reuse]:.1f} s, best {search.best_params_} "
              f"(cv accuracy {search.best_score_:.3f}), feature rows computed by the cache {info['images_computed']}")
    print(f"speed-up {results[False] / results[True]:.2f}x")


if __name__ == "__main__":
    main()
