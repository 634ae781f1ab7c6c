#!/usr/bin/env python3
"""Computes the golden reference values for tests/test_golden.cpp with PyTorch.

On the committed tiny backbone (models/tiny_cnn.pt) and four 16x16 PNG images written here, it records:
the decoded pixels, the normalized tensors (minus1to1 and imagenet), the pooled features, the logits of a
head with fixed initial weights, the cross-entropy loss, and the head weights after ONE RMSprop step with
tlc's settings (alpha 0.9, eps 1e-7, lr 0.01). The tensors are stored as buffers of a TorchScript module
(tests/golden/golden_tiny.pt), and one fine-tuning step that also updates the last conv layer, so that C++ reads them with torch::jit::load. Run from the repository root:
  .venv/bin/python scripts/make_golden.py
"""
import os

import torch
import torch.nn.functional as F
from PIL import Image

from export_backbone import Golden  # a module of named tensors (this script's folder is on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden")


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(2024)
    images = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8, generator=g)
    for i in range(4):
        Image.fromarray(images[i].numpy(), "RGB").save(os.path.join(OUT, f"img{i}.png"))
    # Read back what was written, as tlc will.
    u8 = torch.stack([torch.from_numpy(__import__("numpy").array(Image.open(os.path.join(OUT, f"img{i}.png"))))
                      for i in range(4)])
    assert torch.equal(u8, images)
    x = u8.permute(0, 3, 1, 2).float()
    norm_m1 = x / 127.5 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    norm_in = (x / 255.0 - mean) / std

    backbone = torch.jit.load(os.path.join(ROOT, "models", "tiny_cnn.pt"))
    backbone.eval()
    with torch.no_grad():
        feats = backbone(norm_m1).mean([2, 3])
    K = 3
    w0 = torch.randn(K, feats.shape[1], generator=g) * 0.1
    b0 = torch.randn(K, generator=g) * 0.1
    labels = torch.tensor([0, 1, 2, 1])
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    logits = feats @ w.t() + b
    loss = F.cross_entropy(logits, labels)
    opt = torch.optim.RMSprop([w, b], lr=0.01, alpha=0.9, eps=1e-7)
    opt.zero_grad()
    loss.backward()
    opt.step()
    # One fine-tuning step: the last layer with parameters of tiny_cnn (body.3, Conv2d 8->16) and the head
    # train together from (w0, b0) and the file's weights, RMSprop as above.
    ft = torch.jit.load(os.path.join(ROOT, "models", "tiny_cnn.pt"))
    ft.eval()
    conv = getattr(ft.body, "3")
    for p in ft.parameters():
        p.requires_grad_(False)
    conv.weight.requires_grad_(True)
    conv.bias.requires_grad_(True)
    wf = w0.clone().requires_grad_(True)
    bf = b0.clone().requires_grad_(True)
    ft_logits = ft(norm_m1).mean([2, 3]) @ wf.t() + bf
    ft_loss = F.cross_entropy(ft_logits, labels)
    opt2 = torch.optim.RMSprop([wf, bf, conv.weight, conv.bias], lr=0.01, alpha=0.9, eps=1e-7)
    opt2.zero_grad()
    ft_loss.backward()
    opt2.step()
    tensors_ft = {"ft_loss": ft_loss.detach().reshape(1), "ft_w1": wf.detach(), "ft_b1": bf.detach(),
                  "ft_conv_w1": conv.weight.detach().clone(), "ft_conv_b1": conv.bias.detach().clone()}
    tensors = {**tensors_ft,
        "pixels": u8, "norm_minus1to1": norm_m1, "norm_imagenet": norm_in, "features": feats,
        "w0": w0, "b0": b0, "labels": labels, "logits": logits.detach(), "loss": loss.detach().reshape(1),
        "w1": w.detach(), "b1": b.detach(),
    }
    torch.jit.script(Golden(tensors)).save(os.path.join(OUT, "golden_tiny.pt"))
    print(f"wrote {OUT}/golden_tiny.pt and img0..3.png (loss {loss.item():.6f})")


if __name__ == "__main__":
    main()
