"""cache_dir: the feature rows on disk are read by later fits (and other processes), used_cached_features_ says
whether a fit ran the backbone, and GridSearchCV(n_jobs=2)'s worker processes compute each image once between
them, under the cache's file lock."""
import glob
import os

import numpy as np
from sklearn.model_selection import GridSearchCV

import tlc
from conftest import make


def _rows_on_disk(cache_dir):
    total = 0
    for f in glob.glob(os.path.join(cache_dir, "tlc-python-features", "*.npz")):
        with np.load(f, allow_pickle=False) as z:
            total += len(z["keys"])
    return total


def test_cache_dir_is_read_and_used_cached_features_is_truthful(small_folder, tmp_path):
    folder = tlc.ImageFolder(small_folder)
    cache = str(tmp_path / "cache")
    tlc.clear_feature_cache()
    cold = make(epochs=2, lr=1e-2, cache_dir=cache).fit(folder)
    assert not cold.used_cached_features_  # it ran the backbone
    assert _rows_on_disk(cache) == 36
    tlc.clear_feature_cache()  # as a new process would start: nothing in memory
    warm = make(epochs=2, lr=1e-2, cache_dir=cache).fit(folder)
    info = tlc.feature_cache_info()
    assert warm.used_cached_features_ and info["images_computed"] == 0 and info["images_from_disk"] == 36, info
    assert np.allclose(warm.predict_proba(folder.paths), cold.predict_proba(folder.paths), atol=1e-6)
    # Without the in-process cache the disk is still read.
    tlc.clear_feature_cache()
    disk_only = make(epochs=2, lr=1e-2, cache_dir=cache, reuse_features=False).fit(folder)
    assert disk_only.used_cached_features_ and tlc.feature_cache_info()["images_computed"] == 0
    again = make(epochs=2, lr=1e-2).fit(folder)  # memory hit (disk_only left its rows in no memory store)
    assert not again.used_cached_features_ and tlc.feature_cache_info()["images_computed"] == 36
    assert make(epochs=2, lr=1e-2).fit(folder).used_cached_features_


def test_a_touched_file_is_computed_again(small_folder, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(small_folder, data)
    folder = tlc.ImageFolder(data)
    cache = str(tmp_path / "cache")
    make(epochs=1, cache_dir=cache, reuse_features=False).fit(folder)
    os.utime(folder.paths[0], ns=(1, 1))  # another mtime: another key
    tlc.clear_feature_cache()
    make(epochs=1, cache_dir=cache, reuse_features=False).fit(folder)
    assert tlc.feature_cache_info()["images_computed"] == 1 and _rows_on_disk(cache) == 37


def test_shards_are_merged_and_still_read(small_folder, tmp_path, monkeypatch):
    from tlc import _diskcache
    monkeypatch.setattr(_diskcache, "MAX_SHARDS", 2)
    folder = tlc.ImageFolder(small_folder)
    cache = str(tmp_path / "cache")
    for part in range(3):  # 3 fits, each with 12 new images (4 per class): 3 shards, merged at the third
        idx = [i for i in range(36) if i % 12 // 4 == part]
        tlc.clear_feature_cache()
        make(epochs=1, cache_dir=cache).fit([folder.paths[i] for i in idx], folder.y[idx])
        assert tlc.feature_cache_info()["images_computed"] == 12
    shards = glob.glob(os.path.join(cache, "tlc-python-features", "*.npz"))
    assert len(shards) == 1 and _rows_on_disk(cache) == 36
    tlc.clear_feature_cache()
    warm = make(epochs=1, cache_dir=cache).fit(folder)
    assert warm.used_cached_features_ and tlc.feature_cache_info()["images_from_disk"] == 36


def test_parallel_search_shares_the_disk_cache(small_folder, tmp_path):
    folder = tlc.ImageFolder(small_folder)
    cache = str(tmp_path / "cache")
    tlc.clear_feature_cache()
    search = GridSearchCV(make(cache_dir=cache), {"lr": [1e-3, 1e-2], "epochs": [1, 2]}, cv=3, n_jobs=2)
    search.fit(folder.paths, folder.y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # Two worker processes and this one (the refit): every image's row was computed once in all, since a
    # process that needs rows another is computing waits for the lock and then reads them.
    assert _rows_on_disk(cache) == 36
    assert tlc.feature_cache_info()["images_computed"] == 0  # the refit here read them from the disk
