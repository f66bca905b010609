"""Named architectures (TOML files beside this module) and loading user files.

An architecture is a list of layer configs, ``{"type": kind, ...arguments}``;
a fully connected layer with ``units = "classes"`` gets one unit per class.
Files are TOML (``[[layers]]`` tables) or JSON (``{"layers": [...]}``).
"""
from __future__ import annotations

import json
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from genrecnn.errors import ShapeError
from genrecnn.engine.layers import layer_from_config
from genrecnn.engine.network import Network

_HERE = Path(__file__).parent


def named_architectures() -> dict[str, str]:
    """name -> one-line description of every built-in architecture."""
    return {p.stem: _read(p).get("description", "") for p in sorted(_HERE.glob("*.toml"))}


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ShapeError(f"cannot read architecture file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ShapeError(f"architecture file {path} is not valid "
                         f"{'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise ShapeError(f"architecture file {path} needs a list of layers "
                         f"([[layers]] tables in TOML, \"layers\": [...] in JSON)")
    return data


def load_architecture(name_or_path: str) -> list[dict]:
    """Layer configs of a built-in architecture name or a TOML/JSON file."""
    builtin = _HERE / f"{name_or_path}.toml"
    if builtin.exists():
        return _read(builtin)["layers"]
    path = Path(name_or_path)
    if path.suffix in (".toml", ".json") and path.exists():
        return _read(path)["layers"]
    raise ShapeError(f"unknown architecture {name_or_path!r}; use a built-in one "
                     f"({', '.join(named_architectures())}) or a .toml/.json file")


def build_network(layers_cfg: list[dict], input_shape: tuple[int, int], n_classes: int,
                  dtype: str = "float32", seed: int = 0, precision: str = "fp32") -> Network:
    """A Network from layer configs; ``units = "classes"`` becomes ``n_classes``;
    ``precision``: of its products (:mod:`genrecnn.engine.ops.precision`)."""
    layers = []
    for cfg in layers_cfg:
        cfg = dict(cfg)
        if cfg.get("units") == "classes":
            cfg["units"] = n_classes
        layers.append(layer_from_config(cfg))
    net = Network(layers, input_shape, dtype=dtype, seed=seed, precision=precision)
    if net.n_classes != n_classes:
        raise ShapeError(f"the architecture ends with {net.n_classes} outputs but there are "
                         f"{n_classes} classes; give the last fc layer units = \"classes\"")
    return net
