"""A `tlc serve` process for the tests, and the few HTTP helpers they share (Python's http.client only).
Every server listens on 127.0.0.1 on a port the OS picks, every wait is bounded, and the process is killed
when the test leaves it running."""
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time

HOST = "127.0.0.1"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("TLC_BINARY", os.path.join(ROOT, "build", "tlc"))


class Server:
    def __init__(self, models, *flags, env=None):
        self.log = []
        cmd = [CLI, "serve", *models, "--host", HOST, "--port", "0", *flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=env or os.environ.copy())
        self.port = None
        got_port = threading.Event()

        def read_log():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"listening on http://\S+:(\d+) ", line)
                if m:
                    self.port = int(m.group(1))
                    got_port.set()
            got_port.set()

        self.reader = threading.Thread(target=read_log, daemon=True)
        self.reader.start()
        try:
            if not got_port.wait(300) or self.port is None:
                raise RuntimeError("tlc serve did not start:\n" + "".join(self.log))
            self.wait_ready()
        except BaseException:
            self.kill()
            raise

    def wait_ready(self, timeout=300):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("tlc serve exited with %s:\n%s" % (self.proc.returncode, "".join(self.log)))
            try:
                if get(self.port, "/v2/health/ready", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("tlc serve was not ready after %d s:\n%s" % (timeout, "".join(self.log)))

    def terminate(self, timeout=60, sig=signal.SIGTERM):
        """Sends `sig`, then returns the exit code (killed after `timeout` s)."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.reader.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def request(port, method, path, body=None, headers=None, timeout=60):
    """(status, headers with lower-case names, body bytes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get(port, path, timeout=60):
    return request(port, "GET", path, timeout=timeout)


def infer_body(images, binary_output=True, classification=None, shape=None):
    """A KServe v2 request with IMAGE as binary tensor data: (body, headers)."""
    data = b"".join(struct.pack("<I", len(b)) + b for b in images)
    params = {"binary_data": binary_output}
    if classification:
        params["classification"] = classification
    header = json.dumps({
        "id": "test",
        "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": shape or [len(images)],
                    "parameters": {"binary_data_size": len(data)}}],
        "outputs": [{"name": "PROBABILITIES", "parameters": params}],
    }).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header)),
                           "Content-Type": "application/octet-stream"}


def parse_infer(headers, body):
    """(response JSON, binary section or None)."""
    n = headers.get("inference-header-content-length")
    if n is None:
        return json.loads(body), None
    return json.loads(body[:int(n)]), body[int(n):]


def probabilities(headers, body):
    """The PROBABILITIES rows of a binary FP32 answer."""
    resp, data = parse_infer(headers, body)
    rows, k = resp["outputs"][0]["shape"]
    flat = struct.unpack("<%df" % (rows * k), data)
    return [list(flat[i * k:(i + 1) * k]) for i in range(rows)]


def multipart(files, boundary="tlc-test-boundary"):
    """files: [(field, filename, bytes)] -> (body, headers)."""
    parts = []
    for field, name, data in files:
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n" % (boundary, field, name)).encode()
                     + data + b"\r\n")
    body = b"".join(parts) + ("--%s--\r\n" % boundary).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + boundary}


def metric(port, name, model):
    """The value of one model's metric from /metrics."""
    text = get(port, "/metrics")[2].decode()
    m = re.search(r'^%s\{model="%s",version="1"\} (\S+)$' % (re.escape(name), re.escape(model)), text, re.M)
    assert m, "no %s for %s in /metrics:\n%s" % (name, model, text)
    return float(m.group(1))


def wait_until(predicate, timeout=60, what="a condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)
