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


def test_cli_tlc_export_onnx(small_folder, tmp_path, foreign_python):
    """`tlc export MODEL --onnx OUT` (the CLI runs python -m tlc export-onnx with the project's Python): the file
    gives the CLI-trained model's probabilities; clear errors for a missing model and a Python that is not there."""
    import os
    import subprocess
    from conftest import CLI, TINY_BN
    run = tmp_path / "run"
    r = subprocess.run([CLI, "train", small_folder, "--backbone", TINY_BN, "--out", str(run), "--image-size", "32",
                        "--epochs", "2", "--lr", "0.01", "--no-progress", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TLC_PYTHON")}
    r = subprocess.run([CLI, "export", str(run), "--onnx", str(tmp_path / "cli.onnx")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wrote" in r.stdout
    folder = tlc.ImageFolder(small_folder)
    sess = ort.InferenceSession(str(tmp_path / "cli.onnx"), providers=["CPUExecutionProvider"])
    pixels = tlc._inputs.Images(folder.paths).pixels(32, "stretch").numpy()
    want = tlc.load(run / "model.pt").predict_proba(folder.paths)
    assert np.abs(sess.run(["probabilities"], {"images": pixels})[0] - want).max() < 1e-4

    r = subprocess.run([CLI, "export", str(tmp_path / "none.pt"), "--onnx", "x.onnx"], capture_output=True, text=True)
    assert r.returncode != 0 and "none.pt does not exist" in r.stderr
    r = subprocess.run([CLI, "export", str(run), "--onnx", str(tmp_path / "y.onnx")], capture_output=True, text=True,
                       env=dict(env, TLC_PYTHON=str(tmp_path / "no-python")))
    assert r.returncode != 0 and "set TLC_PYTHON" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "y.onnx")
    # A Python that starts but cannot run the exporter (one with another torch, as a system python3-torch).
    r = subprocess.run([CLI, "export", str(run), "--onnx", str(tmp_path / "z.onnx")], capture_output=True, text=True,
                       env=dict(env, TLC_PYTHON=foreign_python))
    assert r.returncode != 0 and "set TLC_PYTHON to the project's .venv/bin/python" in r.stderr, r.stderr
    assert "torch 1.13.0a0" in r.stderr and "exited with code 1" in r.stderr, r.stderr
