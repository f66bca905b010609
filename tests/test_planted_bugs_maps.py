"""Proof that the 2-D map and training-op cases can fail: NumPy backends with one planted
bug each, every one reported as FAIL on its op group at both dtypes."""
import numpy as np
import pytest

from genrecnn.backends.numpy_backend.backend import NumpyBackend
from genrecnn.conformance import run_conformance
from test_planted_bugs import check_planted


class ConvPadsOneSideTwice(NumpyBackend):
    name = "bug-conv2d-pad-one-side"
    precisions = ("fp32",)     # its products take no precision: planted at fp32

    def conv2d(self, x, w, b, stride, padding):
        pw = padding[1]
        if pw:      # 2 pw zero columns on the left and none on the right
            x = np.concatenate([np.zeros(x.shape[:3] + (pw,), x.dtype), x[..., :-pw]], axis=3)
        return super().conv2d(x, w, b, stride, padding)


class ConvParamsGradForgetsBias(NumpyBackend):
    name = "bug-conv2d-params-db"
    precisions = ("fp32",)     # its products take no precision: planted at fp32

    def conv2d_backward_params(self, x, w, dy, stride, padding):
        dw, db = super().conv2d_backward_params(x, w, dy, stride, padding)
        return dw, np.zeros_like(db)


class PoolArgmaxSkipsNaN(NumpyBackend):
    name = "bug-maxpool2d-nan-argmax"

    def maxpool2d(self, x, size, stride):
        y, _ = super().maxpool2d(x, size, stride)
        _, arg = super().maxpool2d(np.where(np.isnan(x), -np.inf, x), size, stride)
        return y, arg


class PoolColumnMajor(NumpyBackend):
    name = "bug-maxpool2d-column-major"

    def maxpool2d(self, x, size, stride):
        yt, argt = super().maxpool2d(np.ascontiguousarray(x.transpose(0, 1, 3, 2)),
                                     size[::-1], stride[::-1])
        h, w = x.shape[2:]
        arg = (argt % h) * w + argt // h           # back to positions in x
        return (np.ascontiguousarray(yt.transpose(0, 1, 3, 2)),
                np.ascontiguousarray(arg.transpose(0, 1, 3, 2)).astype(np.int32))


class BatchNormUnbiased(NumpyBackend):
    name = "bug-batchnorm-unbiased"

    def batchnorm_train(self, x, gamma, beta, eps):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = x.mean(axis=axes)
        var = x.var(axis=axes, ddof=1) if x.size > x.shape[1] else np.zeros_like(mean)
        invstd = (1 / np.sqrt(var + eps)).astype(x.dtype)
        y = (x - mean.reshape(shape)) * (invstd * gamma).reshape(shape) + beta.reshape(shape)
        return y.astype(x.dtype), mean.astype(x.dtype), invstd


class BatchNormBackwardNoMeanTerm(NumpyBackend):
    name = "bug-batchnorm-backward"

    def batchnorm_backward(self, x, gamma, mean, invstd, dy):
        _, dgamma, dbeta = super().batchnorm_backward(x, gamma, mean, invstd, dy)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return dy * (gamma * invstd).reshape(shape), dgamma, dbeta


class RunningUpdateRebinds(NumpyBackend):
    name = "bug-batchnorm-running-rebinds"

    def batchnorm_running_update(self, running_mean, running_var, mean, invstd, count, momentum,
                                 eps):
        running_mean = (1 - momentum) * running_mean + momentum * mean   # noqa: F841
        running_var *= 1 - momentum
        running_var += momentum * (1 / invstd ** 2 - eps)


class RunningVarBiased(NumpyBackend):
    name = "bug-batchnorm-running-biased"

    def batchnorm_running_update(self, running_mean, running_var, mean, invstd, count, momentum,
                                 eps):
        super().batchnorm_running_update(running_mean, running_var, mean, invstd, 1, momentum,
                                         eps)


class DropoutMaskShifted(NumpyBackend):
    name = "bug-dropout-off-by-one"

    def dropout(self, x, rate, key):
        flat = np.concatenate([x.ravel()[:1], x.ravel()])       # element i gets mask bit i + 1
        return super().dropout(flat, rate, key)[1:].reshape(x.shape)


class DropoutFloat32Rate(NumpyBackend):
    name = "bug-dropout-float32-rate"

    def dropout(self, x, rate, key):
        return super().dropout(x, float(np.float32(rate)), key) * x.dtype.type(
            (1 - np.float32(rate)) / (1 - rate))


class GatherColumnLate(NumpyBackend):
    name = "bug-gather-off-by-one"

    def gather_batch(self, data, labels, index, start, width):
        later = np.minimum(start + 1, data.shape[2] - width).astype(np.int32)
        return super().gather_batch(data, labels, index, later, width)


class SpansWrapAround(NumpyBackend):
    name = "bug-spans-negative-start"

    def mask_spans(self, x, f0, fw, t0, tw):
        y = x.copy()
        for b in range(len(x)):                 # Python slices wrap a negative start
            y[b, f0[b]:f0[b] + fw[b]] = 0
            y[b, :, t0[b]:t0[b] + tw[b]] = 0
        return y


class MixWeightsSwapped(NumpyBackend):
    name = "bug-mix-swapped"

    def mix(self, x, perm, lam):
        return super().mix(x, perm, 1 - lam)


class WriteRebinds(NumpyBackend):
    name = "bug-write-rebinds"

    def write(self, dst, a):
        dst = np.array(a)                        # noqa: F841


class LossOverwritesStats(NumpyBackend):
    name = "bug-loss-overwrites-stats"

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats):
        stats[...] = 0
        return super().softmax_cross_entropy_acc(logits, labels_a, labels_b, lam, stats)


class LossFromProbs(NumpyBackend):
    name = "bug-loss-log-probs"

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats):
        probs = self.softmax(logits)
        rows = np.arange(len(logits))
        with np.errstate(all="ignore"):
            loss = -(lam * np.log(probs[rows, labels_a])
                     + (1 - lam) * np.log(probs[rows, labels_b])).sum()
        best = probs.argmax(axis=1)
        credit = (lam * (best == labels_a) + (1 - lam) * (best == labels_b)).sum()
        stats += np.array([loss, credit], dtype=stats.dtype)
        return probs


class SmoothingOverKMinusOne(NumpyBackend):
    """Label smoothing spread as eps / (K - 1) instead of eps / K: right wherever eps is 0."""

    name = "bug-smoothing-k-minus-1"

    def _targets(self, k, labels_a, labels_b, lam, smoothing):
        rows = np.arange(len(lam))
        t = np.zeros((len(lam), k), dtype=lam.dtype)
        t[rows, labels_a] += lam
        t[rows, labels_b] += 1 - lam
        with np.errstate(all="ignore"):
            return (1 - smoothing) * t + np.float64(smoothing) / max(k - 1, 0)

    def softmax_cross_entropy_acc(self, logits, labels_a, labels_b, lam, stats,
                                  smoothing=0.0):
        if not smoothing:
            return super().softmax_cross_entropy_acc(logits, labels_a, labels_b, lam, stats)
        probs = super().softmax_cross_entropy_acc(logits, labels_a, labels_b, lam,
                                                  np.zeros_like(stats))
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        t = self._targets(logits.shape[1], labels_a, labels_b, lam, smoothing)
        best = logits.argmax(axis=1)
        credit = (lam * (best == labels_a) + (1 - lam) * (best == labels_b)).sum()
        with np.errstate(all="ignore"):
            stats += np.array([-(t * logp).sum(), credit], dtype=stats.dtype)
        return probs

    def softmax_cross_entropy_acc_backward(self, probs, labels_a, labels_b, lam,
                                           smoothing=0.0):
        if not smoothing:
            return super().softmax_cross_entropy_acc_backward(probs, labels_a, labels_b, lam)
        t = self._targets(probs.shape[1], labels_a, labels_b, lam, smoothing)
        return ((probs - t) / len(probs)).astype(probs.dtype)


BOTH = ("float32", "float64")
# backend -> (its op group, the dtypes that must fail, a phrase the first failure contains)
PLANTED = {
    ConvPadsOneSideTwice: ("conv2d", BOTH, "conv2d y"),
    ConvParamsGradForgetsBias: ("conv2d", BOTH, "conv2d_backward_params db"),
    PoolArgmaxSkipsNaN: ("maxpool2d", BOTH, "-nan: maxpool2d argmax"),
    PoolColumnMajor: ("maxpool2d", BOTH, "maxpool2d argmax"),
    BatchNormUnbiased: ("batchnorm", BOTH, "batchnorm_train"),
    BatchNormBackwardNoMeanTerm: ("batchnorm", BOTH, "batchnorm_backward dx"),
    RunningUpdateRebinds: ("batchnorm", BOTH, "did not change 'running_mean' in place"),
    RunningVarBiased: ("batchnorm", BOTH, "running_var"),
    DropoutMaskShifted: ("dropout", BOTH, "dropout mask"),
    DropoutFloat32Rate: ("dropout", BOTH, "past-edge"),
    GatherColumnLate: ("batch", BOTH, "gather_batch x"),
    SpansWrapAround: ("batch", BOTH, "mask_spans y"),
    MixWeightsSwapped: ("batch", BOTH, "mix y"),
    WriteRebinds: ("batch", BOTH, "did not change 'dst' in place"),
    LossOverwritesStats: ("train_loss", BOTH, "stats"),
    LossFromProbs: ("train_loss", BOTH, "huge"),
    SmoothingOverKMinusOne: ("train_loss", BOTH, "smoothing"),
}


@pytest.mark.parametrize("cls", list(PLANTED), ids=lambda c: c.name)
def test_planted_bug_fails_on_its_op_group(cls):
    group, dtypes, phrase = PLANTED[cls]
    check_planted(cls, {(group, d) for d in dtypes}, phrase)


def test_write_case_sees_the_queued_work_and_the_neighbours():
    """The write case's extra checks (neighbours, queued reads) can fail too."""
    class WritesNeighbour(NumpyBackend):
        name = "bug-write-neighbour"

        def __init__(self):
            self.arrays = []

        def from_host(self, a):
            out = super().from_host(a)
            self.arrays.append(out)
            return out

        def write(self, dst, a):
            np.copyto(dst, a)
            i = next(i for i, x in enumerate(self.arrays) if x is dst)
            self.arrays[i - 1][...] = 0              # spills into the array allocated before

    report = run_conformance(WritesNeighbour(), dtypes=["float32"], ops=["batch"])
    assert "allocated just before dst" in report.row("batch", "float32").detail

    class LazyMix(NumpyBackend):
        name = "bug-mix-reads-late"

        def mix(self, x, perm, lam):                # returns a view: sees later writes to x
            return x if np.all(lam == 1) and np.array_equal(perm, np.arange(len(x))) \
                else super().mix(x, perm, lam)

    report = run_conformance(LazyMix(), dtypes=["float32"], ops=["batch"])
    assert "queued before the write" in report.row("batch", "float32").detail


def test_the_smoothing_bug_fails_only_the_smoothing_cases():
    """Every failed train_loss case of the eps / (K - 1) bug is one with smoothing: the
    cases without it cannot see it."""
    report = run_conformance(SmoothingOverKMinusOne(), ops=["train_loss"])
    for dtype in BOTH:
        failed = [c.label for c in report.failures if c.dtype == dtype]
        smoothed = [c.label for c in report.cases if c.dtype == dtype and "smoothing" in c.label]
        assert failed and all("smoothing" in label for label in failed), failed
        assert len(failed) >= len(smoothed) // 2, (failed, smoothed)
