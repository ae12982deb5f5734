#!/usr/bin/python3
"""Multi-frame ultrasound DICOM fixtures for Sculpt's reader, made by independent tools: pydicom writes the
uncompressed files, dcmtk compresses them (dcmcrle: RLE lossless; dcmcjpeg +eb: JPEG baseline) and decompresses
them again (dcmdrle, dcmdjpeg) to give the reference frames each tool decodes. Frames are a small synthetic
"cine loop" (a pulsing bright ring on speckle), 5 frames of 48 x 64.

usage: /usr/bin/python3 scripts/make-dicom-fixtures.py tests/Sculpt.Tests/Fixtures/dicom
needs: apt-get install python3-pydicom dcmtk python3-numpy
"""
import os, subprocess, sys, tempfile
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
FRAMES, H, W = 5, 48, 64
yy, xx = np.mgrid[0:H, 0:W]

def grey_frames():
    frames = []
    for f in range(FRAMES):
        r = 12 + 4 * np.sin(2 * np.pi * f / FRAMES)
        d = np.hypot(yy - H / 2, xx - W / 2)
        ring = 200 * np.exp(-((d - r) ** 2) / 6)
        frames.append(np.clip(ring + rng.integers(0, 50, (H, W)), 0, 255).astype(np.uint8))
    return np.stack(frames)

def rgb_frames(grey):
    rgb = np.stack([grey, np.roll(grey, 3, axis=2), (255 - grey) // 2], axis=-1)
    return rgb.astype(np.uint8)

def dataset(pixels, photometric, syntax, regions, timing):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "Sculpt^Fixture"
    ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = H, W
    ds.SamplesPerPixel = 3 if pixels.ndim == 4 else 1
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.FrameIncrementPointer = (0x0018, 0x1063) if timing == "frame-time" else (0x0018, 0x0040)
    if timing == "frame-time":
        ds.FrameTime = "33.3"
    else:
        ds.CineRate = 25
    if regions:
        region = Dataset()
        region.RegionSpatialFormat = 1  # 2D
        region.RegionDataType = 1  # tissue
        region.RegionFlags = 0
        region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = W - 1, H - 1
        region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
        region.PhysicalDeltaX, region.PhysicalDeltaY = 0.03, 0.03
        ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.PixelData = pixels.tobytes()
    ds.is_little_endian = True
    ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
    return ds

def frames_of(path):
    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    if ds.PhotometricInterpretation.startswith("YBR"):
        from pydicom.pixel_data_handlers.util import convert_color_space
        a = convert_color_space(a, ds.PhotometricInterpretation, "RGB")
    return a.reshape((FRAMES, H, W) + (() if a.ndim == 3 else (3,)))

def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

grey = grey_frames()
rgb = rgb_frames(grey)
files = {
    "us-mono-explicit.dcm": dataset(grey, "MONOCHROME2", ExplicitVRLittleEndian, True, "frame-time"),
    "us-mono-implicit.dcm": dataset(grey, "MONOCHROME2", ImplicitVRLittleEndian, False, "cine-rate"),
    "us-rgb-explicit.dcm": dataset(rgb, "RGB", ExplicitVRLittleEndian, True, "frame-time"),
}
for name, ds in files.items():
    ds.save_as(os.path.join(out, name), write_like_original=False)
np.save(os.path.join(out, "us-mono.frames.npy"), grey)
np.save(os.path.join(out, "us-rgb.frames.npy"), rgb)

with tempfile.TemporaryDirectory() as tmp:
    for kind in ("mono", "rgb"):
        src = os.path.join(out, f"us-{kind}-explicit.dcm")
        rle = os.path.join(out, f"us-{kind}-rle.dcm")
        run("dcmcrle", src, rle)
        run("dcmdrle", rle, os.path.join(tmp, "back.dcm"))
        assert (frames_of(os.path.join(tmp, "back.dcm")) == np.load(os.path.join(out, f"us-{kind}.frames.npy"))).all(), "RLE not lossless"
        jpg = os.path.join(out, f"us-{kind}-jpeg.dcm")
        run("dcmcjpeg", "+eb", src, jpg)  # JPEG baseline (process 1)
        run("dcmdjpeg", jpg, os.path.join(tmp, "jpeg-back.dcm"))
        np.save(os.path.join(out, f"us-{kind}-jpeg.dcmtk-frames.npy"), frames_of(os.path.join(tmp, "jpeg-back.dcm")))
        print(kind, "jpeg photometric", pydicom.dcmread(jpg).PhotometricInterpretation,
              "after dcmdjpeg", pydicom.dcmread(os.path.join(tmp, "jpeg-back.dcm")).PhotometricInterpretation)
print("wrote", sorted(os.listdir(out)))
