"""Files that cannot be decoded: fit skips them (and classes left without images) with a warning; predict raises
naming them, or gives NaN rows with on_error="skip"; verify_images / ImageFolder(verify=True) filter them so a
model search over such data scores finitely."""
import os
import shutil

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

import tlc
from conftest import make


@pytest.fixture
def dirty(small_folder, tmp_path):
    """The small folder plus one corrupt file in Bag and a class (Coat) whose only two files are corrupt."""
    root = tmp_path / "dirty"
    shutil.copytree(small_folder, root)
    (root / "Bag" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    os.makedirs(root / "Coat")
    for n in ("a.png", "b.jpg"):
        (root / "Coat" / n).write_bytes(b"not an image")
    return str(root)


def test_fit_skips_and_drops_classes_without_readable_images(dirty):
    folder = tlc.ImageFolder(dirty)
    assert "Coat" in folder.classes and len(folder) == 39
    with pytest.warns(UserWarning) as record:
        clf = make(epochs=1).fit(folder)
    text = " ".join(str(w.message) for w in record)
    assert "3 of 39 file(s) could not be decoded" in text and "['Coat'] dropped" in text, text
    assert clf.classes_.tolist() == ["Bag", "Sneaker", "Trouser"]
    assert clf.predict_proba(folder.paths[:2]).shape == (2, 3)


def test_all_unreadable_or_one_class_left_is_a_value_error(dirty):
    coat = [os.path.join(dirty, "Coat", n) for n in ("a.png", "b.jpg")]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 2 images of X could be decoded"):
        make().fit(coat, ["x", "y"])
    bag = os.path.join(dirty, "Bag", sorted(os.listdir(os.path.join(dirty, "Bag")))[0])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="only the images of class 'a'"):
        make().fit([bag] + coat, ["a", "b", "b"])


def test_predict_raises_naming_the_file_or_skips(dirty):
    folder = tlc.ImageFolder(dirty)
    broken = os.path.join(dirty, "Bag", "zz_broken.png")
    good = [p for p in folder.paths if "Coat" not in p and p != broken][:4]
    with pytest.warns(UserWarning):
        clf = make(epochs=1).fit(tlc.ImageFolder(dirty, verify=True))
    X = good[:2] + [broken] + good[2:]
    with pytest.raises(ValueError, match="zz_broken.png"):
        clf.predict(X)
    skip = clf.set_params(on_error="skip")
    with pytest.warns(UserWarning, match="zz_broken.png"):
        p = skip.predict_proba(X)
    assert np.isnan(p[2]).all() and np.isfinite(np.delete(p, 2, 0)).all()
    with pytest.warns(UserWarning):
        pred = skip.predict(X)
    assert pred[2] is None and all(v in clf.classes_ for v in np.delete(pred, 2))
    y = [folder.y[folder.paths.index(x)] for x in X]
    with pytest.warns(UserWarning):
        s = skip.score(X, y)
    assert s == np.mean(np.delete(pred, 2) == np.delete(np.asarray(y, dtype=object), 2))


def test_verify_images_and_verified_folders(dirty):
    folder = tlc.ImageFolder(dirty)
    ok = tlc.verify_images(folder.paths)
    assert ok.dtype == bool and (~ok).sum() == 3
    assert {os.path.basename(p) for p in np.asarray(folder.paths)[~ok]} == {"zz_broken.png", "a.png", "b.jpg"}
    with pytest.warns(UserWarning, match="3 file"):
        clean = tlc.ImageFolder(dirty, verify=True)
    assert len(clean) == 36 and sum("cannot be decoded" in r for _, r in clean.ignored) == 3


def test_a_search_over_data_with_a_corrupt_file_scores_finitely(dirty):
    folder = tlc.ImageFolder(dirty, min_classes=2)
    keep = [i for i, p in enumerate(folder.paths) if "Coat" not in p]
    paths, y = np.asarray(folder.paths)[keep], folder.y[keep]  # one corrupt Bag file among 37
    grid = {"lr": [1e-3, 1e-2]}
    with pytest.warns(UserWarning):
        raw = GridSearchCV(make(epochs=1), grid, cv=3, error_score=np.nan, refit=False).fit(paths, y)
    assert np.isnan(raw.cv_results_["mean_test_score"]).all()  # the default policy: the fold with it raises
    ok = tlc.verify_images(paths)
    a = GridSearchCV(make(epochs=1), grid, cv=3, error_score="raise").fit(paths[ok], y[ok])
    with pytest.warns(UserWarning):
        b = GridSearchCV(make(epochs=1, on_error="skip"), grid, cv=3, error_score="raise").fit(paths, y)
    for s in (a, b):
        assert np.isfinite(s.cv_results_["mean_test_score"]).all() and np.isfinite(s.best_score_)
    with pytest.warns(UserWarning):
        clean = tlc.ImageFolder(dirty, verify=True)
    scores = cross_val_score(make(epochs=1), clean, clean.y, cv=3)  # ImageFolder through the splitter
    assert np.isfinite(scores).all() and scores.shape == (3,)


def test_later_fits_on_cached_features_decode_nothing(dirty, monkeypatch, tmp_path):
    # A model search's later fits find every file's features in the caches (or know the file fails): they decode
    # nothing, yet skip and drop exactly what the first fit did, and train the same model.
    folder = tlc.ImageFolder(dirty)
    scans = []
    real = tlc._core.ImageSet.scan
    monkeypatch.setattr(tlc._core.ImageSet, "scan", staticmethod(lambda paths, *a, **k: scans.append(len(paths))
                                                                 or real(paths, *a, **k)))
    good = [p for p in folder.paths if "broken" not in p and "Coat" not in p]
    for cached in ({}, {"reuse_features": False, "cache_dir": str(tmp_path / "cache")}):
        tlc.clear_feature_cache()
        scans.clear()
        fits = []
        for _ in range(2):
            with pytest.warns(UserWarning) as record:
                fits.append(make(epochs=2, **cached).fit(folder))
            text = " ".join(str(w.message) for w in record)
            assert "3 of 39 file(s) could not be decoded" in text and "['Coat'] dropped" in text, text
        assert scans == [39], (cached, scans)  # the first fit decoded, the second did not
        assert fits[1].used_cached_features_ and fits[1].classes_.tolist() == ["Bag", "Sneaker", "Trouser"]
        assert np.allclose(fits[0].predict_proba(good), fits[1].predict_proba(good), atol=1e-6)
    # Fine-tuning trains on the pixels: it decodes.
    scans.clear()
    with pytest.warns(UserWarning):
        make(epochs=1, fine_tune_layers=1, fine_tune_epochs=1).fit(folder)
    assert scans == [39]
