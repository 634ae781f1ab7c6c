"""Data helpers with the CLI's rules: folder listing (tlc.ImageFolder) and the stratified, seeded split."""
import os

import numpy as np

from . import _core


def call(fn, *args, path=None, **kwargs):
    """Calls into tlc._core, turning its RuntimeError into FileNotFoundError when `path` does not exist (the
    message stays the C++ one, which names the file and the way out)."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as e:
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(str(e)) from None
        raise


class ImageFolder:
    """A folder of class sub-folders, listed exactly as `tlc train` lists it: classes sorted by name, files by
    path, hidden/non-image/stray files skipped (see `ignored`), the PetImages and flower_photos layouts found.

    verify=True decodes every file once (tlc's decoder, the one fit and predict use) and leaves out those that
    fail, into `ignored` with the reason and a warning: then fit and a model search's scoring see the same,
    readable files.

    scikit-learn's splitters and model selection take it as X: it has a length and a shape, and indexing it
    with an index array (folder[idx] or folder[idx, ...]) gives the sub-folder of those images, so
    cross_val_score(clf, folder, folder.y, cv=3) fits on ImageFolders. folder[i] (an int) is the i-th path.

    Attributes: root, classes, paths, labels (int index into classes), y (class names), ignored [(path, reason)],
    layout_note."""

    def __init__(self, path, min_classes=2, verify=False):
        d = call(_core.list_image_folder, os.fspath(path), min_classes, path=os.fspath(path))
        self.root = d["root"]
        self.classes = list(d["classes"])
        self.paths = list(d["paths"])
        self.labels = np.asarray(d["labels"], dtype=np.int64)
        self.ignored = list(d["ignored"])
        self.layout_note = d["layout_note"]
        if verify and self.paths:
            broken = broken_files(self.paths)
            if broken:
                import warnings
                bad = {p for p, _ in broken}
                keep = [i for i, p in enumerate(self.paths) if p not in bad]
                self.paths = [self.paths[i] for i in keep]
                self.labels = self.labels[keep]
                self.ignored += [(p, "cannot be decoded: " + r) for p, r in broken]
                warnings.warn(f"{self.root}: {len(broken)} file(s) cannot be decoded and were left out, first: "
                              f"{broken[0][0]} ({broken[0][1]})", UserWarning, stacklevel=2)

    @property
    def shape(self):
        return (len(self.paths),)

    def __getitem__(self, key):
        if isinstance(key, tuple):  # scikit-learn's _safe_indexing asks for folder[idx, ...]
            if len(key) == 2 and key[1] is Ellipsis:
                key = key[0]
            else:
                raise IndexError(f"an ImageFolder is 1-D, got the index {key!r}")
        if isinstance(key, (int, np.integer)):
            return self.paths[key]
        if isinstance(key, slice):
            return self.subset(np.arange(len(self.paths))[key])
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return self.subset(key)

    @property
    def y(self):
        return np.asarray(self.classes, dtype=object)[self.labels]

    def __len__(self):
        return len(self.paths)

    def __repr__(self):
        return f"ImageFolder({self.root!r}: {len(self.paths)} images, classes={self.classes})"

    def subset(self, indices):
        """The images at `indices`, with this folder's classes."""
        sub = object.__new__(ImageFolder)
        sub.root, sub.classes, sub.layout_note, sub.ignored = self.root, self.classes, self.layout_note, []
        idx = np.asarray(indices, dtype=np.int64)
        sub.paths = [self.paths[i] for i in idx]
        sub.labels = self.labels[idx]
        return sub

    def split(self, val=0.1, test=0.1, seed=42):
        """(train, val, test) ImageFolders: the split `tlc train --val-split --test-split --seed` makes."""
        parts = split_stratified(self.paths, self.labels, val=val, test=test, seed=seed, classes=self.classes)
        return tuple(self.subset(p) for p in parts)


def broken_files(paths, threads=0):
    """[(path, reason)] of the files tlc's decoder cannot decode (each file decoded once, at a small size)."""
    if not paths:
        return []
    _, broken, _ = _core.ImageSet.scan(list(paths), [0] * len(paths), 8, "stretch", 100_000_000, threads)
    return list(broken)


def split_stratified(paths, labels, val=0.1, test=0.1, seed=42, classes=None):
    """Index arrays (train, val, test) into `paths`: stratified by label, the same for the same seed and files
    as the CLI's split (each class's files sorted by path, shuffled by a generator seeded by seed and class).
    `labels`: any labels; the classes are their sorted unique values unless `classes` gives the order."""
    labels = np.asarray(labels)
    if classes is None:
        classes, codes = np.unique(labels, return_inverse=True)
    else:
        index = {c: i for i, c in enumerate(classes)}
        codes = labels if np.issubdtype(labels.dtype, np.integer) else [index[v] for v in labels]
    names = [str(c) for c in classes]
    tr, va, te = _core.split_stratified([os.fspath(p) for p in paths], [int(c) for c in codes], len(names),
                                        float(val), float(test), int(seed), names)
    return np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64), np.asarray(te, dtype=np.int64)
