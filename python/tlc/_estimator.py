"""tlc.TransferClassifier: scikit-learn's estimator conventions over tlc's C++ TransferClassifier.

__init__ only stores parameters (so get_params / set_params / clone work); fit trains and sets the fitted
attributes (classes_, n_features_in_, history_, model_); predict / predict_proba / score use them."""
import inspect
import os
import warnings

import numpy as np
import torch

from . import _core, _features, _persist, _validation
from ._data import call
from ._inputs import Images, verify_images
from ._progress import epoch_printer, progress_sink

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError
except ImportError:  # scikit-learn is optional: the same conventions, minimally
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

    X: image paths, pixels or a tlc.ImageFolder (then y may be omitted: the folder's classes); docs/PYTHON.md
    lists every form. y: class labels (ints, strings or bools). Parameters mean what `tlc train`'s flags of the
    same name mean; random_state is --seed (None, an int or a numpy RandomState, as in scikit-learn);
    class_weight="balanced" is --class-weights auto; augment / augment_views are --augment / --augment-views and
    tta=N blends N test-time views into predictions (docs/AUGMENTATION.md); reuse_features turns the in-process feature cache
    (tlc.feature_cache_info) on or off; cache_dir adds a feature cache on disk that processes share;
    on_error="skip" gives NaN probabilities for images that cannot be decoded instead of a ValueError, and
    score() leaves them out."""

    def __init__(self, backbone=None, image_size=160, normalize="auto", resize="stretch", epochs=10, lr=1e-4,
                 optimizer="rmsprop", batch_size=32, hidden=0, dropout=0.0, fine_tune_layers=0, fine_tune_blocks=0,
                 fine_tune_epochs=0, fine_tune_lr=1e-5, augment="none", augment_views=0, tta=0, class_weight=None, device="auto",
                 precision="auto", engine="auto", cache_features="auto", cache_dir=None, reuse_features=True,
                 on_error="raise", random_state=42, verbose=0):
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
        self.augment_views = augment_views
        self.tta = tta
        self.class_weight = class_weight
        self.device = device
        self.precision = precision
        self.engine = engine
        self.cache_features = cache_features
        self.cache_dir = cache_dir
        self.reuse_features = reuse_features
        self.on_error = on_error
        self.random_state = random_state
        self.verbose = verbose

    # --- training -------------------------------------------------------------------------------------------
    def _options(self):
        o = {k: getattr(self, k) for k in _SAME_NAME}
        o["epochs"], o["batch_size"], o["hidden"] = int(self.epochs), int(self.batch_size), int(self.hidden)
        o["lr"], o["fine_tune_lr"], o["dropout"] = float(self.lr), float(self.fine_tune_lr), float(self.dropout)
        for k in ("fine_tune_layers", "fine_tune_blocks", "fine_tune_epochs"):
            o[k] = int(o[k])
        o["augment_views"] = int(self.augment_views)
        o["seed"] = _validation.seed(self.random_state)
        o["class_weights"] = self.class_weight == "balanced"
        # The feature caches (in memory and under cache_dir) are the Python layer's (tlc/_features.py): the
        # C++ disk cache, keyed by a whole set, would be read only after the features were already computed.
        o["cache_dir"] = ""
        return o

    def fit(self, X, y=None, eval_set=None, sample_weight=None):
        """Trains on X, y; eval_set=(X_val, y_val) is validated after every epoch (history_'s val_loss/val_acc).
        sample_weight: one weight >= 0 per image (or a scalar for all); each batch's loss is the weighted mean
        sum(w * loss) / sum(w), times the class weights of class_weight="balanced". Files that cannot be
        decoded are skipped with a warning (a class left without images is dropped, with a warning); their
        weights go with them. Returns self."""
        _validation.check_params(self)
        images = Images(X)
        if y is None and images.folder is not None:
            y = images.folder.y
        y = _validation.check_labels(y, len(images))
        weights = _validation.check_sample_weight(sample_weight, len(images))
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes.tolist()[0]!r}): a classifier needs at least 2")
        size, resize = int(self.image_size), self.resize
        options = self._options()  # once: its seed also keys the cached views
        clf = self._classifier(classes, options)
        _validation.check_image_size(clf, size, self.backbone)
        aug = _core.canonical_augment(self.augment)
        # Fresh views (augment_views=0) are new every epoch: no training feature for a provider to fill (the
        # classifier scores the validation images from features it computes once itself).
        caching = self._caching() and not (aug not in ("none", "flip") and int(self.augment_views) == 0)
        disk = os.fspath(self.cache_dir) if self.cache_dir is not None else None
        memory = bool(self.reuse_features)
        pool = None  # the K views of augment_views, cached per image under the augmentation and the seed
        if caching and aug not in ("none", "flip") and int(self.augment_views) > 0:
            pool = (aug, options["seed"], int(self.augment_views))
        cache_key = _features.setting(clf, self.precision) if caching else None
        # When the caches hold every file's features (a model search's later fits), nothing is decoded.
        ready = None
        if caching and images.kind == "paths" and not self._fine_tunes():
            ready = _features.undecoded_set(images, codes, size, resize, cache_key, aug == "flip", pool, memory, disk)
        train, kept, broken = images.image_set(codes, size, resize, "X", ready)
        if ready is None and broken:
            _features.note_broken(images, broken)
        n_classes = len(classes)
        classes, codes = _validation.drop_empty_classes(classes, codes, kept, len(images))
        if len(classes) < n_classes:  # the set's labels are indices into the classes that are left
            labels = [int(c) for c in codes[kept]]
            train = _core.ImageSet.from_pixels(train.pixels, labels, "X") if train.in_memory else \
                _core.ImageSet.on_demand(train.paths, labels, size, resize)
            clf = self._classifier(classes, options)
        if weights is not None:
            if not weights[kept].any():
                raise ValueError("sample_weight is 0 for every image that could be decoded: nothing to train on")
            train.set_weights(weights[kept].tolist())
        keys = _take(images.keys(), kept) if caching else None
        val = vkeys = None
        if eval_set is not None:
            vimages = Images(eval_set[0])
            vy = _validation.check_labels(eval_set[1], len(vimages), "eval_set's y")
            unknown = sorted(set(vy.tolist()) - set(classes.tolist()), key=str)
            if unknown:
                raise ValueError(f"eval_set has labels that y does not: {unknown[:5]} (classes: {classes.tolist()})")
            val, vkept, _ = vimages.image_set(np.searchsorted(classes, vy), size, resize, "eval_set")
            vkeys = _take(vimages.keys(), vkept) if caching else None
        computed = None
        if caching:
            computed = _features.provide(clf, cache_key, "train", train, keys, aug == "flip", memory, disk, pool)
            if val is not None:
                _features.provide(clf, cache_key, "val", val, vkeys, False, memory, disk)
        progress = progress_sink(self.verbose)
        clf.set_progress(progress)
        try:
            history = clf.fit(train, val, epoch_printer() if self.verbose else None)
        finally:
            clf.set_progress(None)
            if progress is not None:
                progress.close()
        self.model_ = clf
        self._trained_augment_ = aug  # the views tta= draws from
        self.classes_ = classes
        self.n_features_in_ = clf.image_size * clf.image_size * 3  # pixel values per image the model sees
        self.history_ = history
        # True when the head trained on stored features (in memory or under cache_dir) and this fit ran the
        # backbone over none of its training images.
        self.used_cached_features_ = computed == 0 and clf.used_first_pass
        # While the backbone is the file's (no fine-tuning epoch ran), predictions take their features from the
        # caches too, under the key of this fit: a model search's scoring then runs the backbone once per image
        # as well. Decided here, once; None: predictions run the model on the pixels.
        tuned = any(e["phase"] == "fine-tune" for e in history)
        self._feature_key_ = cache_key if self.reuse_features and not tuned else None
        return self

    def _classifier(self, classes, options):
        return call(_core.Classifier, str(self.backbone), [str(c) for c in classes], int(self.image_size),
                    self.normalize, self.resize, options, path=str(self.backbone))

    def _fine_tunes(self):
        return int(self.fine_tune_epochs) > 0 and (int(self.fine_tune_layers) > 0 or int(self.fine_tune_blocks) > 0)

    def _caching(self):
        # int8 features depend on the images the engine was calibrated on (each fit's own training images), so
        # they are not shared between fits.
        stores = bool(self.reuse_features) or self.cache_dir is not None
        return stores and self.epochs > 0 and self.cache_features != "off" and self.precision != "int8"

    # --- prediction -----------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")

    def predict_proba(self, X):
        """Class probabilities [N, len(classes_)], columns in classes_ order. An image that cannot be decoded
        is a ValueError naming it, or (on_error="skip") a row of NaN, with a warning."""
        self._check_fitted()
        m = self.model_
        images = Images(X)
        rows = np.arange(len(images))
        if getattr(self, "on_error", "raise") == "skip" and images.kind == "paths":
            ok = verify_images(images.data)
            rows = np.flatnonzero(ok)
            if len(rows) < len(images):
                bad = [images.data[i] for i in np.flatnonzero(~ok)]
                warnings.warn(f"{len(bad)} of {len(images)} image(s) could not be decoded, their probabilities "
                              f"are NaN (on_error='skip'): {', '.join(bad[:3])}", UserWarning, stacklevel=2)
        out = np.full((len(images), len(self.classes_)), np.nan, dtype=np.float32)
        if len(rows) == 0:
            return out
        step = max(1, int(self.batch_size))
        key = getattr(self, "_feature_key_", None)
        tta = int(getattr(self, "tta", 0))
        if tta > 0:  # test-time views run the backbone on the pixels
            aug = getattr(self, "_trained_augment_", None) or _core.canonical_augment(self.augment)
            aug = "flip" if aug == "none" else aug
            pixels = images.take(rows).pixels(m.image_size, m.resize)
            parts = [m.predict_proba_tta(pixels[b:b + step], tta, aug) for b in range(0, pixels.shape[0], step)]
        elif key is not None:
            disk = os.fspath(self.cache_dir) if self.cache_dir is not None else None
            feats = _features.features_for(m, key, images, rows, disk)
            parts = [m.predict_proba_features(feats[b:b + step]) for b in range(0, feats.shape[0], step)]
        else:
            pixels = images.take(rows).pixels(m.image_size, m.resize)
            parts = [m.predict_proba(pixels[b:b + step]) for b in range(0, pixels.shape[0], step)]
        out[rows] = torch.cat(parts).numpy()
        return out

    def predict_log_proba(self, X):
        """log(predict_proba(X)) (-inf where a probability is 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each image (an element of classes_). With on_error="skip", images that
        cannot be decoded get None (the result is then an object array)."""
        self._check_fitted()
        p = self.predict_proba(X)
        bad = np.isnan(p).any(axis=1)
        out = self.classes_[np.argmax(np.nan_to_num(p, nan=-1.0), axis=1)]
        if bad.any():
            out = out.astype(object)
            out[bad] = None
        return out

    def score(self, X, y, sample_weight=None):
        """Accuracy on (X, y). With on_error="skip", images that cannot be decoded are left out (with the
        warning predict_proba gives), so a model search over data with such a file still scores finitely."""
        self._check_fitted()
        pred = self.predict(X)
        y = np.asarray(y)
        keep = np.asarray([p is not None for p in pred]) if pred.dtype == object else np.ones(len(pred), bool)
        if not keep.any():
            raise ValueError("no image of X could be decoded: nothing to score")
        w = None if sample_weight is None else np.asarray(sample_weight)[keep]
        return float(np.average(pred[keep] == y[keep], weights=w))

    # --- scikit-learn's tags ---------------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is images: a 1-D array of paths, or pixels [N,H,W] (gray) / [N,H,W,C]; never a 2-D feature table.
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.input_tags.positive_only = True  # pixel values are >= 0
        tags.target_tags.required = True  # (unless X is a tlc.ImageFolder, which carries its labels)
        tags.classifier_tags.multi_label = False
        return tags

    def _more_tags(self):  # the same for scikit-learn < 1.6, which reads tags from here
        return {"X_types": ["string", "3darray"], "requires_y": True, "requires_positive_X": True}

    # --- model files and pickling ---------------------------------------------------------------------------
    def save(self, path):
        """Writes the self-contained model file `tlc train` writes (tlc predict, tlc.load and torch.jit.load
        read it), with the labels (values and dtype), the constructor parameters and the history inside, so
        that tlc.load gives this estimator back."""
        self._check_fitted()
        return _persist.save_file(self, path)

    def __getstate__(self):
        # pickle, copy.deepcopy, joblib and loky's worker processes: the C++ model travels as its file's bytes.
        state = dict(super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__)
        model = state.pop("model_", None)
        if model is not None:
            state["_model_file_"] = _persist.model_bytes(model)
        state["_tlc_versions_"] = _persist.versions()
        return state

    def __setstate__(self, state):
        state = dict(state)
        data = state.pop("_model_file_", None)
        _persist.check_versions(state.pop("_tlc_versions_", None), f"this pickled {type(self).__name__}")
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:
            self.__dict__.update(state)
        # A pickle from a tlc with fewer parameters: the ones added since take their defaults.
        for name, p in inspect.signature(type(self).__init__).parameters.items():
            if name != "self" and name not in self.__dict__:
                setattr(self, name, p.default)
        if data is not None:
            self.model_ = _persist.model_from_bytes(data, _persist.load_options(self.__dict__))
            _warn_uncalibrated(self, f"this unpickled {type(self).__name__}")
            key = getattr(self, "_feature_key_", None)
            # The cache key names the engine and device the features were computed with: predictions keep
            # using cached features only where the loaded model computes the same ones.
            if key is not None and key[-2:] != (self.model_.engine_choice, self.model_.device):
                self._feature_key_ = None


def load(path, device=None, batch_size=None):
    """A fitted TransferClassifier from a model file (or run folder) written by save() or by the CLI.

    A file from save() gives back the estimator that was saved: its classes_ (label values and dtype), every
    constructor parameter (so clone(loaded).fit works where the backbone file is) and history_. A CLI file has
    no such facts: classes_ are its class names (strings) and the parameters are the file's image_size,
    normalize, resize and augment (its training augmentation, which tta= draws its views from).
    device / batch_size: None keeps the saved ones (else "auto" and 32)."""
    path = os.fspath(path)
    facts = _persist.read_extra(path)
    params = _persist.decode_params(facts["params"]) if facts else {}
    if facts:
        _persist.check_versions(facts.get("versions"), path)
    device = device if device is not None else params.get("device", "auto")
    batch_size = batch_size if batch_size is not None else params.get("batch_size", 32)
    options = _persist.load_options(dict(params, device=device, batch_size=batch_size))
    m = call(_core.Classifier.load, path, options, path=path)
    est = TransferClassifier()
    # A CLI file's training augmentation (the default of tta='s views) comes from the file; save()'s are in params.
    params.update(image_size=m.image_size, normalize=params.get("normalize", m.normalize), resize=m.resize,
                  augment=params.get("augment", m.trained_augment), device=device, batch_size=batch_size)
    est.set_params(**{k: v for k, v in params.items() if k in est.get_params(deep=False)})
    est.model_ = m
    est._trained_augment_ = m.trained_augment  # tta='s views, as after fit (a later set_params(augment=) keeps them)
    if facts:
        est.classes_ = _persist.decode_classes(facts["classes"])
        if [str(c) for c in est.classes_] != list(m.classes):
            raise ValueError(f"{path}: its labels {est.classes_.tolist()[:5]} do not match its class names "
                             f"{list(m.classes)[:5]}; the file was changed after save(): save it again")
        est.history_ = facts.get("history", [])
    else:
        est.classes_ = np.asarray(m.classes, dtype=object)
        est.history_ = []
    est.n_features_in_ = m.image_size * m.image_size * 3
    _warn_uncalibrated(est, path)
    return est


def _warn_uncalibrated(est, what):
    """int8 engines are calibrated on fit's training images, which a saved or pickled estimator does not carry:
    a restored one predicts in fp32 (its engine line says why), and says so once here."""
    if getattr(est, "precision", None) == "int8":
        warnings.warn(f"{what} was fitted with precision='int8', whose calibration images are not saved with it: "
                      "it predicts in fp32 (TorchScript) until it is fitted again", UserWarning, stacklevel=3)


def _take(items, indices):
    return [items[i] for i in indices]
