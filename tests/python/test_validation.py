"""Labels through type_of_target and parameters checked in Python's words, before anything runs in C++."""
import numpy as np
import pytest

import tlc
from conftest import TINY_BN, make

X4 = np.zeros((4, 8, 8, 3), np.uint8)


@pytest.mark.parametrize("y, match", [
    (np.linspace(0, 1, 4), "looks continuous"),
    (np.array([0.0, 1.0, np.nan, 1.0]), r"y\[2\] is NaN"),
    (np.array(["a", None, "b", "a"], dtype=object), r"y\[1\] is None"),
    (["a", 1, "b", 2], "mixes label types"),
    (np.zeros((4, 2), int), "1-D"),
    ([0, 1, 0], "4 images but y has 3"),
    (np.array([1 + 1j, 2, 1, 2]), "complex"),
])
def test_bad_labels_are_clear_value_errors(y, match):
    with pytest.raises(ValueError, match=match):
        make().fit(X4, y)


def test_label_kinds_that_are_classes(small_folder):
    folder = tlc.ImageFolder(small_folder)
    paths = folder.paths[:6] + folder.paths[12:18]
    for y in ([1.0] * 6 + [2.0] * 6, [True] * 6 + [False] * 6, np.array([[3]] * 6 + [[4]] * 6)):
        clf = make(epochs=1).fit(paths, y)
        assert clf.classes_.tolist() == sorted(set(np.ravel(y).tolist()))
        assert set(clf.predict(paths).tolist()) <= set(clf.classes_.tolist())


@pytest.mark.parametrize("params, exc, match", [
    (dict(image_size=0), ValueError, "image_size must be an int between 8 and 4096, got 0"),
    (dict(image_size=-1), ValueError, "image_size must be an int between 8"),
    (dict(image_size=96.7), TypeError, "image_size must be an int, got 96.7"),
    (dict(epochs=2.5), TypeError, "epochs must be an int"),
    (dict(epochs=-1), ValueError, "epochs must be an int between 0"),
    (dict(epochs=0), ValueError, "nothing would train"),
    (dict(lr=0), ValueError, "lr must be a finite float > 0, got 0.0"),
    (dict(lr="fast"), TypeError, "lr must be a float"),
    (dict(fine_tune_lr=-1e-5), ValueError, "fine_tune_lr must be"),
    (dict(batch_size=0), ValueError, "batch_size must be an int between 1"),
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(optimizer="adamw"), ValueError, "optimizer must be one of"),
    (dict(resize="fit"), ValueError, "resize must be one of"),
    (dict(device="gpu"), ValueError, "device must be"),
    (dict(on_error="ignore"), ValueError, "on_error must be one of"),
    (dict(class_weight="auto"), ValueError, "class_weight must be one of"),
    (dict(random_state="42"), TypeError, "random_state must be None, an int or a numpy RandomState"),
    (dict(random_state=-3), ValueError, "random_state must be an int in"),
    (dict(backbone=3), TypeError, "backbone must be a path"),
    (dict(reuse_features="yes"), TypeError, "reuse_features must be True or False"),
])
def test_bad_parameters_are_python_errors(params, exc, match):
    with pytest.raises(exc, match=match):
        make(**params).fit(X4, [0, 1, 0, 1])


def test_image_size_too_small_for_the_backbone_is_a_clear_error(tmp_path):
    # A backbone whose 9x9 convolution (no padding) cannot take an 8x8 image, as EfficientNet-Lite0 cannot take
    # sizes below 32: the backbone's failure comes back as a ValueError that says what to do.
    import torch
    net = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 9), torch.nn.ReLU()).eval())
    net.save(str(tmp_path / "k9.pt"))
    est = make(backbone=str(tmp_path / "k9.pt"), normalize="minus1to1", image_size=8)
    with pytest.raises(ValueError, match=r"image_size=8 does not work with the backbone .*k9.pt.*larger image_size"):
        est.fit(X4, [0, 1, 0, 1])
    assert est.set_params(image_size=16).fit(X4, [0, 1, 0, 1]).predict(X4).shape == (4,)


def test_random_state_follows_scikit_learn(small_folder):
    folder = tlc.ImageFolder(small_folder)
    fit = lambda rs: make(epochs=1, lr=1e-2, random_state=rs, reuse_features=False).fit(folder).predict_proba(
        folder.paths[:6])
    assert np.array_equal(fit(7), fit(7))
    assert not np.array_equal(fit(7), fit(8))
    # A RandomState draws the seed: the same state gives the same model, the object advanced gives another.
    assert np.array_equal(fit(np.random.RandomState(0)), fit(np.random.RandomState(0)))
    rs = np.random.RandomState(0)
    assert not np.array_equal(fit(rs), fit(rs))
    # None: numpy's global RandomState, so np.random.seed makes it repeatable (and None is not 42).
    np.random.seed(5)
    a = fit(None)
    np.random.seed(5)
    assert np.array_equal(a, fit(None))
    assert not np.array_equal(a, fit(42))


def test_class_weight_balanced_changes_the_loss(small_folder):
    folder = tlc.ImageFolder(small_folder)
    paths, y = folder.paths[:12] + folder.paths[12:15], [0] * 12 + [1] * 3  # unbalanced
    a = make(epochs=2, lr=1e-2).fit(paths, y)
    b = make(epochs=2, lr=1e-2, class_weight="balanced").fit(paths, y)
    assert a.history_[0]["loss"] != b.history_[0]["loss"]
    assert TINY_BN.endswith(".pt")
