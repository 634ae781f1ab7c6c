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
