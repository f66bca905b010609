"""One `genrecnn train`: data, split, network, placement, fit with checkpoints, and the
outputs (model.safetensors, metrics.json, learning curve and confusion matrix).

``--resume`` continues from OUT/model.safetensors (or an old run's model.npz) with
the settings saved there and ends where an uninterrupted run would; a setting
given explicitly that differs from the checkpoint's is refused, except --epochs,
a larger --ensemble (the networks already there are kept, the others trained) and
--with-baseline (a baseline the checkpoint keeps is kept, else fitted). --precision is
such a setting: a run goes on at the precision it began with (a model file without
one began at fp32), and another one given is refused.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from genrecnn.engine.autoplace import place_by_option
from genrecnn.engine.ops import DEFAULT_PRECISION
from genrecnn.engine.placement import format_plan
from genrecnn.errors import DataError, GenrecnnError, ModelFileError
from genrecnn.fsutil import (atomic_write_text, folder_lock, json_text, output_folder,
                             remove_stale_temps)
from genrecnn.music.input_kinds import dataset_kind
from genrecnn.music.loading import skipped_lines
from genrecnn.music.splits import split_from_dir, stratified_split
from genrecnn.run.averaging import continue_average
from genrecnn.run.checkpoint import Checkpoint
from genrecnn.run.combined import (baseline_metrics, baseline_record, baseline_summary,
                                   fit_run_baseline, read_baseline)
from genrecnn.run.data import load_run_data
from genrecnn.run.ensemble import ensemble_metrics, ensemble_summary, train_members
from genrecnn.run.ensemble_file import SavedMember, read_saved_members
from genrecnn.run.input_checks import check_crop
from genrecnn.run.model_io import MODEL_FILE, stored_model
from genrecnn.run.npz_model import legacy_note
from genrecnn.run.options import RUN_KEYS, RunOptions
from genrecnn.run.parts import make_parts, normalizer_arrays, normalizer_from_extra, split_digest
from genrecnn.run.plots import confusion_matrix, learning_curves
from genrecnn.run.scoring import VOTES, clip_decisions, confusion
from genrecnn.run.session import Resumed, place_for_parts
from genrecnn.run.settings import UNSAID_WHEN_OFF, TrainSettings, new_network
from genrecnn.world import world

# what the saved run settings that TrainSettings does not check must be
_NONE = type(None)
RUN_TYPES = {"genres": (str, _NONE), "frames": (int, _NONE), "windows": (int, _NONE),
             "test_fraction": (float, int), "valid_fraction": (float, int),
             "split_dir": (str, _NONE), "data": (str, _NONE), "vote": (str,)}
OUTPUTS = (MODEL_FILE, "metrics.json", "learning_curve.png", "confusion_matrix.png")


@dataclass
class Checkpointed:
    """A resumed run's model file, read once: its (first) network, metadata, normaliser,
    where training stopped, and every network it holds (an ensemble's several)."""

    network: object
    meta: dict
    normalizer: object
    resumed: Resumed
    members: list[SavedMember] = field(default_factory=list)
    baseline: object = None         # the LinearBaseline it keeps, or None


def _same(a, b) -> bool:
    def norm(v):
        if isinstance(v, Path) or (isinstance(v, str) and v and Path(v).exists()):
            return str(Path(v).resolve())
        return v
    return norm(a) == norm(b)


def resume_values(options: RunOptions, explicit: set[str], meta: dict, path: Path
                  ) -> RunOptions:
    """``options`` with the checkpoint's run settings; an explicit different value is an
    error."""
    # the resolved settings win over the options as given (lr 0.001, not None)
    saved = {**meta.get("run", {}), **UNSAID_WHEN_OFF, **meta.get("settings", {})}
    given = options.as_dict()
    out = {}
    for key in RUN_KEYS:
        if key not in saved or key == "epochs":     # a resumed run may get a new length
            continue
        if key in explicit and given[key] is not None and not _same(given[key], saved[key]):
            flag = "DATA" if key == "data" else "--" + key.replace("_dir", "").replace("_", "-")
            raise GenrecnnError(f"{flag} {given[key]} differs from {saved[key]} in the "
                                f"checkpoint {path}; drop it to resume, or train afresh "
                                f"without --resume")
        out[key] = saved[key]
    if "epochs" not in explicit:
        out["epochs"] = saved.get("epochs", options.epochs)
    if "ensemble" not in explicit:                  # or more members (checked on reading)
        out["ensemble"] = saved.get("ensemble", 1)
    if "with_baseline" not in explicit:             # or a baseline added
        out["with_baseline"] = saved.get("with_baseline", False)
    return replace(options, **out)


def _check_run_meta(model_path: Path, meta: dict) -> None:
    """The run settings a resume takes over, or ModelFileError."""
    if "run" not in meta:
        raise ModelFileError(f"{model_path} holds no training state; train afresh "
                             f"without --resume")
    run = meta["run"]
    bad = [k for k, types in RUN_TYPES.items() if not isinstance(run, dict)
           or (k in run and (not isinstance(run[k], types) or isinstance(run[k], bool)))]
    if not bad and run.get("vote", VOTES[0]) not in VOTES:
        bad = ["vote"]
    if bad:
        raise ModelFileError(f"{model_path} has damaged run settings ({', '.join(bad)}); "
                             f"train afresh without --resume")


def read_checkpoint(model_path: Path) -> Checkpointed:
    """The model file a resume goes on from, read (and wholly checked) once, before any
    data."""
    if not model_path.exists():
        raise ModelFileError(f"nothing to resume: {model_path} does not exist; train "
                             f"without --resume first (or pass the same --out)")
    meta, extra, members = read_saved_members(model_path)
    _check_run_meta(model_path, meta)
    net = members[0].network
    return Checkpointed(net, meta, normalizer_from_extra(extra), members[0].resumed, members,
                        read_baseline(model_path, meta, extra, net.input_shape[0], net.n_classes))


def _next_free(out: Path) -> Path:
    n = 2
    while (out.parent / f"{out.name}-{n}").exists():
        n += 1
    return out.parent / f"{out.name}-{n}"


def _resolve(options: RunOptions, explicit, model_path: Path | None
             ) -> tuple[RunOptions, TrainSettings, Checkpointed | None]:
    """(options with a resumed run's settings, TrainSettings, the checkpoint or None);
    ``model_path``: the model file to resume from (None: a fresh run)."""
    saved = None
    if model_path is not None:
        saved = read_checkpoint(model_path)
        options = resume_values(options, set(explicit), saved.meta, model_path)
    if options.split_dir is not None and options.data is None:
        raise DataError("--split needs a DATA folder whose clip ids it lists; pass DATA")
    settings = options.settings()
    for member in saved.members if saved is not None else ():
        if member.resumed.epoch < settings.epochs:       # refused now, before any data
            continue_average(member.resumed.average, settings, member.resumed.epoch)
    if saved is not None and len(saved.members) > settings.ensemble:
        raise GenrecnnError(f"--ensemble {settings.ensemble} is fewer than the "
                            f"{len(saved.members)} networks {model_path} holds; resume with "
                            f"--ensemble {len(saved.members)} or more, or train afresh without "
                            f"--resume")
    return options, settings, saved


def run_train(options: RunOptions, out: Path, *, resume: bool = False, force: bool = False,
              dry_run: bool = False, explicit: set[str] = frozenset(), echo=print,
              progress: bool | None = None) -> dict | None:
    """Train as ``options`` say, into the folder ``out`` (``resume``: from its model
    file); return the final metrics (None for ``dry_run``: print the placement plan).
    ``explicit``: the option names the user gave (checked on resume).

    OUT is locked for the run; a trained model already there is replaced only with
    ``force``; temporary files of killed writes are removed; a run that fails
    before writing anything leaves no OUT folder behind. In an MPI run (``mpirun -n N
    genrecnn train``) the ranks train data-parallel and rank 0 alone prints, locks OUT
    and writes to it.
    """
    out = Path(out)
    model_path = stored_model(out)
    quiet = not world().is_root                  # under mpirun, rank 0 speaks for the run
    if dry_run:
        return _dry_run(options, explicit, model_path if resume else None,
                        (lambda line: None) if quiet else echo)
    if quiet:
        return _train(options, out, explicit, resume, lambda line: None, False)
    with output_folder(out), folder_lock(out):
        remove_stale_temps(out, OUTPUTS)
        if not resume and not force and model_path.exists():
            raise GenrecnnError(f"{out} already holds a trained model ({model_path.name}); pass "
                                f"--resume to continue it, --force to replace it, or another "
                                f"--out (e.g. {_next_free(out)})")
        return _train(options, out, explicit, resume, echo, progress)


def _dry_run(options: RunOptions, explicit, model_path: Path | None, echo) -> None:
    """Print the placement plan; the data is read only as far as its shapes."""
    options, settings, _ = _resolve(options, explicit, model_path)
    ds = load_run_data(options, progress=False, shapes_only=True)
    net = new_network(settings, *ds.input_shape, ds.n_classes)
    plan, _ = place_by_option(net, options.backend_spec, settings.batch_size, dry_run=True,
                              echo=echo)
    for layer, b in zip(net.layers, plan):
        echo(f"  {layer.name:<9} {layer.kind:<7} -> {str(layer.output_shape):<14} on {b}")


def _split(ds, options: RunOptions, settings: TrainSettings, echo):
    """(train, valid, test) item indices of the run's split (a split folder's, or
    stratified by the fractions)."""
    if options.split_dir is not None:
        split = split_from_dir(ds, options.split_dir)
        echo(split.report())
        split.check_usable()
    else:
        split = stratified_split(ds, test_fraction=options.test_fraction,
                                 valid_fraction=options.valid_fraction, seed=settings.seed)
    idx = tuple(np.asarray(i, dtype=int) for i in split)
    if len(idx[2]) == 0:
        raise DataError("the test part is empty; raise --test-fraction or list test clips")
    return idx


def _check_features(saved: Checkpointed | None, ds, model_path: Path) -> None:
    """A resumed run's features must be made as its checkpoint's were."""
    if saved is not None and saved.meta.get("feature_params") != ds.params.as_dict():
        raise ModelFileError(f"{model_path} was made with other feature parameters "
                             f"({saved.meta.get('feature_params')}) than the data "
                             f"({ds.params.as_dict()}); train afresh without --resume")


def _check_split(saved: Checkpointed | None, digest: str, model_path: Path) -> None:
    """A resumed run's clips must be split as its checkpoint's were."""
    if saved is not None and saved.meta["run"].get("split_digest") != digest:
        raise DataError(f"the data or split differs from the one {model_path} was trained on "
                        f"(clips or classes changed); train afresh without --resume")


def _checkpoint(model_path: Path, ds, options: RunOptions, settings, parts, digest: str,
                plan_report) -> Checkpoint:
    """The model file written after every epoch, with what predict and a resume read."""
    run_meta = {k: (str(v) if isinstance(v, Path) else v)
                for k, v in options.as_dict().items() if k in RUN_KEYS}
    run_meta.update(split_digest=digest)
    return Checkpoint(model_path, meta={
        "class_names": list(ds.class_names), "feature_params": ds.params.as_dict(),
        "frames": ds.input_shape[1], "windows": options.windows, "norm": settings.norm,
        "input_kind": getattr(ds, "input_kind", None) or dataset_kind(options.data, ds.clip_ids),
        "vote": options.vote, "run": run_meta, "backend_spec": options.backend_spec,
        "auto_plan": plan_report.as_dict() if plan_report else None},
        extra_arrays=normalizer_arrays(parts.normalizer))


def _train(options: RunOptions, out: Path, explicit, resume: bool, echo, progress) -> dict:
    model_path = stored_model(out)
    options, settings, saved = _resolve(options, explicit, model_path if resume else None)
    if saved is not None and legacy_note(model_path):
        echo(legacy_note(model_path))
    t_start = time.perf_counter()
    ds = load_run_data(options, progress=progress is not False)
    for note in getattr(ds, "notes", []):
        echo(f"note: {note}")
    _check_features(saved, ds, model_path)
    idx = _split(ds, options, settings, echo)
    digest = split_digest(ds, *idx)
    _check_split(saved, digest, model_path)
    n_mels, frames = ds.input_shape
    check_crop(options.crop if "crop" in explicit else None, frames)
    net = saved.network if saved else new_network(settings, n_mels, frames, ds.n_classes)
    net.precision = settings.precision      # a model file's network is read at fp32
    parts = make_parts(ds, *idx, norm=settings.norm,
                       normalizer=saved.normalizer if saved else None, seed=settings.seed)
    _, plan_report = place_for_parts(net, parts, settings, options, echo)
    unit = "windows" if options.windows else "clips"
    echo(f"data: {_describe(ds, options.data)}; train {len(idx[0])}, valid {len(idx[1])}, "
         f"test {len(idx[2])} {unit}; input {n_mels}x{frames}")
    at = "" if net.precision == DEFAULT_PRECISION else f" ({net.precision} products)"
    echo(f"placement: {format_plan(net.layers, net.backend_names)}{at}")
    ck = _checkpoint(out / MODEL_FILE, ds, options, settings, parts, digest, plan_report)
    baseline = _baseline(ck, saved, ds, idx[0], settings, echo)
    ranks = world() if world().size > 1 else None
    if ranks is not None:
        echo(f"data-parallel over {ranks.size} MPI ranks: each computes {1 / ranks.size:.0%} "
             f"of every batch of {settings.batch_size}, gradients summed every step")
    trained = train_members(net, parts, settings, options, saved=saved.members if saved else (),
                            checkpoint=ck, echo=echo, progress=progress, world=ranks)
    metrics = final_metrics(ds, parts, settings, trained, options, time.perf_counter() - t_start)
    metrics.update(baseline_metrics(baseline, ds, idx[2], trained.test_probs, parts, options.vote))
    if not world().is_root:
        return metrics
    write_outputs(out, metrics, trained.history, ds)
    for line in skipped_lines(ds.skipped) + summary_lines(metrics, out):   # "wrote ..." last
        echo(line)
    return metrics


def _baseline(ck: Checkpoint, saved: Checkpointed | None, ds, rows, settings, echo):
    """With --with-baseline, the baseline (a resumed run's as its checkpoint keeps it, else
    fitted on the training items ``rows``), put in every model file ``ck`` writes; else
    None."""
    if not settings.with_baseline:
        return None
    baseline = saved.baseline if saved is not None else None
    if baseline is None:
        baseline = fit_run_baseline(ds, rows, settings.seed)
        echo(f"baseline: MFCC and spectral statistics, logistic regression, fitted on the "
             f"{len(rows)} training items; the model answers with its and the network's mean")
    ck.meta["baseline"], arrays = baseline_record(baseline)
    ck.extra_arrays.update(arrays)
    return baseline


def _describe(ds, data) -> str:
    src = "synthetic default" if data is None else str(data)
    return f"{src}, {len(ds.clip_ids)} clips of {ds.n_classes} classes ({', '.join(ds.class_names)})"


def final_metrics(ds, parts, settings, trained, options: RunOptions, seconds) -> dict:
    """What metrics.json holds: settings, placement, scores, confusion, history."""
    clips, pred = clip_decisions(trained.test_probs, parts.clip_test, options.vote)
    history = trained.history
    truth = ds.clip_labels()[clips]
    cm = confusion(truth, pred, ds.n_classes)
    last = history[-1] if history else {}
    return {
        "data": "synthetic" if options.data is None else str(options.data),
        "class_names": list(ds.class_names), "settings": settings.as_dict(),
        "placement": list(trained.network.backend_names), "epochs_done": len(history),
        # the finished model's scores where SWA or precise batch norm made one
        "test_acc": last.get("final_test_acc", last.get("test_acc")),
        "test_loss": last.get("final_test_loss", last.get("test_loss")),
        "train_acc": last.get("train_acc"),
        "valid_acc": last.get("final_valid_acc", last.get("valid_acc")),
        "test_clip_acc": float((pred == truth).mean()), "test_clips": int(len(clips)),
        "windows": options.windows,
        "confusion": cm.tolist(), "history": history, "seconds": round(seconds, 2),
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped],
        "ensemble": settings.ensemble,
        **ensemble_metrics(trained, parts, ds.clip_labels(), options.vote),
    }


def write_outputs(out: Path, metrics: dict, history, ds) -> None:
    atomic_write_text(out / "metrics.json", json_text(metrics))
    if history:
        member = f", member 1 of {metrics['ensemble']}" if metrics["ensemble"] > 1 else ""
        learning_curves(history, out / "learning_curve.png",
                        title=f"{metrics['settings']['arch']} on {metrics['data']}{member}")
    confusion_matrix(np.array(metrics["confusion"]), ds.class_names, out / "confusion_matrix.png",
                     title=f"test clips (accuracy {metrics['test_clip_acc']:.1%})")


def summary_lines(m: dict, out: Path) -> list[str]:
    windows = (f" (by window: {m['test_acc']:.1%})"
               if m.get("windows") and m["test_acc"] is not None else "")
    return [f"test accuracy {m['test_clip_acc']:.1%} on {m['test_clips']} clips{windows}"
            + ensemble_summary(m) + baseline_summary(m),
            f"wrote {out / MODEL_FILE}, {out / 'metrics.json'}, "
            f"{out / 'learning_curve.png'}, {out / 'confusion_matrix.png'} "
            f"({m['seconds']:.1f}s)"]
