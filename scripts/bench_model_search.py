#!/usr/bin/env python3
"""Times a GridSearchCV over tlc.TransferClassifier with and without the in-process feature cache
(docs/BENCHMARKS.md): 6 candidates (lr x epochs) x 3 folds + the refit on a folder of class sub-folders.

    PYTHONPATH=build/python .venv/bin/python scripts/bench_model_search.py --backbone B.pt --data DIR [--image-size S]

With --n-jobs, times instead the search of docs/PYTHON.md's "n_jobs" (4 candidates x 3 folds + the refit) run
serially, with n_jobs=2 in loky worker processes (each with its own in-process cache), with n_jobs=2 and a
fresh cache_dir the workers share, and with n_jobs=2 on joblib's threading backend (one in-process cache).
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
    ap.add_argument("--epochs", type=int, nargs=2, default=[2, 4], help="--n-jobs: the grid's two epoch counts")
    ap.add_argument("--n-jobs", action="store_true", help="time n_jobs=1 against n_jobs=2 (processes, cache_dir, threads)")
    args = ap.parse_args()
    folder = tlc.ImageFolder(args.data)
    if args.n_jobs:
        return time_n_jobs(args, folder)
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


def time_n_jobs(args, folder):
    import tempfile

    import joblib
    from joblib.externals.loky import get_reusable_executor
    grid = {"lr": [1e-3, 1e-2], "epochs": list(args.epochs)}
    print(f"{len(folder)} images, backbone {args.backbone} at {args.image_size} px, {os.cpu_count()} CPUs, "
          f"GridSearchCV 4 candidates x {args.cv} folds + refit")
    runs = [("n_jobs=1", 1, None, False), ("n_jobs=2 (loky processes)", 2, None, False),
            ("n_jobs=2 (loky) + cache_dir", 2, "dir", False), ("n_jobs=2 (threading backend)", 2, None, True)]
    # Round 1 also pays what a first search in a process pays once (the backbone's OpenVINO conversion, cached
    # on disk, and this process's first engine); round 2 is the steady state. Both are printed.
    for name, n_jobs, cache, threads in runs + [(n + ", round 2", j, c, t) for n, j, c, t in runs]:
        tlc.clear_feature_cache()
        get_reusable_executor().shutdown(wait=True)  # fresh workers: no in-process cache left from a run before
        with tempfile.TemporaryDirectory() as tmp:
            est = tlc.TransferClassifier(backbone=args.backbone, image_size=args.image_size, device="cpu",
                                         cache_dir=tmp if cache else None)
            t0 = time.perf_counter()
            search = GridSearchCV(est, grid, cv=args.cv, n_jobs=n_jobs)
            if threads:
                with joblib.parallel_backend("threading"):
                    search.fit(folder.paths, folder.y)
            else:
                search.fit(folder.paths, folder.y)
            print(f"{name}: {time.perf_counter() - t0:.1f} s (best {search.best_params_}, "
                  f"cv accuracy {search.best_score_:.3f})", flush=True)


if __name__ == "__main__":
    main()
