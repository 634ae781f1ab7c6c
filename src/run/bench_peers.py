"""The peers of `tlc bench` (src/run/bench.cpp): the same backbone file, batch, size and thread count, run by
PyTorch and by OpenVINO's own defaults, so that the figures compare in one run.

tlc embeds this file and runs it as: python -c SOURCE BACKBONE.pt BATCH SIZE THREADS ITERATIONS. It prints one
JSON object: {"torch_fp32": img/s, "torch_bf16": img/s (only on bf16 hardware), "openvino": img/s,
"openvino_precision": "...", "openvino_version": "..."}; a peer that cannot run is left out, with its reason
under "errors". Timings are medians over ITERATIONS repeats after one warm-up, as tlc's own.
"""
import json
import sys
import time


def median_seconds(fn, iterations):
    fn()
    t = []
    for _ in range(max(1, iterations)):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    t.sort()
    return t[len(t) // 2]


def main(argv):
    path, batch, size, threads, iterations = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    out, errors = {}, {}
    try:
        import torch
    except Exception as e:
        print(json.dumps({"errors": {"torch": f"{type(e).__name__}: {e}"}}))
        return 0
    torch.set_num_threads(threads)
    module = torch.jit.load(path, map_location="cpu").eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        out["torch_fp32"] = batch / median_seconds(lambda: module(x).mean((2, 3)), iterations)
        # PyTorch's best eager bf16 recipe (autocast + channels-last), only where the CPU has bf16 arithmetic.
        cap = torch.backends.cpu.get_cpu_capability()
        if "BF16" in cap or "AMX" in cap:
            xc = x.contiguous(memory_format=torch.channels_last)
            def bf16():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return module(xc).float().mean((2, 3))
            out["torch_bf16"] = batch / median_seconds(bf16, iterations)
    try:
        import openvino as ov

        core = ov.Core()
        model = ov.convert_model(module, example_input=x[:1])
        # OpenVINO's defaults, at the same thread count: what a user who reaches for OpenVINO gets.
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        xn = x.numpy()
        out["openvino"] = batch / median_seconds(lambda: request.infer({0: xn}), iterations)
        out["openvino_precision"] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        out["openvino_version"] = ov.__version__.split("-")[0]
    except Exception as e:
        errors["openvino"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    if errors:
        out["errors"] = errors
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
