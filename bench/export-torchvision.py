#!/usr/bin/python3
"""Full-size torchvision segmentation networks exported the way a user exports them (torch.onnx defaults).

/usr/bin/python3 bench/export-torchvision.py deeplabv3_resnet50 OUT.onnx [SIZE] [--keep-bn]
EchoNet-Dynamic's model: deeplabv3_resnet50(num_classes=1, aux_loss=False) on 3×112×112 frames.
"""
import sys

import numpy as np
import torch
import torchvision


class Out(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def main():
    arch, path = sys.argv[1], sys.argv[2]
    size = int(sys.argv[3]) if len(sys.argv) > 3 and not sys.argv[3].startswith("--") else 112
    keep_bn = "--keep-bn" in sys.argv
    torch.manual_seed(0)
    builder = getattr(torchvision.models.segmentation, arch)
    model = Out(builder(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)).eval()
    x = torch.randn(1, 3, size, size)
    kwargs = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) if keep_bn else {}
    torch.onnx.export(model, x, path, opset_version=17, input_names=["input"], output_names=["out"],
                      dynamic_axes={"input": {0: "n"}, "out": {0: "n"}}, **kwargs)
    with torch.no_grad():
        y = model(x)
    np.save(path + ".input.npy", x.numpy())
    np.save(path + ".output.npy", y.numpy())
    print(f"{arch}: {sum(p.numel() for p in model.parameters())} parameters → {path} (and PyTorch's output on a seeded input)")


if __name__ == "__main__":
    main()
