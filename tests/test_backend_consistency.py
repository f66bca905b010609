"""Every registered backend keeps to the op contract (as Thinc's backend consistency test):
it overrides only what :class:`genrecnn.engine.ops.Backend` and its op-group mixins define,
private ``_helpers`` aside, with the contract's signatures. A backend offering fp32 alone
may leave out the products' ``precision`` keyword (callers pass it only for tf32 and
bf16). Importing a backend class needs no GPU, so this runs everywhere."""
from __future__ import annotations

import inspect

import pytest

from genrecnn.engine.ops import PRECISION_METHODS, Backend
from genrecnn.engine.registry import build_registry

BUILT_IN = {"numpy", "pycuda", "cupy", "example"}
CONTRACT = {name for name in dir(Backend) if not name.startswith("_")}


def _backend_classes() -> dict[str, type]:
    return {name: info.cls for name, info in build_registry().infos.items()
            if info.cls is not None}


METHODS = (staticmethod, classmethod, property, type(lambda: None))


def _own_methods(cls: type) -> dict[str, object]:
    """Public methods ``cls`` and its bases (up to the contract's classes) define; plain
    attributes (a backend's tuning constants) are its own business."""
    contract_classes = set(Backend.__mro__)
    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass in contract_classes:
            continue
        out.update({k: v for k, v in vars(klass).items()
                    if not k.startswith("_") and isinstance(v, METHODS)})
    return out


def _shape_of(sig: inspect.Signature) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def signature_problems(cls: type) -> list[str]:
    """One line per member of ``cls`` outside the contract or unlike the contract's."""
    problems = []
    for name in sorted(_own_methods(cls)):
        if name not in CONTRACT:
            problems.append(f"{cls.__name__}.{name} is not in the op contract")
            continue
        ours, theirs = inspect.getattr_static(cls, name), inspect.getattr_static(Backend, name)
        if type(ours) is not type(theirs):  # staticmethod/classmethod/function alike
            problems.append(f"{cls.__name__}.{name} is a {type(ours).__name__}, the contract's "
                            f"a {type(theirs).__name__}")
            continue
        mine, contract = inspect.signature(getattr(cls, name)), \
            inspect.signature(getattr(Backend, name))
        allowed = [_shape_of(contract)]
        if name in PRECISION_METHODS and tuple(cls.precisions) == ("fp32",):
            allowed.append(_shape_of(contract)[:-1])      # no precision keyword
        if _shape_of(mine) not in allowed:
            problems.append(f"{cls.__name__}.{name}{mine} differs from the contract's "
                            f"{name}{contract}")
    return problems


def test_every_built_in_backend_is_registered_with_its_class():
    assert BUILT_IN <= set(_backend_classes()), sorted(_backend_classes())


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_backend_overrides_only_contract_methods_with_their_signatures(name):
    cls = _backend_classes()[name]
    assert issubclass(cls, Backend)
    assert signature_problems(cls) == []


class _Extra(Backend):
    name = "extra"

    def fused_everything(self, x):        # not an op of the contract
        return x

    def conv1d(self, x, w):               # the contract's conv1d takes a bias too
        return x

    def _helper(self, anything, at_all=3):   # private: allowed
        return anything


class _Rounds(Backend):
    name = "rounds"
    precisions = ("fp32", "bf16")

    def dense(self, x, w, b):             # offers bf16, so it must take precision
        return x


def test_a_backend_offering_tf32_or_bf16_must_take_the_precision_keyword():
    class Old(Backend):
        name = "old"

        def dense(self, x, w, b):
            return x
    assert signature_problems(Old) == []
    problems = signature_problems(_Rounds)
    assert len(problems) == 1 and problems[0].startswith("_Rounds.dense(self, x, w, b) differs")


def test_the_check_names_added_methods_and_changed_signatures():
    problems = signature_problems(_Extra)
    assert len(problems) == 2, problems
    assert "_Extra.fused_everything is not in the op contract" in problems
    assert any(p.startswith("_Extra.conv1d(self, x, w) differs") for p in problems), problems
    assert signature_problems(type("Plain", (Backend,), {"name": "plain"})) == []
