"""The check `import tlc` runs before it loads tlc._core.

The extension is linked against one LibTorch, the one inside the torch it was built with. Imported into a
process that already loaded another torch (a system python3-torch, a conda env, a second venv), it crashes the
interpreter with a segmentation fault and no message. So the facts that make the ABI match are recorded at
build time (tlc/_build_info.py) and compared here, and a mismatch is an ImportError that names both torches and
the way out.
"""
import sys

from ._build_info import BUILD_PYTHON, TORCH_CXX11_ABI, TORCH_VERSION

_WAY_OUT = ("run tlc with the Python it was built for ({py}; the project's .venv/bin/python after "
            "scripts/setup.sh), or rebuild tlc against this torch (scripts/build.sh from a venv that has it, or "
            "`pip install --no-build-isolation .` with this Python)")


def check_torch():
    """Import torch and make sure it is the torch tlc._core was built against; ImportError otherwise."""
    way_out = _WAY_OUT.format(py=BUILD_PYTHON)
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"tlc needs torch {TORCH_VERSION} (the torch its extension was built against), but "
                          f"{sys.executable} cannot import torch ({e}): {way_out}") from e
    found = str(getattr(torch, "__version__", "unknown"))
    where = getattr(torch, "__file__", None) or "an unknown place"
    if found != TORCH_VERSION:
        raise ImportError(f"tlc's extension was built against torch {TORCH_VERSION}, but {sys.executable} imported "
                          f"torch {found} (from {where}); loading tlc into it would crash this process: {way_out}")
    abi = getattr(getattr(torch, "_C", None), "_GLIBCXX_USE_CXX11_ABI", None)
    if abi is not None and bool(abi) != TORCH_CXX11_ABI:
        raise ImportError(f"torch {found} (from {where}) was built with _GLIBCXX_USE_CXX11_ABI={int(bool(abi))}, "
                          f"tlc's extension with {int(TORCH_CXX11_ABI)}: the two cannot share a process: {way_out}")
