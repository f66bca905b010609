"""`genrecnn train`: fit a network on a folder of genre folders (or the synthetic default).

Writes OUT/model.npz (a checkpoint, atomically, after every epoch), OUT/metrics.json,
OUT/learning_curve.png and OUT/confusion_matrix.png. ``--resume`` continues
from OUT/model.npz with the settings saved there and ends where an
uninterrupted run would.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from genrecnn.errors import DataError, GenrecnnError, ModelFileError
from genrecnn.run.trainer import NORMS, OPTIMIZERS, TrainSettings

DEFAULTS = TrainSettings()
FRACTION = click.FloatRange(0, 1, min_open=True, max_open=True)
FRACTION0 = click.FloatRange(0, 1, max_open=True)
VOTES = ("mean", "majority")
# Measured on 2 cores with the defaults: 40 clips per class reach ~88% test accuracy,
# 100 ~96%, 200 ~99% (made in ~12 s; the whole default run takes ~20 s).
SYNTHETIC_CLIPS_PER_CLASS = 200


def data_options(f):
    """Options that say which items to load (shared by train and evaluate)."""
    for deco in reversed([
        click.option("--genres", help="Comma list of genre folders to use (default: all)."),
        click.option("--frames", type=click.IntRange(min=1),
                     help="Crop/pad every clip to this many frames (default: shortest clip)."),
        click.option("--windows", type=click.IntRange(min=1),
                     help="Cut clips into half-overlapping windows of this many frames; "
                          "clips are decided by the vote of their windows."),
        click.option("--strict", is_flag=True,
                     help="Stop at the first unreadable file instead of skipping it."),
    ]):
        f = deco(f)
    return f


def fit_options(f):
    """Options that shape training (shared by train and evaluate)."""
    for deco in reversed([
        click.option("--backend", "backend_spec", default="numpy", show_default=True,
                     help="Placement: a backend name, kind=backend,... or auto."),
        click.option("--arch", default=DEFAULTS.arch, show_default=True,
                     help="Architecture name (small, cangea2016) or a .toml/.json file."),
        click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs,
                     show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size,
                     show_default=True),
        click.option("--lr", type=click.FloatRange(0, min_open=True),
                     help="Learning rate (default: 1e-3 for adam, 0.01 for sgd)."),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS.optimizer,
                     show_default=True,
                     help="adam, or sgd with momentum 0.9 and linear decay to 0."),
        click.option("--norm", type=click.Choice(NORMS), default=DEFAULTS.norm,
                     show_default=True,
                     help="band: standardise each mel band (fitted on the training part); "
                          "none: raw [0, 1] log-mel."),
        click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True),
        click.option("--vote", type=click.Choice(VOTES), default="mean", show_default=True,
                     help="How windows decide their clip."),
    ]):
        f = deco(f)
    return f


def load_data(data, genres, frames, windows, strict, progress: bool):
    """The dataset the options name: DATA folder, or the embedded synthetic default."""
    from genrecnn.music.loading import load_dataset
    from genrecnn.music.synthetic import synthetic_dataset

    if data is None:
        for name, value in (("--genres", genres), ("--frames", frames), ("--windows", windows)):
            if value:
                raise DataError(f"{name} applies to a DATA folder; pass DATA or drop {name}")
        return synthetic_dataset(n_per_class=SYNTHETIC_CLIPS_PER_CLASS)
    return load_dataset(data, genres=genres, frames=frames, windows=windows, strict=strict,
                        progress=progress)


def report_skipped(ds, echo) -> None:
    if ds.skipped:
        echo(f"skipped {len(ds.skipped)} unreadable file(s):")
        for path, reason in ds.skipped:
            echo(f"  {path}: {reason}")


# settings a resumed run takes from the checkpoint; a different explicit value is an error
_RUN_KEYS = ("arch", "batch_size", "lr", "optimizer", "norm", "seed", "genres", "frames",
             "windows", "test_fraction", "valid_fraction", "split_dir", "data", "vote")


def _resume_values(ctx, opts: dict, meta: dict, path: Path) -> dict:
    saved = dict(meta.get("settings", {}), **meta.get("run", {}))
    out = dict(opts)
    for key in _RUN_KEYS:
        if key not in saved:
            continue
        given = ctx.get_parameter_source(key) if key in ctx.params else None
        explicit = given is not None and given.name not in ("DEFAULT", "DEFAULT_MAP")
        if explicit and _norm(opts[key]) != _norm(saved[key]):
            flag = "DATA" if key == "data" else "--" + key.replace("_dir", "").replace("_", "-")
            raise GenrecnnError(f"{flag} {opts[key]} differs from {saved[key]} in the checkpoint "
                                f"{path}; drop it to resume, or train afresh without --resume")
        out[key] = saved[key]
    if ctx.get_parameter_source("epochs").name in ("DEFAULT", "DEFAULT_MAP"):
        out["epochs"] = saved.get("epochs", opts["epochs"])
    return out


def _norm(v):
    if isinstance(v, Path):
        return str(v.resolve())
    if isinstance(v, str) and v and Path(v).exists():
        return str(Path(v).resolve())
    return v


@click.command()
@click.argument("data", required=False, type=click.Path(path_type=Path))
@data_options
@fit_options
@click.option("--out", type=click.Path(path_type=Path), default=Path("genrecnn-run"),
              show_default=True, help="Folder for model.npz, metrics.json and plots.")
@click.option("--resume", is_flag=True, help="Continue from OUT/model.npz.")
@click.option("--test-fraction", type=FRACTION, default=0.2, show_default=True)
@click.option("--valid-fraction", type=FRACTION0, default=0.0, show_default=True)
@click.option("--split", "split_dir", type=click.Path(path_type=Path),
              help="Folder with train.txt/valid.txt/test.txt clip ids (overrides fractions).")
@click.option("--dry-run", is_flag=True, help="Print the placement plan and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON.")
@click.pass_context
def train(ctx, **opts):
    """Train a genre classifier on DATA (genre folders), or on synthetic genres if no DATA."""
    run_train(ctx, opts)


def run_train(ctx, opts: dict) -> None:
    from genrecnn.music.splits import split_from_dir, stratified_split
    from genrecnn.engine.placement import apply_backend_option, format_plan
    from genrecnn.run.trainer import (Checkpoint, check_writable_dir, fit, format_row,
                                  load_checkpoint, make_parts, new_network, normalizer_arrays,
                                  normalizer_from_extra, split_digest)

    as_json = opts["as_json"]
    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    out = opts["out"]
    model_path = out / "model.npz"
    meta = extra = None
    if opts["resume"]:
        from genrecnn.run.model_io import read_model_file
        if not model_path.exists():
            raise ModelFileError(f"nothing to resume: {model_path} does not exist; train "
                                 f"without --resume first (or pass the same --out)")
        header, _, extra = read_model_file(model_path)
        meta = header.get("meta", {})
        if "settings" not in meta or "run" not in meta:
            raise ModelFileError(f"{model_path} holds no training state; train afresh "
                                 f"without --resume")
        opts = _resume_values(ctx, opts, meta, model_path)
    if opts["data"] is not None:
        opts["data"] = Path(opts["data"])
    if opts["split_dir"] is not None and opts["data"] is None:
        raise DataError("--split needs a DATA folder whose clip ids it lists; pass DATA")
    settings = TrainSettings(arch=opts["arch"], epochs=opts["epochs"],
                             batch_size=opts["batch_size"], optimizer=opts["optimizer"],
                             lr=opts["lr"], norm=opts["norm"], seed=opts["seed"])
    if not opts["dry_run"]:
        check_writable_dir(out)
    t_start = time.perf_counter()

    ds = load_data(opts["data"], opts["genres"], opts["frames"], opts["windows"],
                   opts["strict"], progress=not as_json)
    if meta is not None:
        saved_params = meta.get("feature_params")
        if saved_params != ds.params.as_dict():
            raise ModelFileError(f"{model_path} was made with other feature parameters "
                                 f"({saved_params}) than the data ({ds.params.as_dict()}); "
                                 f"train afresh without --resume")
    if opts["split_dir"] is not None:
        split = split_from_dir(ds, opts["split_dir"])
        echo(split.report())
    else:
        split = stratified_split(ds, test_fraction=opts["test_fraction"],
                                 valid_fraction=opts["valid_fraction"], seed=settings.seed)
    idx_train, idx_valid, idx_test = (np.asarray(i, dtype=int) for i in split)
    if len(idx_test) == 0:
        raise DataError("the test part is empty; raise --test-fraction or list test clips")
    digest = split_digest(ds, idx_train, idx_valid, idx_test)
    if meta is not None and meta["run"].get("split_digest") != digest:
        raise DataError(f"the data or split differs from the one {model_path} was trained on "
                        f"(clips or classes changed); train afresh without --resume")

    n_mels, frames = ds.input_shape
    if meta is not None:
        net, meta, extra, optimizer = load_checkpoint(model_path, epochs=settings.epochs)
        start_epoch, history = int(meta["epoch"]), list(meta.get("history", []))
        normalizer = normalizer_from_extra(extra)
    else:
        net = new_network(settings, n_mels, frames, ds.n_classes)
        optimizer, start_epoch, history, normalizer = settings.make_optimizer(), 0, [], None
    plan = apply_backend_option(net, opts["backend_spec"], settings.batch_size,
                                dry_run=opts["dry_run"], echo=echo)
    if opts["dry_run"]:
        for layer, b in zip(net.layers, plan):
            click.echo(f"  {layer.name:<9} {layer.kind:<7} -> {str(layer.output_shape):<14} on {b}")
        return
    parts = make_parts(ds, idx_train, idx_valid, idx_test, norm=settings.norm)
    if normalizer is not None:   # resumed: the saved statistics, exactly
        parts = _renormalise(ds, parts, normalizer, idx_train, idx_valid, idx_test)
    echo(f"data: {_describe(ds, opts['data'])}; train {len(idx_train)}, valid {len(idx_valid)}, "
         f"test {len(idx_test)} items; input {n_mels}x{frames}")
    echo(f"placement: {format_plan(net.layers, net.backend_names)}")
    run_meta = {k: (str(opts[k]) if isinstance(opts[k], Path) else opts[k])
                for k in _RUN_KEYS if k in opts}
    run_meta.update(split_digest=digest)
    ck = Checkpoint(model_path, meta={
        "class_names": list(ds.class_names), "feature_params": ds.params.as_dict(),
        "frames": frames, "windows": opts["windows"], "norm": settings.norm,
        "vote": opts["vote"], "run": run_meta, "backend_spec": opts["backend_spec"]},
        extra_arrays=normalizer_arrays(parts.normalizer))
    if start_epoch >= settings.epochs:
        echo(f"{model_path} has already trained {start_epoch} epoch(s); nothing more to do "
             f"(raise --epochs to go on)")
    else:
        if start_epoch:
            echo(f"resuming at epoch {start_epoch + 1} of {settings.epochs}")
        history = fit(net, optimizer, parts, settings, checkpoint=ck, start_epoch=start_epoch,
                      history=history, on_epoch=lambda row: echo(format_row(row)),
                      progress=None if not as_json else False)
    metrics = _final_metrics(net, ds, parts, settings, history, opts, plan_of(net),
                             time.perf_counter() - t_start)
    _write_outputs(out, metrics, history, ds)
    for line in _summary_lines(metrics, out):
        echo(line)
    report_skipped(ds, echo)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))


def plan_of(net) -> list[str]:
    return list(net.backend_names)


def _describe(ds, data) -> str:
    src = "synthetic default" if data is None else str(data)
    return f"{src}, {len(ds.clip_ids)} clips of {ds.n_classes} classes ({', '.join(ds.class_names)})"


def _renormalise(ds, parts, normalizer, idx_train, idx_valid, idx_test):
    parts.normalizer = normalizer
    parts.x_train = normalizer.transform(ds.x[idx_train])
    parts.x_test = normalizer.transform(ds.x[idx_test])
    if parts.x_valid is not None:
        parts.x_valid = normalizer.transform(ds.x[idx_valid])
    return parts


def _final_metrics(net, ds, parts, settings, history, opts, plan, seconds) -> dict:
    from genrecnn.run.evaluation import clip_decisions, confusion
    from genrecnn.run.training import predict_proba

    probs = predict_proba(net, parts.x_test, settings.batch_size)
    clips, pred = clip_decisions(probs, parts.clip_test, opts["vote"])
    truth = ds.clip_labels()[clips]
    cm = confusion(truth, pred, ds.n_classes)
    last = history[-1] if history else {}
    return {
        "data": "synthetic" if opts["data"] is None else str(opts["data"]),
        "class_names": list(ds.class_names), "settings": settings.as_dict(),
        "placement": plan, "epochs_done": len(history),
        "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
        "train_acc": last.get("train_acc"), "valid_acc": last.get("valid_acc"),
        "test_clip_acc": float((pred == truth).mean()), "test_clips": int(len(clips)),
        "confusion": cm.tolist(), "history": history, "seconds": round(seconds, 2),
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped],
    }


def _write_outputs(out: Path, metrics: dict, history, ds) -> None:
    from genrecnn.fsutil import atomic_write_text
    from genrecnn.run.plots import confusion_matrix, learning_curves

    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    if history:
        learning_curves(history, out / "learning_curve.png",
                        title=f"{metrics['settings']['arch']} on {metrics['data']}")
    confusion_matrix(np.array(metrics["confusion"]), ds.class_names, out / "confusion_matrix.png",
                     title=f"test clips (accuracy {metrics['test_clip_acc']:.1%})")


def _summary_lines(m: dict, out: Path) -> list[str]:
    lines = [f"test accuracy {m['test_clip_acc']:.1%} on {m['test_clips']} clips "
             f"(items: {m['test_acc']:.1%})" if m["test_acc"] is not None else
             f"test accuracy {m['test_clip_acc']:.1%} on {m['test_clips']} clips",
             f"wrote {out / 'model.npz'}, {out / 'metrics.json'}, "
             f"{out / 'learning_curve.png'}, {out / 'confusion_matrix.png'} "
             f"({m['seconds']:.1f}s)"]
    return lines
