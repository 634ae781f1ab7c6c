"""What X may be, and how it becomes either image paths or uint8 RGB pixels [H,W,3] per image.

Accepted (docs/PYTHON.md, "Inputs"):
  paths:  a list/tuple of str or os.PathLike, a numpy string array (np.array(paths)), a pandas Series of paths;
  pixels: a numpy array [N,H,W,3] (RGB), [N,H,W] or [N,H,W,1] (grayscale, repeated to RGB); a list of such
          images ([H,W,3], [H,W], [H,W,1]; sizes may differ); PIL images; torch tensors [N,H,W(,C)] on any
          device; a pandas Series of arrays or PIL images.
Pixel values: uint8 as they are; other integer dtypes when every value is in 0..255; floats by one rule over
the whole X: all values in [0, 1] are scaled by 255; else whole numbers in [0, 255] are taken as they are;
anything else (negative values: already normalized; fractions above 1: no known scale) is a ValueError that
says what to pass. Everything else is refused with the list above; nothing is guessed."""
import os

import numpy as np

ACCEPTED = ("image paths (a list, a numpy string array or a pandas Series of paths), a tlc.ImageFolder, or "
            "pixels: a uint8 (or float in [0,1]) array [N,H,W,3] RGB, [N,H,W] or [N,H,W,1] grayscale, a list of "
            "such images, PIL images, or a torch tensor [N,H,W,C]")


def _refuse(what):
    return ValueError(f"X is {what}; pass {ACCEPTED}")


def as_images(X):
    """("paths", [str]) or ("pixels", uint8 [N,H,W,3] ndarray, or a list of uint8 [H,W,3] when sizes differ)."""
    X = _unwrap(X)
    if isinstance(X, np.ndarray):
        if X.dtype.kind in "US":
            if X.ndim != 1:
                raise _refuse(f"a {X.ndim}-D string array of shape {X.shape} (paths must be 1-D)")
            return "paths", [x.decode() if isinstance(x, bytes) else str(x) for x in X.tolist()]
        if X.dtype != object:
            return "pixels", _batch(X)
        X = list(X)
    if isinstance(X, (str, bytes, os.PathLike)):
        raise ValueError(f"expected a sequence of image paths, got the single path {os.fsdecode(X)!r}: "
                         "pass [path], or tlc.ImageFolder(path) for a folder of class sub-folders")
    if _is_image(X):
        raise _refuse(f"one {type(X).__name__} image; put it in a list ([image])")
    if not isinstance(X, (list, tuple)):
        raise _refuse(f"a {type(X).__name__}")
    if all(isinstance(x, (str, os.PathLike, np.str_)) for x in X):
        return "paths", [os.fspath(x) for x in X]
    if all(_is_image(x) for x in X):
        return "pixels", _list([_unwrap_one(x) for x in X])
    kinds = sorted({type(x).__name__ for x in X})
    raise _refuse(f"a {type(X).__name__} of {', '.join(kinds)} (paths and images cannot be mixed)")


def _unwrap(X):
    """pandas Series -> its values; torch tensor -> numpy (CPU)."""
    mod = type(X).__module__
    if mod.startswith("pandas"):
        if type(X).__name__ == "DataFrame":
            raise _refuse("a pandas DataFrame; pass the column that holds the paths or images, e.g. df['path']")
        if type(X).__name__ == "Series":
            return X.to_numpy()
    if mod.startswith("torch") and hasattr(X, "detach"):
        return X.detach().cpu().numpy()
    return X


def _is_image(x):
    return isinstance(x, np.ndarray) or type(x).__module__.startswith(("PIL", "torch"))


def _unwrap_one(x):
    if type(x).__module__.startswith("PIL"):
        if x.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            return np.asarray(x)  # 16/32-bit grayscale: the value rule below decides, never a silent clip
        return np.asarray(x.convert("RGB"))  # palette, grayscale, RGBA (alpha dropped, as files are decoded)
    x = _unwrap(x)
    if not isinstance(x, np.ndarray):
        raise _refuse(f"a list holding a {type(x).__name__}")
    return x


def _batch(X):
    """uint8 [N,H,W,3] from a numeric array of images."""
    if X.ndim == 4 and X.shape[-1] in (1, 3):
        pass
    elif X.ndim == 4 and X.shape[1] in (1, 3):
        raise _refuse(f"an array of shape {X.shape}, channels first; pass channels last: "
                      "x.transpose(0, 2, 3, 1) (numpy) or x.permute(0, 2, 3, 1) (torch)")
    elif X.ndim == 4 and X.shape[-1] == 4:
        raise _refuse(f"an array of shape {X.shape} (RGBA?); drop the alpha channel: x[..., :3]")
    elif X.ndim == 3 and X.shape[-1] in (3, 4):
        raise _refuse(f"an array of shape {X.shape}: one RGB image [H,W,3]? pass a batch of one, x[None] "
                      "(a grayscale batch [N,H,W] of width 3 or 4 is not taken, being ambiguous)")
    elif X.ndim != 3:
        raise _refuse(f"an array of shape {X.shape}")
    scale = _scale([X])
    return _rgb(_to_uint8(X, scale))


def _list(images):
    """uint8 [N,H,W,3] when all images have one size, else a list of uint8 [H,W,3]."""
    shaped = []
    for i, x in enumerate(images):
        if x.ndim == 3 and x.shape[-1] in (1, 3):
            shaped.append(x)
        elif x.ndim == 2:
            shaped.append(x[:, :, None])
        elif x.ndim == 3 and x.shape[0] in (1, 3):
            raise _refuse(f"a list whose image {i} has shape {x.shape}, channels first; pass channels last "
                          "[H,W,3]: x.transpose(1, 2, 0)")
        else:
            raise _refuse(f"a list whose image {i} has shape {x.shape} (each image: [H,W,3], [H,W] or [H,W,1])")
    scale = _scale(shaped)
    out = [_rgb(_to_uint8(x[None], scale))[0] for x in shaped]
    if len({x.shape for x in out}) == 1:
        return np.stack(out) if out else np.zeros((0, 1, 1, 3), np.uint8)
    return out


def _scale(arrays):
    """The one factor that maps all of X's values to 0..255 (1 for integer pixels, 255 for floats in [0,1])."""
    kinds = {a.dtype.kind for a in arrays}
    if not kinds <= set("uif") or not arrays:
        if not arrays:
            return 1
        raise _refuse(f"an array of dtype {sorted(a.dtype.str for a in arrays)[0]} (pixels are numbers)")
    lo = min(float(a.min()) for a in arrays if a.size) if any(a.size for a in arrays) else 0.0
    hi = max(float(a.max()) for a in arrays if a.size) if any(a.size for a in arrays) else 0.0
    if "f" in kinds and not all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f"):
        raise ValueError("X has NaN or infinite pixel values; pass finite pixels (uint8, or floats in [0,1])")
    if lo < 0:
        raise ValueError(f"X has negative pixel values (min {lo:.4g}): it looks normalized already. Pass raw "
                         "pixels (uint8 0..255 or floats in [0,1]); tlc normalizes them the way the backbone "
                         "expects")
    if "f" not in kinds:
        if hi > 255:
            raise ValueError(f"X has integer pixel values up to {hi:.0f}: 8-bit pixels (0..255) are expected; "
                             "scale 16-bit images first, e.g. (x >> 8).astype(np.uint8)")
        return 1
    if hi <= 1.0:
        return 255
    whole = all(np.array_equal(a, np.round(a)) for a in arrays if a.dtype.kind == "f")
    if hi <= 255 and whole:
        return 1
    raise ValueError(f"X has float pixel values up to {hi:.4g}{'' if whole else ' that are not whole numbers'}: "
                     "neither [0, 1] nor whole 0..255 values, so their scale is unknown. Pass floats in [0, 1] "
                     "or uint8 0..255 pixels")


def _to_uint8(x, scale):
    if x.dtype == np.uint8:
        return x
    if scale == 1:
        return x.astype(np.uint8)
    return np.clip(np.rint(x.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def _rgb(x):
    """[N,H,W], [N,H,W,1] or [N,H,W,3] uint8 -> contiguous [N,H,W,3]."""
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(x)

