"""Tests for pixelcnn_np.conv: the engine against the reference, against SciPy, its
gradients against finite differences, the causal guarantee, and argument checks.

Shapes stay tiny (images up to 8x8, up to 3 channels) so the whole module runs in
seconds; Hypothesis varies batch, channels, image size, kernel size, dilation, mask
and dtype instead of one hand-picked case.
"""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, check_elementwise, dot_with
from pixelcnn_np import conv
from pixelcnn_np.adam import adam_init, adam_step
from pixelcnn_np.conv import (
    conv2d_backward, conv2d_backward_reference, conv2d_forward, conv2d_forward_reference,
    masked_conv2d_backward, masked_conv2d_forward,
)
from pixelcnn_np.masks import causal_mask, kept_taps

MASKS = ["A", "B", None]
KERNELS = [1, 3, 5, 7]


def mask_of(kernel_size, mask_type):
    """The (K, K) mask for "A"/"B", or None for a plain convolution."""
    return None if mask_type is None else causal_mask(kernel_size, mask_type)


@st.composite
def conv_cases(draw, dtypes=(np.float32, np.float64)):
    """A random convolution problem: x, w, b, mask, dilation (and dy for backward)."""
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    O = draw(st.integers(1, 3))
    H = draw(st.integers(1, 8))
    W = draw(st.integers(1, 8))
    K = draw(st.sampled_from(KERNELS))
    mask_type = draw(st.sampled_from(MASKS))
    # A 1x1 mask A keeps no tap at all; that corner has its own test below
    # (test_1x1_mask_a_keeps_no_tap_and_outputs_the_bias).
    if K == 1 and mask_type == "A":
        mask_type = "B"
    d = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C, K, K)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    dy = rng.standard_normal((N, O, H, W)).astype(dtype)
    return x, w, b, mask_of(K, mask_type), d, dy


def tolerance(dtype):
    """Allowed error relative to sum |terms|: float64 ~1e-10, float32 ~1e-4."""
    return 1e-10 if dtype == np.float64 else 1e-4


def assert_close(actual, expected, bound, tol):
    """|actual - expected| <= tol * bound elementwise, where bound = the sum of the
    absolute values of the terms that make up each entry (the scale of rounding error)."""
    assert actual.shape == expected.shape
    err = np.abs(actual.astype(np.float64) - expected)
    limit = tol * (bound + 1e-30)
    assert np.all(err <= limit), f"max error {err.max():.3g}, max allowed {limit.min():.3g}..{limit.max():.3g}"


# ----------------------------------------------------------------------------------
# Engine == reference (forward and backward), dtype preserved
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=50)
@given(conv_cases())
def test_forward_matches_reference(case):
    x, w, b, mask, d, _ = case
    y, _ = conv2d_forward(x, w, b, mask, d)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    expected = conv2d_forward_reference(x64, w64, b64, mask, d)
    bound = conv2d_forward_reference(np.abs(x64), np.abs(w64), np.abs(b64), mask, d)
    assert y.dtype == x.dtype
    assert_close(y, expected, bound, tolerance(x.dtype))


@settings(deadline=None, max_examples=50)
@given(conv_cases())
def test_backward_matches_reference(case):
    x, w, b, mask, d, dy = case
    _, cache = conv2d_forward(x, w, b, mask, d)
    dx, dw, db = conv2d_backward(dy, cache)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    ref = conv2d_backward_reference(dy64, x64, w64, mask, d)
    bounds = conv2d_backward_reference(np.abs(dy64), np.abs(x64), np.abs(w64), mask, d)
    for name, got, like, expected, bound in zip(("dx", "dw", "db"), (dx, dw, db), (x, w, b), ref, bounds):
        assert got.dtype == x.dtype, name
        assert got.shape == like.shape, name
        assert_close(got, expected, bound, tolerance(x.dtype))


@settings(deadline=None, max_examples=20)
@given(conv_cases(dtypes=(np.float64,)))
def test_backward_without_dx_gives_the_same_dw_db(case):
    x, w, b, mask, d, dy = case
    _, cache = conv2d_forward(x, w, b, mask, d)
    dx_full, dw_full, db_full = conv2d_backward(dy, cache)
    dx, dw, db = conv2d_backward(dy, cache, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dw, dw_full)
    np.testing.assert_array_equal(db, db_full)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_1x1_mask_a_keeps_no_tap_and_outputs_the_bias(dtype):
    """A 1x1 mask-A kernel keeps no tap: the output is the bias everywhere and dx = dw = 0.
    The reference handles this; the engine must agree."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 4, 4)).astype(dtype)
    w = rng.standard_normal((3, 2, 1, 1)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    dy = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    y, cache = masked_conv2d_forward(x, w, b, "A")
    np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None], y.shape))
    dx, dw, db = masked_conv2d_backward(dy, cache)
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-5)


# ----------------------------------------------------------------------------------
# The Numba gather kernel == its NumPy twin
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       K=st.sampled_from([3, 5, 7]), mask_type=st.sampled_from(["A", "B"]), d=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_gather_kernel_matches_reference(N, C, H, W, K, mask_type, d, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    taps = kept_taps(causal_mask(K, mask_type))
    off_y = np.ascontiguousarray((taps[:, 0] - K // 2) * d)
    off_x = np.ascontiguousarray((taps[:, 1] - K // 2) * d)
    cols = np.full((C * len(taps), N, H * W), np.nan, dtype=dtype)   # NaN: every cell must be written
    got = conv._gather_taps_kernel(x, off_y, off_x, cols)
    np.testing.assert_array_equal(got, conv.gather_taps_reference(x, off_y, off_x))


# ----------------------------------------------------------------------------------
# Forward == scipy.signal.correlate with the masked (and dilated) kernel
# ----------------------------------------------------------------------------------

def dilate(kernel, d):
    """Insert d - 1 zeros between taps: (K, K) -> (d (K - 1) + 1, d (K - 1) + 1)."""
    K = kernel.shape[0]
    out = np.zeros((d * (K - 1) + 1, d * (K - 1) + 1))
    out[::d, ::d] = kernel
    return out


def scipy_masked_conv(x, w, b, mask, d):
    """y[n, o] = b[o] + sum_c correlate(x[n, c], dilate(mask * w[o, c]), 'same')."""
    N, C, H, W = x.shape
    O = w.shape[0]
    y = np.zeros((N, O, H, W))
    for n in range(N):
        for o in range(O):
            y[n, o] = b[o]
            for c in range(C):
                y[n, o] += scipy.signal.correlate(x[n, c], dilate(mask * w[o, c], d),
                                                  mode="same", method="direct")
    return y


@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 2), C=st.integers(1, 3), O=st.integers(1, 3), H=st.integers(1, 8),
       W=st.integers(1, 8), K=st.sampled_from([3, 5, 7]), mask_type=st.sampled_from(["A", "B"]),
       d=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_forward_matches_scipy_correlate(N, C, O, H, W, K, mask_type, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((O, C, K, K))
    b = rng.standard_normal(O)
    y, _ = masked_conv2d_forward(x, w, b, mask_type, d)
    expected = scipy_masked_conv(x, w, b, causal_mask(K, mask_type), d)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------
# Masked taps: zero gradient, and they stay zero under Adam
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=20)
@given(K=st.sampled_from([3, 5, 7]), mask_type=st.sampled_from(["A", "B"]), d=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_dw_is_exactly_zero_at_masked_taps(K, mask_type, d, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 6, 6)).astype(dtype)
    w = rng.standard_normal((3, 2, K, K)).astype(dtype)     # nonzero even at masked taps
    b = rng.standard_normal(3).astype(dtype)
    _, cache = masked_conv2d_forward(x, w, b, mask_type, d)
    _, dw, _ = masked_conv2d_backward(rng.standard_normal((2, 3, 6, 6)).astype(dtype), cache)
    masked = causal_mask(K, mask_type) == 0
    assert np.all(dw[:, :, masked] == 0)
    assert np.any(dw[:, :, ~masked] != 0)                   # and the kept taps do learn


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_adam_keeps_masked_weights_zero(mask_type):
    """A few training-like steps: masked taps start at zero and are still exactly zero."""
    rng = np.random.default_rng(5)
    K = 5
    mask = causal_mask(K, mask_type)
    params = {"w": (rng.standard_normal((3, 2, K, K)) * mask).astype(np.float32),
              "b": np.zeros(3, dtype=np.float32)}
    state = adam_init(params)
    for _ in range(5):
        x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
        target = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
        y, cache = masked_conv2d_forward(x, params["w"], params["b"], mask_type, dilation=2)
        _, dw, db = masked_conv2d_backward(y - target, cache, need_dx=False)   # d/dy of 0.5 |y - t|^2
        params, state = adam_step(params, {"w": dw, "b": db}, state, lr=1e-2)
    assert np.all(params["w"][:, :, mask == 0] == 0)
    assert np.all(params["w"][:, :, mask == 1] != 0)


# ----------------------------------------------------------------------------------
# Gradient checks (float64, finite differences)
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("K, d", [(3, 1), (3, 2), (5, 1), (3, 3)])
def test_masked_conv_gradients(mask_type, K, d):
    rng = np.random.default_rng(10 * K + d)
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 2, K, K))
    b = rng.standard_normal(3)
    dy = rng.standard_normal((2, 3, 5, 5))
    _, cache = masked_conv2d_forward(x, w, b, mask_type, d)
    dx, dw, db = masked_conv2d_backward(dy, cache)

    f_x = dot_with(lambda x: masked_conv2d_forward(x, w, b, mask_type, d)[0], dy)
    f_w = dot_with(lambda w: masked_conv2d_forward(x, w, b, mask_type, d)[0], dy)
    f_b = dot_with(lambda b: masked_conv2d_forward(x, w, b, mask_type, d)[0], dy)
    for f, arg, grad in ((f_x, x, dx), (f_w, w, dw), (f_b, b, db)):
        check_directional(f, arg, grad, rng)
        check_elementwise(f, arg, grad)


# ----------------------------------------------------------------------------------
# The autoregressive guarantee, one layer
# ----------------------------------------------------------------------------------

def raster_positions(H, W):
    """(H, W) array holding each pixel's raster index i * W + j."""
    return np.arange(H * W).reshape(H, W)


def nonzero_weights(rng, shape):
    """Random weights with |w| in [0.5, 1.5]: no tap is accidentally (almost) zero."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


@st.composite
def causal_cases(draw):
    N, C, O = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    K = draw(st.sampled_from([3, 5, 7]))
    d = draw(st.integers(1, 3))
    mask_type = draw(st.sampled_from(["A", "B"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    p = draw(st.integers(0, H * W - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    return N, C, O, H, W, K, d, mask_type, dtype, p, seed


@settings(deadline=None, max_examples=50)
@given(causal_cases())
def test_masked_conv_output_ignores_the_future(case):
    """Mask A: outputs at raster positions <= p are bit-identical when every input at
    positions >= p changes. Mask B: the same when inputs at positions > p change."""
    N, C, O, H, W, K, d, mask_type, dtype, p, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C, K, K)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    pos = raster_positions(H, W)
    future = pos >= p if mask_type == "A" else pos > p
    x2 = x.copy()
    x2[:, :, future] = rng.standard_normal((N, C, int(future.sum()))).astype(dtype)

    y, _ = masked_conv2d_forward(x, w, b, mask_type, d)
    y2, _ = masked_conv2d_forward(x2, w, b, mask_type, d)
    past_and_p = pos <= p
    assert np.array_equal(y[:, :, past_and_p], y2[:, :, past_and_p])


def earlier_pixel_in_reach(i, j, d):
    """An earlier pixel that a 3x3 (or larger) mask-A/B kernel with dilation d reads from
    output pixel (i, j): d to the left (tap just left of the centre), else d above (tap
    just above the centre); None when neither lies inside the image."""
    if j >= d:
        return (i, j - d)
    if i >= d:
        return (i - d, j)
    return None


@settings(deadline=None, max_examples=50)
@given(causal_cases())
def test_masked_conv_output_depends_on_the_past(case):
    """The control for the test above: an earlier pixel q inside the kernel's reach does
    change the output at p, so that test cannot pass on a layer that ignores its input.

    q is the pixel d to the left of p (the tap just left of the centre) if there is one,
    else the pixel d above (the tap just above the centre). With |w| >= 0.5 and x[q]
    raised by 1, the output at p moves by w[o, 0, tap] (at least 0.5): no rounding can hide it.
    """
    N, C, O, H, W, K, d, mask_type, dtype, p, seed = case
    d = min(d, max(H, W) - 1)                      # so that some pixel has a past in reach
    reachable = [s for s in range(H * W) if earlier_pixel_in_reach(*divmod(s, W), d)]
    p = reachable[p % len(reachable)]
    i, j = divmod(p, W)
    q = earlier_pixel_in_reach(i, j, d)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = nonzero_weights(rng, (O, C, K, K)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    x2 = x.copy()
    x2[:, 0, q[0], q[1]] += 1

    y, _ = masked_conv2d_forward(x, w, b, mask_type, d)
    y2, _ = masked_conv2d_forward(x2, w, b, mask_type, d)
    assert np.all(y[:, :, i, j] != y2[:, :, i, j])
    if mask_type == "B":                     # B also reads the centre: x at p itself matters
        x3 = x.copy()
        x3[:, 0, i, j] += 1
        y3, _ = masked_conv2d_forward(x3, w, b, mask_type, d)
        assert np.all(y[:, :, i, j] != y3[:, :, i, j])


# ----------------------------------------------------------------------------------
# Argument validation: clear errors that name the argument
# ----------------------------------------------------------------------------------

def good_args(dtype=np.float64):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2, 3, 5, 5)).astype(dtype),
            rng.standard_normal((4, 3, 3, 3)).astype(dtype),
            rng.standard_normal(4).astype(dtype))


def test_good_args_are_accepted():
    x, w, b = good_args()
    assert conv2d_forward(x, w, b)[0].shape == (2, 4, 5, 5)
    assert masked_conv2d_forward(x, w, b, "A")[0].shape == (2, 4, 5, 5)


BAD_ARGS = {
    # name: (function of (x, w, b) -> args for conv2d_forward, exception, match)
    "x 3-D": (lambda x, w, b: (x[0], w, b), ValueError, r"x must be 4-D"),
    "w 3-D": (lambda x, w, b: (x, w[0], b), ValueError, r"w must be 4-D"),
    "b 2-D": (lambda x, w, b: (x, w, b[:, None]), ValueError, r"b must be 1-D"),
    "x int": (lambda x, w, b: (x.astype(np.int64), w, b), TypeError, r"x must be float32 or float64"),
    "w int": (lambda x, w, b: (x, w.astype(np.int32), b), TypeError, r"w must be float32 or float64"),
    "x list": (lambda x, w, b: (x.tolist(), w, b), TypeError, r"x must be a numpy array"),
    "channels": (lambda x, w, b: (x[:, :2], w, b), ValueError, r"x has 2 channels but w expects 3"),
    "even kernel": (lambda x, w, b: (x, np.zeros((4, 3, 4, 4)), b), ValueError, r"kernel sizes must be odd"),
    "bias shape": (lambda x, w, b: (x, w, b[:3]), ValueError, r"b must have shape \(4,\)"),
    "mixed dtypes": (lambda x, w, b: (x.astype(np.float32), w, b), TypeError,
                     r"arrays must share one dtype.*x=float32.*w=float64"),
    "no channels": (lambda x, w, b: (x[:, :0], w[:, :0], b), ValueError,
                    r"x must have at least one channel, got shape \(2, 0, 5, 5\)"),
    "no outputs": (lambda x, w, b: (x, w[:0], b[:0]), ValueError,
                   r"w must have at least one output channel, got shape \(0, 3, 3, 3\)"),
    "NaN in x": (lambda x, w, b: (np.where(x > 1, np.nan, x), w, b), ValueError, r"x contains \d+ non-finite"),
    "inf in w": (lambda x, w, b: (x, np.where(w > 1, np.inf, w), b), ValueError, r"w contains \d+ non-finite"),
    "-inf in b": (lambda x, w, b: (x, w, np.full_like(b, -np.inf)), ValueError, r"b contains 4 non-finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_conv2d_forward_rejects(case):
    make, error, match = BAD_ARGS[case]
    with pytest.raises(error, match=match):
        conv2d_forward(*make(*good_args()))


@pytest.mark.parametrize("case", sorted(set(BAD_ARGS) - {"even kernel", "w 3-D"}))
def test_masked_conv2d_forward_rejects(case):
    make, error, match = BAD_ARGS[case]
    with pytest.raises(error, match=match):
        masked_conv2d_forward(*make(*good_args()), "B")


@pytest.mark.parametrize("dilation", [0, -1, 1.5, "2", True, None])
def test_bad_dilation(dilation):
    x, w, b = good_args()
    with pytest.raises(ValueError, match=r"dilation must be a positive integer"):
        conv2d_forward(x, w, b, dilation=dilation)
    with pytest.raises(ValueError, match=r"dilation must be a positive integer"):
        masked_conv2d_forward(x, w, b, "A", dilation)


def test_masked_conv_rejects_even_or_non_square_kernels_and_bad_mask_types():
    x, w, b = good_args()
    with pytest.raises(ValueError, match=r"kernel_size must be a positive odd integer"):
        masked_conv2d_forward(x, np.zeros((4, 3, 4, 4)), b, "A")
    with pytest.raises(ValueError, match=r"square kernel"):
        masked_conv2d_forward(x, np.zeros((4, 3, 3, 5)), b, "A")
    with pytest.raises(ValueError, match=r"mask_type must be 'A' or 'B'"):
        masked_conv2d_forward(x, w, b, "C")


def test_mask_of_the_wrong_shape():
    x, w, b = good_args()
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 3\)"):
        conv2d_forward(x, w, b, mask=np.ones((5, 5)))


def test_backward_rejects_dy_of_the_wrong_shape():
    x, w, b = good_args()
    _, cache = masked_conv2d_forward(x, w, b, "B")
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 4, 5, 5\)"):
        masked_conv2d_backward(np.zeros((2, 4, 5, 4)), cache)
    with pytest.raises(ValueError, match=r"dy must be 4-D"):
        masked_conv2d_backward(np.zeros((4, 5, 5)), cache)


@pytest.mark.parametrize("C, O, K", [(0, 4, 1), (0, 4, 3), (3, 0, 1), (3, 0, 3)])
def test_zero_channels_are_named_for_every_kernel_size(C, O, K):
    """Also 1x1 kernels, which skip the gather (x with no channel used to pass there)."""
    x = np.zeros((2, C, 5, 5))
    with pytest.raises(ValueError, match="x must have at least one channel" if C == 0 else "w must have at least one output"):
        conv2d_forward(x, np.zeros((O, C, K, K)), np.zeros(O))


def test_an_empty_batch_is_still_fine():
    x, w, b = good_args()
    y, cache = masked_conv2d_forward(x[:0], w, b, "B")
    dx, dw, db = masked_conv2d_backward(y, cache)
    assert y.shape == dx.shape[:1] + (4, 5, 5) == (0, 4, 5, 5) and not dw.any() and not db.any()


@settings(max_examples=40, deadline=None)
@given(arg=st.sampled_from(["x", "w", "b", "dy"]), value=st.sampled_from([np.nan, np.inf, -np.inf]),
       index=st.integers(0, 10 ** 6), masked=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_one_non_finite_value_is_refused_naming_the_argument(arg, value, index, masked, dtype):
    """The README's promise: a NaN or inf input is a ValueError naming the argument,
    wherever it sits (even at a masked tap of w, which the engine never reads) --
    and check_finite=False turns the check off (the models' inner calls)."""
    x, w, b = good_args(dtype)
    arrays = {"x": x, "w": w, "b": b, "dy": np.ones((2, 4, 5, 5), dtype)}
    bad = arrays[arg].copy()
    bad.reshape(-1)[index % bad.size] = value
    arrays[arg] = bad
    forward = (lambda *a, **k: masked_conv2d_forward(*a, "B", **k)) if masked else conv2d_forward
    backward = masked_conv2d_backward if masked else conv2d_backward
    with pytest.raises(ValueError, match=rf"^{arg} contains 1 non-finite value\(s\) \(NaN or inf\)$"):
        _, cache = forward(arrays["x"], arrays["w"], arrays["b"])
        backward(arrays["dy"], cache)
    with np.errstate(invalid="ignore", over="ignore"):
        y, cache = forward(arrays["x"], arrays["w"], arrays["b"], check_finite=False)
        backward(arrays["dy"], cache, check_finite=False)
