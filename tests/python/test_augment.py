"""Augmentation in the estimator: augment= / augment_views= / tta= as parameters (GridSearchCV, validation), the
in-process feature cache keeping the pool of views per augmentation, and TTA's blend."""
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from conftest import make


@pytest.fixture(autouse=True)
def fresh_cache():
    import tlc
    tlc.clear_feature_cache()
    yield
    tlc.clear_feature_cache()


def test_grid_search_over_augmentations(small_folder):
    import tlc
    small_folder = tlc.ImageFolder(small_folder)
    search = GridSearchCV(make(augment_views=2), {"augment": ["none", "flip", "light"], "tta": [0, 2]}, cv=2)
    search.fit(small_folder.paths, small_folder.y)
    assert len(search.cv_results_["params"]) == 6
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.augment in ("none", "flip", "light")


def test_pool_of_views_is_cached_per_augmentation(small_folder):
    import tlc
    small_folder = tlc.ImageFolder(small_folder)
    a = make(augment="fastai", augment_views=2).fit(small_folder)
    first = tlc.feature_cache_info()["images_computed"]
    assert first == 36 * 3  # the plain view and 2 augmented ones of 36 images
    b = make(augment="fastai", augment_views=2, lr=1e-3).fit(small_folder)  # other head settings: all reused
    assert tlc.feature_cache_info()["images_computed"] == first and b.used_cached_features_
    make(augment="light", augment_views=2).fit(small_folder)  # other views: only the plain rows are shared
    assert tlc.feature_cache_info()["images_computed"] == first + 36 * 2
    make(augment="fastai", augment_views=2, random_state=7).fit(small_folder)  # the views come from the seed
    assert tlc.feature_cache_info()["images_computed"] == first + 36 * 4
    # The cached views train as the classifier computing them itself does.
    c = make(augment="fastai", augment_views=2, reuse_features=False).fit(small_folder)
    np.testing.assert_allclose(a.predict_proba(small_folder), c.predict_proba(small_folder), atol=1e-5)


def test_tta_blends_a_quarter_plain(small_folder):
    import tlc
    small_folder = tlc.ImageFolder(small_folder)
    est = make(augment="light", augment_views=2).fit(small_folder)
    plain = est.predict_proba(small_folder)
    est.set_params(tta=3)
    blended = est.predict_proba(small_folder)
    assert blended.shape == plain.shape and not np.allclose(blended, plain)
    np.testing.assert_allclose(blended.sum(1), 1, atol=1e-5)
    # 0.25 x plain + 0.75 x augmented: the augmented mean recovered from the blend is a distribution too.
    aug = (blended - 0.25 * plain) / 0.75
    assert np.all(aug > -1e-6) and np.allclose(aug.sum(1), 1, atol=1e-5)


def test_bad_augmentation_parameters(small_folder):
    with pytest.raises(ValueError, match="spin=3"):
        make(augment="spin=3").fit(small_folder)
    with pytest.raises(ValueError, match="augment_views"):
        make(augment="light", augment_views=-1).fit(small_folder)
    with pytest.raises(TypeError, match="tta"):
        make(tta=1.5).fit(small_folder)
