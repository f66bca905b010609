"""Whole training epochs on the GPU: `genrecnn train` against the same loop written in
PyTorch eager (same network, data, batches, crops, optimiser and schedule), one run.

    python bench/train_epochs.py DATA [--recipe cnn2d] [--backend cupy] [--epochs 6]
        [--genres a,b] [--json out.json]

genrecnn's figure is the training part of each epoch as `genrecnn train` reports
it (``train_seconds`` in metrics.json: the steps of the epoch, loss read once);
PyTorch runs the identical plan of every epoch (the same examples, crop starts,
masks and mixup drawn by genrecnn's seeded plan) on the same band-normalised
items held on the GPU, with the same rate each step. The first epoch (kernel
compilation, graph capture, cuDNN autotuning) is left out of the medians.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from torch_twin import torch_optimizer, twin  # noqa: E402


def genrecnn_epochs(data, recipe, backend, epochs, genres, out) -> tuple[list[float], dict]:
    from genrecnn.run.options import RunOptions
    from genrecnn.run.train_job import run_train
    options = RunOptions(data=Path(data), genres=genres, backend_spec=backend, recipe=recipe,
                         epochs=epochs)
    metrics = run_train(options, Path(out), force=True, echo=lambda s: None, progress=False)
    return [row["train_seconds"] for row in metrics["history"]], metrics


def torch_epochs(data, recipe, epochs, genres) -> list[float]:
    import torch
    import torch.nn.functional as F
    from genrecnn.engine.schedules import learning_rate
    from genrecnn.music.loading import load_data
    from genrecnn.music.splits import stratified_split
    from genrecnn.engine.batches import epoch_rng, plan_epoch
    from genrecnn.run.parts import make_parts
    from genrecnn.run.settings import new_network, settings_from
    settings = settings_from({"data": data, "recipe": recipe, "epochs": epochs})
    ds = load_data(data, genres, None, None, False, progress=False)
    tr, va, te = stratified_split(ds, 0.2, 0.0, seed=settings.seed)
    parts = make_parts(ds, tr, va, te, norm=settings.norm)
    net = new_network(settings, *ds.input_shape, ds.n_classes)
    model = twin(net)
    opt = torch_optimizer(model, settings)
    x = torch.from_numpy(parts.x_train).cuda()
    y = torch.from_numpy(parts.y_train.astype(np.int64)).cuda()
    n, m, frames = parts.x_train.shape
    width = net.input_shape[1]
    per_epoch = -(-n // settings.batch_size)
    rows, cols = torch.arange(m, device="cuda"), torch.arange(width, device="cuda")
    times = []
    for epoch in range(1, epochs + 1):
        plans = plan_epoch(n, m, frames, width, settings, epoch_rng(settings.seed, epoch))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        total = torch.zeros((), device="cuda")
        for i, plan in enumerate(plans):
            for group in opt.param_groups:
                group["lr"] = learning_rate(settings.schedule, settings.lr,
                                            (epoch - 1) * per_epoch + i,
                                            per_epoch * epochs, per_epoch)
            idx = torch.from_numpy(plan.index.astype(np.int64)).cuda(non_blocking=True)
            start = torch.from_numpy(plan.start.astype(np.int64)).cuda(non_blocking=True)
            xb = x[idx[:, None, None], rows[None, :, None], (start[:, None] + cols)[:, None, :]]
            if settings.freq_mask or settings.time_mask:
                f0, fw, t0_, tw = (torch.from_numpy(a.astype(np.int64)).cuda()
                                   for a in (plan.f0, plan.fw, plan.t0, plan.tw))
                hf = (rows[None] >= f0[:, None]) & (rows[None] < (f0 + fw)[:, None])
                ht = (cols[None] >= t0_[:, None]) & (cols[None] < (t0_ + tw)[:, None])
                xb = xb.masked_fill(hf[:, :, None] | ht[:, None, :], 0.0)
            lam = torch.from_numpy(plan.lam.astype(np.float32)).cuda(non_blocking=True)
            perm = torch.from_numpy(plan.perm.astype(np.int64)).cuda(non_blocking=True)
            if settings.mixup:
                xb = lam[:, None, None] * xb + (1 - lam[:, None, None]) * xb[perm]
            logp = F.log_softmax(model(xb), 1)
            ya = y[idx]
            loss = -(lam * logp.gather(1, ya[:, None])[:, 0]
                     + (1 - lam) * logp.gather(1, ya[perm][:, None])[:, 0]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        total.item()
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--recipe", default=None)
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--genres")
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args(argv)
    import torch
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as out:
        ours, metrics = genrecnn_epochs(args.data, args.recipe, args.backend, args.epochs,
                                        args.genres, out)
    theirs = torch_epochs(args.data, args.recipe, args.epochs, args.genres)
    a, b = statistics.median(ours[1:]), statistics.median(theirs[1:])
    s = metrics["settings"]
    print(f"recipe {s['recipe']} ({s['arch']}, batch {s['batch_size']}), {args.epochs} epochs "
          f"on {torch.cuda.get_device_name()}: genrecnn ({args.backend}) {a * 1e3:.1f} ms per "
          f"epoch, PyTorch eager {b * 1e3:.1f} ms: ratio {a / b:.2f} "
          f"(per epoch: ours {[round(t, 3) for t in ours]}, PyTorch {[round(t, 3) for t in theirs]})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"genrecnn_s": ours, "torch_s": theirs,
                                                    "ratio": a / b, "settings": s}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
