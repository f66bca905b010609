"""Planted bugs in the one-call updates are reported by the shipped suite."""
import pytest

from genrecnn.backends.numpy_backend import NumpyBackend
from genrecnn.backends.numpy_backend.updates import adam_step
from genrecnn.conformance import FAIL, run_conformance


class IgnoresDecoupledDecay(NumpyBackend):
    name = "bug-update-many-dwd"

    def adam_update_many(self, params, grads, ms, vs, hyper):
        lr, b1, b2, eps, wd, _dwd, bc1, bc2 = (float(v) for v in hyper)
        for p, g, m, v in zip(params, grads, ms, vs):
            adam_step(p, g, m, v, lr, b1, b2, eps, wd, 0.0, bc1, bc2)


class StopsAtThirtyTwo(NumpyBackend):
    """Updates only the first 32 parameters (a CUDA launch's slots) and forgets the rest."""
    name = "bug-update-many-32"

    def sgd_update_many(self, params, grads, velocities, hyper):
        super().sgd_update_many(params[:32], grads[:32], velocities[:32], hyper)


@pytest.mark.parametrize("cls, method", [(IgnoresDecoupledDecay, "adam_update_many"),
                                         (StopsAtThirtyTwo, "sgd_update_many")])
def test_planted_update_many_bugs_fail(cls, method):
    report = run_conformance(cls(), ops=["update_many"])
    failed = [c for c in report.cases if c.status == FAIL]
    assert failed and all(method in c.id for c in failed), report.text()
    assert not report.ok


def test_correct_update_many_passes():
    assert run_conformance(NumpyBackend(), ops=["update_many"]).ok
