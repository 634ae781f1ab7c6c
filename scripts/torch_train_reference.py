#!/usr/bin/env python3
"""The seed's job written as a plain PyTorch script, timed in the same run as `tlc train`, for
scripts/gpu_check.sh: a frozen TorchScript backbone + GlobalAveragePooling + Dense head trained with RMSprop
(lr 1e-4) on a folder of JPEGs (one sub-folder per class), images decoded and resized to SIZE by a DataLoader
with WORKERS worker processes (PIL, bilinear), normalized to [-1, 1].

Modes (each prints one JSON object with the wall time of the whole job, the data listing included):
  every-epoch   the backbone runs every epoch (the Keras tutorial's way): decode + backbone + head per epoch
  cached        the backbone runs once; the head trains on the pooled features (what tlc does by default)
  finetune      images/s of a fine-tuning step of the last N convolutions + head under bf16 autocast, on a
                pre-decoded batch (the backbone's compute alone)

Usage: torch_train_reference.py DATA --backbone vgg16.pt --mode every-epoch|cached|finetune
       [--epochs 10] [--batch 128] [--size 160] [--workers 16] [--device cuda] [--bf16] [--layers 3]"""
import argparse
import json
import os
import time

import numpy as np
import torch
from PIL import Image


class Folder(torch.utils.data.Dataset):
    def __init__(self, root, size):
        self.size = size
        self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.items = [(os.path.join(root, c, f), k) for k, c in enumerate(self.classes)
                      for f in sorted(os.listdir(os.path.join(root, c))) if f.lower().endswith((".jpg", ".jpeg", ".png"))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        img = Image.open(path).convert("RGB")
        img.draft("RGB", (self.size, self.size))  # libjpeg's reduced decoding, as tlc does
        img = img.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img).copy()), label


def normalize(u8, device, dtype):
    x = u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--mode", required=True, choices=["every-epoch", "cached", "finetune"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="frozen backbone in bf16 channels-last")
    ap.add_argument("--layers", type=int, default=3, help="finetune: last N layers with parameters")
    a = ap.parse_args()
    dev = torch.device(a.device)
    t0 = time.perf_counter()
    ds = Folder(a.data, a.size)
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         pin_memory=dev.type == "cuda", persistent_workers=a.workers > 0)
    bb = torch.jit.load(a.backbone, map_location=dev).eval()
    dtype = torch.bfloat16 if a.bf16 else torch.float32
    out = {"mode": a.mode, "images": len(ds), "epochs": a.epochs, "batch": a.batch, "workers": a.workers,
           "device": a.device, "dtype": str(dtype)}

    if a.mode == "finetune":
        params = list(bb.named_parameters())
        layers = list(dict.fromkeys(n.rsplit(".", 1)[0] for n, _ in params))  # in order, as tlc counts them
        tune = set(layers[-a.layers:])
        train_params = []
        for n, p in params:
            p.requires_grad_(n.rsplit(".", 1)[0] in tune)
            if p.requires_grad:
                train_params.append(p)
        bb = bb.to(memory_format=torch.channels_last)
        c = bb(torch.zeros(1, 3, 64, 64, device=dev)).shape[1]
        head = torch.nn.Linear(c, len(ds.classes)).to(dev)
        opt = torch.optim.RMSprop(train_params + list(head.parameters()), lr=1e-5)
        u8 = torch.randint(0, 256, (a.batch, a.size, a.size, 3), dtype=torch.uint8, device=dev)
        y = torch.randint(0, len(ds.classes), (a.batch,), device=dev)

        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = torch.nn.functional.cross_entropy(head(bb(normalize(u8, dev, torch.float32)).mean([2, 3])), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(3):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        n = 20
        for _ in range(n):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out["finetune_img_s"] = n * a.batch / (time.perf_counter() - t1)
        print(json.dumps(out))
        return

    if a.bf16:
        bb = bb.to(dtype).to(memory_format=torch.channels_last)
    with torch.no_grad():
        c = bb(torch.zeros(1, 3, 64, 64, device=dev, dtype=dtype)).shape[1]
    head = torch.nn.Linear(c, len(ds.classes)).to(dev)
    opt = torch.optim.RMSprop(head.parameters(), lr=1e-4)

    def features(u8):
        with torch.no_grad():
            return bb(normalize(u8, dev, dtype)).float().mean([2, 3])

    def head_step(f, y):
        loss = torch.nn.functional.cross_entropy(head(f), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    if a.mode == "every-epoch":
        for _ in range(a.epochs):
            for u8, y in loader:
                head_step(features(u8), y.to(dev))
    else:
        feats, labels = [], []
        for u8, y in loader:
            feats.append(features(u8))
            labels.append(y.to(dev))
        feats, labels = torch.cat(feats), torch.cat(labels)
        for e in range(a.epochs):
            order = torch.randperm(len(labels), device=dev)
            for b in range(0, len(order), a.batch):
                idx = order[b:b + a.batch]
                head_step(feats[idx], labels[idx])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
