#!/usr/bin/python3
"""Small input files written by the real, independent tools, for the readers' tests and the fuzz corpus.

Run with Debian's packages (apt-get install ffmpeg python3-nibabel python3-torch python3-numpy):
    /usr/bin/python3 scripts/make-input-fixtures.py tests/Sculpt.Tests/Fixtures/inputs

Written:
- ffmpeg.avi: Motion-JPEG AVI from ffmpeg's own encoder (testsrc2, 48x40, 6 frames); ffmpeg.frames.npy: ffmpeg's
  own decoding of it to 8-bit grey (frames, height, width).
- ffmpeg-frame.jpg: one 640x480 colour frame (testsrc) as ffmpeg's JPEG encoder writes a still (JFIF, a comment
  segment), for reading an image's size from its header.
- nibabel.nii.gz (uint8) and nibabel-float.nii (float32, scaled by scl_slope/scl_inter) from nibabel, with the
  array nibabel reads back as NAME.npy (height, width: row y, column x) and the pixel spacing in the header.
- camus-size.nii.gz: a uint8 image of 1945 x 1181 (the largest CAMUS frame), to show the limits accept real sizes.
- metaimage.mhd + metaimage.raw: MetaIO's text header as the MetaIO specification and ITK write it (no MetaImage
  writer is packaged for Debian's Python); metaimage.npy holds the pixels.
- state.pt (zip) and state-legacy.pt (legacy format) from torch.save: a small conv/batch-norm state dict;
  state.npz holds every tensor for comparison.
- echonet-tracings.npy (tracing, 21 rows, X1 Y1 X2 Y2) and echonet-masks.npy (rows of tracing, r, c): EchoNet-Dynamic's
  own mask rule (echonet/datasets/echo.py) applied with skimage.draw.polygon to seeded tracings of 112 x 112
  frames, some reaching past the frame's edge.
- payload-*.pt / payload-*.pkl: malicious pickles. torch.save writes objects whose unpickling would run
  os.system (GLOBAL/STACK_GLOBAL + REDUCE), build an object through NEWOBJ / NEWOBJ_EX, or set its state (BUILD);
  INST and OBJ, which no Python 3 pickler emits any more, are written opcode by opcode as the pickle format
  defines them. Had any of them run, it would create the file named by SENTINEL.
"""
import io
import os
import pickle
import subprocess
import sys
import zipfile

import nibabel as nib
import numpy as np
import torch

SENTINEL = "/tmp/sculpt-pickle-payload-ran"


def avi(out):
    path = os.path.join(out, "ffmpeg.avi")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=48x40:rate=25", "-frames:v", "6",
                    "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", path], check=True)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         check=True, capture_output=True).stdout
    np.save(os.path.join(out, "ffmpeg.frames.npy"), np.frombuffer(raw, np.uint8).reshape(-1, 40, 48).astype(np.float32))


def jpeg(out):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x480:rate=1", "-frames:v", "1",
                    "-q:v", "4", os.path.join(out, "ffmpeg-frame.jpg")], check=True)


def nifti(out):
    rng = np.random.default_rng(7)
    # nibabel's array is indexed [i, j] = [column x, row y]; the .npy is stored as (row, column)
    image = rng.integers(0, 256, size=(37, 23, 1), dtype=np.uint8)
    img = nib.Nifti1Image(image, np.diag([0.3, 0.2, 1.0, 1.0]))
    img.header.set_zooms((0.3, 0.2, 1.0))
    nib.save(img, os.path.join(out, "nibabel.nii.gz"))
    np.save(os.path.join(out, "nibabel.npy"),
            np.ascontiguousarray(nib.load(os.path.join(out, "nibabel.nii.gz")).get_fdata()[:, :, 0].T, np.float32))

    values = rng.normal(size=(19, 11)).astype(np.float32)
    img = nib.Nifti1Image(values, np.diag([0.154, 0.154, 1.0, 1.0]))
    img.header.set_slope_inter(2.0, -1.0)
    nib.save(img, os.path.join(out, "nibabel-float.nii"))
    np.save(os.path.join(out, "nibabel-float.npy"),
            np.ascontiguousarray(nib.load(os.path.join(out, "nibabel-float.nii")).get_fdata().T, np.float32))

    x, y = np.meshgrid(np.arange(1945), np.arange(1181), indexing="ij")
    large = ((x // 8 + y // 8) % 256).astype(np.uint8)
    nib.save(nib.Nifti1Image(large, np.diag([0.15, 0.15, 1.0, 1.0])), os.path.join(out, "camus-size.nii.gz"))


def metaimage(out):
    rng = np.random.default_rng(8)
    pixels = rng.integers(0, 65535, size=(13, 17), dtype=np.uint16)  # (rows, columns)
    with open(os.path.join(out, "metaimage.mhd"), "w") as f:
        f.write("ObjectType = Image\nNDims = 2\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n"
                "TransformMatrix = 1 0 0 1\nOffset = 0 0\nCenterOfRotation = 0 0\nElementSpacing = 0.25 0.5\n"
                "DimSize = 17 13\nElementType = MET_USHORT\nElementDataFile = metaimage.raw\n")
    pixels.astype("<u2").tofile(os.path.join(out, "metaimage.raw"))
    np.save(os.path.join(out, "metaimage.npy"), pixels.astype(np.float32))


def checkpoints(out):
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    net[1].running_mean.uniform_(-1, 1)
    state = net.state_dict()
    torch.save(state, os.path.join(out, "state.pt"))
    torch.save(state, os.path.join(out, "state-legacy.pt"), _use_new_zipfile_serialization=False)
    np.savez(os.path.join(out, "state.npz"), **{k: v.numpy().astype(np.float32) for k, v in state.items()})


class RunsACommand:
    def __reduce__(self):
        return (os.system, (f"touch {SENTINEL}",))


class CallsEval:
    def __reduce__(self):
        return (eval, (f"open('{SENTINEL}', 'w')",))


class BuiltWithNew:
    """Pickled with NEWOBJ (protocol 2) or NEWOBJ_EX (protocol 4) and BUILD of its __dict__."""

    def __init__(self):
        self.command = f"touch {SENTINEL}"

    def __getnewargs_ex__(self):
        return ((), {"unused": 1})

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)


class BuiltWithNewPlain:
    def __init__(self):
        self.command = f"touch {SENTINEL}"


def payloads(out):
    weight = torch.zeros(2, 2)
    for protocol in (2, 4):
        for kind, obj in (("system", RunsACommand()), ("eval", CallsEval()), ("newobj", BuiltWithNewPlain()),
                          ("newobj-ex", BuiltWithNew())):
            if kind == "newobj-ex" and protocol < 4:
                continue
            name = f"payload-{kind}-p{protocol}"
            torch.save({"weight": weight, "x": obj}, os.path.join(out, name + ".pt"), pickle_protocol=protocol)
            torch.save({"state_dict": {"weight": weight}, "x": obj}, os.path.join(out, name + "-legacy.pt"),
                       pickle_protocol=protocol, _use_new_zipfile_serialization=False)
    # INST and OBJ: protocol-0 opcodes the pickle module still executes when it reads them
    inst = b"(S'touch " + SENTINEL.encode() + b"'\nios\nsystem\n."
    obj = b"(cos\nsystem\nS'touch " + SENTINEL.encode() + b"'\no."
    for name, data in (("inst", inst), ("obj", obj)):
        with open(os.path.join(out, f"payload-{name}.pkl"), "wb") as f:
            f.write(data)
        # the same pickle as data.pkl of a torch.save zip archive
        with zipfile.ZipFile(os.path.join(out, f"payload-{name}.pt"), "w") as z:
            z.writestr("archive/data.pkl", data)
            z.writestr("archive/version", "3\n")
    # the pickles are what they claim: the standard unpickler would run them
    for name, data in (("inst", inst), ("obj", obj)):
        assert pickle.loads(data.replace(b"touch", b"true")) == 0, name


def echonet_masks(out):
    import skimage.draw
    rng = np.random.default_rng(9)
    tracings, pixels = [], []
    for k in range(20):
        # a long axis and 20 chords across it, as EchoNet's VolumeTracings.csv holds them (fractional coordinates)
        cx, cy = rng.uniform(20, 92), rng.uniform(20, 92)
        length, width, angle = rng.uniform(30, 70), rng.uniform(12, 40), rng.uniform(0, np.pi)
        if k % 5 == 4:
            cx = rng.uniform(-5, 5)  # past the left edge: the mask is clipped to the frame
        ax, ay = np.cos(angle), np.sin(angle)
        rows = [(cx - ax * length / 2, cy - ay * length / 2, cx + ax * length / 2, cy + ay * length / 2)]
        for t in np.linspace(-0.45, 0.45, 20):
            half = width / 2 * np.sqrt(max(0.05, 1 - (2 * t) ** 2)) * rng.uniform(0.9, 1.1)
            px, py = cx + ax * t * length, cy + ay * t * length
            rows.append((px - ay * half, py + ax * half, px + ay * half, py - ax * half))
        t = np.array(rows, np.float32).astype(np.float64)  # the float32 values the test reads are the ones used
        x1, y1, x2, y2 = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
        x = np.concatenate((x1[1:], np.flip(x2[1:])))
        y = np.concatenate((y1[1:], np.flip(y2[1:])))
        r, c = skimage.draw.polygon(np.rint(y).astype(np.int_), np.rint(x).astype(np.int_), (112, 112))
        tracings.append(t.astype(np.float32))
        pixels.extend((k, rr, cc) for rr, cc in zip(r, c))
    np.save(os.path.join(out, "echonet-tracings.npy"), np.stack(tracings))
    np.save(os.path.join(out, "echonet-masks.npy"), np.array(pixels, np.float32))


def main(out):
    os.makedirs(out, exist_ok=True)
    avi(out)
    jpeg(out)
    nifti(out)
    metaimage(out)
    checkpoints(out)
    echonet_masks(out)
    payloads(out)
    assert not os.path.exists(SENTINEL)


if __name__ == "__main__":
    main(sys.argv[1])
