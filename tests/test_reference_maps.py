"""The reference of the 2-D map and training ops is itself right: its gradients against
finite differences, its semantics on small hand-worked examples."""
import inspect

import numpy as np
import pytest

from genrecnn.conformance import reference as ref_seq
from genrecnn.conformance import reference_maps as ref
from genrecnn.conformance.checks import gradcheck
from genrecnn.engine.ops import lowbias32
from genrecnn.engine.ops.maps import GOLDEN


def _fd(f, inputs, grads):
    return gradcheck(f, inputs, grads, np.random.default_rng(0))


@pytest.mark.parametrize("stride,padding,kernel", [((1, 1), (1, 1), (3, 3)),
                                                   ((2, 3), (0, 2), (2, 3)),
                                                   ((3, 1), (4, 0), (2, 2))])
def test_conv2d_backward_by_finite_differences(stride, padding, kernel):
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s) for s in ((2, 3, 7, 8), (4, 3, *kernel), (4,)))
    dy = rng.standard_normal(ref.conv2d(x, w, b, stride, padding).shape)
    dx, dw, db = ref.conv2d_backward(x, w, dy, stride, padding)
    assert _fd(lambda x, w, b: (ref.conv2d(x, w, b, stride, padding) * dy).sum(),
               {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}) < 1e-6


def test_conv2d_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 2, 2))
    y = ref.conv2d(x, w, np.array([0.5]), (2, 2), (1, 1))    # 2x2 windows over the padded 5x5
    assert y.tolist() == [[[[0.5, 3.5], [9.5, 24.5]]]]


@pytest.mark.parametrize("size,stride", [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((2, 3), (3, 1))])
def test_maxpool2d_backward_by_finite_differences(size, stride):
    rng = np.random.default_rng(2)
    x = rng.permutation(2 * 3 * 8 * 9).reshape(2, 3, 8, 9) * 0.01
    y, arg = ref.maxpool2d(x, size, stride)
    dy = rng.standard_normal(y.shape)
    dx = ref.maxpool2d_backward(dy, arg, 8, 9)
    assert _fd(lambda x: (ref.maxpool2d(x, size, stride)[0] * dy).sum(), {"x": x}, {"x": dx}) < 1e-6


def test_maxpool2d_first_maximum_row_major_and_nan():
    x = np.array([[1.0, 5.0, 5.0, 0.0],
                  [5.0, 2.0, np.nan, 9.0],
                  [0.0, np.nan, 1.0, 1.0]])[None, None]
    y, arg = ref.maxpool2d(x, (2, 2), (1, 2))
    # window (0,0): the first 5, at (0,1); (0,1): the NaN at (1,2) beats 9; (1,0): the NaN
    # at (2,1) beats 5; (1,1): the NaN at (1,2) again
    assert arg.tolist() == [[[[1, 6], [9, 6]]]]
    assert y[0, 0, 0, 0] == 5 and np.isnan(y[0, 0, 1, 0]) and np.isnan(y[0, 0, :, 1]).all()
    dx = ref.maxpool2d_backward(np.ones((1, 1, 2, 2)), arg, 3, 4)
    assert dx[0, 0, 1, 2] == 2 and dx.sum() == 4               # windows share a maximum


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 7), (2, 3, 4, 5)])
def test_batchnorm_backward_by_finite_differences(shape):
    rng = np.random.default_rng(3)
    x, gamma, beta = rng.standard_normal(shape), rng.standard_normal(3), rng.standard_normal(3)
    dy = rng.standard_normal(shape)
    y, mean, invstd = ref.batchnorm_train(x, gamma, beta, 1e-5)
    dx, dgamma, dbeta = ref.batchnorm_backward(x, gamma, mean, invstd, dy)
    assert _fd(lambda x, gamma, beta: (ref.batchnorm_train(x, gamma, beta, 1e-5)[0] * dy).sum(),
               {"x": x, "gamma": gamma, "beta": beta},
               {"x": dx, "gamma": dgamma, "beta": dbeta}) < 1e-6


def test_batchnorm_statistics_by_hand():
    x = np.array([[1.0, 10.0], [3.0, 10.0]])
    y, mean, invstd = ref.batchnorm_train(x, np.ones(2), np.zeros(2), 0.0 + 1e-12)
    assert mean.tolist() == [2.0, 10.0] and invstd[0] == pytest.approx(1.0)   # biased variance 1
    assert y[:, 0].tolist() == pytest.approx([-1.0, 1.0]) and y[:, 1].tolist() == [0.0, 0.0]
    rm, rv = ref.batchnorm_running_update(np.zeros(2), np.ones(2), mean, invstd, 2, 0.5, 1e-12)
    assert rm.tolist() == [1.0, 5.0] and rv == pytest.approx([1.5, 0.5])     # unbiased: 2
    _, rv1 = ref.batchnorm_running_update(np.zeros(1), np.ones(1), np.zeros(1),
                                          np.array([1 / np.sqrt(0.25 + 0.1)]), 1, 0.5, 0.1)
    assert rv1 == pytest.approx([0.625])                                     # no correction
    yi = ref.batchnorm_infer(x, np.full(2, 2.0), np.ones(2), np.array([1.0, 0.0]),
                             np.array([4.0, 1.0]), 0.0)
    assert yi.tolist() == [[1.0, 21.0], [3.0, 21.0]]


def test_dropout_hash_matches_the_contract_helper_on_python_ints():
    for seed, offset in [(0, 0), (-1, 7), (2 ** 31 - 1, -5)]:
        bits = ref.dropout_bits(50, np.array([seed, offset], dtype=np.int32))
        k = lowbias32(((seed & 0xFFFFFFFF) * GOLDEN + (offset & 0xFFFFFFFF)) & 0xFFFFFFFF)
        assert bits.tolist() == [lowbias32((i * GOLDEN + k) & 0xFFFFFFFF) >> 8 for i in range(50)]
    keep = ref.dropout_keep((200, 50), 0.3, (3, 4))
    assert 0.27 < 1 - keep.mean() < 0.33
    assert ref.dropout_keep((10,), 0.0, (3, 4)).all()
    assert (ref.dropout_keep((200, 50), 0.3, (3, 5)) != keep).mean() > 0.3   # the next step
    x = np.ones((200, 50))
    assert np.allclose(ref.dropout(x, 0.3, (3, 4))[keep], 1 / 0.7)


def test_batch_ops_by_hand():
    data = np.arange(2 * 2 * 5, dtype=float).reshape(2, 2, 5)
    x, y = ref.gather_batch(data, np.array([7, 8]), np.array([1, 0]), np.array([3, 0]), 2)
    assert x.tolist() == [[[13, 14], [18, 19]], [[0, 1], [5, 6]]] and y.tolist() == [8, 7]
    m = ref.mask_spans(np.ones((2, 3, 4)), np.array([-1, 2]), np.array([2, 0]),
                       np.array([3, 0]), np.array([5, 1]))
    assert m[0].tolist() == [[0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    assert m[1].tolist() == [[0, 1, 1, 1]] * 3
    mixed = ref.mix(np.array([[1.0], [3.0]]), np.array([1, 0]), np.array([0.25, 1.0]))
    assert mixed.tolist() == [[2.5], [3.0]]


def test_accumulated_loss_with_lam_one_is_cross_entropy_and_gradient_by_fd():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4, 5)) * 3
    a, b = np.array([0, 4, 2, 2]), np.array([1, 4, 0, 3])
    probs, stats = ref.softmax_cross_entropy_acc(z, a, b, np.ones(4), np.array([1.0, 0.0]))
    plain, _ = ref_seq.softmax_cross_entropy(z, a)
    assert stats[0] == pytest.approx(1 + 4 * plain)
    assert stats[1] == (probs.argmax(axis=1) == a).sum()
    lam = rng.random(4)
    p, _ = ref.softmax_cross_entropy_acc(z, a, b, lam, np.zeros(2))
    g = ref.softmax_cross_entropy_acc_backward(p, a, b, lam)
    assert _fd(lambda logits: ref.softmax_cross_entropy_acc(logits, a, b, lam, np.zeros(2))[1][0]
               / 4, {"logits": z}, {"logits": g}) < 1e-6


def test_reference_does_not_import_a_backend():
    src = inspect.getsource(ref)
    assert "backends" not in src and "NumpyBackend" not in src and "lowbias32(" not in src
