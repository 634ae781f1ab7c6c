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


def make_venv(root, torch_init=None):
    """A fresh venv (no pip, no system site-packages) whose `import torch` is the given stub, or fails when
    torch_init is None: a foreign Python that does not depend on what /usr/bin/python3 happens to have."""
    import subprocess
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    py = os.path.join(str(root), "bin", "python")
    if torch_init is not None:
        site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        os.makedirs(os.path.join(site, "torch"))
        with open(os.path.join(site, "torch", "__init__.py"), "w") as f:
            f.write(torch_init)
    return py


@pytest.fixture(scope="session")
def foreign_python(tmp_path_factory):
    """A Python whose torch is another version than the one tlc was built against (Debian's python3-torch
    is 1.13): importing tlc there must be a clear ImportError, never a crash."""
    return make_venv(tmp_path_factory.mktemp("foreign") / "venv", '__version__ = "1.13.0a0"\n')
