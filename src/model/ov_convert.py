"""Converts a TorchScript backbone to OpenVINO IR for tlc's OpenVINO engine (src/model/engine_openvino.cpp).

tlc embeds this file in its binary and runs it with a Python that has torch and openvino (TLC_PYTHON, else the
Python the build was made with): python -c SOURCE IN.pt OUT_DIR SIZE [BLOCKS] [--int8 CALIB.npy]. It writes OUT_DIR/backbone.xml
and backbone.bin with float32 weights (OpenVINO's save_model would halve them to fp16 by default; the CPU
plugin chooses the arithmetic precision at compile time) and an input of [?,3,SIZE,SIZE]. With BLOCKS, only
the first BLOCKS blocks (the frozen prefix while fine-tuning; the children of the `blocks` or `body`
Sequential, as Backbone::forward_range runs them) are converted. With --int8, the converted model is quantized
by NNCF's post-training static quantization (8-bit weights and activations, symmetric, the CPU plugin's int8
kernels), its activation ranges calibrated on CALIB.npy: float32 [M,3,SIZE,SIZE] normalized images, fed one at
a time (nncf.Dataset over the M rows). Exit code 3 also covers an int8 request in a Python without nncf.

Exit codes: 0 written; 3 torch or openvino cannot be imported in this Python; 2 the conversion failed. The
reason goes to stderr as one line, which tlc puts into its log before it falls back to TorchScript.
"""
import sys


def prefix(module, blocks):
    """The first `blocks` children of the backbone's block Sequential, as one module."""
    import torch

    body = module if module.original_name == "Sequential" else None
    for name in ("blocks", "body"):
        if body is None and hasattr(module, name) and getattr(module, name).original_name == "Sequential":
            body = getattr(module, name)
    if body is None:
        raise ValueError("the backbone has no blocks to run in parts")
    children = list(body.children())[:blocks]

    class Prefix(torch.nn.Module):
        def __init__(self, mods):
            super().__init__()
            self.mods = torch.nn.ModuleList(mods)

        def forward(self, x):
            for m in self.mods:
                x = m(x)
            return x

    return Prefix(children).eval()


def main(argv):
    calib = None
    if "--int8" in argv:
        i = argv.index("--int8")
        calib = argv[i + 1] if i + 1 < len(argv) else None
        argv = argv[:i] + argv[i + 2:]
        if calib is None:
            argv = []
    if len(argv) not in (3, 4):
        print("usage: ov_convert IN.pt OUT_DIR SIZE [BLOCKS] [--int8 CALIB.npy]", file=sys.stderr)
        return 2
    src, out_dir, size = argv[0], argv[1], int(argv[2])
    blocks = int(argv[3]) if len(argv) == 4 else None
    try:
        import torch
        import openvino as ov
        if calib is not None:
            import nncf
            import numpy as np
    except Exception as e:  # ImportError, or a torch that fails to load its libraries
        what = "torch, openvino and nncf" if calib is not None else "torch and openvino"
        print(f"{sys.executable} cannot import {what} ({type(e).__name__}: {e})", file=sys.stderr)
        return 3
    try:
        import os

        torch.set_num_threads(1)  # tlc is running beside this conversion; it needs no parallelism
        module = torch.jit.load(src, map_location="cpu").eval()
        if blocks is not None:
            module = prefix(module, blocks)
        example = torch.zeros(1, 3, size, size)
        model = ov.convert_model(module, example_input=example)
        model.reshape({model.inputs[0]: ov.PartialShape([-1, 3, size, size])})
        if calib is not None:
            images = np.load(calib)
            if images.ndim != 4 or images.shape[1:] != (3, size, size) or len(images) == 0:
                raise ValueError(f"the calibration images have shape {images.shape}, not [M,3,{size},{size}]")
            data = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
            model = nncf.quantize(model, data, subset_size=len(images), preset=nncf.QuantizationPreset.PERFORMANCE)
        os.makedirs(out_dir, exist_ok=True)
        ov.save_model(model, os.path.join(out_dir, "backbone.xml"), compress_to_fp16=False)
    except Exception as e:
        msg = str(e).strip().splitlines()
        print(f"OpenVINO could not convert {src} ({type(e).__name__}: {msg[0] if msg else ''})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
