#!/usr/bin/python3
"""An EchoNet-Dynamic-format dataset from Sculpt's synthetic cine loops, written by independent tools.

usage: bench/echonet-data.py SYNTH_DIR OUT_DIR [--quality Q]

SYNTH_DIR: the output of `sculpt synth --videos V --frames F` (videos/<id>/frame_*.png, masks/, manifest.json).
OUT_DIR gets EchoNet-Dynamic's layout: Videos/<name>.avi (Motion-JPEG written by ffmpeg, three channels, as the
release holds them), FileList.csv and VolumeTracings.csv. Every video is traced at its end-diastolic and
end-systolic frame the way EchoNet's sonographers traced: a long axis (first row) and 20 chords across it, whose
end points lie on the cavity's border (fractional coordinates); EchoNet's loader rebuilds the mask as the polygon
of the chords' ends (skimage.draw.polygon), so the masks this data trains on are EchoNet's rule, not the generator's.
Splits: 60 / 20 / 20 percent of the videos, TRAIN / VAL / TEST, in the generator's (seeded) order.
Volumes: method of discs over the 20 chords, at an assumed 1.4 mm per pixel (EchoNet's 112-pixel frames span
about 16 cm of depth; the tracing carries no spacing).
Deterministic: the same SYNTH_DIR gives the same files (ffmpeg's MJPEG encoder is deterministic).
"""
import json, os, subprocess, sys

import numpy as np
from PIL import Image

CHORDS = 20
MM_PER_PIXEL = 1.4


def border_along(mask, origin, direction, step=0.02, reach=200.0):
    """The last point, walking from origin along direction, whose nearest pixel is inside the mask."""
    h, w = mask.shape
    last = origin.copy()
    for t in np.arange(0.0, reach, step):
        p = origin + t * direction
        r, c = int(round(p[1])), int(round(p[0]))
        if r < 0 or c < 0 or r >= h or c >= w or not mask[r, c]:
            break
        last = p
    return last


def first_inside(mask, origin, direction, step=0.02, reach=60.0):
    """The inside point nearest origin along ±direction (origin itself when there is none)."""
    h, w = mask.shape
    for t in np.arange(step, reach, step):
        for p in (origin + t * direction, origin - t * direction):
            r, c = int(round(p[1])), int(round(p[0]))
            if 0 <= r < h and 0 <= c < w and mask[r, c]:
                return p
    return origin


def tracing(mask):
    """Long axis and CHORDS chords across it, as rows (X1, Y1, X2, Y2) in pixel coordinates (x = column)."""
    rows, cols = np.nonzero(mask)
    pts = np.stack([cols, rows], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    # the cavity's long axis: the principal direction of its pixels, oriented towards the apex (image top)
    _, vectors = np.linalg.eigh(np.cov((pts - centre).T))
    axis = vectors[:, 1]
    if axis[1] > 0:
        axis = -axis
    apex = border_along(mask, centre, axis)
    base = border_along(mask, centre, -axis)
    normal = np.array([-axis[1], axis[0]])
    out = [(apex[0], apex[1], base[0], base[1])]
    length = np.linalg.norm(apex - base)
    for i in range(CHORDS):
        p = apex + (i + 0.5) / CHORDS * (base - apex)
        if not mask[int(round(p[1])), int(round(p[0]))]:
            p = first_inside(mask, p, normal)  # a bent cavity: the axis leaves it; the chord starts where it re-enters
        a = border_along(mask, p, normal)
        b = border_along(mask, p, -normal)
        out.append((a[0], a[1], b[0], b[1]))
    return out, length


def disc_volume_ml(rows, length):
    """Method of discs (Simpson's rule) over the chords, one plane: π/4 · Σ d_i² · L/n."""
    diameters = [np.hypot(r[2] - r[0], r[3] - r[1]) for r in rows[1:]]
    mm3 = np.pi / 4 * sum(d * d for d in diameters) * (length / len(diameters)) * MM_PER_PIXEL ** 3
    return mm3 / 1000.0


def main(synth, out, quality):
    manifest = json.load(open(os.path.join(synth, "manifest.json")))
    videos = manifest["videos"]
    if not videos:
        sys.exit(f"{synth}: manifest.json lists no videos (run `sculpt synth --videos V`)")
    os.makedirs(os.path.join(out, "Videos"), exist_ok=True)
    n = len(videos)
    file_list = ["FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split"]
    tracings = ["FileName,X1,Y1,X2,Y2,Frame"]
    for k, v in enumerate(videos):
        split = "TRAIN" if k < 0.6 * n else "VAL" if k < 0.8 * n else "TEST"
        name = f"0X{k:04X}SCULPT"
        folder = os.path.join(synth, "videos", v["id"])
        frames = sorted(f for f in os.listdir(folder) if f.startswith("frame_") and f.endswith(".png"))
        first = np.array(Image.open(os.path.join(folder, frames[0])))
        height, width = first.shape[:2]
        avi = os.path.join(out, "Videos", name + ".avi")
        partial = avi + ".partial.avi"  # renamed when complete: an interrupted run leaves no half video under its name
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-framerate", str(v["fps"]),
                        "-i", os.path.join(folder, "frame_%04d.png"), "-c:v", "mjpeg", "-q:v", str(quality),
                        "-pix_fmt", "yuvj420p", partial], check=True)
        os.replace(partial, avi)
        volumes = {}
        for phase in ("end_diastole", "end_systole"):
            f = v[phase][0]
            mask = np.array(Image.open(os.path.join(folder, "masks", f"frame_{f:04d}.png"))) > 0
            rows, length = tracing(mask)
            volumes[phase] = disc_volume_ml(rows, length)
            tracings += [f"{name}.avi,{x1:.6f},{y1:.6f},{x2:.6f},{y2:.6f},{f}" for x1, y1, x2, y2 in rows]
        edv, esv = volumes["end_diastole"], volumes["end_systole"]
        ef = 100.0 * (edv - esv) / edv
        file_list.append(f"{name},{ef:.6f},{esv:.6f},{edv:.6f},{height},{width},{v['fps']},{len(frames)},{split}")
    for fname, lines in (("FileList.csv", file_list), ("VolumeTracings.csv", tracings)):
        with open(os.path.join(out, fname + ".tmp"), "w", newline="") as fh:
            fh.write("\r\n".join(lines) + "\r\n")  # the release's CSVs end their lines with CRLF
        os.replace(os.path.join(out, fname + ".tmp"), os.path.join(out, fname))
    print(f"{out}: {n} videos, {2 * n} traced frames "
          f"({sum(1 for l in file_list[1:] if l.endswith('TRAIN'))} / {sum(1 for l in file_list[1:] if l.endswith('VAL'))} / "
          f"{sum(1 for l in file_list[1:] if l.endswith('TEST'))} videos train / val / test)")


if __name__ == "__main__":
    args = sys.argv[1:]
    q = 3
    if "--quality" in args:
        i = args.index("--quality")
        q = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], q)
