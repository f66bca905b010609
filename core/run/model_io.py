"""Saving and loading models without pickle.

A model file is a NumPy ``.npz`` archive: one array per parameter
(``layer/param``), plus ``__genrecnn__``, the UTF-8 bytes of a JSON header with
the format tag, architecture, input shape, dtype, class names and whatever
else the caller stores (feature parameters, normalisation, placement, training
state). Arrays are loaded with ``allow_pickle=False``. Writes are atomic.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from genrecnn.errors import GenrecnnError, ModelFileError
from genrecnn.fsutil import atomic_path

FORMAT = "genrecnn-model"
VERSION = 1
HEADER = "__genrecnn__"


def save_model(path, network, meta: dict | None = None, extra_arrays: dict | None = None,
               params: dict | None = None) -> None:
    """Write ``network`` and ``meta`` (JSON-serialisable) to ``path`` atomically.

    ``extra_arrays`` are stored beside the weights under ``extra/<key>`` (e.g.
    normalisation statistics or optimiser state); ``params`` (host arrays keyed as
    ``Network.host_params``) replace the network's own weights in the file.
    """
    header = {"format": FORMAT, "version": VERSION, "layers": network.config(),
              "input_shape": list(network.input_shape), "dtype": network.dtype,
              "n_classes": network.n_classes, "placement": network.backend_names,
              "seed": network.seed,
              "meta": meta or {}}
    arrays = {f"param/{k}": v for k, v in (params or network.host_params()).items()}
    for key, value in (extra_arrays or {}).items():
        arrays[f"extra/{key}"] = np.asarray(value)
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_model_file(path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(header, params, extra arrays) of a model file, or a ModelFileError saying why not."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist; train one with `genrecnn train`")
    try:
        with np.load(path, allow_pickle=False) as data:
            if HEADER not in data.files:
                raise ModelFileError(f"{path} is not a genrecnn model (no genrecnn header); "
                                     f"pass a file written by `genrecnn train`")
            header = json.loads(bytes(data[HEADER]).decode())
            params = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
            extra = {k[len("extra/"):]: data[k] for k in data.files if k.startswith("extra/")}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path} is not a readable genrecnn model (truncated or another "
                             f"format: {type(exc).__name__}); retrain or restore it") from None
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a genrecnn model; pass a file written by "
                             f"`genrecnn train`")
    if header.get("version", 0) > VERSION:
        raise ModelFileError(f"{path} was written by a newer genrecnn (format "
                             f"{header['version']}); upgrade genrecnn")
    return header, params, extra


def load_model(path, placement=None):
    """(network, meta, extra arrays) from a model file; placed as saved unless told otherwise."""
    from genrecnn.engine.architectures import build_network

    header, params, extra = read_model_file(path)
    try:
        net = build_network(header["layers"], tuple(header["input_shape"]), header["n_classes"],
                            dtype=header["dtype"], seed=int(header.get("seed", 0)))
        net.load_host_params(params)
    except GenrecnnError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{path} has a damaged header ({exc}); retrain or restore it") from None
    if placement is not None:
        net.place(placement)
    return net, header.get("meta", {}), extra
