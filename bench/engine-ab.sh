#!/usr/bin/env bash
# Two builds of Sculpt's engine timed against each other, alternating model by model and round by round in one shell
# loop: batch-1 p50 latency of `sculpt bench --engine sculpt --threads 1`, at the CPU's widest vectors and with the
# JIT's AVX-512 switched off (DOTNET_EnableAVX512=0: 256-bit vectors and 16 registers, as on an AVX2-only CPU).
# Prints the median over ROUNDS of each p50 and of the fraction of the peak measured in the same bench run.
# usage: bench/engine-ab.sh BEFORE/Sculpt.Cli AFTER/Sculpt.Cli ROUNDS MODEL...
set -euo pipefail
before="$1"; after="$2"; rounds="$3"; shift 3
tmp="$(mktemp)"
for ((r = 0; r < rounds; r++)); do
  for m in "$@"; do
    for isa in widest avx2; do
      for b in before after; do
        exe="$before"; [ "$b" = after ] && exe="$after"
        if [ "$isa" = avx2 ]; then env=(DOTNET_EnableAVX512=0); else env=(SCULPT_AB=1); fi
        env "${env[@]}" "$exe" bench --model "$m" --engine sculpt --threads 1 --batches 1 --runs 1000 --json 2>/dev/null \
          | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin)
r=[x for x in d['results'] if x['backend']=='sculpt'][0]
print(*sys.argv[1:], r['latency_ms']['p50'], r['gflops'] / r['peak_gflops'])" "$(basename "$m")" "$isa" "$b" >> "$tmp"
      done
    done
  done
done
/usr/bin/python3 - "$tmp" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m, isa, b, p50, frac = line.split()
    rows[(m, isa, b)].append((float(p50), float(frac)))
print("| model | vectors | before: p50 ms (% of peak) | after: p50 ms (% of peak) | before / after |")
print("| --- | --- | --- | --- | --- |")
for (m, isa) in sorted({(k[0], k[1]) for k in rows}):
    b, a = rows[(m, isa, "before")], rows[(m, isa, "after")]
    mb, ma = statistics.median(x[0] for x in b), statistics.median(x[0] for x in a)
    fb, fa = statistics.median(x[1] for x in b), statistics.median(x[1] for x in a)
    vectors = 'widest' if isa == 'widest' else 'AVX2 (JIT AVX-512 off)'
    print(f"| {m} | {vectors} | {mb:.4f} ({100 * fb:.1f}%) | {ma:.4f} ({100 * fa:.1f}%) | {mb / ma:.2f}× |")
PY
rm -f "$tmp"
