#!/usr/bin/python3
"""The table of bench/peer/run.sh: test Dice [95% CI] (sculpt eval), parameters, MACs, fine-tune samples and wall time
per tool, recipe and target. usage: /usr/bin/python3 bench/peer/table.py OUT"""
import json, os, sys

out = sys.argv[1]
load = lambda p: json.load(open(os.path.join(out, p)))
dense = load("eval-dense.json")
dense_params = load("sculpt-10.json")["dense_params"]
print(f"dense (PyTorch-trained, imported): test Dice {dense['dice']:.4f} [{dense['labels'][0]['dice_lo']:.4f}, "
      f"{dense['labels'][0]['dice_hi']:.4f}], {dense_params:,} params\n")
print("| target | tool, recipe | params | compression | MACs | test Dice [95% CI] | relative loss | fine-tune samples | wall time |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
peer = {}
for recipe in ("default", "local"):
    for line in open(os.path.join(out, "peer", f"{recipe}.jsonl")):
        row = json.loads(line)
        peer[(recipe, row["target"])] = row
for t in (10, 100, 300, 1148):
    rows = []
    s = load(f"sculpt-{t}.json")
    rows.append(("Sculpt, defaults", s["params"], s["compression"], s["macs"], load(f"eval-sculpt-{t}.json"), s["fine_tune_samples"], None))
    for recipe in ("default", "local"):
        p = peer[(recipe, t)]
        rows.append((f"Torch-Pruning 1.6.0, {recipe}", p["params"], p["compression"], p["macs"], load(f"eval-{recipe}-{t}.json"),
                     p["fine_tune_samples"], p["seconds"]))
    for name, params, comp, macs, ev, samples, secs in rows:
        lab = ev["labels"][0]
        loss = 100 * (dense["dice"] - ev["dice"]) / dense["dice"]
        print(f"| {t}× | {name} | {params:,} | {comp:.0f}× | {macs / 1e6:.2f} M | {ev['dice']:.4f} [{lab['dice_lo']:.4f}, {lab['dice_hi']:.4f}] "
              f"| {loss:.2f}% | {samples:,} | {'' if secs is None else f'{secs:.0f} s (cumulative)'} |")
print("\nwall times:", open(os.path.join(out, "times.txt")).read().strip().replace("\n", "; "))
