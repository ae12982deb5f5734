#!/usr/bin/env python3
"""The table of bench/classic-criteria.sh: for every criterion and compression, the pruned model's parameters, its
validation Dice (prune's own) and test Dice with the 95% bootstrap CI (`sculpt eval`), per seed, then the mean and
range over seeds. usage: bench/classic-criteria.py OUT"""
import glob, json, os, statistics, sys

out = sys.argv[1]
def test_dice(path):
    """The mean test Dice and its 95% CI over the foreground labels' (one label: that label's)."""
    labels = json.load(open(path))["labels"]
    return tuple(statistics.mean(label[k] for label in labels) for k in ("dice", "dice_lo", "dice_hi"))


dense = test_dice(os.path.join(out, "dense.test.json"))
print(f"dense test Dice {dense[0]:.4f} [{dense[1]:.4f}, {dense[2]:.4f}]\n")
print("| criterion | target | seed | params | compression | val Dice | test Dice [95% CI] | wall s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(path)[:-5]
    if name.endswith(".test") or name == "dense" or not os.path.exists(os.path.join(out, name + ".test.json")):
        continue
    criterion, ratio, seed = name.rsplit("-", 2)
    prune = json.load(open(path))
    test = test_dice(os.path.join(out, name + ".test.json"))
    seconds = open(os.path.join(out, name + ".seconds")).read().strip()
    rows.setdefault((criterion, float(ratio)), []).append(test[0])
    print(f"| {criterion} | {ratio}× | {seed} | {prune['params']:,} | {prune['compression']:.2f}× | {prune['dice']:.4f} | "
          f"{test[0]:.4f} [{test[1]:.4f}, {test[2]:.4f}] | {seconds} |")
print("\n| criterion | target | seeds | mean test Dice | range | mean relative loss |")
print("| --- | --- | --- | --- | --- | --- |")
for (criterion, ratio), dice in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    mean = statistics.mean(dice)
    print(f"| {criterion} | {ratio:g}× | {len(dice)} | {mean:.4f} | {min(dice):.4f}–{max(dice):.4f} | "
          f"{100 * (1 - mean / dense[0]):.2f}% |")
