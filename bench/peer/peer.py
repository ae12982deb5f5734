#!/usr/bin/python3
"""The peer, Torch-Pruning, on the same dense model and data as Sculpt (issue 14, item 5).

  train  DATA OUT        trains this repo's U-Net (bench/torch-train-step.py's structure, width 16, depth 4) in
                         PyTorch on a Sculpt dataset folder (train split; best val Dice kept), BCE + soft Dice, Adam;
                         writes OUT/dense.pt (state dict), OUT/dense.onnx (batch norm kept, for `sculpt import`)
                         and OUT/dense.json (normalisation, samples seen)
  prune  DATA OUT        Torch-Pruning on OUT/dense.pt towards 10x, 100x, 300x and 1148x fewer parameters in 13
                         steps, RECIPE's importance and scope; at each target the model is fine-tuned further and
                         exported as OUT/<recipe>-<target>x.onnx for `sculpt import` + `sculpt eval` (the same
                         evaluator for both tools); one JSON line per target in OUT/<recipe>.jsonl

Recipes: "default" is Torch-Pruning's documented one: GroupMagnitudeImportance(p=2), global pruning, the 1x1 head
ignored, 3 fine-tune epochs after each step and 10 at each target. "local" is the same with per-layer (uniform)
pruning, which cannot empty a layer. "bn" and "taylor" are the alternatives Torch-Pruning ships that survived a
one-shot 2.5x step from the dense model best (bench/RESULTS.md): global BNScaleImportance (the batch-norm scale
of each channel, as in Network Slimming), and global GroupTaylorImportance (|w * dL/dw| with gradients of 64
training frames, taken afresh before every step). A "-recal" suffix (e.g. "local-recal") adds what Sculpt does
after every slicing and Torch-Pruning does not: batch-norm statistics re-estimated on 64 training frames. A "-slow"
suffix fine-tunes at Adam lr 1e-4 instead of 1e-3: after a one-shot local 6.3x step (batch norm re-estimated) lr
1e-3 reached val Dice 0.93 in one epoch and fell to 0.000 (all background) in the next, for good; 1e-4 rose
steadily (0.74, 0.90, 0.93).

Debian's python3-torch 1.13; torch_pruning 1.6.0 from VainF/Torch-Pruning (bench/peer/run.sh puts it on the path).
"""
import argparse, copy, json, os, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import skimage.io

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import importlib.util
_spec = importlib.util.spec_from_file_location("step", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch-train-step.py"))
_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_step)
UNet, dice_ce = _step.UNet, _step.dice_ce

TARGETS = [10, 100, 300, 1148]
STEPS_PER_SEGMENT = [5, 4, 2, 2]  # 13 steps: 1 -> 10 -> 100 -> 300 -> 1148


def load_split(data, split):
    ids = [l.split(",")[0] for l in open(os.path.join(data, "split.csv")).read().splitlines()[1:] if l.endswith("," + split)]
    x = np.stack([skimage.io.imread(os.path.join(data, "images", i + ".png")) for i in sorted(ids)]).astype(np.float32) / 255
    if x.ndim == 4:
        x = x.mean(-1)
    y = np.stack([skimage.io.imread(os.path.join(data, "masks", i + ".png")) for i in sorted(ids)]) > 0
    return torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None].astype(np.float32))


def dice(model, x, y, mean, std):
    model.eval()
    with torch.no_grad():
        p = torch.cat([model((x[i:i + 16] - mean) / std) for i in range(0, len(x), 16)]) > 0
    inter = (p & (y > 0)).flatten(1).sum(1).float()
    total = p.flatten(1).sum(1).float() + (y > 0).flatten(1).sum(1).float()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)).mean().item()


def fit(model, train, val, mean, std, epochs, lr, seed, batch=8):
    """Adam, BCE + soft Dice; keeps the weights of the best validation Dice. Returns (val Dice, samples seen)."""
    x, y = train
    opt = torch.optim.Adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    best, best_state = dice(model, *val, mean, std), copy.deepcopy(model.state_dict())
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            dice_ce(model((x[idx] - mean) / std), y[idx]).backward()
            opt.step()
        d = dice(model, *val, mean, std)
        if d > best:
            best, best_state = d, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return best, epochs * len(x)


def export(model, path, size):
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, size, size), path, opset_version=17, input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def params(model):
    return sum(p.numel() for p in model.parameters())


def train(a):
    torch.manual_seed(a.seed)
    tr, va = load_split(a.data, "train"), load_split(a.data, "val")
    mean, std = tr[0].mean().item(), tr[0].std().item()
    model = UNet(4, a.width)
    t = time.time()
    d, samples = fit(model, tr, va, mean, std, a.epochs, 1e-3, a.seed)
    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.out, "dense.pt"))
    export(model, os.path.join(a.out, "dense.onnx"), tr[0].shape[-1])
    json.dump({"mean": mean, "std": std, "val_dice": d, "train_samples": samples, "seconds": time.time() - t, "params": params(model)},
              open(os.path.join(a.out, "dense.json"), "w"))
    print(json.dumps({"dense_val_dice": d, "params": params(model), "seconds": round(time.time() - t, 1)}), flush=True)


def prune(a):
    import torch_pruning as tp
    info = json.load(open(os.path.join(a.out, "dense.json")))
    mean, std = info["mean"], info["std"]
    tr, va = load_split(a.data, "train"), load_split(a.data, "val")
    size = tr[0].shape[-1]
    model = UNet(4, a.width)
    model.load_state_dict(torch.load(os.path.join(a.out, "dense.pt")))
    example = torch.zeros(1, 1, size, size)
    dense_params = params(model)
    samples, t0, step = 0, time.time(), 0
    log = open(os.path.join(a.out, f"{a.recipe}.jsonl"), "w")
    lr = 1e-4 if a.recipe.endswith("-slow") else 1e-3
    start = 1.0
    for target, steps in zip(TARGETS, STEPS_PER_SEGMENT):
        for k in range(1, steps + 1):
            step += 1
            goal = dense_params / (start * (target / start) ** (k / steps))
            # one Torch-Pruning step: the pruning ratio (of channels, as Torch-Pruning takes it) that leaves the
            # goal's parameter count, found by bisection on copies
            lo, hi = 0.0, 0.99
            for _ in range(20):
                mid = (lo + hi) / 2
                trial = copy.deepcopy(model)
                make_pruner(tp, trial, example, mid, a.recipe, tr, mean, std).step()
                lo, hi = (mid, hi) if params(trial) > goal else (lo, mid)
            make_pruner(tp, model, example, hi, a.recipe, tr, mean, std).step()
            if "-recal" in a.recipe:
                recalibrate_bn(model, tr[0][:64], mean, std)
            d, n = fit(model, tr, va, mean, std, 3, lr, a.seed + step)
            samples += n
            print(json.dumps({"recipe": a.recipe, "step": step, "params": params(model), "compression": dense_params / params(model),
                              "val_dice": d, "seconds": round(time.time() - t0, 1), "widths": widths(model)}), flush=True)
        snapshot = copy.deepcopy(model)
        d, n = fit(snapshot, tr, va, mean, std, 10, lr, a.seed + 1000 + target)
        macs, p = tp.utils.count_ops_and_params(snapshot, example)
        onnx = os.path.join(a.out, f"{a.recipe}-{target}x.onnx")
        export(snapshot, onnx, size)
        row = {"recipe": a.recipe, "target": target, "params": p, "macs": macs, "compression": dense_params / p, "val_dice": d,
               "fine_tune_samples": samples + n, "seconds": round(time.time() - t0, 1), "onnx": onnx}
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(json.dumps(row), flush=True)
        start = target


def widths(model):
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}


def recalibrate_bn(model, x, mean, std):
    """Running statistics re-estimated from scratch (cumulative average) on x, in batches of 8."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 8):
            model((x[i:i + 8] - mean) / std)
    for m in bns:
        m.momentum = 0.1


def make_pruner(tp, model, example, ratio, recipe, train, mean, std):
    recipe = recipe.split("-")[0]
    importance = {"default": lambda: tp.importance.GroupMagnitudeImportance(p=2),
                  "local": lambda: tp.importance.GroupMagnitudeImportance(p=2),
                  "bn": lambda: tp.importance.BNScaleImportance(),
                  "taylor": lambda: tp.importance.GroupTaylorImportance()}[recipe]()
    if recipe == "taylor":
        # Torch-Pruning's Taylor importance reads the gradients the model holds when the pruner steps; eval mode, so
        # that this pass leaves the batch-norm statistics alone
        model.zero_grad()
        model.eval()
        dice_ce(model((train[0][:64] - mean) / std), train[1][:64]).backward()
    return tp.pruner.MetaPruner(model, example, importance=importance, global_pruning=recipe != "local", pruning_ratio=ratio,
                                ignored_layers=[model.head])


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["train", "prune"])
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--recipe", choices=[r + s for r in ("default", "local", "bn", "taylor") for s in ("", "-recal", "-slow", "-recal-slow")],
                   default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train(a) if a.command == "train" else prune(a)
