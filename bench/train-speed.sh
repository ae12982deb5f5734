#!/usr/bin/env bash
# Sculpt's training step (GraphModule, oneDNN as TorchRuntime's probe chose it) against PyTorch 1.13's (Debian
# python3-torch) for the same U-Net, loss, optimiser, batch and thread count, alternating, ROUNDS rounds each.
# usage: bench/train-speed.sh [WIDTH] [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
width="${1:-16}"; rounds="${2:-3}"
dotnet build "$root/bench/Sculpt.Bench" -c Release --nologo -v q >/dev/null
for r in $(seq 1 "$rounds"); do
  dotnet run --project "$root/bench/Sculpt.Bench" -c Release --no-build -- train-step --width "$width" --depth 4 --batch 8 --reps 10 \
    | grep -E '^oneDNN|^\{' | tr '\n' ' '; echo
  /usr/bin/python3 "$root/bench/torch-train-step.py" --width "$width" --depth 4 --batch 8 --reps 10 --threads "$(nproc)"
done
