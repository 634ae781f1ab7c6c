"""Features computed once per image across fits: an in-process cache of the frozen backbone's pooled features.

Keyed like the CLI's on-disk cache (backbone file content, image size, normalization, resize mode, frozen dtype;
plus the device), per image by the file's path, size and mtime (or an array row's bytes), with the plain and
the flipped view (augment="flip") stored apart. A GridSearchCV over lr/epochs then runs the backbone over each
image once, for its first fit; every later fit trains its head on the stored rows."""
import hashlib
import os
import threading

import torch

from . import _core

_lock = threading.Lock()
_cache = {}         # (setting..., flipped) -> {image key: feature row [C]}
_digests = {}       # (path, size, mtime_ns) -> content digest of a backbone file
_stats = {"backbone_passes": 0, "images_computed": 0, "images_reused": 0}


def _backbone_digest(path):
    st = os.stat(path)
    k = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if k not in _digests:
        with open(path, "rb") as f:
            _digests[k] = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
    return _digests[k]


def _setting(clf):
    return (_backbone_digest(clf.backbone_path), clf.image_size, clf.normalize, clf.resize, clf.frozen_dtype,
            clf.device)


def provide(clf, role, image_set, keys, flipped):
    """Gives `clf` (a tlc._core.Classifier) the features of `image_set` (rows in order, `keys` one per row) for the
    next fit's head phase in `role` ("train" or "val"), running the backbone only over images not seen before."""
    with _lock:
        setting = _setting(clf)
        views = []
        for view in ([False, True] if flipped else [False]):
            store = _cache.setdefault(setting + (view,), {})
            missing = [i for i, k in enumerate(keys) if k not in store]
            if missing:
                sub = image_set if len(missing) == len(keys) else \
                    _core.ImageSet.from_pixels(image_set.pixels[missing], [0] * len(missing))
                feats = clf.pooled_features(sub, view)
                _stats["backbone_passes"] += 1
                _stats["images_computed"] += len(missing)
                for j, i in enumerate(missing):
                    store[keys[i]] = feats[j]
            _stats["images_reused"] += len(keys) - len(missing)
            views.append(torch.stack([store[k] for k in keys]))
    clf.use_features(role, views[0], views[1] if flipped else None)


def features_for(clf, images):
    """Pooled features [N,C] of `images` (a tlc._inputs.Images) for predicting with `clf`, whose backbone must
    still be the file's: rows from the cache, the backbone run (and the files decoded) only for images not seen
    before. A file that cannot be decoded is a ValueError, as in predict."""
    keys = images.keys()
    with _lock:
        store = _cache.setdefault(_setting(clf) + (False,), {})
        missing = [i for i, k in enumerate(keys) if k not in store]
        if missing:
            px = images.take(missing).pixels(clf.image_size, clf.resize)
            feats = clf.pooled_features(_core.ImageSet.from_pixels(px, [0] * len(missing)), False)
            _stats["backbone_passes"] += 1
            _stats["images_computed"] += len(missing)
            for j, i in enumerate(missing):
                store[keys[i]] = feats[j]
        _stats["images_reused"] += len(keys) - len(missing)
        return torch.stack([store[k] for k in keys])


def feature_cache_info():
    """Counters of the in-process feature cache: backbone_passes (calls that ran the backbone), images_computed,
    images_reused, and entries (feature rows held)."""
    with _lock:
        return dict(_stats, entries=sum(len(v) for v in _cache.values()))


def clear_feature_cache():
    """Drops every stored feature row and resets the counters."""
    with _lock:
        _cache.clear()
        for k in _stats:
            _stats[k] = 0
