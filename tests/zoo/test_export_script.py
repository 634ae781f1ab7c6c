#!/usr/bin/env python3
"""scripts/export_backbone.py's user-facing behaviour (ctest Zoo.ExportScript): --list names every family with
its figures; --weights imagenet without network or cached copy fails naming the file, and writes nothing (no
random fallback); timm:NAME without timm is a clear error, and with timm (when installed) gets blocks that
compute timm's own forward_features."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPORT = os.path.join(ROOT, "scripts", "export_backbone.py")
failures = []


def run(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, EXPORT] + args, capture_output=True, text=True, env=e)


def check(cond, what, out=""):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
        print(out[-2000:])


with tempfile.TemporaryDirectory() as tmp:
    archs = ("vgg11_bn", "resnet50", "wide_resnet50_2", "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_large",
             "efficientnet_b7", "efficientnet_v2_s", "convnext_tiny", "regnet_y_400mf", "densenet121", "swin_t",
             "vit_b_16", "efficientnet_lite1", "efficientnet_lite2")
    r = run(["--list", "--only", ",".join(archs)])
    lines = r.stdout.splitlines()
    for arch in archs:
        check(any(l.split()[:1] == [arch] for l in lines), f"--list shows {arch}", r.stdout + r.stderr)
    row = next((l.split() for l in lines if l.startswith("resnet50 ")), [])
    check(row[2:6] == ["2048", "23508032", "224", "imagenet"], "--list: resnet50 has 2048 channels, 23.5M parameters, "
          "224 px, imagenet normalization", str(row))

    # No network (a proxy that refuses) and an empty hub cache: a clear error and no file.
    out = os.path.join(tmp, "r18.pt")
    r = run(["--arch", "resnet18", "--weights", "imagenet", "--out", out],
            {"TORCH_HOME": os.path.join(tmp, "hub"), "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    check(r.returncode != 0 and not os.path.exists(out), "--weights imagenet offline fails and writes nothing", r.stderr)
    check("resnet18-f37072fd.pth" in r.stderr and "No random fallback" in r.stderr,
          "the offline error names the weights file and says there is no fallback", r.stderr)

    r = run(["--arch", "resnet999", "--out", out])
    check(r.returncode != 0 and "--list" in r.stderr, "an unknown arch points to --list", r.stderr)

    # timm missing: a module named timm that fails to import stands in for an environment without it.
    fake = os.path.join(tmp, "fake")
    os.makedirs(fake)
    with open(os.path.join(fake, "timm.py"), "w") as f:
        f.write("raise ImportError('simulated: no timm')\n")
    r = run(["--arch", "timm:resnet18", "--out", out], {"PYTHONPATH": fake})
    check(r.returncode != 0 and "needs the timm package" in r.stderr and "pip install timm" in r.stderr,
          "timm:NAME without timm is a clear error", r.stderr)

    try:
        import timm  # noqa: F401
        have_timm = True
    except Exception:
        have_timm = False
    if not have_timm:
        print("skip timm:resnet18 export (timm is not installed in this Python)")
    else:
        import torch
        r = run(["--arch", "timm:resnet18", "--out", out])
        check(r.returncode == 0 and "5 blocks" in r.stdout, "timm:resnet18 exports with 5 blocks", r.stdout + r.stderr)
        if r.returncode == 0:
            m = torch.jit.load(out)
            ref = timm.create_model("resnet18", pretrained=False, num_classes=0, global_pool="").eval()
            ref.load_state_dict({k.replace("blocks.stem.0.", "conv1.").replace("blocks.stem.1.", "bn1.")
                                 .replace("blocks.", ""): v for k, v in m.state_dict().items()})
            x = torch.randn(2, 3, 64, 64)
            with torch.no_grad():
                check(torch.allclose(m(x), ref.forward_features(x), atol=1e-5), "timm:resnet18 equals timm's features")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
