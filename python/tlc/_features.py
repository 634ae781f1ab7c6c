"""Features computed once per image across fits: an in-process cache of the frozen backbone's pooled features.

Keyed like the CLI's on-disk cache (backbone file content, image size, normalization, resize mode, frozen dtype;
plus the device), per image by the file's path, size and mtime (or an array row's bytes), with the plain and
the flipped view (augment="flip") stored apart. A GridSearchCV over lr/epochs then runs the backbone over each
image once, for its first fit; every later fit trains its head on the stored rows. With cache_dir, a disk layer
(tlc/_diskcache.py) under a file lock shares the rows between processes (GridSearchCV(n_jobs=2)'s workers) and
between sessions."""
import hashlib
import os
import threading

import numpy as np
import torch

from . import _core
from ._diskcache import DiskStore, _loaded as _diskcache_loaded

_lock = threading.Lock()
_cache = {}         # (setting..., flipped) -> {image key: feature row [C]}
_digests = {}       # (path, size, mtime_ns) -> content digest of a backbone file
_stats = {"backbone_passes": 0, "images_computed": 0, "images_reused": 0, "images_from_disk": 0}
_broken = {}        # image key -> (path, reason) of files that failed to decode in a fit of this process


def backbone_digest(path):
    st = os.stat(path)
    k = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if k not in _digests:
        with open(path, "rb") as f:
            _digests[k] = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
    return _digests[k]


def setting(clf, precision):
    """The cache key of a classifier's features (everything they depend on besides the image): the backbone file's
    content, image size, normalization, resize mode, the requested and the frozen precision (fp32 and tf32 differ
    in their results), the engine chosen for the frozen passes (OpenVINO's features are not TorchScript's to
    the last bit), the device. Computed once at fit (the file may change or go afterwards)."""
    return (backbone_digest(clf.backbone_path), clf.image_size, clf.normalize, clf.resize, str(precision),
            clf.engine_choice, clf.device)


def _rows(key, keys, compute, memory=True, disk=None):
    """The rows of `keys` [N,C] for cache key `key`: from the in-process cache (memory=True), then from the disk
    cache under `disk` (a cache_dir), `compute(missing indices)` [M,C] filling in the rest, which both caches
    keep. Rows are kept on the CPU: the cache must not hold device memory. Returns (rows, images computed)."""
    store = _cache.setdefault(key, {}) if memory else {}
    missing = [i for i, k in enumerate(keys) if k not in store]
    computed = 0

    def run(missing):
        feats = compute(missing).cpu().float()
        _stats["backbone_passes"] += 1
        _stats["images_computed"] += len(missing)
        for j, i in enumerate(missing):
            store[keys[i]] = feats[j]
        return feats
    if missing and disk is not None:
        ds = DiskStore(disk, key)
        with ds.locked():  # other processes with this cache_dir wait here while this one computes
            found = ds.get([keys[i] for i in missing])
            for k, row in found.items():
                store[k] = torch.from_numpy(row)
            _stats["images_from_disk"] += sum(keys[i] in found for i in missing)
            missing = [i for i in missing if keys[i] not in store]
            if missing:
                ds.add([keys[i] for i in missing], run(missing).numpy())
                computed = len(missing)
    elif missing:
        run(missing)
        computed = len(missing)
    _stats["images_reused"] += len(keys) - computed
    return torch.stack([store[k] for k in keys]), computed


def provide(clf, key, role, image_set, keys, flipped, memory=True, disk=None, pool=None):
    """Gives `clf` (a tlc._core.Classifier, cache key `key` from setting()) the features of `image_set` (rows in
    order, `keys` one per row) for the next fit's head phase in `role` ("train" or "val"), running the backbone
    only over images that neither cache holds. `pool`: (augmentation, seed, K) of augment_views=K, whose K
    augmented views are cached per image under a key holding all three (two settings never share views).
    Returns how many images it ran the backbone over."""
    views, computed = [], 0
    if pool is not None:
        with _lock:
            pooled = []
            for v in range(pool[2]):
                def compute(missing, v=v):
                    sub = image_set if len(missing) == len(keys) else \
                        _core.ImageSet.from_pixels(image_set.batch(missing), [0] * len(missing))
                    return clf.view_features(sub, v)
                rows, n = _rows(key + ("views", pool[0], pool[1], v), keys, compute, memory, disk)
                pooled.append(rows)
                computed += n
        plain, n = _rows_locked(key + (False,), keys, image_set, clf, memory, disk)
        clf.use_features(role, plain, None, torch.cat(pooled))
        return computed + n
    with _lock:
        for view in ([False, True] if flipped else [False]):
            def compute(missing, view=view):
                sub = image_set if len(missing) == len(keys) else \
                    _core.ImageSet.from_pixels(image_set.batch(missing), [0] * len(missing))
                return clf.pooled_features(sub, view)
            rows, n = _rows(key + (view,), keys, compute, memory, disk)
            views.append(rows)
            computed += n
    clf.use_features(role, views[0], views[1] if flipped else None)
    return computed


def _rows_locked(key, keys, image_set, clf, memory, disk):
    def compute(missing):
        sub = image_set if len(missing) == len(keys) else \
            _core.ImageSet.from_pixels(image_set.batch(missing), [0] * len(missing))
        return clf.pooled_features(sub, False)
    with _lock:
        return _rows(key, keys, compute, memory, disk)


def _views(key, flipped, pool):
    """The cache keys of every view provide() gives a fit: plain, flipped (augment="flip"), the K pooled views."""
    out = [key + (False,)] + ([key + (True,)] if flipped else [])
    if pool is not None:
        out += [key + ("views", pool[0], pool[1], v) for v in range(pool[2])]
    return out


def note_broken(images, broken):
    """Remembers the files of `images` (paths) that a fit's decoding skipped, so that a later fit over the same
    unchanged files need not decode them again to learn it."""
    bad = {p: r for p, r in broken}
    keys = images.keys()
    with _lock:
        for i, p in enumerate(images.data):
            if p in bad:
                _broken[keys[i]] = (p, bad[p])


def undecoded_set(images, codes, image_size, resize, key, flipped, pool, memory, disk):
    """(ImageSet, kept rows, [(path, reason)] skipped) for a fit over files (`images`, kind "paths") when the
    caches hold every feature row the fit needs (each view of every file, but those known not to decode): the set
    then decodes nothing (ImageSet.on_demand), as a model search's later fits need no pixels. None otherwise:
    the caller decodes."""
    keys = images.keys()
    with _lock:
        skipped = [i for i, k in enumerate(keys) if k in _broken]
        bad = set(skipped)
        wanted = [k for i, k in enumerate(keys) if i not in bad]
        if not wanted:
            return None
        for view in _views(key, flipped, pool):
            store = _cache.get(view, {}) if memory else {}
            missing = [k for k in wanted if k not in store]
            if missing and disk is not None:  # shards never change once in place: reading them needs no lock
                found = DiskStore(disk, view).get(missing)
                missing = [k for k in missing if k not in found]
            if missing:
                return None
        reasons = [_broken[keys[i]] for i in skipped]
    kept = np.asarray([i for i in range(len(keys)) if i not in bad], dtype=np.int64)
    s = _core.ImageSet.on_demand([images.data[i] for i in kept], [int(codes[i]) for i in kept], image_size, resize)
    return s, kept, reasons


def features_for(clf, key, images, rows=None, disk=None):
    """Pooled features [N,C] of `images` (a tlc._inputs.Images; `rows`: the indices among them to take, None:
    all) for predicting with `clf` (cache key `key`), whose backbone must still be the file's: rows from the
    caches, the backbone run (and the files decoded) only for images not seen before. A file that cannot be
    decoded is a ValueError naming it, as in predict."""
    keys = images.keys()
    if rows is not None:
        keys = [keys[i] for i in rows]
        images = images.take(rows)

    def compute(missing):
        px = images.take(missing).pixels(clf.image_size, clf.resize)
        return clf.pooled_features(_core.ImageSet.from_pixels(px, [0] * len(missing)), False)
    with _lock:
        return _rows(key + (False,), keys, compute, True, disk)[0]


def feature_cache_info():
    """Counters of the feature caches in this process: backbone_passes (calls that ran the backbone),
    images_computed, images_reused (rows from either cache), images_from_disk (rows read from a cache_dir), and
    entries (feature rows held in memory)."""
    with _lock:
        return dict(_stats, entries=sum(len(v) for v in _cache.values()))


def clear_feature_cache():
    """Drops every stored feature row and resets the counters; also drops the loaded backbones this process
    keeps for its next fits (tlc::Backbone::load_cached: up to 4 files)."""
    _core.clear_backbone_cache()
    with _lock:
        _cache.clear()
        _diskcache_loaded.clear()  # the disk shards read so far (the files stay)
        _broken.clear()
        for k in _stats:
            _stats[k] = 0
