"""Proof that the staging cases can fail: NumPy backends whose uploads break the contract
the way an asynchronous implementation might, each reported on ``staging`` alone."""
import numpy as np
import pytest

from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.conformance import FAIL, run_conformance
from test_planted_bugs import check_planted

BOTH = {("staging", "float32"), ("staging", "float64")}


class ReadsHostLate(NumpyBackend):
    """Copies when the upload is awaited and never waits in upload_finished: a staging
    buffer rewritten after upload_finished reaches the device."""

    name = "bug-staging-reads-host-late"

    def upload_async(self, host, dst):
        return host, dst

    def await_upload(self, token):
        host, dst = token
        np.copyto(dst, host)

    def upload_finished(self, token):
        pass


class OneBounceBuffer(NumpyBackend):
    """Stages every upload through one buffer of its own, copied on to dst when awaited:
    the second of two uploads in flight overwrites the first."""

    name = "bug-staging-one-bounce-buffer"

    def upload_async(self, host, dst):
        self._bounce = host.copy()
        return dst

    def await_upload(self, token):
        np.copyto(token, self._bounce)


class DropsTheLastValue(NumpyBackend):
    name = "bug-staging-short-copy"

    def upload_async(self, host, dst):
        dst.reshape(-1)[:-1] = host.reshape(-1)[:-1]


class PinnedIsAView(NumpyBackend):
    """Hands out a transposed view: not C-contiguous, so a DMA of its bytes is scrambled."""

    name = "bug-staging-pinned-view"

    def pinned_empty(self, shape, dtype):
        return np.empty(tuple(reversed(shape)), dtype=dtype).T


PLANTED = {
    ReadsHostLate: (BOTH, "rewritten after upload_finished"),
    OneBounceBuffer: (BOTH, "two uploads in flight"),
    DropsTheLastValue: (BOTH, "dst after await_upload"),
    PinnedIsAView: (BOTH, "C-contiguous"),
}


@pytest.mark.parametrize("cls", list(PLANTED), ids=lambda c: c.name)
def test_planted_staging_bug_fails_on_staging(cls):
    check_planted(cls, *PLANTED[cls])


def test_each_bug_is_caught_by_the_check_named_for_it():
    """The late read passes every check but the rewrite (the step runner's pipeline awaits
    each upload before it rewrites the staging buffer); the bounce buffer passes every
    check but two in flight."""
    failed = {c.check for c in run_conformance(ReadsHostLate(), ops=["staging"]).cases
              if c.status == FAIL}
    assert failed == {"rewrite"}
    failed = {c.check for c in run_conformance(OneBounceBuffer(), ops=["staging"]).cases
              if c.status == FAIL}
    assert failed == {"two-in-flight"}
