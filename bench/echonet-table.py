#!/usr/bin/env python3
"""Tables of bench/echonet-prune.sh runs: one row per seed (test Dice of the dense model, prune's output and each
candidate, from `sculpt eval`'s JSON beside each model) and, given several run folders (one per prune option set,
labelled by the folder's name), the spread of each option set over its seeds and its difference from the first
folder seed by seed (the same dense models, so the pairs differ only by the options).
usage: bench/echonet-table.py OUT [OUT2 ...] [--seeds "0 1 2"]"""
import argparse, json, os, statistics

parser = argparse.ArgumentParser()
parser.add_argument("outs", nargs="+")
parser.add_argument("--seeds", default=None, help="seeds to include (default: every prune-S.json in the folder)")
args = parser.parse_args()


def dice(path):
    try: d = json.load(open(path + ".test.json"))
    except (OSError, ValueError): return None  # not scored yet, or being written
    return {"mean": d["dice"], "ci": (d["labels"][0]["dice_lo"], d["labels"][0]["dice_hi"])}


def seeds_of(out):
    if args.seeds: return args.seeds.split()
    found = [f[len("prune-"):-len(".json")] for f in os.listdir(out) if f.startswith("prune-") and f.endswith(".json")]
    return sorted(found, key=lambda s: (len(s), s))


def run(out, s):
    """One seed's numbers, or None while the run is incomplete."""
    path = f"{out}/prune-{s}.json"
    p = json.load(open(path)) if os.path.exists(path) else None
    dense, final = dice(f"{out}/dense-{s}.sculpt"), dice(f"{out}/pruned-{s}.sculpt")
    if not p or "params" not in p or dense is None or final is None: return None
    return {"seed": s, "p": p, "dense": dense, "final": final, "loss": 100 * (dense["mean"] - final["mean"]) / dense["mean"],
            "weights": dice(f"{out}/run-{s}/pruned-weights.sculpt"), "retrained": dice(f"{out}/run-{s}/control-scratch.sculpt"),
            "uniform": dice(f"{out}/run-{s}/control-uniform.sculpt")}


fmt = lambda m: "—" if m is None else f'{m["mean"]:.4f}'
several = len(args.outs) > 1
runs = {out: {s: run(out, s) for s in seeds_of(out)} for out in args.outs}
print(("| options " if several else "") + "| seed | dense test Dice | output (which) | params | compression | output test Dice [95% CI] "
      "| relative loss | fine-tune samples | pruned weights | retrained architecture | uniform width |")
print("| --- " * (11 + several) + "|")
for out, by_seed in runs.items():
    label = f"| {os.path.basename(os.path.normpath(out))} " if several else ""
    for s, r in by_seed.items():
        if r is None:
            print(f"{label}| {s} | (incomplete) |"); continue
        p, f = r["p"], r["final"]
        print(f'{label}| {s} | {r["dense"]["mean"]:.4f} | {p["output"]} | {p["params"]:,} | {p["compression"]:.0f}× | '
              f'{f["mean"]:.4f} [{f["ci"][0]:.4f}, {f["ci"][1]:.4f}] | {r["loss"]:.2f}% | {p["fine_tune_samples"]:,} | '
              f'{fmt(r["weights"])} | {fmt(r["retrained"])} | {fmt(r["uniform"])} |')

if several:
    first = runs[args.outs[0]]
    print()
    print("| options | seeds | lowest compression | mean relative loss | sd | range | ≤ 0.5% | mean output test Dice "
          "| mean pruned-weights Dice | output minus the first options', seed by seed |")
    print("| --- " * 10 + "|")
    for out, by_seed in runs.items():
        done = [r for r in by_seed.values() if r]
        if not done: continue
        losses = [r["loss"] for r in done]
        sd = statistics.stdev(losses) if len(losses) > 1 else float("nan")
        weights = [r["weights"]["mean"] for r in done if r["weights"]]
        paired = [f'{r["final"]["mean"] - first[r["seed"]]["final"]["mean"]:+.4f}' for r in done if first.get(r["seed"])]
        print(f'| {os.path.basename(os.path.normpath(out))} | {", ".join(r["seed"] for r in done)} '
              f'| {min(r["p"]["compression"] for r in done):.0f}× | {statistics.mean(losses):.2f}% '
              f'| {sd:.2f} | {min(losses):.2f}–{max(losses):.2f}% | {sum(l <= 0.5 for l in losses)} of {len(losses)} '
              f'| {statistics.mean(r["final"]["mean"] for r in done):.4f} '
              f'| {statistics.mean(weights) if weights else float("nan"):.4f} | {" ".join(paired)} |')
