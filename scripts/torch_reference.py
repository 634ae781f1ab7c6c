#!/usr/bin/env python3
"""PyTorch eager reference figures measured in the same run as `tlc bench`, for scripts/gpu_check.sh:
device-to-device copy bandwidth, the torch op chain for normalization
(x.permute(0,3,1,2).float().div(127.5).sub(1)), the same ending in bf16 channels-last, and frozen VGG16 conv base + GAP at batch B in bf16
channels-last; with --images, torchvision's GPU JPEG decoding (decode_jpeg(device="cuda"), nvJPEG) + antialiased
resize of those files from memory, batch B. Prints one JSON object. Usage: torch_reference.py --backbone vgg16.pt
[--batch 256] [--size 160] [--device cuda|cpu] [--iters 20] [--images DIR --count N]"""
import argparse
import json
import time

import torch


def timeit(fn, iters, device):
    for _ in range(3):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(iters):
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--images", help="folder of JPEG files (searched recursively) for the GPU decoding figure")
    ap.add_argument("--count", type=int, default=2000)
    a = ap.parse_args()
    dev = a.device
    out = {"device": dev, "torch": torch.__version__, "batch": a.batch, "size": a.size}
    if dev == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        big = torch.empty(1 << 28, dtype=torch.uint8, device=dev)  # 256 MiB
        dst = torch.empty_like(big)
        t = timeit(lambda: dst.copy_(big), a.iters, dev)
        out["copy_GBps"] = 2 * big.numel() / t / 1e9
    x = torch.randint(0, 256, (a.batch, a.size, a.size, 3), dtype=torch.uint8, device=dev)
    t = timeit(lambda: x.permute(0, 3, 1, 2).float().div(127.5).sub(1), a.iters, dev)
    out["torch_normalize_GBps"] = x.numel() * 5 / t / 1e9
    # The same to bf16 channels-last (what the frozen backbone takes): bytes = u8 read + bf16 written.
    t = timeit(lambda: x.permute(0, 3, 1, 2).float().div(127.5).sub(1).to(torch.bfloat16)
               .contiguous(memory_format=torch.channels_last), a.iters, dev)
    out["torch_normalize_bf16_cl_GBps"] = x.numel() * 3 / t / 1e9
    m = torch.jit.load(a.backbone, map_location=dev).eval()
    inp = (x.permute(0, 3, 1, 2).float() / 127.5 - 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        if dev == "cuda":
            mb = m.to(torch.bfloat16).to(memory_format=torch.channels_last)
            xb = inp.to(torch.bfloat16)
            t = timeit(lambda: mb(xb).mean([2, 3]), a.iters, dev)
            out["backbone_bf16_cl_img_s"] = a.batch / t
        else:
            t = timeit(lambda: m(inp).mean([2, 3]), max(2, a.iters // 5), dev)
            out["backbone_fp32_img_s"] = a.batch / t
    if a.images and dev == "cuda":
        try:  # an error here must not cost the figures above
            out.update(torchvision_decode(a.images, a.count, a.batch, a.size))
        except Exception as e:  # noqa: BLE001 - reported in the JSON, the check goes on
            out["torchvision_decode_error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


def torchvision_decode(folder, count, batch, size):
    """Files already in memory -> [n,3,size,size] uint8 on the GPU, as tlc's decode_resize_gpu figure measures."""
    import os

    import torch.nn.functional as F
    import torchvision
    from torchvision.io import decode_jpeg

    paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.lower().endswith(".jpg"))[:count]
    blobs = [torchvision.io.read_file(p) for p in paths]

    def run():
        for b0 in range(0, len(blobs), batch):
            imgs = decode_jpeg(blobs[b0:b0 + batch], device="cuda")
            for im in imgs:
                F.interpolate(im[None].float(), size=(size, size), mode="bilinear", antialias=True).round().to(torch.uint8)

    t = timeit(run, 3, "cuda")
    return {"torchvision_decode_resize_img_s": len(blobs) / t, "torchvision_decode_files": len(blobs)}


if __name__ == "__main__":
    main()
