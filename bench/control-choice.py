#!/usr/bin/env python3
"""Would choosing the uniform-width control as prune's output, whenever it validates higher than the pruned architecture
retrained from scratch, have helped? For every prune run folder under ROOT whose two controls were scored on the test split
(`sculpt eval --json` beside each model as MODEL.test.json), the two validation and test Dice and the test gain of that
choice. usage: bench/control-choice.py ROOT"""
import glob, json, os, statistics, sys


def test_dice(path):
    if not os.path.exists(path):
        return None
    return statistics.mean(label["dice"] for label in json.load(open(path))["labels"])


gains = []
for controls in sorted(glob.glob(os.path.join(sys.argv[1], "**", "controls.json"), recursive=True)):
    run = os.path.dirname(controls)
    results = {r["kind"]: r for r in json.load(open(controls))["results"]}
    scratch_test = test_dice(os.path.join(run, "control-scratch.sculpt.test.json"))
    uniform_test = test_dice(os.path.join(run, "control-uniform.sculpt.test.json"))
    if scratch_test is None or uniform_test is None or "uniform" not in results or "scratch" not in results:
        continue
    scratch_val, uniform_val = results["scratch"]["val_dice"], results["uniform"]["val_dice"]
    chosen = uniform_val > scratch_val
    gains.append(uniform_test - scratch_test if chosen else 0.0)
    print(f"{os.path.relpath(run, sys.argv[1]):40s} retrained val {scratch_val:.4f} test {scratch_test:.4f} | uniform val "
          f"{uniform_val:.4f} test {uniform_test:.4f} | {'uniform chosen' if chosen else '':14s} {gains[-1]:+.4f}")
if gains:
    chosen = [g for g in gains if g != 0]
    print(f"{len(gains)} runs; uniform chosen in {len(chosen)}, higher on test in {sum(g > 0 for g in chosen)}; "
          f"mean test gain over all {statistics.mean(gains):+.4f}")
