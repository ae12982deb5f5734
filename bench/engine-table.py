"""Summarises bench/engine.sh's runs: per model, the median over repeats of each measurement and of each ratio."""
import glob, json, os, statistics, sys

out = sys.argv[1]
runs = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(path).rsplit(".", 2)[0]
    runs.setdefault(name, []).append(json.load(open(path)))

def pick(run, engine, threads, batch):
    return next(r for r in run["results"] if r["engine"] == engine and r["threads"] == threads and r["batch"] == batch)

def streams(run, engine, batch):
    return next(r for r in run["streams"] if r["backend"] == engine and r["batch"] == batch)["throughput_fps"]

print("| model | params | MACs | batch-1 p50 ms: Sculpt (1 thread) / ORT 1 thread / ORT 2 threads | speed-up vs ORT 1 / 2 threads "
      "| % of the 1-thread peak: Sculpt / ORT | batch 16, 1 thread, frames/s: Sculpt / ORT | 2 streams, frames/s: Sculpt / ORT "
      "| speed-up (streams) | repeats |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name, rs in runs.items():
    params, macs = rs[0]["params"], rs[0]["macs"]
    med = lambda f: statistics.median(f(r) for r in rs)
    p50 = lambda r, e, t: pick(r, e, t, 1)["latency_ms"]["p50"]
    s1, o1, o2 = med(lambda r: p50(r, "sculpt", 1)), med(lambda r: p50(r, "ort", 1)), med(lambda r: p50(r, "ort", 2))
    r1, r2 = med(lambda r: p50(r, "ort", 1) / p50(r, "sculpt", 1)), med(lambda r: p50(r, "ort", 2) / p50(r, "sculpt", 1))
    sp, op = med(lambda r: pick(r, "sculpt", 1, 1)["fraction_of_peak"]), med(lambda r: pick(r, "ort", 1, 1)["fraction_of_peak"])
    s16, o16 = med(lambda r: pick(r, "sculpt", 1, 16)["throughput_fps"]), med(lambda r: pick(r, "ort", 1, 16)["throughput_fps"])
    st, ot = med(lambda r: streams(r, "sculpt", 1)), med(lambda r: streams(r, "ort", 1))
    sr = med(lambda r: streams(r, "sculpt", 1) / streams(r, "ort", 1))
    print(f"| {name} | {params:,} | {macs / 1e6:.2f} M | {s1:.3f} / {o1:.3f} / {o2:.3f} | {r1:.2f}× / {r2:.2f}× | {100 * sp:.0f}% / {100 * op:.0f}% "
          f"| {s16:,.0f} / {o16:,.0f} | {st:,.0f} / {ot:,.0f} | {sr:.2f}× | {len(rs)} |")
