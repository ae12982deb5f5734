#!/usr/bin/python3
"""Real torch.onnx exports of the segmentation families users bring, small enough to commit.

Run with Debian's python3-torch / python3-torchvision (apt-get install python3-torch python3-torchvision
python3-onnx): /usr/bin/python3 scripts/make-onnx-fixtures.py tests/Sculpt.Tests/Fixtures/onnx

Each model is built from torchvision's own classes (or written the way nnU-Net, MONAI and the attention U-Net
paper write them) with fewer channels, so the exporter writes the same operator patterns as for the full-size
networks. For every fixture NAME: NAME.onnx, NAME.input.npy (a seeded input) and NAME.output.npy (PyTorch's
output in eval mode). The export calls are the ones the README recommends (and their variants: batch norm kept,
fixed batch, dynamic height and width, opset 11).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet
from torchvision.models import mobilenetv3
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3, _deeplabv3_mobilenetv3
from torchvision.models.segmentation.fcn import FCN, FCNHead
from torchvision.models.segmentation.lraspp import _lraspp_mobilenetv3


class Out(nn.Module):
    """torchvision's segmentation models return {'out': logits}; exports take the tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


class SmallResNet(resnet.ResNet):
    """torchvision's ResNet with every stage 16× narrower (the stem keeps 64)."""

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        return super()._make_layer(block, planes // 16, blocks, stride, dilate)


def small_resnet():
    # as torchvision's segmentation builders: output stride 8 through dilation in the last two stages
    return SmallResNet(resnet.Bottleneck, [1, 1, 1, 1], replace_stride_with_dilation=[False, True, True])


def deeplab_head(in_channels, classes, width=16):
    """torchvision's DeepLabHead (ASPP → 3×3 conv-BN-ReLU → 1×1) at a smaller width (DeepLabHead fixes 256)."""
    return nn.Sequential(ASPP(in_channels, [12, 24, 36], width), nn.Conv2d(width, width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, classes, 1))


def deeplabv3_resnet(classes=1):
    backbone = IntermediateLayerGetter(small_resnet(), return_layers={"layer4": "out"})
    return Out(DeepLabV3(backbone, deeplab_head(128, classes)))


def fcn_resnet(classes=1):
    backbone = IntermediateLayerGetter(small_resnet(), return_layers={"layer4": "out"})
    return Out(FCN(backbone, FCNHead(128, classes)))


def small_mobilenet():
    return mobilenetv3.mobilenet_v3_small(width_mult=0.25, reduced_tail=True, dilated=True)


def lraspp_mobilenet(classes=1):
    return Out(_lraspp_mobilenetv3(small_mobilenet(), classes))


def deeplabv3_mobilenet(classes=1):
    model = _deeplabv3_mobilenetv3(small_mobilenet(), classes, False)
    model.classifier = deeplab_head(model.classifier[0].convs[0][0].in_channels, classes)
    return Out(model)


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Up(nn.Module):
    """Bilinear upsampling, padding to the skip's size from the traced shapes, concatenation (a common U-Net)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy = x2.size()[2] - x1.size()[2]
        dx = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class PlainUNet(nn.Module):
    def __init__(self, cin=1, classes=1, w=4):
        super().__init__()
        self.inc = DoubleConv(cin, w)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(w, 2 * w))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(2 * w, 4 * w))
        self.up1 = Up(6 * w, 2 * w)
        self.up2 = Up(3 * w, w)
        self.outc = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        return self.outc(self.up2(self.up1(x3, x2), x1))


class NnUNetStage(nn.Sequential):
    """nnU-Net's StackedConvBlocks: conv → InstanceNorm(affine) → LeakyReLU(0.01); the first conv strides."""

    def __init__(self, cin, cout, stride):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1), nn.InstanceNorm2d(cout, eps=1e-5, affine=True),
                         nn.LeakyReLU(0.01, inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.InstanceNorm2d(cout, eps=1e-5, affine=True),
                         nn.LeakyReLU(0.01, inplace=True))


class NnUNet(nn.Module):
    """The shape of nnU-Net's PlainConvUNet (2D): strided convolutions down, transposed convolutions up."""

    def __init__(self, cin=1, classes=2, w=4):
        super().__init__()
        self.enc = nn.ModuleList([NnUNetStage(cin, w, 1), NnUNetStage(w, 2 * w, 2), NnUNetStage(2 * w, 4 * w, 2)])
        self.tu = nn.ModuleList([nn.ConvTranspose2d(4 * w, 2 * w, 2, 2, bias=False), nn.ConvTranspose2d(2 * w, w, 2, 2, bias=False)])
        self.dec = nn.ModuleList([NnUNetStage(4 * w, 2 * w, 1), NnUNetStage(2 * w, w, 1)])
        self.seg = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        skips = []
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        x = skips[-1]
        for i, (tu, dec) in enumerate(zip(self.tu, self.dec)):
            x = dec(torch.cat([tu(x), skips[-(i + 2)]], 1))
        return self.seg(x)


class ResidualUnit(nn.Module):
    """MONAI's ResidualUnit (2 subunits, NDA order: conv → InstanceNorm → Dropout → PReLU) with its residual path."""

    def __init__(self, cin, cout, stride, last=False):
        super().__init__()

        def unit(a, b, s, act=True):
            layers = [nn.Conv2d(a, b, 3, s, 1), nn.InstanceNorm2d(b, affine=True), nn.Dropout(0.1)]
            if act:
                layers.append(nn.PReLU())
            return nn.Sequential(*layers)

        self.conv = nn.Sequential(unit(cin, cout, stride), unit(cout, cout, 1, act=not last))
        self.residual = nn.Conv2d(cin, cout, 3 if stride != 1 else 1, stride, 1 if stride != 1 else 0)

    def forward(self, x):
        return self.conv(x) + self.residual(x)


class MonaiUNet(nn.Module):
    """MONAI's UNet(spatial_dims=2, channels=(4, 8, 16), strides=(2, 2), num_res_units=2) in miniature."""

    def __init__(self, cin=1, classes=1, w=4):
        super().__init__()
        self.down1 = ResidualUnit(cin, w, 2)
        self.down2 = ResidualUnit(w, 2 * w, 2)
        self.bottom = ResidualUnit(2 * w, 4 * w, 1)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(6 * w, w, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(w, affine=True),
                                 nn.PReLU(num_parameters=w))
        self.up2r = ResidualUnit(w, w, 1)
        self.up1 = nn.ConvTranspose2d(2 * w, classes, 3, 2, 1, output_padding=1)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        b = self.bottom(d2)
        u2 = self.up2r(self.up2(torch.cat([d2, b], 1)))
        return self.up1(torch.cat([d1, u2], 1))


class AttentionGate(nn.Module):
    """Oktay et al. 2018: a one-channel sigmoid gate computed from the skip and the coarser signal multiplies the skip."""

    def __init__(self, fg, fl, fint):
        super().__init__()
        self.wg = nn.Sequential(nn.Conv2d(fg, fint, 1), nn.BatchNorm2d(fint))
        self.wx = nn.Sequential(nn.Conv2d(fl, fint, 1), nn.BatchNorm2d(fint))
        self.psi = nn.Sequential(nn.Conv2d(fint, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, g, x):
        return x * self.psi(F.relu(self.wg(g) + self.wx(x)))


class AttentionUNet(nn.Module):
    def __init__(self, cin=1, classes=1, w=4):
        super().__init__()
        self.c1 = DoubleConv(cin, w)
        self.c2 = DoubleConv(w, 2 * w)
        self.c3 = DoubleConv(2 * w, 4 * w)
        self.up3 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(4 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU())
        self.att3 = AttentionGate(2 * w, 2 * w, w)
        self.d3 = DoubleConv(4 * w, 2 * w)
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2 * w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU())
        self.att2 = AttentionGate(w, w, max(w // 2, 1))
        self.d2 = DoubleConv(2 * w, w)
        self.out = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        x1 = self.c1(x)
        x2 = self.c2(F.max_pool2d(x1, 2))
        x3 = self.c3(F.max_pool2d(x2, 2))
        g3 = self.up3(x3)
        d3 = self.d3(torch.cat([self.att3(g3, x2), g3], 1))
        g2 = self.up2(d3)
        d2 = self.d2(torch.cat([self.att2(g2, x1), g2], 1))
        return self.out(d2)


class SqueezeExcite(nn.Module):
    """A squeeze-excitation block written with Linear layers (pool → flatten → FC → ReLU → FC → sigmoid → view → Mul)."""

    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Linear(c, c // r)
        self.fc2 = nn.Linear(c // r, c)

    def forward(self, x):
        b, c, _, _ = x.size()
        s = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s.view(b, c, 1, 1)


class SeUNet(nn.Module):
    """A small U-Net with Linear squeeze-excitation, Tanh, ReLU6, Hardswish, grouped-free depthwise and a softmax head."""

    def __init__(self, cin=1, classes=3, w=8):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(w, w, 3, padding=1, groups=w), nn.BatchNorm2d(w), nn.Hardswish())
        self.se = SqueezeExcite(w)
        self.c2 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.Tanh())
        self.up = nn.ConvTranspose2d(2 * w, w, 2, 2)
        self.fuse = nn.Sequential(nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        x1 = self.se(self.dw(self.c1(x)))
        x2 = self.c2(x1)
        return torch.softmax(self.head(self.fuse(torch.cat([x1, self.up(x2)], 1))), dim=1)


def randomise(model, seed):
    """Trained-looking statistics and affine parameters, so that folding and normalisation are really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.weight is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.4)


def export(out_dir, name, model, channels, size=64, seed=0, opset=17, dynamic="batch", keep_bn=False, untrained=False):
    torch.manual_seed(seed)
    if not untrained:
        randomise(model, seed)
    model.eval()
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = model(x)
    axes = None
    if dynamic == "batch":
        axes = {"input": {0: "n"}, "out": {0: "n"}}
    elif dynamic == "hw":
        axes = {"input": {0: "n", 2: "h", 3: "w"}, "out": {0: "n", 2: "h", 3: "w"}}
    kwargs = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) if keep_bn else {}
    path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["out"],
                      dynamic_axes=axes, **kwargs)
    np.save(os.path.join(out_dir, name + ".input.npy"), x.numpy())
    np.save(os.path.join(out_dir, name + ".output.npy"), y.numpy())
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {os.path.getsize(path)} bytes")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/Sculpt.Tests/Fixtures/onnx"
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    export(out_dir, "deeplabv3_resnet", deeplabv3_resnet(), 3)
    export(out_dir, "deeplabv3_resnet_fixed_opset11", deeplabv3_resnet(), 3, seed=1, opset=11, dynamic=None)
    export(out_dir, "fcn_resnet", fcn_resnet(), 3, seed=2)
    export(out_dir, "lraspp_mobilenetv3", lraspp_mobilenet(), 3, seed=3)
    export(out_dir, "deeplabv3_mobilenetv3", deeplabv3_mobilenet(), 3, seed=4)
    export(out_dir, "unet", PlainUNet(), 1, seed=5)
    export(out_dir, "unet_bn_kept", PlainUNet(), 1, seed=6, keep_bn=True)
    export(out_dir, "unet_untrained_bn_kept", PlainUNet(), 1, seed=7, keep_bn=True, untrained=True)
    export(out_dir, "unet_dynamic_hw", PlainUNet(), 1, seed=8, dynamic="hw")
    export(out_dir, "nnunet", NnUNet(), 1, seed=9)
    export(out_dir, "monai_unet", MonaiUNet(), 1, seed=10)
    export(out_dir, "attention_unet", AttentionUNet(), 1, seed=11)
    export(out_dir, "se_unet", SeUNet(w=16), 1, seed=12, opset=13)


if __name__ == "__main__":
    main()
