#!/usr/bin/env bash
# Sculpt's engine at the CPU's widest vectors and with the JIT's AVX-512 switched off (DOTNET_EnableAVX512=0: 256-bit
# vectors and 16 registers, the code an AVX2-only CPU runs), for one build or two builds timed against each other,
# alternating model by model, vector setting by setting and build by build, round after round. Each run is
# `sculpt bench --engine sculpt --threads 1 --batches 1 --runs 1000 --profile`: its batch-1 p50, GFLOP/s, the measured
# peak (ONNX Runtime's GEMM, which uses AVX-512 wherever the CPU has it) and the FMA ceiling of the vector width the
# engine ran with (registers only), all from the same process. Prints the medians over ROUNDS; with two builds, the
# first build's p50 over the second's.
# usage: bench/engine-isa.sh ROUNDS BUILD[,BUILD2] MODEL...   (BUILD: a frozen Sculpt.Cli)
set -euo pipefail
rounds="$1"; IFS=, read -r -a builds <<< "$2"; shift 2
tmp="$(mktemp)"
for ((r = 0; r < rounds; r++)); do
  for m in "$@"; do
    for isa in widest avx2; do
      for b in "${!builds[@]}"; do
        if [ "$isa" = avx2 ]; then env=(DOTNET_EnableAVX512=0); else env=(SCULPT_WIDEST=1); fi
        env "${env[@]}" "${builds[$b]}" bench --model "$m" --engine sculpt --threads 1 --batches 1 --runs 1000 --profile \
          --json 2>/dev/null | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin)
r=[x for x in d['results'] if x['backend']=='sculpt'][0]; l=d['sculpt_layers'][0]
print(*sys.argv[1:], l['vector_bits'], r['latency_ms']['p50'], r['gflops'], l['peak_gflops_1_thread'], l['fma_ceiling_gflops'])" \
          "$(basename "$m")" "$isa" "$b" >> "$tmp"
      done
    done
  done
done
/usr/bin/python3 - "$tmp" "${builds[@]}" <<'PY'
import collections, statistics, sys
builds = sys.argv[2:]
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m, isa, b, bits, p50, gflops, peak, ceiling = line.split()
    rows[(m, isa, int(b), bits)].append((float(p50), float(gflops), float(peak), float(ceiling)))
two = len(builds) == 2
print("| model | vectors |" + (" build |" if two else "") + " p50 ms | GFLOP/s | GEMM peak, GFLOP/s | % of the peak "
      "| FMA ceiling of the width, GFLOP/s | % of the ceiling | rounds |" + (" first / second build |" if two else ""))
print("| --- " * (9 + 2 * two) + "|")
p50s = {}
for (m, isa, b, bits), v in sorted(rows.items()):
    med = [statistics.median(x[i] for x in v) for i in range(4)]
    p50s[(m, isa, b)] = med[0]
    frac_peak = statistics.median(x[1] / x[2] for x in v)
    frac_ceiling = statistics.median(x[1] / x[3] for x in v)
    label = f"{bits}-bit" + (" (JIT AVX-512 off)" if isa == "avx2" else "")
    ratio = f" {p50s[(m, isa, 0)] / med[0]:.2f}× |" if two and b == 1 else (" |" if two else "")
    print(f"| {m} | {label} |" + (f" {builds[b]} |" if two else "") + f" {med[0]:.4f} | {med[1]:.1f} | {med[2]:.1f} "
          f"| {100 * frac_peak:.1f}% | {med[3]:.1f} | {100 * frac_ceiling:.1f}% | {len(v)} |" + ratio)
PY
rm -f "$tmp"
