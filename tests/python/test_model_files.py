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


def test_cli_trained_augmentation_comes_back_and_tta_matches_the_cli(small_folder, tmp_path):
    # The file's training augmentation is the default of tta's views, in Python as in `tlc predict --tta`.
    run = tmp_path / "run"
    subprocess.run([CLI, "train", small_folder, "--backbone", TINY_BN, "--image-size", "32", "--epochs", "1",
                    "--augment", "light", "--out", str(run), "--device", "cpu"], check=True, capture_output=True)
    folder = tlc.ImageFolder(small_folder)
    out = subprocess.run([CLI, "predict", str(run), *folder.paths[:4], "--json", "--device", "cpu", "--tta", "3"],
                         check=True, capture_output=True, text=True).stdout
    cli = json.loads(out)
    clf = tlc.load(str(run), device="cpu")
    assert clf.augment == tlc._core.canonical_augment("light")
    clf.set_params(tta=3)
    p = clf.predict_proba(folder.paths[:4])
    for row, rec in zip(p, cli):
        expect = np.array([rec["probabilities"][c] for c in clf.classes_])
        assert np.allclose(row, expect, atol=1e-5), (row, expect)
    # The views stay the model's, as after fit: a changed augment= is for the next fit.
    clf.set_params(augment="none")
    assert np.allclose(clf.predict_proba(folder.paths[:4]), p, atol=1e-6)
    clf.set_params(augment=tlc._core.canonical_augment("light"))
    # Saved again from Python, the file keeps it for the CLI.
    path = tmp_path / "again.pt"
    clf.save(str(path))
    assert tlc.load(str(path)).augment == clf.augment
    assert str(torch.jit.load(str(path)).augment) == clf.augment


def test_save_load_keeps_labels_and_params_and_clone_refits(small_folder, tmp_path):
    from sklearn.base import clone
    folder = tlc.ImageFolder(small_folder)
    for y in (folder.labels + 5, folder.labels.astype(np.float64), np.asarray(folder.y, dtype=str),
              np.asarray([c == "Bag" for c in folder.y])):
        clf = make(lr=1e-2, epochs=1, hidden=4, random_state=np.random.RandomState(3)).fit(folder.paths, y)
        back = tlc.load(clf.save(tmp_path / "m.pt"))
        assert back.classes_.dtype == clf.classes_.dtype and back.classes_.tolist() == clf.classes_.tolist()
        assert back.score(folder.paths, y) == clf.score(folder.paths, y)  # no 'Mix of label input types'
        params = back.get_params()
        rs = params.pop("random_state")
        assert rs.get_state()[1].tolist() == clf.random_state.get_state()[1].tolist()
        assert params == {k: v for k, v in clf.get_params().items() if k != "random_state"}
        assert repr(back.history_) == repr(clf.history_)  # (NaN val_loss: repr compares it)
    again = clone(back).fit(folder.paths, y)
    assert again.classes_.tolist() == [False, True]
    # torch sees the facts as the archive's extra file; the file is still the CLI's.
    extra = {"tlc_sklearn.json": ""}
    torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    assert json.loads(extra["tlc_sklearn.json"])["params"]["hidden"] == 4


def test_cli_reads_what_python_saves(small_folder, tmp_path):
    folder = tlc.ImageFolder(small_folder)
    clf = make(lr=1e-2).fit(folder.paths, folder.labels)  # int labels: the file's class names are "0", "1", "2"
    path = clf.save(tmp_path / "model.pt")
    out = subprocess.run([CLI, "predict", path, *folder.paths[:6], "--json", "--device", "cpu"], check=True,
                         capture_output=True, text=True).stdout
    cli = json.loads(out)
    p = clf.predict_proba(folder.paths[:6])
    for row, rec in zip(p, cli):
        assert np.allclose(row, [rec["probabilities"][str(c)] for c in clf.classes_], atol=1e-5)
    assert [rec["label"] for rec in cli] == [str(c) for c in clf.predict(folder.paths[:6])]
    loaded = tlc.load(path, device="cpu")  # and Python reads it back with the int labels
    assert loaded.classes_.dtype == clf.classes_.dtype and loaded.get_params()["device"] == "cpu"
