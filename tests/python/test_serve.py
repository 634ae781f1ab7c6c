"""`tlc serve` over real HTTP (Python's http.client): the KServe v2 routes and extensions, /predict, /metrics,
bad and hostile inputs, limits (413, 411, 415, 503, 504), a bounded concurrency run, and the drain on SIGTERM.
Predictions must equal `tlc predict --json` on the same files. Traffic goes to 127.0.0.1 only; every server
is killed at the end."""
import glob
import json
import os
import signal
import socket
import subprocess
import threading

import pytest

from conftest import SAMPLE, TINY_BN
from serve_client import (CLI, Server, get, infer_body, metric, multipart, parse_infer, probabilities, request,
                          wait_until)

def _serve_built():
    try:
        return subprocess.run([CLI, "serve", "--help"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _serve_built(), reason="this tlc was built without cpp-httplib (no tlc serve)")

MODEL = "shirts"
TOL = 1e-3  # the engine (bf16 where the CPU has it) may pick other kernels for other batch sizes


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = os.environ.copy()
    e["TLC_ENGINE_CACHE"] = str(tmp_path_factory.mktemp("engines"))
    return e


@pytest.fixture(scope="module")
def model_dir(small_folder, tmp_path_factory, env):
    out = str(tmp_path_factory.mktemp("runs") / MODEL)
    subprocess.run([CLI, "train", small_folder, "--backbone", TINY_BN, "--image-size", "32", "--epochs", "2",
                    "--batch-size", "8", "--out", out, "--quiet"], check=True, timeout=600, env=env,
                   stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="module")
def files(small_folder):
    return sorted(glob.glob(os.path.join(small_folder, "*", "*.png")))[:6]


@pytest.fixture(scope="module")
def server(model_dir, env):
    with Server([model_dir], "--max-batch", "4", "--max-queue-delay-us", "2000", "--max-body-bytes", "1000000",
                "--read-timeout", "2", "--http-threads", "8", "--max-pending-connections", "16",
                env=env) as s:
        yield s


@pytest.fixture(scope="module")
def predicted(model_dir, files, env):
    """`tlc predict --json` of the files, by path."""
    out = subprocess.run([CLI, "predict", model_dir, *files, "--json", "--top-k", "2"], check=True, timeout=300,
                         env=env, capture_output=True, text=True).stdout
    return {p["path"]: p for p in json.loads(out)}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def json_error(status, body):
    err = json.loads(body)
    assert isinstance(err.get("error"), str) and err["error"], body
    return err["error"]


def test_protocol_routes(server):
    p = server.port
    status, _, body = get(p, "/v2")
    assert status == 200
    meta = json.loads(body)
    assert meta["name"] == "tlc" and {"binary_tensor_data", "classification"} <= set(meta["extensions"])
    assert get(p, "/v2/health/live")[0] == 200
    assert get(p, "/v2/health/ready")[0] == 200
    for path in ("/v2/models/" + MODEL, "/v2/models/%s/versions/1" % MODEL):
        status, _, body = get(p, path)
        assert status == 200, body
        m = json.loads(body)
        assert m["name"] == MODEL
        assert m["inputs"][0] == {"name": "IMAGE", "datatype": "BYTES", "shape": [-1, 1]}
        assert m["outputs"][0]["name"] == "PROBABILITIES" and m["outputs"][0]["shape"] == [-1, 3]
        assert m["parameters"]["classes"] == ["Bag", "Sneaker", "Trouser"]
        assert m["parameters"]["image_size"] == 32
    assert get(p, "/v2/models/%s/ready" % MODEL)[0] == 200
    assert json.loads(get(p, "/v2/models/%s/config" % MODEL)[2])["max_batch_size"] == 4
    status, _, body = get(p, "/v2/models/nope")
    assert status == 404 and "unknown model 'nope'" in json_error(status, body)
    status, _, body = get(p, "/v2/models/%s/versions/2" % MODEL)
    assert status == 404 and "version" in json_error(status, body)
    status, _, body = get(p, "/no/such/route")
    assert status == 404 and "no route" in json_error(status, body)


def test_a_port_in_use_is_a_clear_error(server, model_dir, env):
    # httplib's default (SO_REUSEPORT) would let this second server bind and share the port silently.
    r = subprocess.run([CLI, "serve", model_dir, "--host", "127.0.0.1", "--port", str(server.port)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0
    assert "cannot listen on 127.0.0.1:%d" % server.port in r.stderr, r.stderr
    assert get(server.port, "/v2/health/ready")[0] == 200


def test_infer_binary_equals_tlc_predict(server, files, predicted):
    body, headers = infer_body([read(f) for f in files[:3]])
    status, h, resp = request(server.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers)
    assert status == 200, resp
    meta, _ = parse_infer(h, resp)
    assert meta["model_name"] == MODEL and meta["id"] == "test"
    assert meta["outputs"][0]["datatype"] == "FP32" and meta["outputs"][0]["shape"] == [3, 3]
    classes = ["Bag", "Sneaker", "Trouser"]
    for f, row in zip(files[:3], probabilities(h, resp)):
        expected = [predicted[f]["probabilities"][c] for c in classes]
        assert row == pytest.approx(expected, abs=TOL), f
        assert sum(row) == pytest.approx(1.0, abs=1e-4)


def test_infer_json_output_classification_and_shape_n1(server, files):
    image = read(files[0])
    body, headers = infer_body([image], binary_output=False)
    status, h, resp = request(server.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers)
    assert status == 200, resp
    probs = json.loads(resp)["outputs"][0]["data"]
    assert len(probs) == 3
    body, headers = infer_body([image, image], binary_output=False, classification=2, shape=[2, 1])
    status, h, resp = request(server.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers)
    assert status == 200, resp
    out = json.loads(resp)["outputs"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [2, 2]
    best = sorted(range(3), key=lambda i: -probs[i])[:2]
    for k, s in enumerate(out["data"][:2]):
        score, index, label = s.split(":")
        assert int(index) == best[k] and label == ["Bag", "Sneaker", "Trouser"][best[k]]
        assert float(score) == pytest.approx(probs[best[k]], abs=TOL)


def test_infer_pixels(server):
    pixels = bytes(range(256)) * (2 * 40 * 30 * 3 // 256) + bytes(2 * 40 * 30 * 3 % 256)
    header = json.dumps({"inputs": [{"name": "PIXELS", "datatype": "UINT8", "shape": [2, 40, 30, 3],
                                     "parameters": {"binary_data_size": len(pixels)}}]}).encode()
    status, h, resp = request(server.port, "POST", "/v2/models/%s/infer" % MODEL, header + pixels,
                              {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200, resp
    rows = json.loads(resp)["outputs"][0]["data"]
    assert len(rows) == 6 and sum(rows[:3]) == pytest.approx(1.0, abs=1e-4)


def test_predict_raw_body_and_multipart_equal_tlc_predict(server, files, predicted):
    status, _, resp = request(server.port, "POST", "/predict?top_k=2", read(files[0]),
                              {"Content-Type": "application/octet-stream"})
    assert status == 200, resp
    [entry] = json.loads(resp)
    want = predicted[files[0]]
    assert entry["path"] == "body" and entry["label"] == want["label"]
    assert [t["class"] for t in entry["top"]] == [t["class"] for t in want["top"]]
    for c, v in want["probabilities"].items():
        assert entry["probabilities"][c] == pytest.approx(v, abs=TOL)

    # Six files (more than --max-batch 4: split into two queued requests) and one that is not an image.
    parts = [("file", os.path.basename(f), read(f)) for f in files] + [("file", "junk.png", b"not an image")]
    body, headers = multipart(parts)
    status, _, resp = request(server.port, "POST", "/predict?min_confidence=0.99", body, headers)
    assert status == 200, resp
    entries = json.loads(resp)
    assert len(entries) == 7
    for f, e in zip(files, entries):
        assert e["path"] == os.path.basename(f)
        assert e["label"] in ("unknown", predicted[f]["label"])
        for c, v in predicted[f]["probabilities"].items():
            assert e["probabilities"][c] == pytest.approx(v, abs=TOL)
    assert entries[-1]["path"] == "junk.png" and entries[-1]["error"]


def test_bad_inputs_each_get_a_4xx_json_error_and_the_server_stays_ready(server, files):
    p = server.port
    infer = "/v2/models/%s/infer" % MODEL
    image = read(files[0])
    good, good_headers = infer_body([image])
    bad_image, bad_headers = infer_body([b"\x89PNG but not really"])
    too_many, too_many_headers = infer_body([image] * 5)
    wrong_type = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "FP32", "shape": [1], "data": [1.0]}]})
    wrong_shape = json.dumps({"inputs": [{"name": "PIXELS", "datatype": "UINT8", "shape": [1, 2, 2],
                                          "data": [0] * 4}]})
    cases = [
        ("malformed JSON", infer, b"{\"inputs\": [", {}, 400, "malformed JSON"),
        ("wrong datatype", infer, wrong_type.encode(), {}, 400, "datatype BYTES"),
        ("wrong shape", infer, wrong_shape.encode(), {}, 400, "[N,H,W,3]"),
        ("non-image bytes", infer, bad_image, bad_headers, 400, "IMAGE[0]"),
        ("more images than --max-batch", infer, too_many, too_many_headers, 400, "--max-batch"),
        ("bad header length", infer, good, {"Inference-Header-Content-Length": "many"}, 400, "byte count"),
        ("header length past the body", infer, good, {"Inference-Header-Content-Length": str(len(good) + 1)}, 400,
         "Inference-Header-Content-Length"),
        ("unknown model", "/v2/models/nope/infer", good, good_headers, 404, "unknown model"),
        ("unknown route", "/v2/nothing", good, good_headers, 404, "no route"),
        ("predict: not an image", "/predict", b"GIF89a garbage", {"Content-Type": "image/gif"}, 400, "cannot decode"),
        ("predict: empty body", "/predict", b"", {}, 400, "empty"),
        ("predict: bad top_k", "/predict?top_k=abc", image, {}, 400, "top_k"),
        ("predict: form-encoded", "/predict", image, {"Content-Type": "application/x-www-form-urlencoded"}, 415,
         "Content-Type"),
        ("garbage multipart", "/predict", b"--x\r\nno headers here\r\n\r\n--x--",
         {"Content-Type": "multipart/form-data; boundary=zzz"}, 400, ""),
        ("compressed body", infer, good, dict(good_headers, **{"Content-Encoding": "gzip"}), 415, "Content-Encoding"),
    ]
    for name, path, body, headers, want, words in cases:
        status, _, resp = request(p, "POST", path, body, headers)
        assert status == want, (name, status, resp)
        assert words in json_error(status, resp), (name, resp)
        assert get(p, "/v2/health/ready")[0] == 200, name
    status, h, resp = request(p, "POST", infer, good, good_headers)
    assert status == 200 and len(probabilities(h, resp)) == 1


def raw_exchange(port, data, timeout=30):
    """Sends bytes on a fresh connection and returns what comes back until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)


def test_body_limits_413_and_411(server, files):
    # An announced body over --max-body-bytes is refused from its headers: nothing of it is sent.
    answer = raw_exchange(server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
                                       b"Content-Type: image/png\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"--max-body-bytes" in answer
    # The whole body sent anyway (http.client writes it all): still 413.
    status, _, resp = request(server.port, "POST", "/predict", b"\0" * 1_500_000)
    assert status == 413 and "--max-body-bytes" in json_error(status, resp)
    answer = raw_exchange(server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                       b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411"), answer[:200]
    assert get(server.port, "/v2/health/ready")[0] == 200


def test_slow_body_and_many_idle_connections_do_not_stop_the_server(server, files):
    # A client that promises 1000 bytes and stalls is dropped after --read-timeout (2 s here); 40 idle
    # connections (more than --http-threads 8 + --max-pending-connections 16) wait their turn and time out.
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(40)]
    try:
        body, headers = infer_body([read(files[0])])
        status, h, resp = request(server.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers, timeout=120)
        assert status == 200, resp
        # Dropped once its read timed out: the socket ends (or carries an error answer) instead of hanging.
        left = slow.recv(65536)
        assert left == b"" or left.startswith(b"HTTP/1.1 4"), left[:200]
    finally:
        slow.close()
        for s in idle:
            s.close()
    assert get(server.port, "/v2/health/ready", timeout=120)[0] == 200


def test_sixteen_concurrent_clients_no_failures(server, files):
    before = metric(server.port, "tlc_inference_count", MODEL)
    failures_before = metric(server.port, "tlc_inference_request_failure", MODEL)
    bodies = [infer_body([read(f)]) for f in files]
    statuses = []
    lock = threading.Lock()

    def client(i):
        for r in range(4):
            body, headers = bodies[(i + r) % len(bodies)]
            s, _, _ = request(server.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers, timeout=120)
            with lock:
                statuses.append(s)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert statuses == [200] * 64
    assert metric(server.port, "tlc_inference_count", MODEL) - before == 64
    assert metric(server.port, "tlc_inference_request_failure", MODEL) == failures_before
    execs = metric(server.port, "tlc_inference_exec_count", MODEL)
    assert execs >= 1
    text = get(server.port, "/metrics")[2].decode()
    for name in ("tlc_inference_request_success", "tlc_inference_queue_duration_us",
                 "tlc_inference_compute_duration_us", "tlc_inference_pending_request_count"):
        assert "# TYPE " + name in text


def test_full_queue_is_503_with_retry_after(model_dir, files, env):
    # Requests wait up to 3 s for batch-mates; the queue holds 4 images: 3 waiting + 2 more do not fit.
    with Server(["%s=%s" % (MODEL, model_dir)], "--max-batch", "4", "--max-queue", "4",
                "--max-queue-delay-us", "3000000", env=env) as s:
        first, headers = infer_body([read(files[0])] * 3)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=request(s.port, "POST", "/v2/models/%s/infer" % MODEL, first, headers, timeout=120)))
        t.start()
        wait_until(lambda: metric(s.port, "tlc_inference_queue_images", MODEL) == 3, what="3 queued images")
        body, headers2 = infer_body([read(files[1])] * 2)
        status, h, resp = request(s.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers2)
        assert status == 503 and h.get("retry-after") == "1"
        assert "queue is full" in json_error(status, resp)
        t.join(120)
        assert result["r"][0] == 200


def test_deadline_passed_in_the_queue_is_504_and_the_access_log_says_so(model_dir, files, env):
    with Server([model_dir], "--max-batch", "4", "--max-queue-delay-us", "5000000", "--request-timeout-ms", "300",
                "--access-log", env=env) as s:
        body, headers = infer_body([read(files[0])])
        status, _, resp = request(s.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers)
        assert status == 504 and "timed out" in json_error(status, resp)
        assert get(s.port, "/v2/health/ready")[0] == 200
        line = "127.0.0.1 POST /v2/models/%s/infer 504" % MODEL
        wait_until(lambda: any(line in entry for entry in s.log), timeout=30, what="the access log line")


def test_help_describes_every_flag():
    lines = subprocess.run([CLI, "serve", "--help"], capture_output=True, text=True, timeout=60).stdout.splitlines()
    flags = 0
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("--"):
            continue
        flags += 1
        # CLI11 puts the description after a 30-column flag column, or on the next line when the flag is longer.
        text = line[30:].strip() if len(line) > 30 else ""
        if len(text.split()) < 3 and i + 1 < len(lines) and not lines[i + 1].lstrip().startswith("-"):
            text = lines[i + 1].strip()
        assert len(text.split()) >= 3, "no help for: " + line
    assert flags >= 20


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_drains_the_request_in_flight_and_exits_0(model_dir, files, env, sig):
    s = Server([model_dir], "--max-batch", "4", "--max-queue-delay-us", "1500000", env=env)
    try:
        body, headers = infer_body([read(files[0])])
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=request(s.port, "POST", "/v2/models/%s/infer" % MODEL, body, headers, timeout=120)))
        t.start()
        wait_until(lambda: metric(s.port, "tlc_inference_queue_images", MODEL) == 1, what="the request queued")
        rc = s.terminate(timeout=60, sig=sig)
        t.join(60)
        assert rc == 0, "".join(s.log)
        assert result["r"][0] == 200, result
        assert any("every request received was answered" in line for line in s.log), "".join(s.log)
    finally:
        s.kill()
