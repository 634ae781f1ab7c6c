"""`tlc serve --tta N`: test-time augmentation for every request, the same as `tlc predict --tta N` on the same
files (views of the model's training augmentation, drawn from each image's pixels, so the batch a request lands
in does not change its answer)."""
import glob
import json
import os
import subprocess

import pytest

from conftest import TINY_BN
from serve_client import CLI, Server, infer_body, probabilities, request
from test_serve import _serve_built

pytestmark = pytest.mark.skipif(not _serve_built(), reason="this tlc was built without cpp-httplib (no tlc serve)")

TOL = 1e-5  # fp32 on both sides (bf16 kernels may differ by batch size: test_serve.py's 1e-3)


def test_serve_tta_equals_tlc_predict_tta(small_folder, tmp_path):
    env = dict(os.environ, TLC_ENGINE_CACHE=str(tmp_path / "engines"))
    run = str(tmp_path / "aug")
    subprocess.run([CLI, "train", small_folder, "--backbone", TINY_BN, "--image-size", "32", "--epochs", "2",
                    "--batch-size", "8", "--optimizer", "adam", "--lr", "0.01", "--augment", "light", "--out", run,
                    "--quiet"], check=True, timeout=600,
                   env=env, stdout=subprocess.DEVNULL)
    files = sorted(glob.glob(os.path.join(small_folder, "*", "*.png")))[:5]
    want = {}
    for tta in ("0", "3"):
        out = subprocess.run([CLI, "predict", run, *files, "--json", "--tta", tta, "--precision", "fp32"], check=True, timeout=300, env=env,
                             capture_output=True, text=True).stdout
        want[tta] = {p["path"]: p for p in json.loads(out)}
    classes = ["Bag", "Sneaker", "Trouser"]
    # TTA changes the answer of this model, or the comparison below would not show that the server used it.
    assert max(abs(want["3"][f]["probabilities"][c] - want["0"][f]["probabilities"][c])
               for f in files for c in classes) > 1e-3
    with Server(["aug=" + run], "--max-batch", "4", "--tta", "3", "--precision", "fp32", env=env) as s:
        assert "test-time augmentation: 3 view(s)" in "".join(s.log)
        # Five files in requests of 2 and 3 images: batched apart, the same answers as tlc predict --tta 3.
        for part in (files[:2], files[2:]):
            body, headers = infer_body([open(f, "rb").read() for f in part])
            status, h, resp = request(s.port, "POST", "/v2/models/aug/infer", body, headers)
            assert status == 200, resp
            for f, row in zip(part, probabilities(h, resp)):
                assert row == pytest.approx([want["3"][f]["probabilities"][c] for c in classes], abs=TOL), f
