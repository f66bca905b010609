"""The argument mapping of the CuPy backend's cuBLAS binding, checked on the CPU against a
column-major GEMM written the way BLAS defines it (the call itself runs on the GPU)."""
import itertools

import numpy as np
import pytest

from genrecnn.backends.cupy_backend.blas import gemm_args


def column_major_gemm(transa, transb, m, n, k, a_buf, lda, b_buf, ldb, ldc):
    """BLAS gemm: C[m, n] = op(A) op(B), every matrix column-major in a flat buffer."""
    def view(buf, rows, cols, ld):
        return np.lib.stride_tricks.as_strided(buf, (rows, cols), (buf.itemsize, ld * buf.itemsize))
    a = view(a_buf, k if transa else m, m if transa else k, lda)
    b = view(b_buf, n if transb else k, k if transb else n, ldb)
    c = (a.T if transa else a) @ (b.T if transb else b)
    out = np.zeros(ldc * n)
    view(out, m, n, ldc)[...] = c
    return out


@pytest.mark.parametrize("trans_a, trans_b", list(itertools.product([False, True], repeat=2)))
def test_row_major_product_through_column_major_gemm(trans_a, trans_b):
    rng = np.random.default_rng(0)
    m, k, n = 3, 5, 4
    a = rng.normal(size=(k, m) if trans_a else (m, k))
    b = rng.normal(size=(n, k) if trans_b else (k, n))
    transb, transa, n_, m_, k_, ldb, lda, ldc = gemm_args(a.shape, b.shape, trans_a, trans_b)
    # the call passes B first and A second: C^T = op(B)^T op(A)^T
    c_t = column_major_gemm(transb, transa, n_, m_, k_, b.ravel(), ldb, a.ravel(), lda, ldc)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    np.testing.assert_allclose(c_t.reshape(m, n), want)


def test_mismatched_inner_sizes_are_refused():
    with pytest.raises(ValueError, match="inner sizes"):
        gemm_args((3, 5), (4, 2), False, False)
