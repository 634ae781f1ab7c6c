"""`tlc serve` through Triton's own Python client (tritonclient.http, unchanged): health, server and model
metadata, the model configuration, IMAGE as binary BYTES, PIXELS as UINT8, the classification extension and a
4xx for an unknown model, with the same probabilities as `tlc predict --json`. Traffic goes to 127.0.0.1 only."""
import numpy as np
import pytest
from PIL import Image

# The server, the model and `tlc predict`'s answers are test_serve.py's fixtures (module-scoped: built again here).
from test_serve import MODEL, TOL, _serve_built, env, files, model_dir, predicted, read, server  # noqa: F401

import tritonclient.http as httpclient  # noqa: E402 (in requirements.txt: a missing client fails, never skips)
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(not _serve_built(), reason="this tlc was built without cpp-httplib (no tlc serve)")

CLASSES = ["Bag", "Sneaker", "Trouser"]


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient("127.0.0.1:%d" % server.port, connection_timeout=60, network_timeout=120)
    yield c
    c.close()


def image_input(paths):
    inp = httpclient.InferInput("IMAGE", [len(paths)], "BYTES")
    inp.set_data_from_numpy(np.array([read(p) for p in paths], dtype=np.object_), binary_data=True)
    return inp


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    meta = client.get_server_metadata()
    assert meta["name"] == "tlc" and {"binary_tensor_data", "classification"} <= set(meta["extensions"])
    m = client.get_model_metadata(MODEL)
    assert m["inputs"][0] == {"name": "IMAGE", "datatype": "BYTES", "shape": [-1, 1]}
    assert m["outputs"][0]["name"] == "PROBABILITIES" and m["outputs"][0]["datatype"] == "FP32"
    assert m["parameters"]["classes"] == CLASSES
    assert client.get_model_config(MODEL)["max_batch_size"] == 4


def test_infer_images_equals_tlc_predict(client, files, predicted):
    out = httpclient.InferRequestedOutput("PROBABILITIES", binary_data=True)
    result = client.infer(MODEL, [image_input(files[:3])], outputs=[out])
    probs = result.as_numpy("PROBABILITIES")
    assert probs.dtype == np.float32 and probs.shape == (3, 3)
    for f, row in zip(files[:3], probs):
        assert row.tolist() == pytest.approx([predicted[f]["probabilities"][c] for c in CLASSES], abs=TOL), f


def test_pixels_give_what_the_file_gives(client, files, predicted):
    # The sample's PNGs are 28x28 gray: as RGB pixels they must be what tlc decodes from the file.
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files[:2]])
    inp = httpclient.InferInput("PIXELS", list(pixels.shape), "UINT8")
    inp.set_data_from_numpy(pixels, binary_data=True)
    probs = client.infer(MODEL, [inp]).as_numpy("PROBABILITIES")
    for f, row in zip(files[:2], probs):
        assert row.tolist() == pytest.approx([predicted[f]["probabilities"][c] for c in CLASSES], abs=TOL), f


def test_classification_extension(client, files, predicted):
    out = httpclient.InferRequestedOutput("PROBABILITIES", class_count=2)
    top = client.infer(MODEL, [image_input(files[:1])], outputs=[out]).as_numpy("PROBABILITIES")
    assert top.shape == (1, 2)
    want = sorted(predicted[files[0]]["probabilities"].items(), key=lambda kv: -kv[1])[:2]
    for entry, (label, p) in zip(top[0], want):
        score, index, name = entry.decode().split(":")
        assert name == label and int(index) == CLASSES.index(label) and float(score) == pytest.approx(p, abs=TOL)


def test_unknown_model_and_non_image_are_client_errors(client, files, tmp_path):
    with pytest.raises(InferenceServerException) as e:
        client.infer("nope", [image_input(files[:1])])
    assert str(e.value.status()) == "404" and "unknown model 'nope'" in str(e.value)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(InferenceServerException) as e:
        client.infer(MODEL, [image_input([str(junk)])])
    assert str(e.value.status()).startswith("4") and "decode" in str(e.value)
    assert client.is_server_ready()
