#!/usr/bin/python3
"""Train torchvision's DeepLabV3-ResNet50 (EchoNet-Dynamic's model) in PyTorch on a Sculpt dataset folder, then
export it the way a user does (torch.onnx defaults: batch norm folded, dynamic batch): the model a clinical group
would bring to Sculpt. Grey frames are fed in all three channels, as EchoNet feeds its grey videos.

/usr/bin/python3 bench/train-torchvision.py DATA OUT.onnx [--epochs 1] [--threads 1] [--seed 0]
Writes OUT.onnx, OUT.onnx.json (normalisation on the 0–255 scale, val/test Dice, seconds).
"""
import argparse
import csv
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from skimage import io


def load(data):
    split = {}
    with open(os.path.join(data, "split.csv")) as f:
        for row in csv.DictReader(f):
            split[row["id"]] = row["split"]
    sets = {"train": [], "val": [], "test": []}
    for i, s in sorted(split.items()):
        img = io.imread(os.path.join(data, "images", i + ".png")).astype(np.float32) / 255
        if img.ndim == 3:
            img = img[..., :3].mean(-1)
        mask = (io.imread(os.path.join(data, "masks", i + ".png")) > 0).astype(np.float32)
        sets[s].append((img, mask))
    return {k: (torch.tensor(np.stack([a for a, _ in v])), torch.tensor(np.stack([b for _, b in v]))) for k, v in sets.items()}


def dice(logits, masks):
    pred = (logits > 0).float()
    inter = (pred * masks).sum((1, 2))
    total = pred.sum((1, 2)) + masks.sum((1, 2))
    return torch.where(total > 0, 2 * inter / total.clamp(min=1e-9), torch.ones_like(total)).mean().item()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data"), p.add_argument("out")
    p.add_argument("--epochs", type=int, default=1), p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0), p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    sets = load(a.data)
    x, y = sets["train"]
    mean, std = x.mean().item(), x.std().item()

    def inputs(images):
        return ((images - mean) / std).unsqueeze(1).repeat(1, 3, 1, 1)

    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    steps = a.epochs * ((len(x) + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.time()
    step = 0
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(x))
        for b in range(0, len(x), a.batch):
            idx = order[b:b + a.batch]
            logits = model(inputs(x[idx]))["out"][:, 0]
            target = y[idx]
            prob = torch.sigmoid(logits)
            soft_dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
            loss = F.binary_cross_entropy_with_logits(logits, target) + soft_dice
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 10 == 0:
                print(f"epoch {epoch + 1} step {step}/{steps} loss {loss.item():.4f} {time.time() - t0:.0f} s", flush=True)
    train_s = time.time() - t0
    model.eval()
    result = {"mean": mean * 255, "std": std * 255, "train_seconds": round(train_s, 1), "epochs": a.epochs, "lr": a.lr}
    with torch.no_grad():
        for s in ("val", "test"):
            xs, ys = sets[s]
            logits = torch.cat([model(inputs(xs[i:i + 16]))["out"][:, 0] for i in range(0, len(xs), 16)])
            result[f"{s}_dice"] = dice(logits, ys)

    class Out(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, t):
            return self.m(t)["out"]

    torch.onnx.export(Out(model), inputs(x[:1]), a.out, opset_version=17, input_names=["input"], output_names=["out"],
                      dynamic_axes={"input": {0: "n"}, "out": {0: "n"}})
    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
