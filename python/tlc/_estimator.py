"""tlc.TransferClassifier: scikit-learn's estimator conventions over tlc's C++ TransferClassifier.

__init__ only stores parameters (so get_params / set_params / clone work); fit trains and sets the fitted
attributes (classes_, n_features_in_, history_, model_); predict / predict_proba / score use them."""
import math

import numpy as np
import torch

from . import _core, _features
from ._data import call
from ._inputs import Images

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError
except ImportError:  # scikit-learn is optional: the same conventions, minimally
    import inspect

    class NotFittedError(ValueError, AttributeError):
        pass

    class BaseEstimator:
        def get_params(self, deep=True):
            names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
            return {n: getattr(self, n) for n in names}

        def set_params(self, **params):
            valid = self.get_params()
            for k, v in params.items():
                if k not in valid:
                    raise ValueError(f"invalid parameter {k!r} for {type(self).__name__}; valid: {sorted(valid)}")
                setattr(self, k, v)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class ClassifierMixin:
        def score(self, X, y, sample_weight=None):
            return float(np.average(self.predict(X) == np.asarray(y), weights=sample_weight))

# TrainOptions fields the estimator passes under the same name.
_SAME_NAME = ("epochs", "batch_size", "optimizer", "lr", "hidden", "dropout", "device", "augment", "precision",
              "engine", "fine_tune_layers", "fine_tune_blocks", "fine_tune_epochs", "fine_tune_lr", "cache_features")


class TransferClassifier(ClassifierMixin, BaseEstimator):
    """An image classifier: a frozen pretrained backbone (a TorchScript file, see models/README.md) with a new
    dense head trained on your images, optionally fine-tuning the backbone's last layers afterwards.

    X: a sequence of image paths, a uint8 array [N,H,W,3] (RGB; resized like files), or a tlc.ImageFolder
    (then y may be omitted: the folder's classes). y: any labels (strings or ints).
    Parameters mean what `tlc train`'s flags of the same name mean; `random_state` is --seed, `reuse_features`
    turns the in-process feature cache (tlc.feature_cache_info) on or off."""

    def __init__(self, backbone=None, image_size=160, normalize="auto", resize="stretch", epochs=10, lr=1e-4,
                 optimizer="rmsprop", batch_size=32, hidden=0, dropout=0.0, fine_tune_layers=0, fine_tune_blocks=0,
                 fine_tune_epochs=0, fine_tune_lr=1e-5, augment="none", device="auto", precision="auto", engine="auto",
                 cache_features="auto", cache_dir=None, reuse_features=True, random_state=42, verbose=0):
        self.backbone = backbone
        self.image_size = image_size
        self.normalize = normalize
        self.resize = resize
        self.epochs = epochs
        self.lr = lr
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.hidden = hidden
        self.dropout = dropout
        self.fine_tune_layers = fine_tune_layers
        self.fine_tune_blocks = fine_tune_blocks
        self.fine_tune_epochs = fine_tune_epochs
        self.fine_tune_lr = fine_tune_lr
        self.augment = augment
        self.device = device
        self.precision = precision
        self.engine = engine
        self.cache_features = cache_features
        self.cache_dir = cache_dir
        self.reuse_features = reuse_features
        self.random_state = random_state
        self.verbose = verbose

    # --- training -------------------------------------------------------------------------------------------
    def _options(self, images):
        o = {k: getattr(self, k) for k in _SAME_NAME}
        o["seed"] = 42 if self.random_state is None else int(self.random_state)
        # The disk cache keys images by path: arrays have none, so they never use it.
        o["cache_dir"] = "" if self.cache_dir is None or images.kind == "array" else str(self.cache_dir)
        return o

    def fit(self, X, y=None, eval_set=None):
        """Trains on X, y; eval_set=(X_val, y_val) is validated after every epoch (history_'s val_loss/val_acc).
        Returns self."""
        if self.backbone is None:
            raise ValueError("backbone is None: pass backbone='path/to/backbone.pt' (models/README.md tells how to "
                             "make one)")
        if self.fine_tune_layers and self.fine_tune_blocks:
            raise ValueError(f"fine_tune_layers={self.fine_tune_layers} and fine_tune_blocks={self.fine_tune_blocks}: "
                             "give one of them (the last N layers with parameters, or the last N blocks)")
        images = Images(X)
        if y is None:
            if images.folder is None:
                raise ValueError("y is None: labels are needed unless X is a tlc.ImageFolder")
            y = images.folder.y
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(images):
            raise ValueError(f"X has {len(images)} images but y has shape {y.shape}: one label per image")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes[0]!r}): a classifier needs at least 2")
        codes = np.searchsorted(classes, y)
        clf = call(_core.Classifier, str(self.backbone), [str(c) for c in classes], int(self.image_size),
                   self.normalize, self.resize, self._options(images), path=str(self.backbone))
        train, kept = images.image_set(codes, clf.image_size, clf.resize, "X")
        keys = _take(images.keys(), kept) if self._reuse() else None
        val = vkeys = None
        if eval_set is not None:
            vimages = Images(eval_set[0])
            vy = np.asarray(eval_set[1])
            unknown = sorted(set(vy.tolist()) - set(classes.tolist()), key=str)
            if unknown:
                raise ValueError(f"eval_set has labels that y does not: {unknown[:5]} (classes: {classes.tolist()})")
            val, vkept = vimages.image_set(np.searchsorted(classes, vy), clf.image_size, clf.resize, "eval_set")
            vkeys = _take(vimages.keys(), vkept) if self._reuse() else None
        cache_key = _features.setting(clf, self.precision) if keys is not None else None
        if keys is not None:
            _features.provide(clf, cache_key, "train", train, keys, self.augment == "flip")
            if val is not None:
                _features.provide(clf, cache_key, "val", val, vkeys, False)
        progress = _progress(self.verbose)
        clf.set_progress(progress)
        try:
            history = clf.fit(train, val, _epoch_printer() if self.verbose else None)
        finally:
            clf.set_progress(None)
            if progress is not None:
                progress.close()
        self.model_ = clf
        self.classes_ = classes
        self.n_features_in_ = clf.image_size * clf.image_size * 3  # pixel values per image the model sees
        self.history_ = history
        self.used_cached_features_ = clf.used_first_pass
        # While the backbone is the file's (no fine-tuning epoch ran), predictions take their features from the
        # in-process cache too, under the key of this fit: a model search's scoring then runs the backbone once
        # per image as well. Decided here, once; None: predictions run the model on the pixels.
        tuned = any(e["phase"] == "fine-tune" for e in history)
        self._feature_key_ = cache_key if not tuned else None
        return self

    def _reuse(self):
        # int8 features depend on the images the engine was calibrated on (each fit's own training images), so
        # they are not shared between fits.
        return (bool(self.reuse_features) and self.epochs > 0 and self.cache_features != "off"
                and self.precision != "int8")

    # --- prediction -----------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")

    def predict_proba(self, X):
        """Class probabilities [N, len(classes_)], columns in classes_ order."""
        self._check_fitted()
        m = self.model_
        images = Images(X)
        step = max(1, int(self.batch_size))
        if getattr(self, "_feature_key_", None) is not None:
            feats = _features.features_for(m, self._feature_key_, images)
            out = [m.predict_proba_features(feats[b:b + step]) for b in range(0, feats.shape[0], step)]
            return torch.cat(out).numpy()
        pixels = images.pixels(m.image_size, m.resize)
        out = [m.predict_proba(pixels[b:b + step]) for b in range(0, pixels.shape[0], step)]
        return torch.cat(out).numpy()

    def predict(self, X):
        """The most probable class of each image (an element of classes_)."""
        self._check_fitted()
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # --- model files ----------------------------------------------------------------------------------------
    def save(self, path):
        """Writes the self-contained model file `tlc train` writes (tlc predict, tlc.load and torch.jit.load
        read it)."""
        self._check_fitted()
        self.model_.save(str(path))
        return str(path)


def load(path, device="auto", batch_size=32):
    """A fitted TransferClassifier from a model file (or run folder) written by the CLI or by save(). Its
    classes_ are the file's class names (strings)."""
    m = call(_core.Classifier.load, str(path), {"device": device, "batch_size": int(batch_size)}, path=str(path))
    est = TransferClassifier(backbone=None, image_size=m.image_size, normalize=m.normalize, resize=m.resize,
                             batch_size=batch_size, device=device)
    est.model_ = m
    est.classes_ = np.asarray(m.classes, dtype=object)
    est.n_features_in_ = m.image_size * m.image_size * 3
    est.history_ = []
    return est


def _take(items, indices):
    return [items[i] for i in indices]


def _epoch_printer():
    tqdm = _tqdm()
    # tqdm.write keeps a bar that is on screen intact.
    out = tqdm.write if tqdm is not None else (lambda line: print(line, flush=True))

    def show(e):
        val = "" if math.isnan(e["val_loss"]) else f"  val_loss {e['val_loss']:.4f}  val_acc {e['val_acc']:.4f}"
        out(f"epoch {e['epoch']} ({e['phase']}): loss {e['loss']:.4f}  acc {e['acc']:.4f}{val}  "
              f"{e['images_per_second']:.0f} img/s")
    return show


def _tqdm():
    try:
        from tqdm.auto import tqdm
        return tqdm
    except ImportError:
        return None


class _Bars:
    """verbose=1 with tqdm installed: a transient tqdm bar per long loop (feature caching, each epoch's steps)."""

    def __init__(self, tqdm):
        self.tqdm, self.bar, self.label = tqdm, None, None

    def __call__(self, label, done, total):
        if self.bar is None or label != self.label or done < self.bar.n:
            self.close()
            self.bar, self.label = self.tqdm(total=total, desc=label, unit="img", leave=False), label
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        self.bar = self.label = None


class _Lines:
    """verbose=2 (or verbose=1 without tqdm: nothing): a plain line when a long loop starts and when it ends."""

    def __init__(self):
        self.last = {}

    def __call__(self, label, done, total):
        if done == total or self.last.get(label, -1) < 0:
            print(f"{label}: {done}/{total}", flush=True)
        self.last[label] = done

    def close(self):
        self.last.clear()


def _progress(verbose):
    """The progress sink for fit: None (verbose=0, or 1 without tqdm), tqdm bars (verbose=1), lines (verbose>=2)."""
    if not verbose:
        return None
    if verbose >= 2:
        return _Lines()
    tqdm = _tqdm()
    return _Bars(tqdm) if tqdm is not None else None
