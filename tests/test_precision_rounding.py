"""round_operand, the contract's rounding of tf32 / bf16 operands, pinned by its properties
(Hypothesis over every float32 bit pattern) and by hand-picked values."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from genrecnn.engine.ops import MANTISSA_BITS, round_operand
from genrecnn.errors import ShapeError

ROUNDED = ("tf32", "bf16")
bits32 = st.integers(0, 0xFFFFFFFF)
patterns = st.lists(bits32, min_size=1, max_size=64)


def _f32(bits) -> np.ndarray:
    return np.array(bits, dtype=np.uint32).view(np.float32)


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _drop(precision) -> int:
    return 23 - MANTISSA_BITS[precision]


def _finite_result(a, r):
    return np.isfinite(a) & np.isfinite(r)


@pytest.mark.parametrize("precision", ROUNDED)
@settings(max_examples=200, deadline=None)
@given(patterns)
def test_the_low_bits_are_cleared_except_in_nan(precision, bits):
    a = _f32(bits)
    r = round_operand(a, precision)
    assert r.dtype == np.float32 and r.shape == a.shape
    keep = ~np.isnan(a)
    low = np.uint32((1 << _drop(precision)) - 1)
    assert not (_bits(r)[keep] & low).any()


@pytest.mark.parametrize("precision", ROUNDED)
@settings(max_examples=200, deadline=None)
@given(patterns)
def test_nearest_within_half_an_ulp_and_ties_to_even(precision, bits):
    a = _f32(bits)
    r = round_operand(a, precision)
    ok = _finite_result(a, r)
    a64, r64 = a[ok].astype(np.float64), r[ok].astype(np.float64)
    # an ulp of the precision at |a|: 2^(exponent - mantissa bits); subnormals share the
    # smallest exponent
    exp = np.maximum(np.floor(np.log2(np.where(a64 == 0, 1.0, np.abs(a64)))), -126)
    half_ulp = 2.0 ** (exp - MANTISSA_BITS[precision]) / 2
    err = np.abs(r64 - a64)
    assert (err <= half_ulp).all()
    tie = err == half_ulp
    kept = (_bits(r[ok]) >> np.uint32(_drop(precision))) & np.uint32(1)
    assert not kept[tie & (a64 != 0)].any(), "a tie must round to an even last bit"


@pytest.mark.parametrize("precision", ROUNDED)
@settings(max_examples=200, deadline=None)
@given(patterns)
def test_idempotent_and_sign_symmetric(precision, bits):
    a = _f32(bits)
    r = round_operand(a, precision)
    np.testing.assert_array_equal(_bits(round_operand(r, precision)), _bits(r))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(round_operand(-a, precision), -r)


@pytest.mark.parametrize("precision", ROUNDED)
@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False), st.floats(width=32, allow_nan=False))
def test_monotone(precision, x, y):
    lo, hi = sorted((x, y))
    r = round_operand(np.array([lo, hi], dtype=np.float32), precision)
    assert r[0] <= r[1]


@pytest.mark.parametrize("precision", ROUNDED)
def test_nan_stays_nan_inf_stays_and_overflow_goes_to_inf(precision):
    nan_bits = [0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0xFF800001, 0xFFC00000]
    r = round_operand(_f32(nan_bits), precision)
    assert np.isnan(r).all()
    np.testing.assert_array_equal(_bits(r), nan_bits)           # the payload kept
    big = np.finfo(np.float32).max
    r = round_operand(np.array([np.inf, -np.inf, big, -big, 0.0, -0.0], dtype=np.float32),
                      precision)
    np.testing.assert_array_equal(r[:4], [np.inf, -np.inf, np.inf, -np.inf])
    np.testing.assert_array_equal(_bits(r[4:]), [0, 0x80000000])


def test_hand_picked_values():
    one = 1.0
    # tf32 keeps 10 mantissa bits: 1 + 2^-11 is a tie (down to 1, even), 1 + 3 * 2^-11
    # a tie up to 1 + 2^-9 (even), 1 + 2^-11 + 2^-23 just over a tie (up)
    t = round_operand(np.array([one + 2 ** -11, one + 3 * 2 ** -11, one + 2 ** -11 + 2 ** -23,
                                one + 2 ** -10], dtype=np.float32), "tf32")
    np.testing.assert_array_equal(t, [one, one + 2 ** -9, one + 2 ** -10, one + 2 ** -10])
    b = round_operand(np.array([one + 2 ** -8, one + 3 * 2 ** -8, 3.14159265], dtype=np.float32),
                      "bf16")
    np.testing.assert_array_equal(b, [one, one + 2 ** -6, 3.140625])


def test_fp32_is_the_array_itself_and_other_dtypes_are_refused():
    a = np.arange(3, dtype=np.float64)
    assert round_operand(a, "fp32") is a
    with pytest.raises(ShapeError, match="rounds float32 operands"):
        round_operand(a, "bf16")
    with pytest.raises(ShapeError, match="unknown precision 'fp16'"):
        round_operand(a.astype(np.float32), "fp16")
