"""What X can be (image paths, a uint8 array [N,H,W,3], a tlc.ImageFolder) and how it becomes tlc's input:
an ImageSet for training, uint8 pixels at the model's image size for prediction."""
import os

import numpy as np
import torch

from . import _core
from ._data import ImageFolder, call


class Images:
    """X, resolved: kind "paths" (a list of str) or "array" (uint8 [N,H,W,3]); folder labels when X was an
    ImageFolder."""

    def __init__(self, X):
        self.folder = X if isinstance(X, ImageFolder) else None
        if self.folder is not None:
            self.kind, self.data = "paths", list(X.paths)
        elif isinstance(X, np.ndarray) and X.dtype != object:
            if X.dtype != np.uint8 or X.ndim != 4 or X.shape[-1] != 3:
                raise ValueError(f"expected image paths or a uint8 array [N,H,W,3] (RGB), got a {X.dtype} array of "
                                 f"shape {X.shape}; convert with np.asarray(x, dtype=np.uint8)")
            self.kind, self.data = "array", np.ascontiguousarray(X)
        elif isinstance(X, (str, os.PathLike)):
            raise ValueError(f"expected a sequence of image paths, got the single path {os.fspath(X)!r}: "
                             "pass [path], or tlc.ImageFolder(path) for a folder of class sub-folders")
        else:
            try:
                paths = [os.fspath(p) for p in X]
            except TypeError:
                raise ValueError(f"expected image paths, a uint8 array [N,H,W,3] or a tlc.ImageFolder, "
                                 f"got {type(X).__name__}") from None
            self.kind, self.data = "paths", paths
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
        out.data = [self.data[i] for i in indices] if self.kind == "paths" else self.data[indices]
        return out

    def image_set(self, codes, image_size, resize, name="X"):
        """An ImageSet for training (files that cannot be decoded are skipped with a warning, as the CLI does;
        returns the kept row indices too)."""
        codes = [int(c) for c in codes]
        if self.kind == "array":
            px = _core.resize_images(torch.from_numpy(self.data), image_size, resize)
            return _core.ImageSet.from_pixels(px, codes, name), np.arange(len(codes))
        s, broken, _warnings = _core.ImageSet.scan(self.data, codes, image_size, resize)
        if broken:
            import warnings
            warnings.warn(f"{len(broken)} file(s) could not be decoded and were skipped, first: "
                          f"{broken[0][0]} ({broken[0][1]})", stacklevel=3)
            bad = {p for p, _ in broken}
            kept = np.asarray([i for i, p in enumerate(self.data) if p not in bad], dtype=np.int64)
        else:
            kept = np.arange(len(codes))
        return s, kept

    def pixels(self, image_size, resize):
        """uint8 [N,S,S,3] torch tensor for prediction; a file that cannot be decoded is a ValueError (predictions
        must stay aligned with X)."""
        if self.kind == "array":
            return _core.resize_images(torch.from_numpy(self.data), image_size, resize)
        s, broken, _ = call(_core.ImageSet.scan, self.data, [0] * len(self.data), image_size, resize)
        if broken:
            raise ValueError(f"{len(broken)} of {len(self.data)} image(s) could not be decoded, first: "
                             f"{broken[0][0]} ({broken[0][1]})")
        return s.pixels

    def keys(self):
        """One key per image for the in-process feature cache: a file's path, size and modification time (what
        the CLI's disk cache keys on), an array row's bytes digest."""
        import hashlib
        if self.kind == "paths":
            out = []
            for p in self.data:
                st = os.stat(p)
                out.append(("file", os.path.abspath(p), st.st_size, st.st_mtime_ns))
            return out
        return [("array", row.shape, hashlib.blake2b(row.tobytes(), digest_size=16).digest()) for row in self.data]
