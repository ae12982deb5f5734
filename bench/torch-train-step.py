#!/usr/bin/python3
"""PyTorch's training step for the U-Net of this repo (the structure of Sculpt's builder and of
tests/Sculpt.Tests/Reference/HandUNet.cs: DoubleConv = conv3x3-BN-ReLU twice, max-pool down, 2x2 transposed
convolution up, skip concatenation, 1x1 head), with Sculpt's loss (BCE + soft Dice, Losses.DiceCe) and Adam.
Prints the median seconds per step as JSON. Debian's python3-torch (1.13).
usage: /usr/bin/python3 bench/torch-train-step.py [--width 16] [--depth 4] [--batch 8] [--size 112] [--reps 10] [--threads 2]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, depth, width):
        super().__init__()
        self.depth = depth
        self.enc = nn.ModuleList([DoubleConv(1, width)] + [DoubleConv(width << (l - 1), width << l) for l in range(1, depth + 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(width << (l + 1), width << l, 2, stride=2) for l in range(depth - 1, -1, -1)])
        self.dec = nn.ModuleList([DoubleConv(width << (l + 1), width << l) for l in range(depth - 1, -1, -1)])
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x):
        skips, h = [], self.enc[0](x)
        for l in range(1, self.depth + 1):
            skips.append(h)
            h = self.enc[l](F.max_pool2d(h, 2, 2))
        for k in range(self.depth):
            h = self.dec[k](torch.cat([skips[self.depth - 1 - k], self.up[k](h)], 1))
        return self.head(h)


def dice_ce(logits, target):
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + (1 - dice)


def main():
    a = argparse.ArgumentParser()
    for k, v in (("width", 16), ("depth", 4), ("batch", 8), ("size", 112), ("reps", 10), ("threads", 2)):
        a.add_argument("--" + k, type=int, default=v)
    o = a.parse_args()
    torch.set_num_threads(o.threads)
    torch.manual_seed(0)
    m = UNet(o.depth, o.width).train()
    opt = torch.optim.Adam(m.parameters(), 1e-4)
    x = torch.randn(o.batch, 1, o.size, o.size)
    y = (torch.randn(o.batch, 1, o.size, o.size) > 0.5).float()

    def step():
        t = time.perf_counter()
        opt.zero_grad()
        dice_ce(m(x), y).backward()
        opt.step()
        return time.perf_counter() - t

    step()
    times = [step() for _ in range(o.reps)]
    print(json.dumps({"bench": "torch-train-step", "torch": torch.__version__, "width": o.width, "depth": o.depth,
                      "batch": o.batch, "threads": o.threads, "mkldnn": torch.backends.mkldnn.is_available(),
                      "median_s": statistics.median(times)}))


if __name__ == "__main__":
    main()
