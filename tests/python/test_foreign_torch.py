"""`import tlc` under another torch (issue 25): the extension links one LibTorch, and loading it into a process
with another torch crashed with SIGSEGV and no message. Now the check in tlc/_torch_check.py turns that into an
ImportError naming both torches and the way out, and `tlc export` names a child Python that a signal killed.
The foreign Pythons are venvs made here with stub torch modules, so the tests do not depend on what the
machine's /usr/bin/python3 has."""
import os
import subprocess
import sys

from conftest import CLI, ROOT, TINY_BN, make_venv

PKG = os.environ.get("TLC_PYTHONPATH", os.path.join(ROOT, "build", "python"))


def built_facts():
    ns = {}
    with open(os.path.join(PKG, "tlc", "_build_info.py")) as f:
        exec(f.read(), ns)
    return ns


def import_tlc(py):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TLC_PYTHON")}
    return subprocess.run([py, "-c", "import tlc"], capture_output=True, text=True, timeout=120,
                          env=dict(env, PYTHONPATH=PKG))


def test_build_recorded_the_torch_it_links():
    import torch
    facts = built_facts()
    assert facts["TORCH_VERSION"] == torch.__version__
    assert facts["TORCH_CXX11_ABI"] == bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    r = import_tlc(sys.executable)  # the project's own Python imports it cleanly
    assert r.returncode == 0, r.stderr


def test_another_torch_version_is_an_import_error(foreign_python):
    r = import_tlc(foreign_python)
    assert r.returncode == 1, (r.returncode, r.stderr)  # a crash would be -11 (SIGSEGV)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:"), r.stderr
    assert "torch 1.13.0a0" in last and built_facts()["TORCH_VERSION"] in last, last
    assert foreign_python in last and ".venv/bin/python" in last and "rebuild" in last, last


def test_another_abi_is_an_import_error(tmp_path):
    facts = built_facts()
    stub = (f'__version__ = "{facts["TORCH_VERSION"]}"\n'
            f'class _C:\n    _GLIBCXX_USE_CXX11_ABI = {not facts["TORCH_CXX11_ABI"]}\n')
    r = import_tlc(make_venv(tmp_path / "venv", stub))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "_GLIBCXX_USE_CXX11_ABI" in r.stderr and "cannot share a process" in r.stderr, r.stderr


def test_no_torch_is_an_import_error_that_says_so(tmp_path):
    r = import_tlc(make_venv(tmp_path / "venv", None))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "cannot import torch" in r.stderr and built_facts()["TORCH_VERSION"] in r.stderr, r.stderr


def test_export_names_a_python_killed_by_a_signal(tmp_path):
    crash = tmp_path / "crashing-python"
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    r = subprocess.run([CLI, "export", TINY_BN, "--onnx", str(tmp_path / "x.onnx")], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, TLC_PYTHON=str(crash)))
    assert r.returncode == 128 + 11, (r.returncode, r.stderr)
    assert str(crash) in r.stderr and "killed by signal 11" in r.stderr, r.stderr
    assert "set TLC_PYTHON" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "x.onnx")


def test_system_python_never_crashes_on_import_tlc():
    """Whatever /usr/bin/python3 has (Debian's python3-torch, another torch, none), `import tlc` there either
    works (the same torch) or is a clear ImportError: never a crash."""
    r = import_tlc("/usr/bin/python3")
    assert r.returncode in (0, 1), (r.returncode, r.stderr)
    if r.returncode == 1:
        assert "ImportError" in r.stderr and "torch" in r.stderr, r.stderr
