"""Fixtures for the Python package's tests. The package is imported from the build tree (build/python, or
$TLC_PYTHONPATH), the CLI from build/tlc (or $TLC_BINARY); the data are small copies of the bundled sample."""
import os
import shutil
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.environ.get("TLC_PYTHONPATH", os.path.join(ROOT, "build", "python")))

SAMPLE = os.path.join(ROOT, "data", "fashion_mnist_sample")
TINY_BN = os.path.join(ROOT, "models", "tiny_bn.pt")
TINY_CNN = os.path.join(ROOT, "models", "tiny_cnn.pt")
CLI = os.environ.get("TLC_BINARY", os.path.join(ROOT, "build", "tlc"))


@pytest.fixture(scope="session")
def small_folder(tmp_path_factory):
    """3 classes x 12 images of the bundled Fashion-MNIST sample."""
    root = tmp_path_factory.mktemp("data") / "small"
    for cls in ("Bag", "Sneaker", "Trouser"):
        os.makedirs(root / cls)
        for f in sorted(os.listdir(os.path.join(SAMPLE, cls)))[:12]:
            shutil.copy(os.path.join(SAMPLE, cls, f), root / cls / f)
    return str(root)


def make(**kw):
    import tlc
    params = dict(backbone=TINY_BN, image_size=32, epochs=2, batch_size=8, device="cpu")
    params.update(kw)
    return tlc.TransferClassifier(**params)
