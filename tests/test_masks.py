"""Tests for pixelcnn_np.masks: the causal masks A and B, written out tap by tap."""

import numpy as np
import pytest

from pixelcnn_np.masks import causal_mask, kept_taps

# The masks spelled out by hand: 1 = the tap may be read.
EXPECTED = {
    (1, "A"): [[0]],
    (1, "B"): [[1]],
    (3, "A"): [[1, 1, 1],
               [1, 0, 0],
               [0, 0, 0]],
    (3, "B"): [[1, 1, 1],
               [1, 1, 0],
               [0, 0, 0]],
    (5, "A"): [[1, 1, 1, 1, 1],
               [1, 1, 1, 1, 1],
               [1, 1, 0, 0, 0],
               [0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0]],
    (5, "B"): [[1, 1, 1, 1, 1],
               [1, 1, 1, 1, 1],
               [1, 1, 1, 0, 0],
               [0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0]],
    (7, "A"): [[1, 1, 1, 1, 1, 1, 1],
               [1, 1, 1, 1, 1, 1, 1],
               [1, 1, 1, 1, 1, 1, 1],
               [1, 1, 1, 0, 0, 0, 0],
               [0, 0, 0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0, 0, 0]],
    (7, "B"): [[1, 1, 1, 1, 1, 1, 1],
               [1, 1, 1, 1, 1, 1, 1],
               [1, 1, 1, 1, 1, 1, 1],
               [1, 1, 1, 1, 0, 0, 0],
               [0, 0, 0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0, 0, 0]],
}


@pytest.mark.parametrize("kernel_size, mask_type", sorted(EXPECTED))
def test_causal_mask_exact_values(kernel_size, mask_type):
    m = causal_mask(kernel_size, mask_type)
    assert m.shape == (kernel_size, kernel_size)
    assert m.dtype == np.float64
    np.testing.assert_array_equal(m, np.array(EXPECTED[kernel_size, mask_type], dtype=float))


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7, 9])
def test_kept_tap_counts(kernel_size):
    """Mask A keeps the (K*K - 1) / 2 taps strictly before the centre; B adds the centre."""
    past = (kernel_size * kernel_size - 1) // 2
    assert causal_mask(kernel_size, "A").sum() == past
    assert causal_mask(kernel_size, "B").sum() == past + 1


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
def test_mask_b_is_mask_a_plus_the_centre(kernel_size):
    r = kernel_size // 2
    diff = causal_mask(kernel_size, "B") - causal_mask(kernel_size, "A")
    expected = np.zeros((kernel_size, kernel_size))
    expected[r, r] = 1.0
    np.testing.assert_array_equal(diff, expected)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_kept_taps_are_in_raster_order_and_in_the_past(kernel_size, mask_type):
    taps = kept_taps(causal_mask(kernel_size, mask_type))
    r = kernel_size // 2
    raster = taps[:, 0] * kernel_size + taps[:, 1]
    assert taps.dtype == np.int64
    assert np.all(np.diff(raster) > 0)                         # strictly increasing
    centre = r * kernel_size + r
    assert np.all(raster < centre) if mask_type == "A" else np.all(raster <= centre)


@pytest.mark.parametrize("kernel_size", [0, 2, 4, 6, -1, -3])
def test_even_zero_or_negative_kernel_size_is_a_value_error(kernel_size):
    with pytest.raises(ValueError, match=rf"kernel_size must be a positive odd integer, got {kernel_size}"):
        causal_mask(kernel_size, "A")


@pytest.mark.parametrize("kernel_size", [3.0, 2.5, "3", None, True])
def test_non_int_kernel_size_is_a_type_error(kernel_size):
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        causal_mask(kernel_size, "B")


def test_numpy_integer_kernel_size_is_accepted():
    np.testing.assert_array_equal(causal_mask(np.int64(3), "A"), causal_mask(3, "A"))


@pytest.mark.parametrize("mask_type", ["C", "a", "", None, 1])
def test_unknown_mask_type_is_a_value_error(mask_type):
    with pytest.raises(ValueError, match=r"mask_type must be 'A' or 'B'"):
        causal_mask(3, mask_type)


def test_kept_taps_needs_a_2d_mask():
    with pytest.raises(ValueError, match="mask must be 2-D"):
        kept_taps(np.ones(3))
