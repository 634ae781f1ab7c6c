"""ONNX export: ONNX Runtime's probabilities equal tlc's within 1e-4 on real images, for any batch size."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import tlc
from conftest import make


def test_export_onnx_matches_tlc(small_folder, tmp_path):
    folder = tlc.ImageFolder(small_folder)
    clf = make(lr=1e-2).fit(folder)
    onnx_path = tlc.export_onnx(clf.save(tmp_path / "model.pt"), tmp_path / "model.onnx")
    meta = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert json.loads(meta["class_names"]) == folder.classes and meta["image_size"] == "32"
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    pixels = tlc._inputs.Images(folder.paths).pixels(32, "stretch").numpy()
    for n in (1, 7, 36):
        got = sess.run(["probabilities"], {"images": pixels[:n]})[0]
        assert got.shape == (n, 3)
        assert np.abs(got - clf.predict_proba(folder.paths[:n])).max() < 1e-4


def test_export_onnx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tlc.export_onnx(tmp_path / "none.pt", tmp_path / "x.onnx")


def test_python_m_tlc_export_onnx(small_folder, tmp_path):
    import subprocess
    import sys
    import os
    clf = make(epochs=1).fit(tlc.ImageFolder(small_folder))
    model = clf.save(tmp_path / "m.pt")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(tlc.__file__)))
    r = subprocess.run([sys.executable, "-m", "tlc", "export-onnx", model, str(tmp_path / "m.onnx")], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(tmp_path / "m.onnx")
    r = subprocess.run([sys.executable, "-m", "tlc", "export-onnx", str(tmp_path / "none.pt"), "x.onnx"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr
