"""Checks of the estimator's parameters, labels and sample weights in scikit-learn's style: a TypeError for the
wrong kind of value, a ValueError for a value out of range, both in Python's words (the parameter's name, what
it got, what it takes), before anything runs in C++."""
import numbers
import os
import re
import warnings

import numpy as np

# The choices `tlc train` accepts for the flags of the same name.
CHOICES = {
    "normalize": ("auto", "minus1to1", "imagenet", "caffe"),
    "resize": ("stretch", "crop", "pad"),
    "optimizer": ("rmsprop", "adam", "sgd"),
    "precision": ("auto", "fp32", "tf32", "bf16", "int8"),
    "engine": ("auto", "torchscript", "openvino"),
    "cache_features": ("auto", "on", "off"),
    "class_weight": (None, "balanced"),
    "on_error": ("raise", "skip"),
}
# name: (minimum, maximum or None) for int parameters.
INTS = {"image_size": (8, 4096), "epochs": (0, 100000), "batch_size": (1, 65536), "hidden": (0, 1 << 20),
        "fine_tune_layers": (0, None), "fine_tune_blocks": (0, None), "fine_tune_epochs": (0, 100000),
        "verbose": (0, None), "augment_views": (0, 64), "tta": (0, 64)}


def _int(name, v, lo, hi):
    if isinstance(v, (bool, np.bool_)) and name != "verbose" or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {v!r} ({type(v).__name__})")
    if v < lo or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{name} must be an int {bound}, got {v}")


def _real(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a float, got {v!r} ({type(v).__name__})")
    return float(v)


def check_params(est):
    """Validates est's constructor parameters (called by fit, as scikit-learn does); returns nothing."""
    if est.backbone is None:
        raise ValueError("backbone is None: pass backbone='path/to/backbone.pt' (models/README.md tells how to "
                         "make one)")
    if not isinstance(est.backbone, (str, os.PathLike)):
        raise TypeError(f"backbone must be a path (str or os.PathLike) to a TorchScript backbone, got "
                        f"{type(est.backbone).__name__}")
    for name, (lo, hi) in INTS.items():
        _int(name, getattr(est, name, 0), lo, hi)  # 0: estimators pickled before augment_views / tta
    if est.epochs == 0 and est.fine_tune_epochs == 0:
        raise ValueError("epochs=0 and fine_tune_epochs=0: nothing would train; give epochs >= 1")
    for name in ("lr", "fine_tune_lr"):
        v = _real(name, getattr(est, name))
        if not (v > 0 and np.isfinite(v)):
            raise ValueError(f"{name} must be a finite float > 0, got {v}")
    d = _real("dropout", est.dropout)
    if not 0.0 <= d < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {d}")
    for name, choices in CHOICES.items():
        v = getattr(est, name)
        if v not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}, got {v!r}")
    if not isinstance(est.augment, str):
        raise TypeError(f"augment must be a str such as 'flip', 'fastai' or 'flip,rotate=10', got "
                        f"{type(est.augment).__name__}")
    try:
        from . import _core
        _core.canonical_augment(est.augment)
    except Exception as e:  # the C++ message names the bad item and the choices
        raise ValueError(f"augment={est.augment!r}: {e}") from None
    if not isinstance(est.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", est.device):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {est.device!r}")
    if est.cache_dir is not None and not isinstance(est.cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be None or a folder path, got {type(est.cache_dir).__name__}")
    if not isinstance(est.reuse_features, (bool, np.bool_)):
        raise TypeError(f"reuse_features must be True or False, got {est.reuse_features!r}")
    if est.fine_tune_layers and est.fine_tune_blocks:
        raise ValueError(f"fine_tune_layers={est.fine_tune_layers} and fine_tune_blocks={est.fine_tune_blocks}: "
                         "give one of them (the last N layers with parameters, or the last N blocks)")
    seed(est.random_state)  # its type


def seed(random_state):
    """tlc's seed from random_state, as scikit-learn reads it: an int is the seed; a RandomState draws one (so
    successive fits with the same object differ, and a copy of its state repeats them); None draws one from
    numpy's global RandomState (np.random.seed makes it repeatable)."""
    if random_state is None:
        return int(np.random.mtrand._rand.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_)):
        if random_state < 0 or random_state >= 2 ** 64:
            raise ValueError(f"random_state must be an int in [0, 2**64), got {random_state}")
        return int(random_state)
    raise TypeError(f"random_state must be None, an int or a numpy RandomState, got {random_state!r} "
                    f"({type(random_state).__name__})")


def check_labels(y, n, name="y"):
    """y as a 1-D array of class labels for n images: a ValueError for continuous values, NaN, None, a mix of
    strings and numbers, multi-output labels or another length."""
    if y is None:
        raise ValueError(f"{name} is None: labels are needed unless X is a tlc.ImageFolder")
    if hasattr(y, "__array__") or isinstance(y, (list, tuple)):
        arr = np.asarray(y)
    else:
        raise TypeError(f"{name} must be an array-like of class labels, got {type(y).__name__}")
    if isinstance(y, (list, tuple)) and arr.dtype.kind in "US" and not all(isinstance(v, str) for v in y):
        arr = np.asarray(y, dtype=object)  # numpy would turn ['a', 1] into ['a', '1']: keep the mix visible
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()  # a column vector, as scikit-learn's column_or_1d takes it
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class label per image), got shape {arr.shape}; "
                         "multi-output and multi-label targets are not supported")
    if len(arr) != n:
        raise ValueError(f"X has {n} images but {name} has {len(arr)} labels: one label per image")
    if arr.dtype == object:
        for i, v in enumerate(arr):
            if v is None:
                raise ValueError(f"{name}[{i}] is None: every image needs a label (drop unlabelled images first)")
            if isinstance(v, float) and np.isnan(v):
                raise ValueError(f"{name}[{i}] is NaN: every image needs a label (drop unlabelled images first)")
        kinds = {"str" if isinstance(v, str) else "number" if isinstance(v, numbers.Number) else type(v).__name__
                 for v in arr}
        if len(kinds) > 1:
            raise ValueError(f"{name} mixes label types ({', '.join(sorted(kinds))}): use one type, e.g. "
                             f"y.astype(str)")
    elif arr.dtype.kind == "f" and np.isnan(arr).any():
        i = int(np.flatnonzero(np.isnan(arr))[0])
        raise ValueError(f"{name}[{i}] is NaN: every image needs a label (drop unlabelled images first)")
    elif arr.dtype.kind == "c" or arr.dtype.kind not in "biufUSO":
        raise ValueError(f"{name} has dtype {arr.dtype}: class labels are ints, strings or bools")
    kind = _target_type(arr)
    if kind == "continuous":
        example = next(v for v in arr.tolist() if float(v) != int(v))
        raise ValueError(f"{name} looks continuous (e.g. {example!r}): TransferClassifier predicts classes; "
                         "give class labels (ints or strings), or bin the values first (np.digitize)")
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"{name} is a {kind!r} target; TransferClassifier takes binary or multiclass labels")
    return arr


def _target_type(arr):
    try:
        from sklearn.utils.multiclass import type_of_target
    except ImportError:  # without scikit-learn: the same rule for the cases that matter here
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            return "continuous"
        return "binary" if len(np.unique(arr)) <= 2 else "multiclass"
    return type_of_target(arr, input_name="y")


def check_sample_weight(sample_weight, n):
    """sample_weight as a float array of n weights (a scalar weighs every image the same), or None: a
    ValueError for another length, NaN, infinity, a negative weight or weights that are all 0."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, (bool, np.bool_)):
        sample_weight = np.full(n, sample_weight)
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"sample_weight must be numbers, one per image; got {type(sample_weight).__name__}") from None
    if w.ndim != 1 or len(w) != n:
        raise ValueError(f"sample_weight has shape {w.shape} but X has {n} images: give one weight per image")
    with np.errstate(over="ignore"):
        w32 = w.astype(np.float32)  # what training uses: a weight beyond float32's range is checked as it ends up
    bad = np.flatnonzero(~np.isfinite(w32) | (w32 < 0))
    if len(bad):
        raise ValueError(f"sample_weight[{bad[0]}] is {w[bad[0]]}: weights must be finite (in float32) and >= 0")
    if not w32.any():
        raise ValueError("sample_weight is 0 for every image (in float32): give at least one image a positive weight")
    return w32


def drop_empty_classes(classes, codes, kept, total):
    """(classes, codes) without the classes none of whose images could be decoded (a warning names them); a
    ValueError when no image, or images of only one class, could be decoded."""
    if len(kept) == 0:
        raise ValueError(f"none of the {total} images of X could be decoded (see the warning above for the first "
                         "file and the reason): nothing to train on")
    present = np.unique(codes[kept])
    if len(present) == len(classes):
        return classes, codes
    lost = [c for i, c in enumerate(classes.tolist()) if i not in set(present.tolist())]
    if len(present) < 2:
        raise ValueError(f"only the images of class {classes.tolist()[present[0]]!r} could be decoded (every image of "
                         f"{lost[:5]} failed): a classifier needs at least 2 classes")
    warnings.warn(f"class(es) {lost[:5]} dropped: none of their images could be decoded, so the model cannot "
                  "predict them", UserWarning, stacklevel=3)
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return classes[present], remap[codes]


_SIZES_SEEN = set()  # (backbone file digest, image size) that passed check_image_size in this process


def check_image_size(clf, size, backbone):
    """One 1-image pass through the backbone at `size`: a size the backbone cannot take (too small for its
    pooling, or not its fixed size) is a ValueError here rather than a TorchScript traceback mid-fit. Once per
    backbone file and size in a process: the pass builds the frozen engine, which a search's fits on cached
    features never need."""
    import torch

    from ._core import ImageSet
    from ._features import backbone_digest
    seen = (backbone_digest(clf.backbone_path), size)
    if seen in _SIZES_SEEN:
        return
    try:
        clf.pooled_features(ImageSet.from_pixels(torch.zeros((1, size, size, 3), dtype=torch.uint8), [0]))
        _SIZES_SEEN.add(seen)
    except RuntimeError as e:
        # A TorchScript failure's last line is the reason ("RuntimeError: ... Kernel size can't be greater than
        # actual input size"); the lines before it are the interpreter's traceback.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        reason = lines[-1][:300] if lines else type(e).__name__
        raise ValueError(f"image_size={size} does not work with the backbone {backbone}: it fails on a {size}x{size} "
                         f"input ({reason}). Use a larger image_size (the backbone's native size, e.g. 224, is the "
                         "safe choice; scripts/export_backbone.py --list shows it)") from None
