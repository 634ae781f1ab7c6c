"""Fitted estimators travel: pickle, copy.deepcopy, joblib, and scikit-learn's worker processes (loky) that
pickle them (cross_validate(return_estimator=True, n_jobs=2), VotingClassifier(n_jobs=2))."""
import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.model_selection import cross_validate

import tlc
from conftest import make


@pytest.fixture(scope="module")
def fitted(small_folder):
    folder = tlc.ImageFolder(small_folder)
    return folder, make(lr=1e-2, epochs=2).fit(folder.paths, folder.labels + 3)  # int labels: dtype must survive


def _same(a, b, paths):
    assert type(b.classes_) is np.ndarray and b.classes_.dtype == a.classes_.dtype
    assert b.classes_.tolist() == a.classes_.tolist()
    assert b.get_params() == a.get_params()
    assert np.allclose(b.predict_proba(paths), a.predict_proba(paths), atol=1e-6)
    assert repr(b.history_) == repr(a.history_) and b.n_features_in_ == a.n_features_in_  # (NaN val_loss)


def test_pickle_and_deepcopy(fitted):
    folder, clf = fitted
    _same(clf, pickle.loads(pickle.dumps(clf)), folder.paths)
    c = copy.deepcopy(clf)
    assert c.model_ is not clf.model_
    _same(clf, c, folder.paths)
    # The copy is independent: refitting it leaves the original as it was.
    before = clf.predict_proba(folder.paths[:4])
    c.set_params(lr=0.5).fit(folder.paths, folder.labels)
    assert np.array_equal(clf.predict_proba(folder.paths[:4]), before)


def test_unfitted_estimator_pickles_without_a_model():
    back = pickle.loads(pickle.dumps(make()))
    assert not hasattr(back, "model_") and back.get_params() == make().get_params()
    # A pickle from before a parameter existed: it takes its default.
    state = make().__getstate__()
    del state["on_error"]
    old = tlc.TransferClassifier.__new__(tlc.TransferClassifier)
    old.__setstate__(state)
    assert old.get_params()["on_error"] == "raise"


def test_joblib_dump_and_load(fitted, tmp_path):
    folder, clf = fitted
    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    assert path.stat().st_size > 1000  # the model file's bytes are in it
    _same(clf, joblib.load(path), folder.paths)


def test_a_pickle_from_another_tlc_warns(fitted):
    folder, clf = fitted
    state = clf.__getstate__()
    state["_tlc_versions_"] = dict(state["_tlc_versions_"], tlc="0.0.1")
    back = tlc.TransferClassifier.__new__(tlc.TransferClassifier)
    with pytest.warns(tlc.VersionWarning, match="tlc 0.0.1"):
        back.__setstate__(state)
    assert back.predict(folder.paths[:2]).tolist() == clf.predict(folder.paths[:2]).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("error", tlc.VersionWarning)
        pickle.loads(pickle.dumps(clf))  # same versions: silent


def test_worker_processes_return_fitted_estimators(small_folder):
    from sklearn.ensemble import VotingClassifier
    folder = tlc.ImageFolder(small_folder)
    out = cross_validate(make(epochs=1), folder.paths, folder.y, cv=2, n_jobs=2, return_estimator=True)
    assert np.isfinite(out["test_score"]).all()
    for est in out["estimator"]:
        assert est.predict(folder.paths[:3]).shape == (3,)
    vote = VotingClassifier([("a", make(epochs=1)), ("b", make(epochs=1, lr=1e-2))], voting="soft", n_jobs=2)
    vote.fit(folder.paths, folder.y)
    assert vote.predict_proba(folder.paths[:5]).shape == (5, 3)
    from sklearn.multiclass import OneVsRestClassifier
    ovr = OneVsRestClassifier(make(epochs=1), n_jobs=2).fit(np.array(folder.paths), folder.y)
    assert len(ovr.estimators_) == 3 and set(ovr.predict(folder.paths[:5])) <= set(folder.classes)


def test_unpickled_estimator_computes_the_same_features_afresh(fitted):
    # In a new process the feature cache is empty: the unpickled model computes the rows with the model file's
    # backbone, which must give the probabilities the original gave from the backbone file's rows.
    folder, clf = fitted
    before = clf.predict_proba(folder.paths)
    back = pickle.loads(pickle.dumps(clf))
    assert back._feature_key_ == clf._feature_key_  # still predicts through the cache
    tlc.clear_feature_cache()
    assert np.allclose(back.predict_proba(folder.paths), before, atol=1e-5)
    assert tlc.feature_cache_info()["images_computed"] == len(folder)
