"""GridSearchCV / cross_val_score over tlc.TransferClassifier, and the in-process feature cache that makes
them run the backbone once per image."""
import numpy as np
from sklearn.model_selection import GridSearchCV, cross_val_score

import tlc
from conftest import make


def test_grid_search_computes_features_once_per_image(small_folder):
    folder = tlc.ImageFolder(small_folder)
    tlc.clear_feature_cache()
    search = GridSearchCV(make(), {"lr": [1e-3, 1e-2], "epochs": [1, 2]}, cv=3).fit(folder.paths, folder.y)
    info = tlc.feature_cache_info()
    # 4 candidates x 3 folds + the refit = 13 fits over 36 images: each image's features computed once.
    assert info["images_computed"] == 36, info
    assert info["images_reused"] == 12 * 24 + 36 - 36, info
    assert search.best_estimator_.used_cached_features_
    assert search.predict(folder.paths[:3]).shape == (3,)
    assert set(search.best_params_) == {"lr", "epochs"}


def test_no_reuse_matches_reuse(small_folder):
    folder = tlc.ImageFolder(small_folder)
    tlc.clear_feature_cache()
    a = make(epochs=2, lr=1e-2).fit(folder)
    b = make(epochs=2, lr=1e-2).fit(folder)  # second fit: every feature from the cache
    c = make(epochs=2, lr=1e-2, reuse_features=False).fit(folder)
    assert b.used_cached_features_ and not c.used_cached_features_
    pa, pb, pc = (m.predict_proba(folder.paths) for m in (a, b, c))
    assert np.allclose(pa, pb, atol=1e-6) and np.allclose(pa, pc, atol=1e-5)
    assert tlc.feature_cache_info()["images_computed"] == 36


def test_cross_val_score_on_arrays_and_flip_augmentation(small_folder):
    from PIL import Image
    folder = tlc.ImageFolder(small_folder)
    arr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in folder.paths])
    tlc.clear_feature_cache()
    scores = cross_val_score(make(augment="flip", epochs=1), arr, folder.y, cv=3)
    assert scores.shape == (3,)
    info = tlc.feature_cache_info()
    assert info["images_computed"] == 2 * 36, info  # plain and flipped views, each once
