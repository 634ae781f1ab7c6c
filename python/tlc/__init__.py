"""tlc for Python: transfer-learning image classification with scikit-learn's estimator API.

    import tlc
    clf = tlc.TransferClassifier(backbone="models/tiny_bn.pt", image_size=32, epochs=5).fit(tlc.ImageFolder("data"))
    clf.predict(["photo.jpg"]); clf.save("model.pt"); tlc.load("model.pt")

The engine is tlc's C++ library (the one the `tlc` CLI runs), linked against the LibTorch inside the installed
torch: torch is imported first so that both use the same one, and it must be the torch tlc was built against
(another one would crash the process when tlc._core loads, so that is an ImportError instead).
"""
import os
import sys

from ._torch_check import check_torch

check_torch()  # imports torch (first: tlc._core links the LibTorch this import loads)

# The OpenVINO engine converts a backbone once in a child Python (docs/ENGINES.md): this one, which has the
# torch tlc runs with, unless TLC_PYTHON names another. Without it an installed package would fall back to the
# build machine's Python path.
os.environ.setdefault("TLC_PYTHON", sys.executable)

from . import _core
from ._data import ImageFolder, split_stratified
from ._estimator import TransferClassifier, load
from ._features import feature_cache_info, clear_feature_cache
from ._inputs import verify_images
from ._onnx import export_onnx, preprocess
from ._persist import VersionWarning

__version__ = _core.__version__

__all__ = ["TransferClassifier", "load", "ImageFolder", "split_stratified", "export_onnx", "feature_cache_info",
           "clear_feature_cache", "VersionWarning", "verify_images", "preprocess", "__version__"]
