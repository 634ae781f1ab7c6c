#!/usr/bin/env python3
"""Throughput of `tlc serve` under concurrent clients against `tlc predict DIR` on the same images and machine
(issue 23's goal; docs/BENCHMARKS.md has the figures).

  scripts/bench_serve.py RUN_OR_MODEL DIR [--clients 16] [--rounds 3] [--tlc build/tlc] [-- serve flags...]

`tlc predict` img/s is N / (time for DIR, named `rounds` times - time for one image), so that loading the
model is left out. The
server is started on a free port of 127.0.0.1 and warmed up; each client then sends one image per KServe v2
request (binary IMAGE, binary PROBABILITIES) over its own keep-alive connection, every image of DIR `rounds`
times in all. Prints img/s, the ratio, and p50/p99 request latency; every request must succeed."""
import argparse
import glob
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time


def timed(cmd):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
    return time.monotonic() - t0


def infer_body(image):
    data = struct.pack("<I", len(image)) + image
    header = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(data)}}],
                         "outputs": [{"name": "PROBABILITIES", "parameters": {"binary_data": True}}]}).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("dir")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tlc", default=os.path.join(os.path.dirname(__file__), "..", "build", "tlc"))
    argv = sys.argv[1:]
    serve_flags = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    files = sorted(f for f in glob.glob(os.path.join(a.dir, "**", "*"), recursive=True)
                   if os.path.isfile(f) and not os.path.basename(f).startswith("."))
    images = [open(f, "rb").read() for f in files]

    t_one = min(timed([a.tlc, "predict", a.model, files[0], "--json"]) for _ in range(2))
    # DIR named `rounds` times: the same images, as often as the clients send them.
    t_all = min(timed([a.tlc, "predict", a.model, *[a.dir] * a.rounds, "--json"]) for _ in range(2))
    predict_rate = len(files) * a.rounds / (t_all - t_one)

    name = "bench"
    proc = subprocess.Popen([a.tlc, "serve", "%s=%s" % (name, a.model), "--port", "0", *serve_flags],
                            stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"listening on http://\S+:(\d+) ", line)
            if m:
                port = int(m.group(1))
            if line.startswith("ready:"):
                break
        if port is None:
            sys.exit("tlc serve did not start")
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        work = [infer_body(images[i % len(images)]) for i in range(len(images) * a.rounds)]
        latencies, failures, lock = [], [], threading.Lock()
        next_item = [0]

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            while True:
                with lock:
                    i = next_item[0]
                    next_item[0] += 1
                if i >= len(work):
                    break
                body, headers = work[i]
                t0 = time.monotonic()
                conn.request("POST", "/v2/models/%s/infer" % name, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                with lock:
                    latencies.append(time.monotonic() - t0)
                    if r.status != 200:
                        failures.append(r.status)
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    latencies.sort()
    serve_rate = len(work) / elapsed
    print("images: %d files, %d requests from %d clients" % (len(files), len(work), a.clients))
    print("tlc predict DIR: %.1f img/s (%.2f s for all, %.2f s for one)" % (predict_rate, t_all, t_one))
    print("tlc serve flags: %s" % (" ".join(serve_flags) or "(defaults)"))
    print("tlc serve:       %.1f img/s, %.2fx of predict; latency p50 %.1f ms, p99 %.1f ms; failed requests: %d"
          % (serve_rate, serve_rate / predict_rate, 1000 * latencies[len(latencies) // 2],
             1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
