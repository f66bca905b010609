"""The strong-CNN reference in PyTorch, on genrecnn's own data and partitions.

Trains the reference strong 2-D CNN recipe (4 blocks of 3x3 conv + batch
norm + ReLU + 2x2 max pool, 32-64-128-256 channels, global mean/max/L2
pooling, dropout, one linear layer; per-band standardisation; random time
crops; AdamW with a one-cycle schedule; crop-averaged test) and variants of
it, on exactly the partitions `genrecnn evaluate` uses (same loader, same
stratified by-clip splits and seeds), next to genrecnn's baseline on the same
partitions. It is the side-by-side column for genrecnn's accuracy figures and
a fast way to compare recipe variants on a GPU; the figures genrecnn reports
come from `genrecnn evaluate`.

    python bench/torch_reference.py DATA [--genres a,b] [--repeats 5] [--split DIR]
        [--variants base,masks,mixup,...] [--epochs 80] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

VARIANTS = {
    "base": {},
    "masks": {"freq_mask": 16, "time_mask": 32},
    "mixup": {"mixup": 0.3},
    "masks+mixup": {"freq_mask": 16, "time_mask": 32, "mixup": 0.3},
    "crop384": {"crop": 384},
    "crop384+masks+mixup": {"crop": 384, "freq_mask": 16, "time_mask": 32, "mixup": 0.3},
    "meanmax": {"pool": "meanmax"},
    "wd5e-2": {"weight_decay": 5e-2},
    "e120": {"epochs": 120},
    "lr1e-3": {"lr": 1e-3},
    # pooling over time only keeps the frequency axis: the classifier sees which bands
    "tpool": {"pool": "time"},
    "tpool-narrow": {"pool": "time", "channels": (16, 32, 64, 128)},
    "tpool+masks": {"pool": "time", "freq_mask": 8, "time_mask": 16},
}
BASE = dict(epochs=80, batch=32, lr=3e-3, weight_decay=1e-2, crop=256, dropout=0.5,
            freq_mask=0, time_mask=0, mixup=0.0, pool="meanmaxl2", channels=(32, 64, 128, 256))


def build(n_classes: int, cfg: dict):
    import torch
    from torch import nn

    class Pool(nn.Module):
        """Mean, max (and L2) over all positions, or over time only (per band)."""

        def forward(self, h):
            h = h.flatten(1, 2) if cfg["pool"] == "time" else h.flatten(2)
            parts = [h.mean(2), h.amax(2)]
            if cfg["pool"] in ("meanmaxl2", "time"):
                parts.append(torch.linalg.vector_norm(h, dim=2))
            return torch.cat(parts, 1)

    layers, c_in = [], 1
    for c in cfg["channels"]:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                   nn.MaxPool2d(2)]
        c_in = c
    bands = 128 // 2 ** len(cfg["channels"])
    width = {"meanmax": 2 * c_in, "meanmaxl2": 3 * c_in, "time": 3 * c_in * bands}[cfg["pool"]]
    return nn.Sequential(*layers, Pool(), nn.Dropout(cfg["dropout"]), nn.Linear(width, n_classes))


def train_and_predict(x_tr, y_tr, x_ev: list, n_classes, cfg, seed, x_va=None, y_va=None):
    """Train on (x_tr, y_tr); return class probabilities for each array in x_ev (crop
    averaged), from the epoch with the best validation accuracy when x_va is given."""
    import torch

    from genrecnn.run.crops import covering_starts
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = build(n_classes, cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    n, m, frames = x_tr.shape
    width = min(cfg["crop"], frames)
    steps = math.ceil(n / cfg["batch"]) * cfg["epochs"]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps,
                                                pct_start=0.3)
    data = torch.from_numpy(x_tr).to(dev)
    labels = torch.from_numpy(y_tr.astype(np.int64)).to(dev)
    ar = torch.arange(width, device=dev)
    rows = torch.arange(m, device=dev)

    def predict(x):
        model.eval()
        starts = covering_starts(x.shape[2], width)
        xd = torch.from_numpy(x).to(dev)
        out = torch.zeros(len(x), n_classes, device=dev)
        with torch.no_grad():
            for s in starts:
                for i in range(0, len(x), 256):
                    out[i:i + 256] += torch.softmax(model(xd[i:i + 256, None, :, s:s + width]), 1)
        model.train()
        return (out / len(starts)).cpu().numpy()

    best = (-1.0, None)
    for epoch in range(cfg["epochs"]):
        order = torch.from_numpy(rng.permutation(n)).to(dev)
        for i in range(0, n, cfg["batch"]):
            idx = order[i:i + cfg["batch"]]
            b = len(idx)
            start = torch.from_numpy(rng.integers(0, frames - width + 1, b)).to(dev)
            xb = data[idx[:, None, None], rows[None, :, None], (start[:, None] + ar[None, :])[:, None, :]]
            if cfg["freq_mask"] or cfg["time_mask"]:
                fw = torch.from_numpy(rng.integers(0, cfg["freq_mask"] + 1, b)).to(dev)
                f0 = torch.from_numpy(rng.integers(0, m, b)).to(dev)
                tw = torch.from_numpy(rng.integers(0, cfg["time_mask"] + 1, b)).to(dev)
                t0 = torch.from_numpy(rng.integers(0, width, b)).to(dev)
                hf = (rows[None] >= f0[:, None]) & (rows[None] < (f0 + fw)[:, None])
                ht = (ar[None] >= t0[:, None]) & (ar[None] < (t0 + tw)[:, None])
                xb = xb.masked_fill(hf[:, :, None] | ht[:, None, :], 0.0)
            yb = labels[idx]
            logits_in = xb[:, None]
            if cfg["mixup"] > 0:
                lam = torch.from_numpy(rng.beta(cfg["mixup"], cfg["mixup"], b).astype(np.float32)).to(dev)
                perm = torch.from_numpy(rng.permutation(b)).to(dev)
                logits_in = lam[:, None, None, None] * logits_in + (1 - lam[:, None, None, None]) * logits_in[perm]
                logp = torch.log_softmax(model(logits_in), 1)
                loss = -(lam * logp.gather(1, yb[:, None])[:, 0]
                         + (1 - lam) * logp.gather(1, yb[perm][:, None])[:, 0]).mean()
            else:
                loss = torch.nn.functional.cross_entropy(model(logits_in), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if x_va is not None:
            acc = float((predict(x_va).argmax(1) == y_va).mean())
            if acc > best[0]:
                best = (acc, [predict(x) for x in x_ev])
    if x_va is not None:
        return best[1]
    return [predict(x) for x in x_ev]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--genres")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--split")
    ap.add_argument("--variants", default="base")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True

    from genrecnn.music.baseline import Baseline
    from genrecnn.music.loading import load_dataset
    from genrecnn.music.normalize import BandNormalizer
    from genrecnn.run.evaluation import partitions
    from genrecnn.run.scoring import interval95

    ds = load_dataset(args.data, genres=args.genres, progress=False)
    k = ds.n_classes
    parts = list(partitions(ds, args.repeats, 0.2, 0, args.split, keep_valid=True))
    results = {}
    base_err = []
    for tr, va, te in parts:
        model = Baseline(top_db=ds.params.top_db, seed=0).fit(ds.x[tr], ds.y[tr], k)
        base_err.append(float((model.predict_proba(ds.x[te]).argmax(1) != ds.y[te]).mean()))
    m = len(parts[0][2])
    results["baseline"] = {"errors": base_err, "error": float(np.mean(base_err)),
                           "interval95": interval95(float(np.mean(base_err)), len(parts), m)}
    print(f"baseline: error {np.mean(base_err):.3f} +- {results['baseline']['interval95']:.3f} "
          f"{[round(e, 3) for e in base_err]}", flush=True)
    for name in args.variants.split(","):
        cfg = dict(BASE, **VARIANTS[name])
        if args.epochs:
            cfg["epochs"] = args.epochs
        errs, t0 = [], time.perf_counter()
        for r, (tr, va, te) in enumerate(parts):
            x = BandNormalizer.fit(ds.x[tr]).transform(ds.x)
            valid = (x[va], ds.y[va]) if len(va) else (None, None)
            (probs,) = train_and_predict(x[tr], ds.y[tr], [x[te]], k, cfg, r, *valid)
            errs.append(float((probs.argmax(1) != ds.y[te]).mean()))
        e = float(np.mean(errs))
        results[name] = {"errors": errs, "error": e, "interval95": interval95(e, len(parts), m),
                         "seconds": round(time.perf_counter() - t0, 1), "config": cfg}
        print(f"{name}: error {e:.3f} +- {results[name]['interval95']:.3f} "
              f"{[round(x, 3) for x in errs]} ({results[name]['seconds']} s)", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
