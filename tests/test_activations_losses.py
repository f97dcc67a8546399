"""Tests for pixelcnn_np.activations and pixelcnn_np.losses: gradients against finite
differences (float64), loss values against the textbook formulas, stability for huge
logits, and argument checks."""

import contextlib
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, check_elementwise, dot_with
from pixelcnn_np.activations import (
    elu_backward, elu_forward, relu_backward, relu_forward, sigmoid, sigmoid_backward,
    sigmoid_forward, softmax, softmax_backward, softmax_forward, tanh_backward, tanh_forward,
)
from pixelcnn_np.losses import bce_with_logits, per_pixel_nll, softmax_cross_entropy, softmax_cross_entropy_reference

shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
seeds = st.integers(0, 2**32 - 1)


def away_from_zero(rng, shape, margin=0.05):
    """Random values with |x| >= margin, so no kink lies within a finite-difference step."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 3.0, size=shape)


@contextlib.contextmanager
def no_float_trouble():
    """A context in which overflow, 0/0, x/0 and any warning raise.

    Underflow is allowed on purpose: exp(-|z|) underflowing to 0 for |z| = 1e4 is the
    intended, exact-enough behaviour of the stable formulas."""
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ----------------------------------------------------------------------------------
# Activations: gradient checks
# ----------------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "elu": (elu_forward, elu_backward),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(deadline=None, max_examples=20)
@given(shape=shapes, seed=seeds)
def test_activation_gradients(name, shape, seed):
    forward, backward = ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    dy = rng.standard_normal(shape)
    _, cache = forward(x)
    dx = backward(dy, cache)
    f = dot_with(lambda x: forward(x)[0], dy)
    check_directional(f, x, dx, rng)
    check_elementwise(f, x, dx)


def test_activation_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(relu_forward(x)[0], [0, 0, 0, 0.5, 2.0])
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(tanh_forward(x)[0], np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(elu_forward(x)[0], [math.expm1(-2), math.expm1(-0.5), 0, 0.5, 2.0],
                               rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_and_keeps_dtype(dtype):
    z = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=dtype)
    with no_float_trouble():
        s = sigmoid(z)
    assert s.dtype == dtype
    assert s[0] == 0.0 and s[2] == 0.5 and s[-1] == 1.0
    assert np.all(np.isfinite(s))


@pytest.mark.parametrize("axis", [1, -1, 0])
@settings(deadline=None, max_examples=20)
@given(shape=shapes, seed=seeds)
def test_softmax_gradient(axis, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    dy = rng.standard_normal(shape)
    y, cache = softmax_forward(x, axis)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-14)
    dx = softmax_backward(dy, cache)
    f = dot_with(lambda x: softmax_forward(x, axis)[0], dy)
    check_directional(f, x, dx, rng)
    check_elementwise(f, x, dx)


def test_softmax_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4]])
    with no_float_trouble():
        y = softmax(z, axis=1)
    np.testing.assert_array_equal(y, [[1.0, 0.0, 0.0]])


# ----------------------------------------------------------------------------------
# Binary cross-entropy from logits
# ----------------------------------------------------------------------------------

def bce_direct(z, x):
    """mean of -x log sigmoid(z) - (1 - x) log(1 - sigmoid(z)): fine for moderate z."""
    s = 1 / (1 + np.exp(-z))
    return float(np.mean(-x * np.log(s) - (1 - x) * np.log(1 - s)))


@settings(deadline=None, max_examples=30)
@given(shape=shapes, seed=seeds)
def test_bce_value_gradient_and_dtype(shape, seed):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-8, 8, size=(shape[0], 1) + shape[2:])
    x = rng.integers(0, 2, size=z.shape)
    loss, dz = bce_with_logits(z, x)
    assert isinstance(loss, float)
    assert dz.shape == z.shape and dz.dtype == np.float64
    assert loss == pytest.approx(bce_direct(z, x), rel=1e-12)
    f = lambda z: bce_with_logits(z, x)[0]
    check_directional(f, z, dz, rng)
    check_elementwise(f, z, dz)
    # per-pixel NLL agrees with the mean
    assert per_pixel_nll(z, x[:, 0], "binary").mean() == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_is_exact_for_huge_logits(dtype):
    """softplus(z) - x z for z = +-1e4: a wrong guess costs exactly |z| nats, a right one 0."""
    z = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype).reshape(1, 1, 2, 2)
    x = np.array([0, 1, 1, 0]).reshape(1, 1, 2, 2)
    with no_float_trouble():
        loss, dz = bce_with_logits(z, x)
    assert loss == (1e4 + 1e4 + 0 + 0) / 4
    np.testing.assert_array_equal(dz.ravel(), np.array([1, -1, 0, 0]) / 4)
    assert dz.dtype == dtype


@pytest.mark.parametrize("z, x, expected", [(1e4, 0, 1e4), (-1e4, 1, 1e4), (1e4, 1, 0.0),
                                            (-1e4, 0, 0.0), (0.0, 0, math.log(2))])
def test_bce_single_pixel_limits(z, x, expected):
    with no_float_trouble():
        loss, _ = bce_with_logits(np.full((1, 1, 1, 1), z), np.full((1, 1, 1, 1), x))
    assert loss == pytest.approx(expected, rel=1e-15, abs=0)


def test_bce_rejects_bad_arguments():
    z = np.zeros((2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"targets must have the shape of logits"):
        bce_with_logits(z, np.zeros((2, 3, 3)))
    with pytest.raises(TypeError, match=r"logits must be float32 or float64"):
        bce_with_logits(z.astype(int), np.zeros_like(z))


@pytest.mark.parametrize("bad", [2, -1])
def test_bce_rejects_targets_outside_0_1(bad):
    """Targets are pixel values 0/1 (docstring); a target of 2 or -1 would give a
    meaningless, possibly negative "NLL" instead of an error."""
    z = np.zeros((1, 1, 2, 2))
    x = np.array([0, 1, 1, bad]).reshape(z.shape)
    with pytest.raises(ValueError, match="targets"):
        bce_with_logits(z, x)


# ----------------------------------------------------------------------------------
# Softmax cross-entropy (256-way in the model; any K here)
# ----------------------------------------------------------------------------------

def softmax_ce_direct(z, t):
    """mean over (n, i, j) of -log(exp(z_t) / sum_k exp(z_k)): fine for moderate z."""
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    picked = np.take_along_axis(p, t[:, None], axis=1)[:, 0]
    return float(np.mean(-np.log(picked)))


@st.composite
def ce_cases(draw):
    N, K, H, W = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(seeds))
    z = rng.uniform(-6, 6, size=(N, K, H, W))
    t = rng.integers(0, K, size=(N, H, W))
    return rng, z, t


@settings(deadline=None, max_examples=30)
@given(ce_cases())
def test_softmax_ce_value_and_gradient(case):
    rng, z, t = case
    loss, dz = softmax_cross_entropy(z, t)
    assert isinstance(loss, float)
    assert dz.shape == z.shape
    assert loss == pytest.approx(softmax_ce_direct(z, t), rel=1e-12)
    np.testing.assert_allclose(dz.sum(axis=1), 0, atol=1e-15)     # softmax - onehot sums to 0
    f = lambda z: softmax_cross_entropy(z, t)[0]
    check_directional(f, z, dz, rng)
    check_elementwise(f, z, dz)
    assert per_pixel_nll(z, t, "8bit").mean() == pytest.approx(loss, rel=1e-12)


@settings(deadline=None, max_examples=20)
@given(ce_cases(), st.sampled_from([-1e3, -7.5, 3.0, 1e3]))
def test_softmax_ce_is_shift_invariant(case, const):
    """Adding one constant to every logit of a pixel changes neither the loss nor its
    gradient (up to the rounding of z + const)."""
    _, z, t = case
    loss, dz = softmax_cross_entropy(z, t)
    loss_shifted, dz_shifted = softmax_cross_entropy(z + const, t)
    assert loss_shifted == pytest.approx(loss, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(dz_shifted, dz, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_ce_is_exact_for_huge_logits(dtype):
    z = np.array([1e4, -1e4, 0.0], dtype=dtype).reshape(1, 3, 1, 1)
    for target, expected in [(0, 0.0), (1, 2e4), (2, 1e4)]:
        with no_float_trouble():
            loss, dz = softmax_cross_entropy(z, np.full((1, 1, 1), target))
        assert loss == expected
        assert np.all(np.isfinite(dz)) and dz.dtype == dtype
        onehot = np.eye(3)[target]
        np.testing.assert_array_equal(dz.ravel(), np.array([1.0, 0, 0]) - onehot)


def test_softmax_ce_rejects_bad_arguments():
    z = np.zeros((2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 3, 3\)"):
        softmax_cross_entropy(z, np.zeros((2, 1, 3, 3), dtype=int))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\), got range \[0, 4\]"):
        softmax_cross_entropy(z, np.r_[4, np.zeros(17, dtype=int)].reshape(2, 3, 3))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\), got range \[-1, 0\]"):
        softmax_cross_entropy(z, np.r_[-1, np.zeros(17, dtype=int)].reshape(2, 3, 3))
    with pytest.raises(TypeError, match=r"targets must be integers"):
        softmax_cross_entropy(z, np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"logits must be 4-D"):
        softmax_cross_entropy(z[0], np.zeros((2, 3, 3), dtype=int))
    with pytest.raises(TypeError, match=r"logits must be float32 or float64"):
        softmax_cross_entropy(z.astype(np.int32), np.zeros((2, 3, 3), dtype=int))


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 3), k=st.integers(1, 260), h=st.integers(1, 5), w=st.integers(1, 5),
       scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))
def test_softmax_kernel_equals_its_numpy_reference(n, k, h, w, scale, dtype, seed):
    """The Numba engine of softmax_cross_entropy against the NumPy reference, from tiny to
    huge logits: the loss to 1e-12 (float64) / 1e-5 (float32) relative, the gradient to
    a few ulps of 1 / count."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, k, h, w)) * scale).astype(dtype)
    t = rng.integers(0, k, size=(n, h, w))
    loss, dz = softmax_cross_entropy(z, t)
    ref_loss, ref_dz = softmax_cross_entropy_reference(z, t)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert dz.dtype == dtype and dz.shape == z.shape
    assert abs(loss - ref_loss) <= tol * max(1.0, abs(ref_loss))
    assert np.allclose(dz, ref_dz, rtol=0, atol=50 * np.finfo(dtype).eps / (n * h * w))
