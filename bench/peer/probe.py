#!/usr/bin/python3
"""One-shot probes behind bench/peer/peer.py's extra recipes, on the dense model of a bench/peer/run.sh folder:

  importance OUT   one global step to 2.5x fewer parameters by L2, LAMP and BN-scale importance, then one fine-tune
                   epoch at lr 1e-3: val Dice after the step and after the epoch
  recal OUT        one 2.5x step (local and default recipes): val Dice before and after batch-norm re-estimation
  lr OUT           one local 6.3x step, batch norm re-estimated, three epochs at lr 1e-3 and at 1e-4: val Dice after
                   each epoch (no best-epoch keeping, so a collapse shows)

usage: PYTHONPATH=<folder holding torch_pruning 1.6.0> /usr/bin/python3 bench/peer/probe.py importance|recal|lr OUT
"""
import copy, importlib.util, json, os, sys
import torch

_spec = importlib.util.spec_from_file_location("peer", os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py"))
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)


def main(command, out):
    import torch_pruning as tp
    torch.set_num_threads(1)
    info = json.load(open(os.path.join(out, "peer", "dense.json")))
    mean, std = info["mean"], info["std"]
    tr, va = peer.load_split(os.path.join(out, "data"), "train"), peer.load_split(os.path.join(out, "data"), "val")
    dense = peer.UNet(4, 16)
    dense.load_state_dict(torch.load(os.path.join(out, "peer", "dense.pt")))
    example = torch.zeros(1, 1, tr[0].shape[-1], tr[0].shape[-1])

    def pruned(ratio, recipe, importance=None):
        model = copy.deepcopy(dense)
        if importance is None:
            peer.make_pruner(tp, model, example, ratio, recipe, tr, mean, std).step()
        else:
            tp.pruner.MetaPruner(model, example, importance=importance, global_pruning=True, pruning_ratio=ratio,
                                 ignored_layers=[model.head]).step()
        return model

    def at_compression(factor, make):
        lo, hi = 0.0, 0.99  # the channel ratio that leaves dense / factor parameters, by bisection
        for _ in range(14):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if peer.params(make(mid)) > peer.params(dense) / factor else (lo, mid)
        return make(hi)

    val = lambda m: round(peer.dice(m, *va, mean, std), 4)
    if command == "importance":
        for name, imp in (("l2", lambda: tp.importance.GroupMagnitudeImportance(p=2)), ("lamp", tp.importance.LAMPImportance),
                          ("bn", tp.importance.BNScaleImportance)):
            m = at_compression(2.5, lambda r: pruned(r, None, imp()))
            after_step = val(m)
            after_epoch, _ = peer.fit(m, tr, va, mean, std, 1, 1e-3, 1)
            print(json.dumps({"importance": name, "params": peer.params(m), "after_step": after_step, "after_epoch": round(after_epoch, 4)}))
    elif command == "recal":
        for recipe in ("local", "default"):
            m = at_compression(2.5, lambda r: pruned(r, recipe))
            before = val(m)
            peer.recalibrate_bn(m, tr[0][:64], mean, std)
            print(json.dumps({"recipe": recipe, "params": peer.params(m), "before": before, "recalibrated": val(m)}))
    elif command == "lr":
        for lr in (1e-3, 1e-4):
            m = pruned(0.6, "local")
            peer.recalibrate_bn(m, tr[0][:64], mean, std)
            x, y = tr
            opt = torch.optim.Adam(m.parameters(), lr)
            g = torch.Generator().manual_seed(0)
            epochs = []
            for _ in range(3):
                m.train()
                order = torch.randperm(len(x), generator=g)
                for i in range(0, len(x), 8):
                    idx = order[i:i + 8]
                    opt.zero_grad()
                    peer.dice_ce(m((x[idx] - mean) / std), y[idx]).backward()
                    opt.step()
                epochs.append(val(m))
            print(json.dumps({"recipe": "local", "params": peer.params(m), "lr": lr, "val_dice_per_epoch": epochs}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
