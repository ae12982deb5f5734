#!/usr/bin/python3
"""A synthetic cine loop as an ultrasound cart stores it, for the EF-in-mL test: the frames of
`sculpt synth --count 3 --videos 1 --frames 60 --seed 21` (video_0000, 112 x 112), written by pydicom as a
multi-frame Ultrasound DICOM with a frame time of 20 ms (the generator's 50 frames/s) and a Sequence of
Ultrasound Regions of 0.2 cm per pixel (a 22 cm field over 112 pixels, LV volumes of adult size), then JPEG-baseline compressed by dcmtk (dcmcjpeg +eb), as carts do.
The test regenerates the generator's truth (true masks, volumes, ED/ES frames) from the same seed.

usage: ./sculpt synth --out /tmp/loop --count 3 --videos 1 --frames 60 --seed 21
       /usr/bin/python3 scripts/make-dicom-loop-fixture.py /tmp/loop/videos/video_0000 tests/Sculpt.Tests/Fixtures/dicom/synth-loop-jpeg.dcm
needs: apt-get install python3-pydicom dcmtk python3-numpy python3-skimage
"""
import os, subprocess, sys, tempfile
import numpy as np
import skimage.io
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

frames_dir, out = sys.argv[1], sys.argv[2]
names = sorted(f for f in os.listdir(frames_dir) if f.startswith("frame_") and f.endswith(".png"))
frames = np.stack([skimage.io.imread(os.path.join(frames_dir, f)) for f in names]).astype(np.uint8)
if frames.ndim == 4:
    frames = frames[..., 0]
n, h, w = frames.shape

meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
ds.Modality = "US"
ds.PatientName = "Sculpt^SyntheticLoop"
ds.NumberOfFrames = n
ds.Rows, ds.Columns = h, w
ds.SamplesPerPixel = 1
ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated = ds.BitsStored = 8
ds.HighBit = 7
ds.PixelRepresentation = 0
ds.FrameIncrementPointer = (0x0018, 0x1063)
ds.FrameTime = "20"
region = Dataset()
region.RegionSpatialFormat = 1  # 2D
region.RegionDataType = 1  # tissue
region.RegionFlags = 0
region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
region.RegionLocationMaxX1, region.RegionLocationMaxY1 = w - 1, h - 1
region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
region.PhysicalDeltaX, region.PhysicalDeltaY = 0.2, 0.2
ds.SequenceOfUltrasoundRegions = Sequence([region])
ds.PixelData = frames.tobytes()
ds.is_little_endian, ds.is_implicit_VR = True, False
with tempfile.TemporaryDirectory() as tmp:
    raw = os.path.join(tmp, "raw.dcm")
    ds.save_as(raw, write_like_original=False)
    subprocess.run(["dcmcjpeg", "+eb", raw, out], check=True)
print("wrote", out, os.path.getsize(out), "bytes,", n, "frames", h, "x", w)
