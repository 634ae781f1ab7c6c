"""Model files: save() writes the CLI's file; a CLI-trained model predicts the same from Python."""
import json
import os
import subprocess

import numpy as np
import torch

import tlc
from conftest import CLI, TINY_BN, make


def test_save_load_round_trip(small_folder, tmp_path):
    folder = tlc.ImageFolder(small_folder)
    clf = make(lr=1e-2).fit(folder)
    path = clf.save(tmp_path / "model.pt")
    back = tlc.load(path, device="cpu")
    assert list(back.classes_) == folder.classes
    assert np.allclose(back.predict_proba(folder.paths), clf.predict_proba(folder.paths), atol=1e-6)
    m = torch.jit.load(path)  # the file is the CLI's: self-contained TorchScript
    assert list(m.class_names) == folder.classes and int(m.image_size) == 32


def test_cli_trained_model_predicts_identically_from_python(small_folder, tmp_path):
    run = tmp_path / "run"
    subprocess.run([CLI, "train", small_folder, "--backbone", TINY_BN, "--image-size", "32", "--epochs", "2",
                    "--out", str(run), "--device", "cpu"], check=True, capture_output=True)
    folder = tlc.ImageFolder(small_folder)
    out = subprocess.run([CLI, "predict", str(run), *folder.paths[:6], "--json", "--device", "cpu"], check=True,
                         capture_output=True, text=True).stdout
    cli = json.loads(out)
    clf = tlc.load(str(run), device="cpu")
    p = clf.predict_proba(folder.paths[:6])
    for row, rec in zip(p, cli):
        assert os.path.samefile(rec["path"], folder.paths[cli.index(rec)])
        expect = np.array([rec["probabilities"][c] for c in clf.classes_])
        assert np.allclose(row, expect, atol=1e-5), (row, expect)
    assert list(clf.predict(folder.paths[:6])) == [rec["label"] for rec in cli]
