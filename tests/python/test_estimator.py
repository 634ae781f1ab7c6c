"""scikit-learn conventions of tlc.TransferClassifier: params, clone, fit/predict on paths, arrays and folders,
Pipeline, and the errors users meet."""
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import tlc
from conftest import TINY_BN, make


def test_version_and_one_libtorch():
    assert tlc.__version__.count(".") == 2
    import tlc._core as core
    t = core.resize_images(torch.zeros(1, 4, 4, 3, dtype=torch.uint8), 2, "stretch")
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == (1, 2, 2, 3)


def test_params_clone_and_repr():
    clf = make(lr=3e-4)
    assert clf.get_params()["lr"] == 3e-4
    assert clf.set_params(epochs=7) is clf and clf.epochs == 7
    c2 = clone(clf)
    assert c2.get_params() == clf.get_params() and c2 is not clf
    assert "lr=0.0003" in repr(clf)
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((1, 8, 8, 3), np.uint8))


def test_fit_folder_predict_paths_and_arrays(small_folder):
    folder = tlc.ImageFolder(small_folder)
    assert folder.classes == ["Bag", "Sneaker", "Trouser"] and len(folder) == 36
    clf = make(epochs=3, lr=1e-2, optimizer="adam").fit(folder)
    assert clf.fit(folder) is clf
    assert list(clf.classes_) == folder.classes and clf.n_features_in_ == 32 * 32 * 3
    assert len(clf.history_) == 3 and {"loss", "acc", "val_loss"} <= set(clf.history_[0])
    p = clf.predict_proba(folder.paths)
    assert p.shape == (36, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    # The same pixels as an array (28x28 grey files -> RGB, resized like the files) give the same answer.
    arr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in folder.paths])
    assert np.allclose(clf.predict_proba(arr), p, atol=1e-5)
    assert set(clf.predict(folder.paths[:4])) <= set(folder.classes)
    assert 0.0 <= clf.score(folder.paths, folder.y) <= 1.0


def test_integer_labels_and_eval_set(small_folder):
    folder = tlc.ImageFolder(small_folder)
    tr, va, _ = folder.split(val=0.25, test=0.0, seed=1)
    y = tr.labels + 10
    clf = make().fit(tr.paths, y, eval_set=(va.paths, va.labels + 10))
    assert list(clf.classes_) == [10, 11, 12]
    assert not np.isnan(clf.history_[-1]["val_loss"])
    assert set(clf.predict(va.paths)) <= {10, 11, 12}
    with pytest.raises(ValueError, match="eval_set has labels"):
        make().fit(tr.paths, y, eval_set=(va.paths, va.labels))


def test_pipeline_with_a_preceding_step(small_folder):
    folder = tlc.ImageFolder(small_folder)
    arr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in folder.paths])
    invert = FunctionTransformer(lambda X: (255 - X).astype(np.uint8))
    pipe = make_pipeline(invert, make()).fit(arr, folder.y)
    assert pipe.predict(arr[:5]).shape == (5,)


def test_bad_inputs(small_folder, tmp_path):
    folder = tlc.ImageFolder(small_folder)
    # (float [0,1] and grayscale arrays are taken now: tests/python/test_inputs.py; these are not)
    with pytest.raises(ValueError, match="normalized already"):
        make().fit(np.full((4, 8, 8, 3), -1.0, np.float32), [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"\[N,H,W,3\]"):
        make().fit(np.zeros((4, 8), np.uint8), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="empty"):
        make().fit([], [])
    with pytest.raises(ValueError, match="one class"):
        make().fit(folder.paths[:5], ["a"] * 5)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        make().fit([folder.paths[0], str(tmp_path / "nope.png")], [0, 1])
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        make(backbone=str(tmp_path / "missing.pt")).fit(folder)
    with pytest.raises(FileNotFoundError):
        tlc.ImageFolder(tmp_path / "no_such_folder")
    with pytest.raises(ValueError, match="4 images but y"):
        make().fit(folder.paths[:4], [0, 1])
    clf = make(epochs=1).fit(folder)
    with pytest.raises(ValueError, match="could not be decoded"):
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not a png")
        clf.predict([str(bad)])


def test_split_has_the_cli_seed_semantics(small_folder):
    folder = tlc.ImageFolder(small_folder)
    a = tlc.split_stratified(folder.paths, folder.y, val=0.25, test=0.25, seed=3)
    b = tlc.split_stratified(folder.paths, folder.y, val=0.25, test=0.25, seed=3)
    c = tlc.split_stratified(folder.paths, folder.y, val=0.25, test=0.25, seed=4)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == y).all() for x, y in zip(a, c))
    assert [len(p) for p in a] == [18, 9, 9]
    assert sorted(np.concatenate(a).tolist()) == list(range(36))
    assert np.bincount(folder.labels[a[1]]).tolist() == [3, 3, 3]


def test_backbone_none_is_a_clear_error():
    with pytest.raises(ValueError, match="backbone"):
        tlc.TransferClassifier().fit(np.zeros((2, 8, 8, 3), np.uint8), [0, 1])
    assert TINY_BN.endswith("tiny_bn.pt")


class _FakeBar:
    """Stands in for tqdm.auto.tqdm: records what fit does with its bars."""
    made = []

    def __init__(self, total, desc, unit, leave):
        self.total, self.desc, self.n, self.closed = total, desc, 0, False
        _FakeBar.made.append(self)

    def update(self, k):
        self.n += k

    def close(self):
        self.closed = True

    @staticmethod
    def write(line):
        print("bar-safe:", line)


def test_verbose_progress_bars_with_tqdm_and_lines_without(small_folder, capsys, monkeypatch):
    import sys
    import types
    folder = tlc.ImageFolder(small_folder)
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = _FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    _FakeBar.made.clear()
    make(epochs=2, verbose=1, reuse_features=False).fit(folder)
    descs = [b.desc for b in _FakeBar.made]
    assert "caching features" in descs and "epoch 1" in descs and "epoch 2" in descs, descs
    assert all(b.closed and b.n == b.total for b in _FakeBar.made)
    assert capsys.readouterr().out.count("bar-safe: epoch") == 2  # epoch lines through tqdm.write

    monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    make(epochs=1, verbose=1, reuse_features=False).fit(folder)
    out = capsys.readouterr().out
    assert out.startswith("epoch 1 (head)") and "caching features" not in out, out
    make(epochs=1, verbose=2, reuse_features=False).fit(folder)
    out = capsys.readouterr().out
    assert "caching features: 36/36" in out and "epoch 1: 36/36" in out, out


def test_the_venv_imports_the_build_without_pythonpath(tmp_path):
    """scripts/build.sh names build/python in a .pth file of the venv: `import tlc` works from anywhere."""
    import os
    import subprocess
    import sys
    import pytest
    if os.environ.get("TLC_PYTHONPATH"):
        pytest.skip("a build other than build/ is under test")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", "import tlc; print(tlc.__file__)"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # (not realpath: the .py files in build/python/tlc are links to python/tlc)
    want = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build", "python", "tlc"))
    assert os.path.dirname(os.path.abspath(r.stdout.strip())) == want, r.stdout
