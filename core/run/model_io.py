"""Saving and loading models without pickle.

A model file is a safetensors file (:data:`MODEL_FILE`): one tensor per
parameter (``param/<layer>/<param>``) and per stored extra (``extra/<key>``:
normalisation statistics, optimiser state); its ``__metadata__`` header holds
the header fields (format tag, architecture, input shape, dtype, class names,
feature parameters, placement, training state), each field a JSON string.
Loading runs no code. Models of the first format, ``.npz`` archives, are still
read (:mod:`genrecnn.run.npz_model`); `genrecnn convert` rewrites them. Writes
are atomic.

A file of an ensemble (format version 2) holds K networks of one architecture:
member i's tensors are ``m<i>/param/...`` and ``m<i>/extra/...`` (its optimiser
state), the shared ones (normalisation) stay ``extra/...``; the header says
``ensemble: K`` and lists each member's seed and training state under
``members``. A file of one network is written exactly as before ensembles
(version 1), so older readers still read it, and refuse an ensemble's as newer.

A model trained ``--with-baseline`` also holds the fitted baseline (see
:mod:`genrecnn.run.combined`): tensors ``baseline/<key>`` (the scaler's and the
regression's arrays) and ``meta.baseline`` in the header. The format version
stays as it was: a reader that knows no baseline skips tensors of kinds it does
not know and header fields it does not read, so it answers with the network
alone, which the file holds complete.

Reading trusts nothing: every header field is checked, sizes in the header
are bounded by the arrays actually stored (so an edited header cannot make
the reader allocate without end), and weights must be finite floating point.
safetensors keeps no checksum of its own, so the header field ``checksum`` holds
the SHA-256 of every tensor (:func:`tensors_digest`): a changed byte inside a
weight is refused as damage instead of loading as another, finite weight. Files
from before it have no such field and load as they did.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from genrecnn.engine.ops import DTYPES
from genrecnn.errors import GenrecnnError, ModelFileError
from genrecnn.fsutil import atomic_path, json_text, regular_file_problem
from genrecnn.run import npz_model
from genrecnn.run.settings import MAX_ENSEMBLE

FORMAT = "genrecnn-model"
SINGLE_VERSION = 1                      # a file of one network
ENSEMBLE_VERSION = 2                    # a file of an ensemble's networks
VERSION = ENSEMBLE_VERSION              # the newest format this genrecnn reads
MEMBER = re.compile(r"m(\d+)/")         # member i's arrays: keys "m<i>/..."
BASELINE = "baseline/"                  # the baseline's extra arrays, tensors of that name
MODEL_FILE = "model.safetensors"        # what `genrecnn train` writes into OUT
LEGACY_MODEL_FILE = "model.npz"         # what it wrote before safetensors
MAX_HEADER_BYTES = npz_model.MAX_HEADER_BYTES
MAX_ROWS, MAX_FRAMES = 1 << 16, 1 << 24
CHECKSUM = "checksum"                   # header field: tensors_digest of the file's tensors


def stored_model(out) -> Path:
    """The model file of run folder ``out``: ``model.safetensors``, or an older run's
    ``model.npz`` where only that exists."""
    out = Path(out)
    if not (out / MODEL_FILE).exists() and (out / LEGACY_MODEL_FILE).exists():
        return out / LEGACY_MODEL_FILE
    return out / MODEL_FILE


def model_header(network, meta: dict | None = None) -> dict:
    """The header fields of ``network``'s model file."""
    return {"format": FORMAT, "version": SINGLE_VERSION, "layers": network.config(),
            "input_shape": list(network.input_shape), "dtype": network.dtype,
            "n_classes": network.n_classes, "placement": network.backend_names,
            "seed": network.seed, "meta": meta or {}}


def _tensor_name(kind: str, key: str, ensemble: bool) -> str:
    """``param``, ``conv1/w`` -> ``param/conv1/w``; in an ensemble's file member i's
    ``m<i>/conv1/w`` -> ``m<i>/param/conv1/w``; the baseline's extra ``baseline/mean`` stays
    ``baseline/mean``."""
    if kind == "extra" and key.startswith(BASELINE):
        return key
    member = MEMBER.match(key) if ensemble else None
    if member is None:
        return f"{kind}/{key}"
    return f"{member.group(0)}{kind}/{key[member.end():]}"


def write_model_file(path, header: dict, params: dict, extra: dict) -> None:
    """Write a header and its arrays as a safetensors model file, atomically (an
    ensemble's arrays keyed ``m<i>/...`` per member)."""
    ensemble = "ensemble" in header
    tensors = {_tensor_name(kind, k, ensemble): np.ascontiguousarray(v)
               for kind, arrays in (("param", params), ("extra", extra))
               for k, v in arrays.items()}
    metadata = {key: json_text(value, indent=None) for key, value in header.items()}
    metadata[CHECKSUM] = json_text(tensors_digest(tensors), indent=None)
    blob = safetensors.numpy.save(tensors, metadata=metadata)
    with atomic_path(path, suffix=".safetensors") as tmp:
        Path(tmp).write_bytes(blob)


def tensors_digest(tensors: dict) -> str:
    """``sha256:<hex>`` over every tensor in name order: its name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.data)                                # the bytes, not a copy of them
    return "sha256:" + h.hexdigest()


def save_model(path, network, meta: dict | None = None, extra_arrays: dict | None = None,
               params: dict | None = None) -> None:
    """Write ``network`` and ``meta`` (JSON-serialisable) to ``path`` atomically.

    ``extra_arrays`` are stored beside the weights under ``extra/<key>`` (e.g.
    normalisation statistics or optimiser state); ``params`` (host arrays keyed as
    ``Network.host_params``) replace the network's own weights in the file.
    """
    extra = {key: np.asarray(value) for key, value in (extra_arrays or {}).items()}
    write_model_file(path, model_header(network, meta), params or network.host_params(), extra)


def _damaged(path, what: str) -> ModelFileError:
    return ModelFileError(f"{path} has a damaged header: {what}; the file was edited or "
                          f"corrupted: retrain the model or restore the file")


def _unreadable(path) -> ModelFileError:
    return ModelFileError(f"{path} is not a readable genrecnn model (truncated, damaged or "
                          f"another format); retrain or restore it")


def _not_genrecnn(path, what: str) -> ModelFileError:
    return ModelFileError(f"{path} is not a genrecnn model ({what}); pass a file written by "
                          f"`genrecnn train`")


def _show(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(value) -> bool:
    """A JSON whole number (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _read_safetensors(path: Path) -> tuple[dict, dict, dict]:
    """(header, params, extra arrays) of a safetensors file, or ModelFileError."""
    try:
        with safe_open(path, framework="np") as fh:
            metadata = fh.metadata()
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception:   # a damaged, truncated or foreign file (the library's own errors)
        raise _unreadable(path) from None
    if not metadata or "format" not in metadata:
        raise _not_genrecnn(path, "no genrecnn metadata")
    if sum(len(k) + len(v) for k, v in metadata.items()) > MAX_HEADER_BYTES:
        raise _damaged(path, f"the header is larger than {MAX_HEADER_BYTES >> 20} MB")
    header = {}
    for key, text in metadata.items():
        try:
            header[key] = json.loads(text)
        except (ValueError, RecursionError):
            raise _damaged(path, f"metadata {_show(key)} is not valid JSON") from None
    if header.get("format") != FORMAT:
        raise _not_genrecnn(path, f"format {_show(header.get('format'))}")
    if CHECKSUM in header and header[CHECKSUM] != tensors_digest(tensors):
        raise ModelFileError(f"{path} is damaged: its tensors do not match the checksum "
                             f"written with them; retrain the model or restore the file")
    return (header, *_arrays(tensors, "ensemble" in header))


def _arrays(tensors: dict, ensemble: bool) -> tuple[dict, dict]:
    """(params, extra) of a file's tensors; an ensemble's member tensors keyed ``m<i>/...``,
    the baseline's ``baseline/...`` among the extra arrays."""
    out = {"param": {}, "extra": {}}
    for name, value in tensors.items():
        member = MEMBER.match(name) if ensemble else None
        prefix = member.group(0) if member else ""
        kind, _, key = name[len(prefix):].partition("/")
        if kind in out:
            out[kind][prefix + key] = value
        elif name.startswith(BASELINE):
            out["extra"][name] = value
    return out["param"], out["extra"]


def _parse_header(path: Path, raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _damaged(path, "it is not valid JSON") from None
    if not isinstance(header, dict):
        raise _damaged(path, f"it is a JSON {type(header).__name__}, not an object")
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a genrecnn model (format {_show(header.get('format'))}"
                             f"); pass a file written by `genrecnn train`")
    return header


def check_header(path, header: dict, params: dict) -> None:
    """Every field of a model header, against the stored ``params``; ModelFileError if wrong."""
    version = header.get("version")
    if not is_int(version) or version < 1:
        raise _damaged(path, f"'version' is {_show(version)}, expected a whole number from 1")
    if version > VERSION:
        raise ModelFileError(f"{path} was written by a newer genrecnn (format {version}, this "
                             f"one reads up to {VERSION}); upgrade genrecnn")
    layers = header.get("layers")
    if (not isinstance(layers, list) or not layers
            or not all(isinstance(c, dict) and isinstance(c.get("type"), str) for c in layers)):
        raise _damaged(path, f"'layers' is {_show(layers)}, expected a list of layer objects "
                             f"with a \"type\"")
    shape = header.get("input_shape")
    if (not isinstance(shape, list) or len(shape) != 2 or not all(is_int(s) for s in shape)
            or not (1 <= shape[0] <= MAX_ROWS and 1 <= shape[1] <= MAX_FRAMES)):
        raise _damaged(path, f"'input_shape' is {_show(shape)}, expected [mel bands, frames] "
                             f"(at most {MAX_ROWS} and {MAX_FRAMES})")
    if header.get("dtype") not in DTYPES:
        raise _damaged(path, f"'dtype' is {_show(header.get('dtype'))}, expected one of "
                             f"{', '.join(DTYPES)}")
    n_classes = header.get("n_classes")
    if not is_int(n_classes) or n_classes < 2:
        raise _damaged(path, f"'n_classes' is {_show(n_classes)}, expected a whole number "
                             f"of at least 2")
    placement = header.get("placement", [])
    if not isinstance(placement, list) or not all(isinstance(b, str) for b in placement):
        raise _damaged(path, f"'placement' is {_show(placement)}, expected a list of "
                             f"backend names")
    if not isinstance(header.get("meta", {}), dict):
        raise _damaged(path, f"'meta' is {_show(header.get('meta'))}, expected an object")
    _check_members(path, header)
    # every size a layer allocates is a number in its config: bound them by what is stored
    cap = max([shape[1]] + [d for a in params.values() for d in np.shape(a)])
    for cfg in layers:
        for key, value in cfg.items():
            for size in _magnitudes(value) if key not in ("type", "name") else ():
                if not size <= cap:            # NaN too
                    raise _damaged(path, f"layer {_show(cfg.get('name', cfg['type']))} has "
                                         f"{key}={_show(value)}, larger than any stored "
                                         f"weight array")


def _check_members(path, header: dict) -> None:
    """An ensemble's size and member list (a file of one network has neither)."""
    if "ensemble" not in header:
        return
    size, members = header["ensemble"], header.get("members")
    if not is_int(size) or not 1 <= size <= MAX_ENSEMBLE:
        raise _damaged(path, f"'ensemble' is {_show(size)}, expected a whole number from 1 "
                             f"to {MAX_ENSEMBLE}")
    if (not isinstance(members, list) or len(members) != size
            or not all(isinstance(m, dict) and is_int(m.get("seed"))
                       and isinstance(m.get("meta", {}), dict) for m in members)):
        raise _damaged(path, f"'members' is {_show(members)}, expected {size} object(s) with "
                             f"a \"seed\"")


def member_views(header: dict, params: dict, extra: dict) -> list[tuple[dict, dict, dict]]:
    """(header, params, extra) of each network of a model file, each as a file of that
    network alone would hold it: a member's header has its seed and its meta its
    training state (over the file's), its extra the shared arrays and its own."""
    if "ensemble" not in header:
        return [(header, params, extra)]
    common = {k: v for k, v in header.items() if k not in ("ensemble", "members")}
    shared = {k: v for k, v in extra.items() if not MEMBER.match(k)}
    views = []
    for i, member in enumerate(header["members"]):
        prefix = f"m{i}/"
        meta = dict(header["meta"], **member.get("meta", {}))
        if isinstance(meta.get("settings"), dict):
            meta["settings"] = dict(meta["settings"], seed=member["seed"])
        views.append((dict(common, seed=member["seed"], meta=meta),
                      {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)},
                      dict(shared, **{k[len(prefix):]: v for k, v in extra.items()
                                      if k.startswith(prefix)})))
    return views


def _magnitudes(value) -> list:
    """Sizes in a layer argument as a layer would read them (``int("64")`` works too)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [abs(value)]
    if isinstance(value, str):
        try:
            return [abs(float(value))]
        except ValueError:
            return []
    if isinstance(value, list):
        return [n for v in value for n in _magnitudes(v)]
    return []


def check_arrays(path, arrays: dict, what: str) -> None:
    """Stored arrays must be real numbers, all finite (a diverged run's NaN is refused)."""
    for key, value in arrays.items():
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
                or value.dtype == np.bool_):
            raise ModelFileError(f"{path}: {what} {key!r} have dtype {value.dtype}, not real "
                                 f"numbers; retrain the model or restore the file")
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad = int(np.size(value) - np.isfinite(value).sum())
            raise ModelFileError(f"{path}: {what} {key!r} hold {bad} NaN or infinite value(s) "
                                 f"(the run that wrote it diverged, or the file is damaged); "
                                 f"retrain with a lower --lr")


def read_model_file(path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(header, params, extra arrays) of a model file (safetensors, or the old .npz), or a
    ModelFileError saying why not."""
    path = Path(path)
    problem = regular_file_problem(path)
    if problem is not None:
        if not path.exists():
            raise ModelFileError(f"model file {path} does not exist; train one with "
                                 f"`genrecnn train`")
        raise ModelFileError(f"model file {path} {problem}; pass a model file written by "
                             f"`genrecnn train`")
    if npz_model.is_npz(path):
        raw, params, extra = npz_model.read_npz(path)
        header = _parse_header(path, raw)
    else:
        header, params, extra = _read_safetensors(path)
    check_header(path, header, params)
    check_arrays(path, params, "weights")
    check_arrays(path, extra, "stored arrays")
    header.setdefault("meta", {})
    return header, params, extra


def load_members(path, placement=None) -> list[tuple]:
    """(network, meta, extra arrays) of each network a model file holds (one, or an
    ensemble's; see :func:`member_views`), placed as ``placement`` says (unplaced when
    None)."""
    return [(_build(path, header, params, placement), header["meta"], extra)
            for header, params, extra in member_views(*read_model_file(path))]


def load_model(path, placement=None):
    """(network, meta, extra arrays) from a model file of one network; placed as
    ``placement`` says (unplaced when None)."""
    members = load_members(path, placement)
    if len(members) > 1:
        raise ModelFileError(f"{path} holds an ensemble of {len(members)} networks, where one "
                             f"network is needed; pass a model trained without --ensemble")
    return members[0]


def _build(path, header: dict, params: dict, placement):
    """The network of a checked header, holding ``params``."""
    from genrecnn.engine.architectures import build_network

    try:
        net = build_network(header["layers"], tuple(header["input_shape"]), header["n_classes"],
                            dtype=header["dtype"], seed=int(header.get("seed", 0)))
        net.load_host_params(params)
    except GenrecnnError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, ArithmeticError, MemoryError) as exc:
        raise _damaged(path, f"its layers cannot be built ({str(exc)[:80]})") from None
    if placement is not None:
        net.place(placement)
    return net


def convert_model(src, dst) -> Path:
    """Rewrite the old ``.npz`` model ``src`` as a safetensors model at ``dst``, after
    loading it as predict would (so a damaged file is refused, not copied)."""
    src, dst = Path(src), Path(dst)
    load_members(src)
    if not npz_model.is_npz(src):
        raise ModelFileError(f"{src} is already a safetensors model; nothing to convert")
    header, params, extra = read_model_file(src)
    write_model_file(dst, header, params, extra)
    return dst
