"""Negative controls: the gradient checker must *fail* on a wrong gradient.

A checker that passes everything would make every gradient test in this suite
meaningless. Each test below hands `gradcheck` a correct gradient (it must pass) and
a deliberately broken one (it must raise AssertionError): a ReLU gradient scaled by a
small factor, a convolution weight gradient with one tap zeroed, and an input
gradient with its spatial axes transposed.
"""

import numpy as np
import pytest

from gradcheck import check_directional, check_elementwise, dot_with
from pixelcnn_np.activations import relu_backward, relu_forward
from pixelcnn_np.conv import masked_conv2d_backward, masked_conv2d_forward


def away_from_zero(rng, shape, margin=0.1):
    """Random values with |x| >= margin: no ReLU kink within a finite-difference step."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 2.0, size=shape)


# ----------------------------------------------------------------------------------
# ReLU: the correct gradient passes, a scaled one fails
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [2.0, 1.01, 1.0001])
def test_relu_gradient_off_by_a_factor_is_caught(factor):
    rng = np.random.default_rng(0)
    x = away_from_zero(rng, (2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    f = dot_with(lambda x: relu_forward(x)[0], dy)
    _, cache = relu_forward(x)
    right = relu_backward(dy, cache)

    check_directional(f, x, right, rng)
    check_elementwise(f, x, right)

    wrong = factor * right
    with pytest.raises(AssertionError, match="directional gradient check failed"):
        check_directional(f, x, wrong, rng)
    with pytest.raises(AssertionError, match="elementwise gradient check failed"):
        check_elementwise(f, x, wrong)


def test_relu_gradient_with_the_wrong_sign_pattern_is_caught():
    """Passing dy through where x < 0 (the classic bug: 1[x >= 0] vs 1[x > 0] is harmless,
    but using 1[x < 0] is not)."""
    rng = np.random.default_rng(1)
    x = away_from_zero(rng, (1, 2, 3, 3))
    dy = rng.standard_normal(x.shape)
    f = dot_with(lambda x: relu_forward(x)[0], dy)
    with pytest.raises(AssertionError):
        check_elementwise(f, x, dy * (x < 0))


# ----------------------------------------------------------------------------------
# Masked convolution: one zeroed tap in dw, a transposed dx
# ----------------------------------------------------------------------------------

def conv_problem(seed, mask_type="B", dilation=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 5, 5))                     # square image: dx.T has dx's shape
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    y, cache = masked_conv2d_forward(x, w, b, mask_type, dilation)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = masked_conv2d_backward(dy, cache)
    return rng, x, w, b, dy, dx, dw, db


def test_conv_dw_with_one_tap_zeroed_is_caught():
    rng, x, w, b, dy, dx, dw, db = conv_problem(seed=2)
    f_w = dot_with(lambda w: masked_conv2d_forward(x, w, b, "B")[0], dy)

    check_directional(f_w, w, dw, rng)
    check_elementwise(f_w, w, dw)

    wrong = dw.copy()
    wrong[1, 0, 0, 2] = 0.0                                   # a kept tap (row above the centre)
    assert dw[1, 0, 0, 2] != 0.0
    with pytest.raises(AssertionError, match="directional"):
        check_directional(f_w, w, wrong, rng)
    # The elementwise check also says which element is wrong, and only that one.
    with pytest.raises(AssertionError, match=r"at 1 of 54 elements; worst at index \(1, 0, 0, 2\)"):
        check_elementwise(f_w, w, wrong)


def test_conv_dx_transposed_is_caught():
    rng, x, w, b, dy, dx, dw, db = conv_problem(seed=3, mask_type="A", dilation=2)
    f_x = dot_with(lambda x: masked_conv2d_forward(x, w, b, "A", 2)[0], dy)

    check_directional(f_x, x, dx, rng)
    check_elementwise(f_x, x, dx)

    transposed = dx.transpose(0, 1, 3, 2)                     # (N, C, W, H): same shape, wrong map
    with pytest.raises(AssertionError):
        check_directional(f_x, x, transposed, rng)
    with pytest.raises(AssertionError):
        check_elementwise(f_x, x, transposed)


def test_conv_db_off_by_one_image_is_caught():
    """db summed over one image instead of the whole batch."""
    rng, x, w, b, dy, dx, dw, db = conv_problem(seed=4)
    f_b = dot_with(lambda b: masked_conv2d_forward(x, w, b, "B")[0], dy)
    check_elementwise(f_b, b, db)
    with pytest.raises(AssertionError):
        check_elementwise(f_b, b, dy[0].sum(axis=(1, 2)))


def test_checker_refuses_float32():
    """A float32 check would be dominated by rounding error: refuse it outright."""
    x = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        check_elementwise(lambda x: float(x.sum()), x, np.ones(3, dtype=np.float32))
