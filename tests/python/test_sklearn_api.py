"""scikit-learn's own estimator checks, those that apply to an estimator over images, and the same properties
checked on image data where sklearn's versions need 2-D numeric X; plus tags, predict_log_proba, ImageFolder
through the splitters and tlc.preprocess for ONNX users."""
import warnings

import numpy as np
import pytest
import sklearn.utils.estimator_checks as checks
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_score

import tlc
from conftest import make

# Checks that make no assumption on X's form (construction, params, cloning, tags, unfitted use): they run as
# scikit-learn wrote them. The rest of sklearn's checks fit on random 2-D float tables (make_blobs and the
# like), which are not images: with two_d_array=False in the tags, check_estimator itself skips them. Their
# properties that make sense for images (fit returns self, idempotent fit, params not overwritten, predict
# leaves the estimator unchanged, one label, NaN/continuous y, pickling) are checked on images below and in
# test_validation.py / test_pickle.py.
APPLICABLE = ["check_no_attributes_set_in_init", "check_get_params_invariance", "check_set_params",
              "check_parameters_default_constructible", "check_estimators_unfitted", "check_estimator_repr",
              "check_estimator_cloneable", "check_valid_tag_types", "check_estimator_tags_renamed",
              "check_mixin_order", "check_do_not_raise_errors_in_init_or_set_params"]


@pytest.mark.parametrize("name", APPLICABLE)
def test_sklearn_estimator_checks_that_apply(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        getattr(checks, name)("TransferClassifier", make())


def test_tags_say_images_not_tables():
    tags = make().__sklearn_tags__()
    assert tags.estimator_type == "classifier"
    assert not tags.input_tags.two_d_array and tags.input_tags.string and tags.input_tags.three_d_array
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert list(checks.check_estimator(make(), on_fail=None)) is not None
    assert any("Can't test estimator" in str(w.message) for w in rec)  # sklearn skips the 2-D table checks


def test_fit_properties_on_images(small_folder):
    folder = tlc.ImageFolder(small_folder)
    est = make(epochs=1, lr=1e-2, reuse_features=False)
    params = {k: v for k, v in est.get_params().items()}
    assert est.fit(folder.paths, folder.y) is est  # fit returns self
    assert est.get_params() == params  # fit overwrites no parameter
    before = dict(est.__dict__)
    p1 = est.predict_proba(folder.paths)
    assert set(est.__dict__) == set(before)  # predict sets nothing
    assert np.array_equal(clone(est).fit(folder.paths, folder.y).predict_proba(folder.paths), p1)  # idempotent
    assert est.fit(folder.paths, folder.y).n_features_in_ == 32 * 32 * 3
    with pytest.raises(ValueError, match="one class"):
        make().fit(folder.paths[:4], ["a"] * 4)


def test_predict_log_proba(small_folder):
    folder = tlc.ImageFolder(small_folder)
    est = make(epochs=1).fit(folder)
    assert np.allclose(np.exp(est.predict_log_proba(folder.paths[:5])), est.predict_proba(folder.paths[:5]))


def test_image_folder_through_splitters(small_folder):
    folder = tlc.ImageFolder(small_folder)
    sub = folder[np.array([0, 13, 30])]
    assert isinstance(sub, tlc.ImageFolder) and sub.y.tolist() == ["Bag", "Sneaker", "Trouser"]
    assert folder[3] == folder.paths[3] and len(folder[folder.labels == 1]) == 12
    for tr, te in StratifiedKFold(3).split(folder, folder.y):
        assert len(folder[tr]) == 24 and len(set(folder[te].y)) == 3
    scores = cross_val_score(make(epochs=1), folder, folder.y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_preprocess_gives_the_onnx_input(small_folder, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    folder = tlc.ImageFolder(small_folder)
    est = make(epochs=1, image_size=40, resize="pad").fit(folder)
    model = est.save(tmp_path / "m.pt")
    onnx_path = tlc.export_onnx(model, tmp_path / "m.onnx")
    big = [np.asarray(__import__("PIL.Image").Image.open(p).resize((57, 31))) for p in folder.paths[:4]]
    for X in (folder.paths[:4], big):
        for how in (est, model, onnx_path):
            px = tlc.preprocess(X, how)
            assert px.dtype == np.uint8 and px.shape == (4, 40, 40, 3)
        probs = ort.InferenceSession(onnx_path).run(None, {"images": px})[0]
        assert np.allclose(probs, est.predict_proba(X), atol=1e-4)
    with pytest.raises(ValueError, match="not fitted"):
        tlc.preprocess(folder.paths[:1], make())
