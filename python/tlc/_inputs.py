"""X resolved (tlc._arrays says what X may be) and turned into tlc's input: an ImageSet for training, uint8
pixels at the model's image size for prediction; and the policy for files that cannot be decoded."""
import os
import warnings

import numpy as np
import torch

from . import _core
from ._arrays import as_images
from ._data import ImageFolder, broken_files, call


class Images:
    """X, resolved: kind "paths" (a list of str) or "array" (uint8 [N,H,W,3], or a list of uint8 [H,W,3] when
    the sizes differ); folder labels when X was an ImageFolder."""

    def __init__(self, X):
        self.folder = X if isinstance(X, ImageFolder) else None
        if self.folder is not None:
            self.kind, self.data = "paths", list(X.paths)
        else:
            kind, self.data = as_images(X)
            self.kind = "paths" if kind == "paths" else "array"
        if len(self.data) == 0:
            raise ValueError("X is empty: there are no images to use")
        for p in self.data if self.kind == "paths" else ():
            if not os.path.exists(p):
                raise FileNotFoundError(f"image {p} does not exist")

    def __len__(self):
        return len(self.data)

    def take(self, indices):
        out = object.__new__(Images)
        out.folder, out.kind = None, self.kind
        if self.kind == "array" and isinstance(self.data, np.ndarray):
            out.data = self.data[np.asarray(indices, dtype=np.int64)]
        else:
            out.data = [self.data[i] for i in indices]
        return out

    def _resized(self, image_size, resize):
        """uint8 [N,S,S,3] tensor of an array X (each size resized by one call, the way files are resized)."""
        if isinstance(self.data, np.ndarray):
            return _core.resize_images(torch.from_numpy(self.data), image_size, resize)
        out = torch.empty((len(self.data), image_size, image_size, 3), dtype=torch.uint8)
        by_shape = {}
        for i, x in enumerate(self.data):
            by_shape.setdefault(x.shape, []).append(i)
        for idx in by_shape.values():
            px = _core.resize_images(torch.from_numpy(np.stack([self.data[i] for i in idx])), image_size, resize)
            out[torch.as_tensor(idx)] = px
        return out

    def decode(self, image_size, resize):
        """(uint8 [M,S,S,3] tensor, indices of the M rows that decoded, [(path, reason)] of those that did not)."""
        if self.kind == "array":
            return self._resized(image_size, resize), np.arange(len(self.data)), []
        s, broken, _ = call(_core.ImageSet.scan, self.data, [0] * len(self.data), image_size, resize)
        return s.pixels, kept_rows(self.data, broken), list(broken)

    def image_set(self, codes, image_size, resize, name="X", ready=None):
        """An ImageSet for training (files that cannot be decoded are skipped with a warning, as the CLI does);
        returns the kept row indices and the skipped (path, reason) too. ready: such a triple already made
        without decoding (tlc._features.undecoded_set), which then only gets the warning."""
        codes = [int(c) for c in codes]
        if self.kind == "array":
            px = self._resized(image_size, resize)
            return _core.ImageSet.from_pixels(px, codes, name), np.arange(len(codes)), []
        if ready is not None:
            s, kept, broken = ready
        else:
            s, broken, _warnings = _core.ImageSet.scan(self.data, codes, image_size, resize)
            kept = kept_rows(self.data, broken)
        if broken:
            warnings.warn(f"{name}: {len(broken)} of {len(codes)} file(s) could not be decoded and were skipped, "
                          f"first: {broken[0][0]} ({broken[0][1]}); tlc.verify_images(paths) finds them "
                          "beforehand", UserWarning, stacklevel=3)
        return s, kept, list(broken)

    def pixels(self, image_size, resize):
        """uint8 [N,S,S,3] torch tensor for prediction; a file that cannot be decoded is a ValueError naming it
        (predictions must stay aligned with X)."""
        px, _, broken = self.decode(image_size, resize)
        if broken:
            raise undecodable(broken, len(self.data))
        return px

    def keys(self):
        """One key per image for the feature caches: a file's path, size and modification time (what the CLI's
        disk cache keys on), an array row's bytes digest. Computed once per Images (a fit asks more than once)."""
        import hashlib
        if getattr(self, "_keys", None) is not None:
            return self._keys
        if self.kind == "paths":
            self._keys = []
            for p in self.data:
                st = os.stat(p)
                self._keys.append(("file", os.path.abspath(p), st.st_size, st.st_mtime_ns))
        else:
            self._keys = [("array", tuple(row.shape), hashlib.blake2b(np.ascontiguousarray(row).tobytes(),
                                                                      digest_size=16).digest()) for row in self.data]
        return self._keys


def kept_rows(paths, broken):
    bad = {p for p, _ in broken}
    return np.asarray([i for i, p in enumerate(paths) if p not in bad], dtype=np.int64)


def undecodable(broken, total):
    names = ", ".join(f"{p} ({r})" for p, r in broken[:3]) + (", ..." if len(broken) > 3 else "")
    return ValueError(f"{len(broken)} of {total} image(s) could not be decoded: {names}. Predictions must line up "
                      "with X: remove them first (tlc.verify_images(paths) gives a mask of the readable ones), or "
                      "set on_error='skip' (NaN probabilities for them; score() leaves them out)")


def verify_images(paths, threads=0):
    """A boolean mask over `paths`: True where the file decodes (tlc's decoder, the one fit and predict use).
    Filter X and y with it before a model search, so that fit and scoring see the same readable files:
    ok = tlc.verify_images(paths); X, y = np.asarray(paths)[ok], np.asarray(y)[ok]."""
    kind, data = as_images(list(paths) if not isinstance(paths, (str, os.PathLike)) else paths)
    if kind != "paths":
        raise ValueError("verify_images takes image paths; arrays are pixels already")
    missing = [p for p in data if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"image {missing[0]} does not exist ({len(missing)} missing)")
    ok = np.ones(len(data), dtype=bool)
    bad = {p for p, _ in broken_files(data, threads)}
    ok[[i for i, p in enumerate(data) if p in bad]] = False
    return ok
