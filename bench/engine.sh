#!/usr/bin/env bash
# Sculpt's own engine against ONNX Runtime (issue 16), side by side in one process per model and repeated, so that
# every ratio comes from alternating runs on the same machine at the same moment: batch-1 latency on 1 and 2
# threads (Sculpt's engine runs single-threaded per call; ORT at the faster of its ALL/EXTENDED levels), batch 16,
# and the frames/s of 2 concurrent single-threaded callers; the median over repeats in bench/engine-table.py.
# usage: bench/engine.sh OUT MODEL... [REPEATS=3]   (models: .sculpt files; SCULPT= a frozen build, default ./sculpt)
set -euo pipefail
out="$1"; shift
sculpt="${SCULPT:-$(cd "$(dirname "$0")/.." && pwd)/sculpt}"
mkdir -p "$out"
lscpu > "$out/lscpu.txt"
for model in "$@"; do
  name="$(basename "$model" .sculpt)"
  for r in $(seq 1 "${REPEATS:-3}"); do
    [ -f "$out/$name.$r.json" ] || { "$sculpt" bench --model "$model" --engine both --threads 1,2 --batches 1,16 --runs 200 --streams 2 --json \
      > "$out/$name.$r.json.tmp" && mv "$out/$name.$r.json.tmp" "$out/$name.$r.json"; }
  done
done
python3 "$(dirname "$0")/engine-table.py" "$out"
