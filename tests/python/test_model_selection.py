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
    # 4 candidates x 3 folds + the refit = 13 fits over 36 images, and 12 scorings of a 12-image fold: each
    # image's features computed once, in two backbone passes (the first fit's 24 images, its fold's 12).
    assert info["images_computed"] == 36, info
    assert info["backbone_passes"] == 2, info
    assert info["images_reused"] == (12 * 24 + 36) + 12 * 12 - 36, info
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
    # a and b predicted from cached features, c from the pixels: the same probabilities.
    assert a._feature_key_ is not None and c._feature_key_ is None
    passes = tlc.feature_cache_info()["backbone_passes"]
    a.predict(folder.paths)
    assert tlc.feature_cache_info()["backbone_passes"] == passes


def test_fine_tuned_model_predicts_from_pixels_not_the_cache(small_folder):
    folder = tlc.ImageFolder(small_folder)
    tlc.clear_feature_cache()
    tuned = make(epochs=1, fine_tune_layers=1, fine_tune_epochs=1, fine_tune_lr=1e-2).fit(folder)
    before = tlc.feature_cache_info()
    p = tuned.predict_proba(folder.paths)
    assert tlc.feature_cache_info() == before  # the tuned backbone is not the file's: no cached rows used
    direct = tuned.model_.predict_proba(tlc._core.ImageSet.scan(folder.paths, [0] * len(folder), 32, "stretch")[0].pixels)
    assert np.allclose(p, direct.numpy(), atol=1e-6)


def test_predict_computes_only_unseen_images(small_folder):
    folder = tlc.ImageFolder(small_folder)
    tlc.clear_feature_cache()
    m = make(epochs=1).fit(folder.paths[:24], folder.y[:24])
    assert tlc.feature_cache_info()["images_computed"] == 24
    p = m.predict_proba(folder.paths)
    info = tlc.feature_cache_info()
    assert info["images_computed"] == 36 and info["images_reused"] == 24, info
    ref = make(epochs=1, reuse_features=False).fit(folder.paths[:24], folder.y[:24]).predict_proba(folder.paths)
    assert np.allclose(p, ref, atol=1e-5)


def test_fine_tune_blocks_and_layers_are_exclusive(small_folder):
    import pytest
    with pytest.raises(ValueError, match="give one of them"):
        make(fine_tune_layers=1, fine_tune_blocks=1, fine_tune_epochs=1).fit(tlc.ImageFolder(small_folder))
    m = make(epochs=1, fine_tune_blocks=1, fine_tune_epochs=1).fit(tlc.ImageFolder(small_folder))
    assert [e["phase"] for e in m.history_] == ["head", "fine-tune"]


def test_cross_val_score_on_arrays_and_flip_augmentation(small_folder):
    from PIL import Image
    folder = tlc.ImageFolder(small_folder)
    arr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in folder.paths])
    tlc.clear_feature_cache()
    scores = cross_val_score(make(augment="flip", epochs=1), arr, folder.y, cv=3)
    assert scores.shape == (3,)
    info = tlc.feature_cache_info()
    assert info["images_computed"] == 2 * 36, info  # plain and flipped views, each once


def test_predict_does_not_need_the_backbone_file_after_fit(small_folder, tmp_path):
    """The cache key is fixed at fit: a backbone file replaced or removed afterwards changes nothing for a fitted
    estimator (its predictions come from the cache rows of the backbone it was fitted with)."""
    import shutil
    from conftest import TINY_BN
    folder = tlc.ImageFolder(small_folder)
    bb = tmp_path / "bb.pt"
    shutil.copy(TINY_BN, bb)
    tlc.clear_feature_cache()
    m = make(backbone=str(bb), epochs=1).fit(folder.paths[:24], folder.y[:24])
    before = m.predict_proba(folder.paths)
    bb.unlink()
    assert np.array_equal(m.predict_proba(folder.paths), before)
    assert tlc.feature_cache_info()["images_computed"] == 36


def test_fits_load_independent_copies_of_the_backbone_file(small_folder, tmp_path):
    # Each fit's classifier is a copy of the backbone this process loaded once (tlc::Backbone::load_cached):
    # fine-tuning one fit's copy must not reach a later fit, and a rewritten file must be loaded anew.
    import shutil
    from conftest import TINY_BN, TINY_CNN
    folder = tlc.ImageFolder(small_folder)
    tlc.clear_feature_cache()
    plain = make(epochs=1, reuse_features=False).fit(folder).predict_proba(folder.paths)
    make(epochs=1, fine_tune_layers=1, fine_tune_epochs=2, fine_tune_lr=1e-1, reuse_features=False).fit(folder)
    assert np.allclose(make(epochs=1, reuse_features=False).fit(folder).predict_proba(folder.paths), plain, atol=1e-6)
    path = str(tmp_path / "backbone.pt")
    shutil.copy(TINY_BN, path)
    assert np.allclose(make(backbone=path, epochs=1, reuse_features=False).fit(folder).predict_proba(folder.paths),
                       plain, atol=1e-6)
    shutil.copy(TINY_CNN, path)  # the same path, another backbone
    other = make(backbone=TINY_CNN, epochs=1, reuse_features=False).fit(folder).predict_proba(folder.paths)
    again = make(backbone=path, epochs=1, reuse_features=False).fit(folder).predict_proba(folder.paths)
    assert np.allclose(again, other, atol=1e-6) and not np.allclose(again, plain, atol=1e-3)
