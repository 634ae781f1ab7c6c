"""Every common form of X gives the same pixels (so the same probabilities) as the files themselves; everything
else is refused with a message that says what to pass."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import tlc
from conftest import make


@pytest.fixture(scope="module")
def fitted(small_folder):
    folder = tlc.ImageFolder(small_folder)
    clf = make(epochs=2, lr=1e-2, reuse_features=False).fit(folder)
    paths = folder.paths[::4]  # 9 images, 3 of each class
    gray = np.stack([np.asarray(Image.open(p).convert("L")) for p in paths])  # the sample is 28x28 grayscale
    return clf, paths, gray, clf.predict_proba(paths)


def test_string_arrays_and_paths(fitted):
    clf, paths, _, ref = fitted
    assert np.allclose(clf.predict_proba(np.array(paths)), ref, atol=1e-6)
    assert np.allclose(clf.predict_proba(np.array(paths, dtype="S")), ref, atol=1e-6)
    assert np.allclose(clf.predict_proba(np.array(paths, dtype=object)), ref, atol=1e-6)


def test_grayscale_float_and_integer_arrays(fitted):
    clf, _, gray, ref = fitted
    for X in (gray, gray[..., None], np.repeat(gray[..., None], 3, -1), gray.astype(np.float32) / 255,
              gray.astype(np.float64), gray.astype(np.int64), torch.from_numpy(gray)):
        assert np.allclose(clf.predict_proba(X), ref, atol=1e-5), type(X)


def test_lists_of_arrays_pil_images_and_tensors(fitted):
    clf, paths, gray, ref = fitted
    assert np.allclose(clf.predict_proba(list(gray)), ref, atol=1e-5)
    assert np.allclose(clf.predict_proba([Image.open(p) for p in paths]), ref, atol=1e-5)
    assert np.allclose(clf.predict_proba([torch.from_numpy(g) for g in gray]), ref, atol=1e-5)
    # Sizes may differ: each image is resized as its file would be.
    big = np.asarray(Image.fromarray(gray[0]).resize((56, 40)))
    mixed = clf.predict_proba([big] + list(gray[1:]))
    assert np.allclose(mixed[1:], ref[1:], atol=1e-5) and mixed.shape == ref.shape


def test_pandas_series(fitted):
    pd = pytest.importorskip("pandas")
    clf, paths, gray, ref = fitted
    assert np.allclose(clf.predict_proba(pd.Series(paths)), ref, atol=1e-6)
    assert np.allclose(clf.predict_proba(pd.Series(list(gray))), ref, atol=1e-5)
    # A DataFrame's columns: paths as X, a categorical or string column as y, a Series as sample_weight; a
    # non-default index (a filtered frame) changes nothing. The whole frame as X is refused, naming the fix.
    df = pd.DataFrame({"path": paths, "label": pd.Categorical([os.path.basename(os.path.dirname(p)) for p in paths])},
                      index=np.arange(100, 100 + len(paths)))
    fit = make(epochs=1, reuse_features=False).fit(df["path"], df["label"], sample_weight=pd.Series(1.0, df.index))
    assert list(fit.classes_) == sorted(set(df["label"].astype(str)))
    assert fit.predict_proba(df["path"]).shape == (len(paths), len(fit.classes_))
    with pytest.raises(ValueError, match=r"df\['path'\]"):
        fit.predict(df)


class _Series:
    """Stands in for pandas.Series where pandas is not installed: tlc recognises a Series by its type's module
    and name and takes its values (to_numpy), as it does pandas'."""
    __module__ = "pandas.core.series"

    def __init__(self, values):
        self.values = values

    def to_numpy(self):
        out = np.empty(len(self.values), dtype=object)
        out[:] = list(self.values)
        return out


_Series.__name__ = _Series.__qualname__ = "Series"


def test_series_like_objects_without_pandas(fitted):
    clf, paths, gray, ref = fitted
    assert np.allclose(clf.predict_proba(_Series(paths)), ref, atol=1e-6)
    assert np.allclose(clf.predict_proba(_Series(list(gray))), ref, atol=1e-5)
    frame = type("DataFrame", (), {"__module__": "pandas.core.frame"})()
    with pytest.raises(ValueError, match=r"df\['path'\]"):
        clf.predict_proba(frame)


def test_fit_takes_the_same_forms(small_folder):
    folder = tlc.ImageFolder(small_folder)
    gray = np.stack([np.asarray(Image.open(p).convert("L")) for p in folder.paths])
    a = make(epochs=1, reuse_features=False).fit(folder.paths, folder.y).predict_proba(folder.paths[:5])
    b = make(epochs=1, reuse_features=False).fit(gray.astype(np.float32) / 255, folder.y).predict_proba(gray[:5])
    assert np.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("X, match", [
    (np.zeros((2, 8, 8, 3), np.float32) - 0.5, "looks normalized already"),
    (np.full((2, 8, 8, 3), 2.5, np.float32), "scale is unknown"),
    (np.full((2, 8, 8, 3), 300.0, np.float32), "scale is unknown"),
    (np.full((2, 8, 8, 3), np.nan, np.float32), "NaN"),
    (np.full((2, 8, 8), 1000, np.uint16), "8-bit pixels"),
    (np.zeros((2, 3, 8, 8), np.uint8), r"channels first.*transpose\(0, 2, 3, 1\)"),
    (np.zeros((2, 8, 8, 4), np.uint8), "alpha"),
    (np.zeros((8, 8, 3), np.uint8), r"one RGB image.*x\[None\]"),
    (np.zeros((2, 8), np.uint8), "pass image paths"),
    (np.zeros((2, 8, 8, 3), bool), "pass image paths"),
    (np.zeros((2, 2), dtype="U3"), "must be 1-D"),
    ([np.zeros((8, 8, 3), np.uint8), "a.png"], "cannot be mixed"),
    ({"a": 1}, "pass image paths"),
    (5, "pass image paths"),
    (Image.new("RGB", (8, 8)), r"put it in a list"),
])
def test_everything_else_is_refused_saying_what_to_pass(fitted, X, match):
    clf = fitted[0]
    with pytest.raises(ValueError, match=match):
        clf.predict_proba(X)


def test_the_float_rule_is_one_scale_for_all_of_x(fitted):
    # Whole numbers up to 255 in a float array are 0..255 pixels; values within [0, 1] are scaled by 255.
    clf, _, gray, ref = fitted
    dark = np.zeros_like(gray, dtype=np.float32)
    dark[0] = gray[0] / 255.0
    assert np.allclose(clf.predict_proba(dark)[0], ref[0], atol=1e-5)
