#!/usr/bin/env bash
# The input limits must not reject real data: a 40 M-parameter torch.save checkpoint (torchvision's
# DeepLabV3-ResNet50 as EchoNet-Dynamic trains it: 3 input channels, 1 class), in the zip and the legacy format,
# is imported and inspected, with wall time and peak memory. Needs Debian's python3-torch / python3-torchvision.
# usage: bench/real-size-inputs.sh [WORKDIR]   (SCULPT=path/to/Sculpt.Cli to use a frozen build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-/tmp/sculpt-real-size}"
sculpt="${SCULPT:-$root/sculpt}"
mkdir -p "$work"
/usr/bin/python3 - "$work" <<'PY'
import sys, torch, torchvision
torch.manual_seed(0)
net = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False, num_classes=1)
state = net.state_dict()
print("parameters:", sum(v.numel() for k, v in state.items() if v.dtype.is_floating_point and "running" not in k))
torch.save({"epoch": 45, "state_dict": state, "best_loss": 0.1}, f"{sys.argv[1]}/deeplab-zip.pt")
torch.save({"epoch": 45, "state_dict": state, "best_loss": 0.1}, f"{sys.argv[1]}/deeplab-legacy.pt", _use_new_zipfile_serialization=False)
PY
rm -f "$work"/*.sculpt
for f in deeplab-zip deeplab-legacy; do
  ls -l "$work/$f.pt"
  /usr/bin/time -f "$f import: %e s, peak RSS %M KB" "$sculpt" import --pytorch "$work/$f.pt" --arch deeplabv3_resnet50 \
    --in-channels 3 --classes 1 --size 112 --out "$work/$f.sculpt" 2>&1 | tail -2
  /usr/bin/time -f "$f inspect: %e s, peak RSS %M KB" "$sculpt" inspect --model "$work/$f.sculpt" 2>&1 | tail -3
done
