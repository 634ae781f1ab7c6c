"""fit(sample_weight=): a weight of 0 trains as if the image were absent (also when it is a mislabeled one), the
weights go with the images that decode, they combine with class_weight, and bad weights are ValueErrors."""
import numpy as np
import pytest
from sklearn.utils.validation import has_fit_parameter

import tlc
from conftest import make


def full_batch(**kw):
    # One batch holds every image and SGD has no state beyond the step: the head depends on the weighted mean
    # loss only, not on how the images were shuffled.
    return make(epochs=4, batch_size=64, optimizer="sgd", lr=0.05, dropout=0.0, random_state=3, **kw)


def paths_and_labels(folder):
    f = tlc.ImageFolder(folder)
    return list(f.paths), np.asarray(f.y)


def test_the_estimator_says_it_takes_sample_weight():
    assert has_fit_parameter(make(), "sample_weight")


def test_zero_weight_on_mislabeled_images_matches_the_clean_fit(small_folder):
    paths, y = paths_and_labels(small_folder)
    bad = np.array([0, 13, 26])  # one image of each class given another class's label
    noisy = y.copy()
    noisy[bad] = np.roll(y[bad], 1)
    clean = np.setdiff1d(np.arange(len(y)), bad)
    w = np.ones(len(y))
    w[bad] = 0
    weighted = full_batch().fit(paths, noisy, sample_weight=w)
    reference = full_batch().fit([paths[i] for i in clean], y[clean])
    unweighted = full_batch().fit(paths, noisy)
    p = weighted.predict_proba(paths)
    np.testing.assert_allclose(p, reference.predict_proba(paths), atol=1e-5)
    assert np.abs(p - unweighted.predict_proba(paths)).max() > 1e-4  # the weights changed the fit


def test_weight_two_matches_a_duplicated_image_and_scalars_weigh_all(small_folder):
    paths, y = paths_and_labels(small_folder)
    w = np.ones(len(y))
    w[[2, 20]] = 2
    twice = paths + [paths[2], paths[20]]
    p = full_batch().fit(paths, y, sample_weight=w).predict_proba(paths)
    np.testing.assert_allclose(p, full_batch().fit(twice, np.r_[y, y[[2, 20]]]).predict_proba(paths), atol=1e-5)
    # A scalar (or any weights equal for all) is the unweighted fit, with and without class weights.
    for cw in (None, "balanced"):
        plain = full_batch(class_weight=cw).fit(paths[:30], y[:30]).predict_proba(paths)
        scaled = full_batch(class_weight=cw).fit(paths[:30], y[:30], sample_weight=2.5).predict_proba(paths)
        np.testing.assert_allclose(scaled, plain, atol=1e-5)


def test_weights_follow_the_images_that_decode(small_folder, tmp_path):
    paths, y = paths_and_labels(small_folder)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    w = np.ones(len(y) + 1)
    w[0] = 7  # the broken file's weight leaves with it; the rest keep theirs
    with pytest.warns(UserWarning, match="could not be decoded|broken"):
        skipped = full_batch(on_error="skip").fit([str(broken)] + paths, np.r_[y[:1], y], sample_weight=w)
    np.testing.assert_allclose(skipped.predict_proba(paths), full_batch().fit(paths, y).predict_proba(paths),
                               atol=1e-5)


@pytest.mark.parametrize("weights, match", [
    ([1.0, 2.0], "one weight per image"),
    ("negative", ">= 0"),
    ("nan", "finite"),
    ("zeros", "0 for every image"),
    ("text", "numbers"),
])
def test_bad_weights_are_value_errors(small_folder, weights, match):
    paths, y = paths_and_labels(small_folder)
    n = len(y)
    weights = {"negative": np.r_[-1.0, np.ones(n - 1)], "nan": np.r_[np.nan, np.ones(n - 1)],
               "zeros": np.zeros(n), "text": ["a"] * n}.get(weights, weights) if isinstance(weights, str) else weights
    with pytest.raises(ValueError, match=match):
        make().fit(paths, y, sample_weight=weights)


def test_model_selection_routes_sample_weight(small_folder):
    # cross_validate slices fit params per fold (params= in scikit-learn >= 1.4, fit_params= before).
    from sklearn.model_selection import cross_validate
    import sklearn
    paths, y = paths_and_labels(small_folder)
    w = np.where(np.arange(len(y)) % 2 == 0, 1.0, 0.5)
    key = "params" if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 4) else "fit_params"
    r = cross_validate(make(epochs=1), np.asarray(paths), y, cv=2, **{key: {"sample_weight": w}})
    assert len(r["test_score"]) == 2 and all(0 <= s <= 1 for s in r["test_score"])


def test_weights_survive_a_dropped_class(small_folder, tmp_path):
    # A class none of whose images decode is dropped (the labels are renumbered): the other images keep theirs.
    paths, y = paths_and_labels(small_folder)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    w = np.where(np.arange(len(y)) % 3 == 0, 2.0, 0.5)
    with pytest.warns(UserWarning, match="dropped"):
        skipped = full_batch(on_error="skip").fit([str(broken)] + paths, np.r_[["Zzz"], y],
                                                  sample_weight=np.r_[9.0, w])
    assert list(skipped.classes_) == sorted(set(y))
    reference = full_batch().fit(paths, y, sample_weight=w)
    np.testing.assert_allclose(skipped.predict_proba(paths), reference.predict_proba(paths), atol=1e-5)
