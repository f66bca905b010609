"""Placement specs: which backend runs which layer.

A spec is a bare backend name (``numpy``: everything there) or a comma list of
``key=backend`` where key is a layer kind, a layer name (``conv2``) or
``default``. The kinds: conv (1-D and 2-D convolutions), pool (1-D and 2-D max
pooling), gpool (global pooling), fc (fully connected), act (activations),
softmax, norm (batch normalisation) and drop (dropout). Layer names win over
kinds, kinds over ``default``; what nothing names runs on NumPy.
"""
from __future__ import annotations

from genrecnn.errors import PlacementError
from genrecnn.engine.layers import KINDS

DEFAULT_BACKEND = "numpy"
AUTO = "auto"


def parse_placement(spec: str) -> dict[str, str]:
    """``"conv=pycuda,fc=numpy"`` -> ``{"conv": "pycuda", "fc": "numpy"}``; a bare name -> default.

    An empty spec is refused rather than read as NumPy: ``--backend ''`` is most
    likely an unset shell variable, and silently running on the CPU hides that.
    """
    spec = (spec or "").strip()
    if not spec:
        raise PlacementError(f"the placement is empty; name a backend (e.g. --backend "
                             f"{DEFAULT_BACKEND}), kind=backend pairs, or auto")
    if "=" not in spec and "," not in spec:
        return {"default": spec}
    out: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key or not value:
            raise PlacementError(
                f"bad placement entry {part.strip()!r} in {spec!r}; write key=backend, "
                f"e.g. conv=pycuda,fc=numpy or default=numpy")
        if key in out:
            raise PlacementError(f"placement {spec!r} names {key!r} twice; name it once")
        out[key] = value
    return out


def resolve_placement(spec: str | dict[str, str], layers, known_backends: list[str]) -> list[str]:
    """The backend name for each layer, checking every key and backend in the spec."""
    mapping = parse_placement(spec) if isinstance(spec, str) else dict(spec)
    names = [layer.name for layer in layers]
    for key, backend in mapping.items():
        if key != "default" and key not in KINDS and key not in names:
            raise PlacementError(
                f"placement key {key!r} is neither a layer kind ({', '.join(KINDS)}), "
                f"a layer name ({', '.join(names)}) nor 'default'")
        if backend == AUTO:
            raise PlacementError("'auto' places the whole network: use --backend auto on its own")
        if backend not in known_backends:
            raise PlacementError(
                f"unknown backend {backend!r} in placement for {key!r}; installed backends: "
                f"{', '.join(known_backends)} (see `genrecnn backends`)")
    default = mapping.get("default", DEFAULT_BACKEND)
    return [mapping.get(layer.name, mapping.get(layer.kind, default)) for layer in layers]


def format_plan(layers, backends: list[str]) -> str:
    """The plan as a per-layer spec string, e.g. ``conv1=cupy,pool1=cupy,...``."""
    return ",".join(f"{layer.name}={b}" for layer, b in zip(layers, backends))
