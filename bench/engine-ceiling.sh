#!/usr/bin/env bash
# Sculpt's engine against two ceilings, at the CPU's widest vectors and with the JIT's AVX-512 switched off
# (DOTNET_EnableAVX512=0: 256-bit vectors and 16 registers, the code an AVX2-only CPU runs), alternating per model and
# round: batch-1 p50 of `sculpt bench --engine sculpt --threads 1 --profile`, its GFLOP/s as a fraction of the measured
# peak (ONNX Runtime's GEMM, which uses AVX-512 wherever the CPU has it) and of the FMA ceiling of the vector width the
# engine ran with (registers only, measured in the same bench run). Medians over ROUNDS.
# usage: SCULPT=path/to/frozen/Sculpt.Cli bench/engine-ceiling.sh ROUNDS MODEL...
set -euo pipefail
rounds="$1"; shift
sculpt="${SCULPT:-$(cd "$(dirname "$0")/.." && pwd)/sculpt}"
tmp="$(mktemp)"
for ((r = 0; r < rounds; r++)); do
  for m in "$@"; do
    for isa in widest avx2; do
      if [ "$isa" = avx2 ]; then env=(DOTNET_EnableAVX512=0); else env=(SCULPT_WIDEST=1); fi
      env "${env[@]}" "$sculpt" bench --model "$m" --engine sculpt --threads 1 --batches 1 --runs 1000 --profile --json 2>/dev/null \
        | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin)
r=[x for x in d['results'] if x['backend']=='sculpt'][0]; l=d['sculpt_layers'][0]
print(*sys.argv[1:], l['vector_bits'], r['latency_ms']['p50'], r['gflops'], l['peak_gflops_1_thread'], l['fma_ceiling_gflops'])" \
        "$(basename "$m")" "$isa" >> "$tmp"
    done
  done
done
/usr/bin/python3 - "$tmp" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m, isa, bits, p50, gflops, peak, ceiling = line.split()
    rows[(m, isa, bits)].append((float(p50), float(gflops), float(peak), float(ceiling)))
print("| model | vectors | p50 ms | GFLOP/s | GEMM peak, GFLOP/s | % of the peak | FMA ceiling of the width, GFLOP/s "
      "| % of the ceiling | rounds |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (m, isa, bits), v in sorted(rows.items()):
    med = [statistics.median(x[i] for x in v) for i in range(4)]
    frac_peak = statistics.median(x[1] / x[2] for x in v)
    frac_ceiling = statistics.median(x[1] / x[3] for x in v)
    label = f"{bits}-bit" + (" (JIT AVX-512 off)" if isa == "avx2" else "")
    print(f"| {m} | {label} | {med[0]:.4f} | {med[1]:.1f} | {med[2]:.1f} | {100 * frac_peak:.1f}% | {med[3]:.1f} "
          f"| {100 * frac_ceiling:.1f}% | {len(v)} |")
PY
rm -f "$tmp"
