"""Persistence of a fitted TransferClassifier: pickle / copy.deepcopy / joblib (the model file's bytes plus the
Python attributes) and the scikit-learn facts that ride inside the model file (label values with their dtype,
every constructor parameter, the history), so that tlc.load gives back the estimator that was saved.

The model file stays the CLI's: one TorchScript zip archive. TorchScript archives have a place for extra files
(`<archive>/extra/NAME`, what torch.jit.save(_extra_files=...) writes and torch::jit::load skips unless asked),
so the facts go there as one JSON entry, appended with zipfile: `tlc predict` and torch.jit.load read the file
as before, and nothing travels beside it."""
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

from . import _core

EXTRA_NAME = "tlc_sklearn.json"  # torch.jit.load(path, _extra_files={EXTRA_NAME: ""}) reads it too
_FORMAT = 1


class VersionWarning(UserWarning):
    """A fitted estimator or model file written by another tlc (or torch) version than the one loading it: it
    usually works, but predictions are only guaranteed with the versions that wrote it."""


def versions():
    import torch
    return {"tlc": _core.__version__, "torch": torch.__version__.split("+")[0]}


def check_versions(saved, what):
    """Warns (VersionWarning) when `saved` (a versions() dict) differs from the running versions."""
    if not saved:
        return
    now = versions()
    diff = [f"{k} {saved[k]} (running {now[k]})" for k in now if k in saved and saved[k] != now[k]]
    if diff:
        warnings.warn(f"{what} was written by {', '.join(diff)}; it may not load or predict the same. Refit, or "
                      "load it with the versions that wrote it", VersionWarning, stacklevel=3)


# --- model bytes (pickle) -------------------------------------------------------------------------------------
def model_bytes(model):
    """The model file of a tlc._core.Classifier, as bytes (written to a temporary file: the C++ side saves to
    paths only)."""
    fd, tmp = tempfile.mkstemp(prefix="tlc-pickle-", suffix=".pt")
    os.close(fd)
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        _unlink(tmp)


def load_options(params):
    """The options a loaded model runs with: the estimator's device, batch size, engine and precision (the
    engine and precision decide the frozen passes' arithmetic, so the cached features' key names them)."""
    return {"device": str(params.get("device", "auto")), "batch_size": int(params.get("batch_size", 32)),
            "engine": str(params.get("engine", "auto")), "precision": str(params.get("precision", "auto"))}


def model_from_bytes(data, options):
    """A tlc._core.Classifier from model_bytes(), loaded with `options` (load_options())."""
    fd, tmp = tempfile.mkstemp(prefix="tlc-unpickle-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _core.Classifier.load(tmp, options)
    finally:
        _unlink(tmp)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# --- labels and parameters as JSON ----------------------------------------------------------------------------
def encode_classes(classes):
    classes = np.asarray(classes)
    return {"dtype": "object" if classes.dtype == object else classes.dtype.str, "values": classes.tolist()}


def decode_classes(d):
    dtype = np.dtype(object) if d["dtype"] == "object" else np.dtype(d["dtype"])
    if dtype == object:
        out = np.empty(len(d["values"]), dtype=object)
        out[:] = d["values"]
        return out
    return np.asarray(d["values"], dtype=dtype)


def encode_params(params):
    out = {}
    for k, v in params.items():
        if isinstance(v, np.random.RandomState):
            st = v.get_state()
            v = {"RandomState": [st[0], np.asarray(st[1]).tolist(), int(st[2]), int(st[3]), float(st[4])]}
        elif isinstance(v, os.PathLike):
            v = os.fspath(v)
        elif isinstance(v, np.generic):
            v = v.item()
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            raise TypeError(f"parameter {k}={v!r} cannot be written into the model file (it takes str, numbers, "
                            "bool, None and numpy RandomState); set it to one of those before save()") from None
        out[k] = v
    return out


def decode_params(d):
    out = dict(d)
    rs = out.get("random_state")
    if isinstance(rs, dict) and "RandomState" in rs:
        name, keys, pos, has_gauss, cached = rs["RandomState"]
        r = np.random.RandomState()
        r.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        out["random_state"] = r
    return out


# --- the JSON entry inside the model archive ------------------------------------------------------------------
def write_extra(path, facts):
    """Appends `facts` (JSON) to the TorchScript archive at `path` as `<archive>/extra/EXTRA_NAME`."""
    with zipfile.ZipFile(path, "a") as z:
        names = z.namelist()
        prefix = names[0].split("/", 1)[0]
        target = f"{prefix}/extra/{EXTRA_NAME}"
        if target in names:
            raise RuntimeError(f"{path} already has {target}")  # save() writes a fresh file; a bug otherwise
        # Stored, not deflated: the rest of a TorchScript archive is stored too.
        z.writestr(zipfile.ZipInfo(target, date_time=(1980, 1, 1, 0, 0, 0)),
                   json.dumps(facts), compress_type=zipfile.ZIP_STORED)


def read_extra(path):
    """The JSON entry of a model file (or run folder), or None for a file without one (the CLI's)."""
    if os.path.isdir(path):
        path = os.path.join(path, "model.pt")
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith("/extra/" + EXTRA_NAME):
                    return json.loads(z.read(name).decode("utf-8"))
    except (OSError, zipfile.BadZipFile, ValueError):
        return None  # the C++ loader has already said what is wrong with such a file
    return None


def save_file(est, path):
    """Writes est's model file with the facts inside, atomically (temp file in the same folder, then rename)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        est.model_.save(tmp)
        write_extra(tmp, {"format": _FORMAT, "versions": versions(), "classes": encode_classes(est.classes_),
                          "params": encode_params(est.get_params(deep=False)), "history": est.history_})
        os.replace(tmp, path)
    finally:
        _unlink(tmp)
    return path
