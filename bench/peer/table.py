#!/usr/bin/python3
"""The table of bench/peer/run.sh: test Dice [95% CI] (sculpt eval), parameters, MACs, fine-tune samples and wall time
per tool, recipe and target. usage: /usr/bin/python3 bench/peer/table.py OUT [recipes]

Sculpt's fine-tune samples are every sample trained on after the dense model: pruning's fine-tunes, and for prune's
default output also the from-scratch retraining of the pruned architecture (the uniform-width control, which is
not on the output's path, is left out)."""
import json, os, sys

out = sys.argv[1]
load = lambda p: json.load(open(os.path.join(out, p)))
dense = load("eval-dense.json")
recipes = sys.argv[2:] or ["default", "local"]
dense_params = load("sculpt-pruned-10.json")["dense_params"]
print(f"dense (PyTorch-trained, imported): test Dice {dense['dice']:.4f} [{dense['labels'][0]['dice_lo']:.4f}, "
      f"{dense['labels'][0]['dice_hi']:.4f}], {dense_params:,} params\n")
print("| target | tool, recipe | params | compression | MACs | test Dice [95% CI] | relative loss | fine-tune samples | wall time |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
peer = {}
for recipe in recipes:
    for line in open(os.path.join(out, "peer", f"{recipe}.jsonl")):
        row = json.loads(line)
        peer[(recipe, row["target"])] = row
for t in (10, 100, 300, 1148):
    rows = []
    for mode, name in (("output", "Sculpt, defaults (output)"), ("pruned", "Sculpt, pruned weights only")):
        s = load(f"sculpt-{mode}-{t}.json")
        samples = s["fine_tune_samples"]
        if mode == "output":
            retrained = next(r for r in s["controls"]["results"] if r["kind"] == "scratch")
            samples += retrained["samples"]
            name += f" ({s.get('output', 'pruned weights')})"
        rows.append((name, s["params"], s["compression"], s["macs"], load(f"eval-sculpt-{mode}-{t}.json"), samples, None))
    for recipe in recipes:
        p = peer[(recipe, t)]
        rows.append((f"Torch-Pruning 1.6.0, {recipe}", p["params"], p["compression"], p["macs"], load(f"eval-{recipe}-{t}.json"),
                     p["fine_tune_samples"], p["seconds"]))
    for name, params, comp, macs, ev, samples, secs in rows:
        lab = ev["labels"][0]
        loss = 100 * (dense["dice"] - ev["dice"]) / dense["dice"]
        print(f"| {t}× | {name} | {params:,} | {comp:.0f}× | {macs / 1e6:.2f} M | {ev['dice']:.4f} [{lab['dice_lo']:.4f}, {lab['dice_hi']:.4f}] "
              f"| {loss:.2f}% | {samples:,} | {'' if secs is None else f'{secs:.0f} s (cumulative)'} |")
print("\nwall times:", open(os.path.join(out, "times.txt")).read().strip().replace("\n", "; "))
