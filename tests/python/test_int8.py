"""precision="int8" in the estimator (docs/ENGINES.md): fit calibrates the OpenVINO int8 engine on its own
training images, predicts close to fp32, and its features are not shared with other fits (they depend on the
calibration images)."""
import numpy as np
import pytest

import tlc
from conftest import make

pytestmark = pytest.mark.skipif(not getattr(tlc._core, "openvino_version", lambda: "")(),
                                reason="this build has no OpenVINO")


def test_int8_fit_calibrates_on_the_training_images(small_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TLC_ENGINE_CACHE", str(tmp_path / "engines"))
    folder = tlc.ImageFolder(small_folder)
    q = make(precision="int8", engine="openvino", epochs=3, lr=1e-2, optimizer="adam").fit(folder)
    assert "openvino" in q.model_.engine and "int8" in q.model_.engine, q.model_.engine
    assert "calibrated on 36 training images" in q.model_.engine, q.model_.engine
    assert any(p.name.startswith("openvino-int8-") for p in (tmp_path / "engines").iterdir())
    # A second int8 fit on the same data computes its features again (nothing shared between fits).
    again = make(precision="int8", engine="openvino", epochs=3, lr=1e-2, optimizer="adam").fit(folder)
    assert not again.used_cached_features_
    f = make(precision="fp32", engine="openvino", epochs=3, lr=1e-2, optimizer="adam").fit(folder)
    pq, pf = q.predict_proba(folder.paths), f.predict_proba(folder.paths)
    assert pq.shape == pf.shape == (36, 3)
    assert np.isfinite(pq).all() and np.allclose(pq.sum(1), 1, atol=1e-5)
    # The same head training on int8 features: the predictions mostly agree with fp32's.
    assert (pq.argmax(1) == pf.argmax(1)).mean() >= 0.8
    # A pickled one has no calibration images: it says so, and predicts (in fp32).
    import pickle
    with pytest.warns(UserWarning, match="precision='int8'"):
        back = pickle.loads(pickle.dumps(q))
    assert "torchscript fp32" in back.model_.engine, back.model_.engine
    assert back.predict_proba(folder.paths[:3]).shape == (3, 3)
