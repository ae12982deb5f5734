#!/usr/bin/env bash
# The demo (synthetic echo, width-16 U-Net, 1148×) for every pruning criterion × seed given, one run after the
# other, then one table of test Dice per run: the measurement behind the demo's and prune's default criterion.
# usage: SCULPT=path/to/frozen/Sculpt.Cli bench/demo-matrix.sh OUT_DIR "taylor bn-scale" "0 1 2" [extra demo options]
# Environment: SCULPT_ONEDNN is passed through (auto|on|off); THREADS (default: nproc) libtorch threads per run.
set -euo pipefail
out="$1"; criteria="$2"; seeds="$3"; shift 3
sculpt="${SCULPT:?set SCULPT to a frozen build of src/Sculpt.Cli (a build in the work tree may change under a long run)}"
threads="${THREADS:-$(nproc)}"
mkdir -p "$out"
for c in $criteria; do
  for s in $seeds; do
    run="$out/$c-seed$s"
    [ -f "$run/summary.json" ] && continue # resumable: a finished run is kept
    start=$(date +%s)
    if "$sculpt" demo --out "$run" --criterion "$c" --seed "$s" --threads "$threads" "$@" > "$run.log" 2>&1; then
      echo "$c seed $s: $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
    else
      echo "$c seed $s: FAILED ($(tail -1 "$run.log"))" | tee -a "$out/times.txt"
    fi
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, pathlib, sys, statistics
rows = {}
for f in sorted(pathlib.Path(sys.argv[1]).glob("*/summary.json")):
    crit, seed = f.parent.name.rsplit("-seed", 1)
    s = json.loads(f.read_text())
    d, p = s["dense"], s["pruned"]
    ctrl = {c["name"]: c for c in s.get("controls", [])}
    rows.setdefault(crit, []).append(s.get("relative_dice_loss_percent"))
    cells = [crit, seed, f'{d["dice"]:.4f}', f'{p["params"]:,}', f'{p["compression"]:.0f}×',
             f'{p["dice"]:.4f} [{p["dice_ci"][0]:.4f}, {p["dice_ci"][1]:.4f}]', f'{s["relative_dice_loss_percent"]:.2f}%',
             f'{s["seconds"]:.0f} s']
    cells += [f'{c["dice"]:.4f}' for c in ctrl.values()]
    print("| " + " | ".join(cells) + " |")
print("columns: criterion | seed | dense test Dice | pruned params | compression | pruned test Dice [95% CI] | relative loss | "
      "wall time | from-scratch controls (pruned architecture, uniform width)")
for crit, losses in rows.items():
    losses = [l for l in losses if l is not None]
    if losses:
        spread = f' (min {min(losses):.2f}, max {max(losses):.2f})'
        print(f'{crit}: mean relative loss {statistics.mean(losses):.2f}% over {len(losses)} seeds{spread}')
PY
