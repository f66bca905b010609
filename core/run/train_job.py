"""One `genrecnn train`: data, split, network, placement, fit with checkpoints, and the
outputs (model.npz, metrics.json, learning curve and confusion matrix).

``--resume`` continues from OUT/model.npz with the settings saved there and
ends where an uninterrupted run would; a setting given explicitly that differs
from the checkpoint's is refused.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from genrecnn.engine.autoplace import place_by_option
from genrecnn.engine.placement import format_plan
from genrecnn.errors import DataError, GenrecnnError, ModelFileError
from genrecnn.fsutil import (atomic_write_text, folder_lock, json_text, output_folder,
                             remove_stale_temps)
from genrecnn.music.input_kinds import dataset_kind
from genrecnn.music.loading import load_data, skipped_lines
from genrecnn.music.splits import split_from_dir, stratified_split
from genrecnn.run.checkpoint import Checkpoint, check_training_state, load_checkpoint
from genrecnn.run.fit import fit, format_row, predict_proba
from genrecnn.run.input_checks import check_crop
from genrecnn.run.model_io import load_model
from genrecnn.run.parts import make_parts, normalizer_arrays, normalizer_from_extra, split_digest
from genrecnn.run.plots import confusion_matrix, learning_curves
from genrecnn.run.scoring import VOTES, clip_decisions, confusion
from genrecnn.run.settings import SETTING_KEYS, TrainSettings, new_network, settings_from
from genrecnn.run.steps import RESIDENT_BUDGET, StepRunner, fits_resident

# settings a resumed run takes from the checkpoint; a different explicit value is an error
RUN_KEYS = ("recipe", *SETTING_KEYS, "genres", "frames", "windows", "test_fraction",
            "valid_fraction", "split_dir", "data", "vote")
RUNNER_PATHS = {"graph": "training set on the device, each step one CUDA graph replay",
                "device": "training set on the device, batches cut there",
                "stream": "training set over --resident-mb: each batch uploaded from pinned "
                          "host memory while the previous step runs, then cut on the device",
                "host": "batches assembled on the host"}
# what the saved run settings that TrainSettings does not check must be
_NONE = type(None)
RUN_TYPES = {"genres": (str, _NONE), "frames": (int, _NONE), "windows": (int, _NONE),
             "test_fraction": (float, int), "valid_fraction": (float, int),
             "split_dir": (str, _NONE), "data": (str, _NONE), "vote": (str,)}
OUTPUTS = ("model.npz", "metrics.json", "learning_curve.png", "confusion_matrix.png")


def _same(a, b) -> bool:
    def norm(v):
        if isinstance(v, Path) or (isinstance(v, str) and v and Path(v).exists()):
            return str(Path(v).resolve())
        return v
    return norm(a) == norm(b)


def resume_values(opts: dict, explicit: set[str], meta: dict, path: Path) -> dict:
    """``opts`` with the checkpoint's run settings; an explicit different value is an error."""
    # the resolved settings win over the options as given (lr 0.001, not None)
    saved = dict(meta.get("run", {}), **meta.get("settings", {}))
    out = dict(opts)
    for key in RUN_KEYS:
        if key not in saved or key == "epochs":     # a resumed run may get a new length
            continue
        if key in explicit and opts.get(key) is not None and not _same(opts[key], saved[key]):
            flag = "DATA" if key == "data" else "--" + key.replace("_dir", "").replace("_", "-")
            raise GenrecnnError(f"{flag} {opts[key]} differs from {saved[key]} in the checkpoint "
                                f"{path}; drop it to resume, or train afresh without --resume")
        out[key] = saved[key]
    if "epochs" not in explicit:
        out["epochs"] = saved.get("epochs", opts.get("epochs"))
    return out


def _read_resume_meta(model_path: Path) -> dict:
    if not model_path.exists():
        raise ModelFileError(f"nothing to resume: {model_path} does not exist; train "
                             f"without --resume first (or pass the same --out)")
    meta = load_model(model_path)[1]         # the whole model is checked before any data
    if "settings" not in meta or "run" not in meta:
        raise ModelFileError(f"{model_path} holds no training state; train afresh "
                             f"without --resume")
    check_training_state(model_path, meta)
    run = meta["run"]
    bad = [k for k, types in RUN_TYPES.items() if not isinstance(run, dict)
           or (k in run and (not isinstance(run[k], types) or isinstance(run[k], bool)))]
    if not bad and run.get("vote", VOTES[0]) not in VOTES:
        bad = ["vote"]
    if bad:
        raise ModelFileError(f"{model_path} has damaged run settings ({', '.join(bad)}); "
                             f"train afresh without --resume")
    return meta


def _next_free(out: Path) -> Path:
    n = 2
    while (out.parent / f"{out.name}-{n}").exists():
        n += 1
    return out.parent / f"{out.name}-{n}"


def _resolve(opts: dict, explicit) -> tuple[dict, TrainSettings, dict | None]:
    """(options with a resumed run's settings, TrainSettings, checkpoint meta or None)."""
    meta = None
    if opts["resume"]:
        meta = _read_resume_meta(opts["out"] / "model.npz")
        opts = resume_values(opts, set(explicit), meta, opts["out"] / "model.npz")
    if opts["data"] is not None:
        opts["data"] = Path(opts["data"])
    if opts["split_dir"] is not None and opts["data"] is None:
        raise DataError("--split needs a DATA folder whose clip ids it lists; pass DATA")
    return opts, settings_from(opts), meta


def run_train(opts: dict, explicit: set[str] = frozenset(), echo=print,
              progress: bool | None = None) -> dict | None:
    """Train as the options of `genrecnn train` say; return the final metrics (None for
    ``dry_run``). ``explicit``: the option names the user gave (checked on resume).

    OUT is locked for the run; a trained model already there is replaced only with
    ``force``; temporary files of killed writes are removed; a run that fails
    before writing anything leaves no OUT folder behind.
    """
    if opts["dry_run"]:
        return _dry_run(opts, explicit, echo)
    out = Path(opts["out"])
    with output_folder(out), folder_lock(out):
        remove_stale_temps(out, OUTPUTS)
        if not opts["resume"] and not opts.get("force") and (out / "model.npz").exists():
            raise GenrecnnError(f"{out} already holds a trained model (model.npz); pass "
                                f"--resume to continue it, --force to replace it, or another "
                                f"--out (e.g. {_next_free(out)})")
        return _train(opts, explicit, echo, progress)


def _dry_run(opts: dict, explicit, echo) -> None:
    """Print the placement plan; the data is read only as far as its shapes."""
    opts, settings, _ = _resolve(opts, explicit)
    ds = load_data(opts["data"], opts["genres"], opts["frames"], opts["windows"],
                   opts["strict"], progress=False, shapes_only=True)
    net = new_network(settings, *ds.input_shape, ds.n_classes)
    plan, _ = place_by_option(net, opts["backend_spec"], settings.batch_size, dry_run=True,
                              echo=echo)
    for layer, b in zip(net.layers, plan):
        echo(f"  {layer.name:<9} {layer.kind:<7} -> {str(layer.output_shape):<14} on {b}")


def _train(opts: dict, explicit, echo, progress) -> dict:
    opts, settings, meta = _resolve(opts, explicit)
    out = Path(opts["out"])
    model_path = out / "model.npz"
    t_start = time.perf_counter()

    ds = load_data(opts["data"], opts["genres"], opts["frames"], opts["windows"],
                   opts["strict"], progress=progress is not False)
    if meta is not None and meta.get("feature_params") != ds.params.as_dict():
        raise ModelFileError(f"{model_path} was made with other feature parameters "
                             f"({meta.get('feature_params')}) than the data "
                             f"({ds.params.as_dict()}); train afresh without --resume")
    if opts["split_dir"] is not None:
        split = split_from_dir(ds, opts["split_dir"])
        echo(split.report())
        split.check_usable()
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
    check_crop(opts.get("crop") if "crop" in explicit else None, frames)
    selection = None
    if meta is not None:
        net, meta, extra, optimizer, selection = load_checkpoint(model_path,
                                                                 epochs=settings.epochs)
        start_epoch, history = int(meta["epoch"]), list(meta.get("history", []))
        normalizer = normalizer_from_extra(extra)
    else:
        net = new_network(settings, n_mels, frames, ds.n_classes)
        optimizer, start_epoch, history, normalizer = settings.make_optimizer(), 0, [], None
    parts = make_parts(ds, idx_train, idx_valid, idx_test, norm=settings.norm,
                       normalizer=normalizer)
    budget = opts.get("resident_mb", RESIDENT_BUDGET >> 20) << 20
    plan, plan_report = place_by_option(
        net, opts["backend_spec"], settings.batch_size, echo=echo,
        streamed=not fits_resident(parts.x_train.size, net.dtype, budget))
    unit = "windows" if opts["windows"] else "clips"
    echo(f"data: {_describe(ds, opts['data'])}; train {len(idx_train)}, valid {len(idx_valid)}, "
         f"test {len(idx_test)} {unit}; input {n_mels}x{frames}")
    echo(f"placement: {format_plan(net.layers, net.backend_names)}")
    run_meta = {k: (str(opts[k]) if isinstance(opts[k], Path) else opts[k])
                for k in RUN_KEYS if k in opts}
    run_meta.update(split_digest=digest)
    ck = Checkpoint(model_path, meta={
        "class_names": list(ds.class_names), "feature_params": ds.params.as_dict(),
        "frames": frames, "windows": opts["windows"], "norm": settings.norm,
        "input_kind": dataset_kind(opts["data"], ds.clip_ids),
        "vote": opts["vote"], "run": run_meta, "backend_spec": opts["backend_spec"],
        "auto_plan": plan_report.as_dict() if plan_report else None},
        extra_arrays=normalizer_arrays(parts.normalizer))
    if start_epoch >= settings.epochs:
        echo(f"{model_path} has already trained {start_epoch} epoch(s); nothing more to do "
             f"(raise --epochs to go on)")
    else:
        if start_epoch:
            echo(f"resuming at epoch {start_epoch + 1} of {settings.epochs}")
        runner = StepRunner(net, optimizer, parts.x_train, parts.y_train, settings,
                            graphs=opts.get("graphs", True),
                            resident_budget=budget)
        graphed = ("; each step one CUDA graph replay"
                   if runner.path == "stream" and runner.graphs else "")
        echo(f"steps: {runner.path} ({RUNNER_PATHS[runner.path]}{graphed})")
        history = fit(net, optimizer, parts, settings, checkpoint=ck, start_epoch=start_epoch,
                      history=history, on_epoch=lambda row: echo(format_row(row)),
                      progress=progress, selection=selection, runner=runner)
    metrics = final_metrics(net, ds, parts, settings, history, opts,
                            time.perf_counter() - t_start)
    write_outputs(out, metrics, history, ds)
    for line in skipped_lines(ds.skipped) + summary_lines(metrics, out):   # "wrote ..." last
        echo(line)
    return metrics


def _describe(ds, data) -> str:
    src = "synthetic default" if data is None else str(data)
    return f"{src}, {len(ds.clip_ids)} clips of {ds.n_classes} classes ({', '.join(ds.class_names)})"


def final_metrics(net, ds, parts, settings, history, opts, seconds) -> dict:
    """What metrics.json holds: settings, placement, scores, confusion, history."""
    probs = predict_proba(net, parts.x_test, settings.batch_size)
    clips, pred = clip_decisions(probs, parts.clip_test, opts["vote"])
    truth = ds.clip_labels()[clips]
    cm = confusion(truth, pred, ds.n_classes)
    last = history[-1] if history else {}
    return {
        "data": "synthetic" if opts["data"] is None else str(opts["data"]),
        "class_names": list(ds.class_names), "settings": settings.as_dict(),
        "placement": list(net.backend_names), "epochs_done": len(history),
        "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
        "train_acc": last.get("train_acc"), "valid_acc": last.get("valid_acc"),
        "test_clip_acc": float((pred == truth).mean()), "test_clips": int(len(clips)),
        "windows": opts["windows"],
        "confusion": cm.tolist(), "history": history, "seconds": round(seconds, 2),
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped],
    }


def write_outputs(out: Path, metrics: dict, history, ds) -> None:
    atomic_write_text(out / "metrics.json", json_text(metrics))
    if history:
        learning_curves(history, out / "learning_curve.png",
                        title=f"{metrics['settings']['arch']} on {metrics['data']}")
    confusion_matrix(np.array(metrics["confusion"]), ds.class_names, out / "confusion_matrix.png",
                     title=f"test clips (accuracy {metrics['test_clip_acc']:.1%})")


def summary_lines(m: dict, out: Path) -> list[str]:
    windows = (f" (by window: {m['test_acc']:.1%})"
               if m.get("windows") and m["test_acc"] is not None else "")
    return [f"test accuracy {m['test_clip_acc']:.1%} on {m['test_clips']} clips{windows}",
            f"wrote {out / 'model.npz'}, {out / 'metrics.json'}, "
            f"{out / 'learning_curve.png'}, {out / 'confusion_matrix.png'} "
            f"({m['seconds']:.1f}s)"]
