"""Tests for the Gated PixelCNN (pixelcnn_np.gated) and its parts: the two stack masks,
the one-row shift, the gate; a negative control for the whole network's gradient;
which earlier pixel the first layer's dilation makes the nearest; and the blind spot of
the plain PixelCNN, shown numerically and matched against an independent symbolic
computation of both receptive fields; in colour, which layers carry a sub-pixel mask,
negative controls for the two reasons the design is safe (the shift, the gate's paired
groups), and no blind spot in any colour. What every model must satisfy (gradients, the
autoregressive guarantee, cached sampling, the checkpoint, the PyTorch twin) is in
test_model_contract.py.

Every model here is tiny (hidden <= 4, images <= 9x9, <= 3 layers), except the default
configuration's shapes and init.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, check_elementwise, dot_with, model_loss, positive_params, random_params
from pixelcnn_np import gated, pixelcnn
from pixelcnn_np.activations import elu_backward, elu_forward, gate_backward, gate_forward
from pixelcnn_np.masks import causal_mask, horizontal_mask, vertical_mask
from pixelcnn_np.models import make_config
from pixelcnn_np.receptive_field import receptive_field, theoretical_region


def tiny_config(pixels="binary", **overrides):
    kwargs = dict(hidden=3, dilations=[1, 2, 1], kernel_size=3, height=6, width=6, pixels=pixels)
    kwargs.update(overrides)
    return make_config("gated", **kwargs)


def raster_positions(H, W):
    return np.arange(H * W).reshape(H, W)


# ----------------------------------------------------------------------------------
# The masks of the two stacks
# ----------------------------------------------------------------------------------

def test_vertical_mask_3_keeps_the_rows_up_to_the_centre():
    m = vertical_mask(3)
    np.testing.assert_array_equal(m, [[1, 1, 1],
                                      [1, 1, 1],
                                      [0, 0, 0]])
    assert m.sum() == 6


def test_horizontal_mask_3_keeps_the_centre_row_to_the_left():
    np.testing.assert_array_equal(horizontal_mask(3, "B"), [[0, 0, 0],
                                                            [1, 1, 0],
                                                            [0, 0, 0]])
    np.testing.assert_array_equal(horizontal_mask(3, "A"), [[0, 0, 0],
                                                            [1, 0, 0],
                                                            [0, 0, 0]])
    assert horizontal_mask(3, "B").sum() == 2 and horizontal_mask(3, "A").sum() == 1


@pytest.mark.parametrize("K", [1, 3, 5, 7, 9])
def test_stack_masks_for_any_kernel_size(K):
    r = K // 2
    rows, cols = np.indices((K, K))
    v = vertical_mask(K)
    np.testing.assert_array_equal(v, rows <= r)                       # full width, rows <= centre
    assert v.sum() == (r + 1) * K
    for mask_type, last in (("A", r - 1), ("B", r)):
        hm = horizontal_mask(K, mask_type)
        np.testing.assert_array_equal(hm, (rows == r) & (cols <= last))
        assert hm.sum() == last + 1
        # the horizontal stack's taps are the causal mask's taps in the centre row
        np.testing.assert_array_equal(hm, causal_mask(K, mask_type) * (rows == r))
    # together, the vertical taps strictly above the centre and the horizontal taps are
    # exactly the causal mask: the two stacks split one causal kernel, they do not widen it
    for mask_type in "AB":
        np.testing.assert_array_equal(v * (rows < r) + horizontal_mask(K, mask_type),
                                      causal_mask(K, mask_type))
    assert v.dtype == np.float64 and horizontal_mask(K, "A").dtype == np.float64


# ----------------------------------------------------------------------------------
# The one-row shift between the stacks
# ----------------------------------------------------------------------------------

def test_shift_down_values():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float64).reshape(2, 3, 4, 2) + 1
    y = gated.shift_down_forward(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not y[:, :, 0].any()                                       # nothing shifts into row 0
    np.testing.assert_array_equal(y[:, :, 1:], x[:, :, :-1])
    dx = gated.shift_down_backward(x)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert not dx[:, :, -1].any()                                     # the last row feeds nothing
    np.testing.assert_array_equal(dx[:, :, :-1], x[:, :, 1:])
    np.testing.assert_array_equal(gated.shift_down_forward(np.eye(3)[None, None])[0, 0],
                                  [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert gated.shift_down_forward(np.ones((1, 1, 4, 3), np.float32)).dtype == np.float32


@settings(deadline=None, max_examples=25)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
       seed=st.integers(0, 2**32 - 1))
def test_shift_down_backward_is_the_adjoint(shape, seed):
    """<shift(x), y> == <x, shift_back(y)>. With small-integer entries every product and
    sum is exact in float64, so the two sides must be equal, not just close; with random
    reals they agree to rounding."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-9, 10, size=shape).astype(np.float64)
    y = rng.integers(-9, 10, size=shape).astype(np.float64)
    assert np.sum(gated.shift_down_forward(x) * y) == np.sum(x * gated.shift_down_backward(y))
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    assert np.isclose(np.sum(gated.shift_down_forward(x) * y), np.sum(x * gated.shift_down_backward(y)),
                      rtol=1e-12, atol=1e-12)


def test_shift_down_backward_is_the_transposed_matrix():
    """Apply both maps to every basis image: the backward's matrix is the forward's transpose."""
    H, W = 4, 3
    basis = np.eye(H * W).reshape(H * W, 1, H, W)
    forward_matrix = gated.shift_down_forward(basis).reshape(H * W, H * W).T     # column k = S e_k
    backward_matrix = gated.shift_down_backward(basis).reshape(H * W, H * W).T
    np.testing.assert_array_equal(backward_matrix, forward_matrix.T)


# ----------------------------------------------------------------------------------
# The gate and ELU: values and gradients
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=20)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
       seed=st.integers(0, 2**32 - 1))
def test_gate_value_and_gradient(shape, seed):
    N, h, H, W = shape
    rng = np.random.default_rng(seed)
    a = 2 * rng.standard_normal((N, 2 * h, H, W))
    y, cache = gate_forward(a)
    assert y.shape == (N, h, H, W)
    direct = np.tanh(a[:, :h]) * (1 / (1 + np.exp(-a[:, h:])))
    np.testing.assert_allclose(y, direct, rtol=1e-13, atol=1e-15)

    dy = rng.standard_normal(y.shape)
    da = gate_backward(dy, cache)
    assert da.shape == a.shape
    f = dot_with(lambda a: gate_forward(a)[0], dy)
    check_directional(f, a, da, rng)
    check_elementwise(f, a, da)
    # negative control: the halves of the gradient swapped (tanh's and sigmoid's) must fail
    if not np.allclose(da[:, :h], da[:, h:]):
        with pytest.raises(AssertionError):
            check_elementwise(f, a, np.concatenate([da[:, h:], da[:, :h]], axis=1))


def test_gate_keeps_float32():
    a = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    y, cache = gate_forward(a)
    assert y.dtype == np.float32
    assert gate_backward(np.ones_like(y), cache).dtype == np.float32


@pytest.mark.parametrize("seed", [0, 1])
def test_elu_gradient(seed):
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=(2, 3, 4, 4)) * rng.uniform(0.01, 3.0, size=(2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    y, cache = elu_forward(x)
    np.testing.assert_allclose(y, np.where(x > 0, x, np.exp(x) - 1), rtol=1e-14, atol=1e-16)
    f = dot_with(lambda x: elu_forward(x)[0], dy)
    dx = elu_backward(dy, cache)
    check_directional(f, x, dx, rng)
    check_elementwise(f, x, dx)


# ----------------------------------------------------------------------------------
# A negative control for the whole network's gradient (float64)
# ----------------------------------------------------------------------------------

def test_gated_gradient_check_catches_a_wrong_shift_adjoint(monkeypatch):
    """Negative control at the model level: a backward that sends the link's gradient
    through the wrong shift (up instead of back down) must fail the check on the
    vertical stack's weights, while the correct one passes."""
    config = tiny_config()
    rng = np.random.default_rng(14)
    params = random_params(config, rng, scale=0.1)
    _, loss, grads = model_loss(config, rng.integers(0, 2, size=(2, 6, 6)))
    f = lambda q: loss({**params, "v0.w": q})                                  # noqa: E731
    check_directional(f, params["v0.w"], grads(params)["v0.w"], rng)
    monkeypatch.setattr(gated, "shift_down_backward", gated.shift_down_forward)
    with pytest.raises(AssertionError, match="directional gradient check failed"):
        check_directional(f, params["v0.w"], grads(params)["v0.w"], rng)


# ----------------------------------------------------------------------------------
# The default configuration
# ----------------------------------------------------------------------------------

def test_default_config_shapes_and_masked_init():
    config = make_config("gated")
    assert config["dilations"] == [1, 2, 1, 4, 1, 2, 1] and config["kernel_size"] == 3
    h, L = config["hidden"], len(config["dilations"])
    assert L == 7
    shapes = gated.param_shapes(config)
    expected = {}
    for l in range(L):
        cin = 1 if l == 0 else h
        expected.update({f"v{l}.w": (2 * h, cin, 3, 3), f"v{l}.b": (2 * h,),
                         f"h{l}.w": (2 * h, cin, 3, 3), f"h{l}.b": (2 * h,),
                         f"link{l}.w": (2 * h, 2 * h, 1, 1), f"link{l}.b": (2 * h,)})
        if l > 0:
            expected.update({f"res{l}.w": (h, h, 1, 1), f"res{l}.b": (h,)})
    expected.update({"out.w": (1, h, 1, 1), "out.b": (1,)})
    assert shapes == expected
    assert len(shapes) == 6 * L + 2 * (L - 1) + 2

    params = gated.init_params(config, np.random.default_rng(0))         # dtypes, zero biases: the contract's
    for l in range(L):
        v, hw = params[f"v{l}.w"], params[f"h{l}.w"]
        hmask = horizontal_mask(3, "A" if l == 0 else "B")
        np.testing.assert_array_equal(v != 0, np.broadcast_to(vertical_mask(3) != 0, v.shape))
        np.testing.assert_array_equal(hw != 0, np.broadcast_to(hmask != 0, hw.shape))
    # variance 1 / (kept fan-in): 6 kept taps x 32 channels for v1 (12288 samples, ~1.3% sd)
    kept = params["v1.w"][:, :, :2]
    assert kept.var() * (h * 6) == pytest.approx(1.0, rel=0.1)
    assert gated.param_shapes(make_config("gated", pixels="8bit"))["out.w"] == (256, h, 1, 1)


# ----------------------------------------------------------------------------------
# The nearest earlier pixel: the first layer's dilation decides
# ----------------------------------------------------------------------------------

@st.composite
def gated_cases(draw):
    config = make_config("gated", hidden=draw(st.integers(2, 4)),
                         dilations=draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)),
                         kernel_size=draw(st.sampled_from([3, 5])), height=draw(st.integers(4, 9)),
                         width=draw(st.integers(4, 9)), pixels=draw(st.sampled_from(["binary", "8bit"])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    p = draw(st.integers(1, config["height"] * config["width"] - 1))
    return config, dtype, p, draw(st.integers(0, 2**32 - 1))


@settings(deadline=None, max_examples=25)
@given(gated_cases())
def test_gated_logits_depend_on_an_earlier_pixel(case):
    """An earlier pixel q does change the logits at p (test_model_contract.py checks the
    pixel above p for every model; this is the gated model's own row):

    q is the pixel d_0 to the left of p (the first layer's mask-A tap with dilation d_0;
    with d_0 > 1 the immediate left neighbour is simply not on the dilated lattice), or,
    when that falls off the row, the pixel just above (vertical centre tap of layer 0 ->
    shift -> link -> horizontal stack at p). With positive weights and biases and
    non-negative inputs every local derivative on the path is positive (see
    gradcheck.positive_params), so raising x_q by 0.5 strictly raises every logit at p.
    If p is in row 0 with j < d_0, nothing before p is within reach: then the logits at p
    must not change whatever the image."""
    config, dtype, p, seed = case
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    params = positive_params(config, rng, dtype)
    x = rng.uniform(0, 1, size=(2, 1, H, W)).astype(dtype)
    i, j = divmod(p, W)
    d0 = config["dilations"][0]
    logits, _ = gated.forward(params, x, config)
    if j >= d0 or i > 0:
        q = (i, j - d0) if j >= d0 else (i - 1, j)
        x2 = x.copy()
        x2[:, 0, q[0], q[1]] += 0.5
        logits2, _ = gated.forward(params, x2, config)
        assert np.all(logits2[:, :, i, j] > logits[:, :, i, j])
    else:
        x2 = rng.uniform(0, 1, size=x.shape).astype(dtype)
        logits2, _ = gated.forward(params, x2, config)
        assert np.array_equal(logits2[:, :, i, j], logits[:, :, i, j])


# ----------------------------------------------------------------------------------
# Receptive fields: the blind spot, numerically and symbolically
# ----------------------------------------------------------------------------------
#
# A dependency map D has shape (H, W, H*W): D[i, j, k] is True when the feature at pixel
# (i, j) is a function of input pixel k (raster index). Channels do not matter: every
# convolution mixes all of them. A masked convolution ORs the maps of its kept taps,
# shifted to where each tap reads; a 1x1 conv or an elementwise map keeps D; a sum ORs.
# This is a computation on booleans from the layer diagrams alone, independent of the
# numeric code.

def _shifted(dep, dy, dx):
    """out[i, j] = dep[i + dy, j + dx], all False where that falls outside the image."""
    H, W = dep.shape[:2]
    out = np.zeros_like(dep)
    i0, i1 = max(0, -dy), min(H, H - dy)
    j0, j1 = max(0, -dx), min(W, W - dx)
    if i0 < i1 and j0 < j1:
        out[i0:i1, j0:j1] = dep[i0 + dy:i1 + dy, j0 + dx:j1 + dx]
    return out


def _conv_deps(dep, mask, dilation=1):
    """The dependency map after a masked convolution: tap (ky, kx) reads the input at
    offset (d (ky - r), d (kx - r)) from the output pixel."""
    r = mask.shape[0] // 2
    out = np.zeros_like(dep)
    for ky, kx in zip(*np.nonzero(mask)):
        out |= _shifted(dep, dilation * (ky - r), dilation * (kx - r))
    return out


def _identity_deps(H, W):
    return np.eye(H * W, dtype=bool).reshape(H, W, H * W)


def symbolic_pixelcnn_field(config):
    """(H, W, H, W): which inputs each output pixel of the plain PixelCNN can depend on."""
    H, W, K = config["height"], config["width"], config["kernel_size"]
    dep = _conv_deps(_identity_deps(H, W), causal_mask(K, "A"))
    for _ in range(config["n_layers"]):
        dep = _conv_deps(dep, causal_mask(K, "B"))
    return dep.reshape(H, W, H, W)                     # then ReLU and the 1x1 head: unchanged


def symbolic_gated_field(config):
    """(H, W, H, W): the same for the gated model, following its layer equations:
        v_pre = conv_v(v);  h_pre = conv_h(h) + link(shift_down(v_pre));
        v' = gate(v_pre);   h' = gate(h_pre) (layer 0) or h + res(gate(h_pre))."""
    H, W, K = config["height"], config["width"], config["kernel_size"]
    v = h = _identity_deps(H, W)
    for l, d in enumerate(config["dilations"]):
        v_pre = _conv_deps(v, vertical_mask(K), d)
        h_pre = _conv_deps(h, horizontal_mask(K, "A" if l == 0 else "B"), d) | _shifted(v_pre, -1, 0)
        v = v_pre
        h = h_pre if l == 0 else (h | h_pre)
    return h.reshape(H, W, H, W)                       # then ELU and the 1x1 head: unchanged


def gradient_support(module, params, config, x, p, channel=0):
    """The input pixels with a non-zero gradient of logit `channel` at raster position p,
    from our own backward pass: dlogits one-hot at p, backward(..., need_dx=True)["x"]."""
    logits, cache = module.forward(params, x, config)
    i, j = divmod(p, config["width"])
    dlogits = np.zeros_like(logits)
    dlogits[0, channel, i, j] = 1.0
    return module.backward(dlogits, cache, need_dx=True)["x"][0, 0] != 0     # (H, W) bool


def reachable_causal_positions(p, reach_up, reach_left, reach_right, shape):
    """(H, W) bool: the full causal cone of p = (i, j) within reach, with no blind spot:
    every pixel of rows i - reach_up .. i - 1 in columns j - reach_left .. j + reach_right,
    and the pixels j - reach_left .. j - 1 of row i."""
    i, j = p
    rows, cols = np.indices(shape)
    above = (rows >= i - reach_up) & (rows < i) & (cols >= j - reach_left) & (cols <= j + reach_right)
    left = (rows == i) & (cols >= j - reach_left) & (cols < j)
    return above | left


def upper_right_wedge(p, shape, r=1):
    """Rows above p, further right than r columns per row up: (a, b) with a < i and
    b - j > r (i - a). Stacked causal K x K kernels (r = K // 2) move at most r columns
    right per row they move up, and never right within a row, so they cannot reach it."""
    i, j = p
    rows, cols = np.indices(shape)
    return (rows < i) & (cols - j > r * (i - rows))


def _support_case(module, config, seed, p):
    rng = np.random.default_rng(seed)
    params = positive_params(config, rng)
    x = rng.uniform(0.1, 1.0, size=(1, 1, config["height"], config["width"]))
    return gradient_support(module, params, config, x, p)


def test_plain_pixelcnn_has_a_blind_spot():
    """Kernel 3, four masked layers (A + 3 B) on 9x9, p = (6, 4): each layer reaches one
    pixel, so the cone within reach is rows 2..5 over columns 0..8 and row 6 left of p.
    The plain model's gradient misses exactly the upper-right wedge of it."""
    config = make_config("pixelcnn", hidden=3, n_layers=3, kernel_size=3, height=9, width=9)
    shape, (i, j) = (9, 9), (6, 4)
    p = i * 9 + j
    support = _support_case(pixelcnn, config, 21, p)
    reach = config["n_layers"] + 1                                   # r = 1 per masked layer
    region = reachable_causal_positions((i, j), reach, reach, reach, shape)
    assert pixelcnn.reach(config) == (reach, reach, reach)           # the model's own statement of it
    np.testing.assert_array_equal(region, theoretical_region(config, i, j))
    wedge = upper_right_wedge((i, j), shape)

    assert not support[raster_positions(*shape) >= p].any()          # nothing at or after p
    assert np.all(support <= region)                                 # inside the reach ...
    assert support.sum() < region.sum()                              # ... but a strict subset
    assert (region & wedge & ~support).any()                         # missing the wedge
    assert not support[i - 1, j + 2] and region[i - 1, j + 2]         # e.g. up 1, right 2
    assert not (support & wedge).any()                               # the blind spot is the wedge
    np.testing.assert_array_equal(support, region & ~wedge)          # and only the wedge
    np.testing.assert_array_equal(support, symbolic_pixelcnn_field(config)[i, j])


def test_gated_pixelcnn_has_no_blind_spot():
    """Kernel 3, dilations [1, 2, 1] (S = 4) on 9x9, p = (6, 5): the horizontal stack
    reaches S pixels left in row 6; the vertical stack at row 5 covers rows 5 - S .. 5
    over columns j - S .. j + S and reaches p through the shift and the link. The gradient
    is non-zero at *exactly* those earlier pixels: the wedge included, nothing else."""
    config = tiny_config(height=9, width=9)
    shape, (i, j) = (9, 9), (6, 5)
    p = i * 9 + j
    support = _support_case(gated, config, 22, p)
    S = sum(config["dilations"])                                     # r = 1
    region = reachable_causal_positions((i, j), S + 1, S, S, shape)
    wedge = upper_right_wedge((i, j), shape)

    assert gated.reach(config) == (S + 1, S, S)                      # the model's own statement of it
    np.testing.assert_array_equal(region, theoretical_region(config, i, j))
    assert not support[raster_positions(*shape) >= p].any()
    np.testing.assert_array_equal(support, region)
    assert (support & wedge).sum() > 0 and np.all(support[region & wedge])
    assert not support[0].any() and not support[:, 0].any()          # beyond the reach: row 0, column 0
    np.testing.assert_array_equal(support, symbolic_gated_field(config)[i, j])


def test_default_gated_config_reaches_every_earlier_pixel_of_a_9x9_image():
    """The default dilations 1, 2, 1, 4, 1, 2, 1 reach 12 pixels left, right and up (+1):
    on a small image that is every earlier pixel, symbolically."""
    config = make_config("gated", height=9, width=9)
    field = symbolic_gated_field(config).reshape(81, 81)
    np.testing.assert_array_equal(field, np.tri(81, k=-1, dtype=bool))


@st.composite
def field_cases(draw):
    K = draw(st.sampled_from([3, 5]))
    common = dict(hidden=draw(st.integers(2, 4)), kernel_size=K, height=draw(st.integers(4, 9)),
                  width=draw(st.integers(4, 9)), pixels=draw(st.sampled_from(["binary", "8bit"])))
    if draw(st.booleans()):
        config = make_config("gated", dilations=draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)),
                             **common)
    else:
        config = make_config("pixelcnn", n_layers=draw(st.integers(0, 2)), **common)
    p = draw(st.integers(0, config["height"] * config["width"] - 1))
    return config, p, draw(st.integers(0, 2**32 - 1))


@settings(deadline=None, max_examples=25)
@given(field_cases())
def test_gradient_support_equals_the_symbolic_field(case):
    """For either model, any kernel, dilations and image: the pixels with a non-zero
    gradient of the logit at p are exactly the symbolic dependency set, and it lies
    strictly before p."""
    config, p, seed = case
    H, W = config["height"], config["width"]
    module = gated if config["model"] == "gated" else pixelcnn
    field = (symbolic_gated_field if module is gated else symbolic_pixelcnn_field)(config)
    rng = np.random.default_rng(seed)
    params = positive_params(config, rng)
    x = rng.uniform(0.1, 1.0, size=(1, 1, H, W))
    channel = int(rng.integers(0, 1 if config["pixels"] == "binary" else 256))
    support = gradient_support(module, params, config, x, p, channel)
    i, j = divmod(p, W)
    np.testing.assert_array_equal(support, field[i, j])
    assert not support[raster_positions(H, W) >= p].any()


def test_a_first_dilation_above_one_skips_the_left_neighbour():
    """A property of the design, not of the code: layer 0's mask-A horizontal tap reads
    d_0 pixels to the left, and later layers only move further left in steps of their
    dilations, so with dilations [2, 1] the pixel just left of p (usually the most
    informative one) never reaches p. The default starts with d_0 = 1."""
    config = tiny_config(height=9, width=9, dilations=[2, 1])
    i, j = 6, 5
    support = _support_case(gated, config, 23, i * 9 + j)
    assert not support[i, j - 1] and support[i, j - 2] and support[i, j - 3]
    np.testing.assert_array_equal(support, symbolic_gated_field(config)[i, j])
    assert make_config("gated")["dilations"][0] == 1


# ----------------------------------------------------------------------------------
# Colour: which layers need a sub-pixel mask, and no blind spot in any colour
# ----------------------------------------------------------------------------------
# What every colour model must satisfy (no sub-pixel after (p, k) reaches colour k at p,
# gradients, cached sampling) is in test_colour.py; here, what is particular to two stacks.

def colour_config(**overrides):
    kwargs = dict(hidden=3, dilations=[1, 2, 1], kernel_size=3, height=9, width=9, channels=3)
    kwargs.update(overrides)
    return make_config("gated", **kwargs)


def test_colour_masks_only_the_horizontal_stack_and_the_head():
    """The vertical stack and the link keep every channel pair (they reach the logits
    through the shift only); each horizontal conv's two gate halves carry the same
    groups, so gate channel c and its partner c + h have one mask."""
    config = colour_config(hidden=6)
    m = gated.masks(config)
    h = config["hidden"]
    for l in range(3):
        np.testing.assert_array_equal(m[f"v{l}.w"], np.broadcast_to(vertical_mask(3), m[f"v{l}.w"].shape))
        assert np.all(m[f"link{l}.w"] == 1)
        np.testing.assert_array_equal(m[f"h{l}.w"][:h], m[f"h{l}.w"][h:])
        centre = m[f"h{l}.w"][:h, :, 1, 1]                           # (h, C): output group reads input group
        assert centre.sum() < centre.size                            # some colour is kept apart
    assert m["h0.w"].shape == (2 * h, 3, 3, 3)                         # layer 0 reads the 3 colours
    np.testing.assert_array_equal(m["h0.w"][:h, :, 1, 1], [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0],
                                                            [1, 1, 0], [1, 1, 0]])    # mask A: R, R, G, G, B, B
    assert m["res1.w"][:, :, 0, 0].sum() < h * h and m["out.w"][:, :, 0, 0].sum() < 3 * h


def _colour_moves(params, config, x, x2, k, i, j):
    """Whether the logits of colour k at (i, j) differ between inputs x and x2."""
    a, _ = gated.forward(params, x, config)
    b, _ = gated.forward(params, x2, config)
    P = a.shape[1] // 3
    return not np.array_equal(a[:, k * P:(k + 1) * P, i, j], b[:, k * P:(k + 1) * P, i, j])


@pytest.mark.parametrize("wrong", ["no_shift", "gate_halves_grouped_as_2h"])
def test_colour_leaks_without_the_shift_or_with_ungrouped_gate_halves(wrong, monkeypatch):
    """Negative controls for the colour design. The same test passes on the real model;
    it fails (R at p moves when R_p changes) when
    * the shift is removed: the unmasked vertical stack then hands row i, p included,
      straight to the horizontal stack -- its missing colour mask is safe only because
      of the shift;
    * the horizontal convs' 2h outputs are grouped as thirds of 2h instead of two copies
      of the h groups: the gate then pairs an R channel with a G half that reads R_p.
    Positive parameters and a positive change make a leak certain, not likely."""
    config = colour_config(pixels="8bit")
    rng = np.random.default_rng(41)
    x = rng.uniform(0, 1, size=(2, 3, 9, 9))
    i, j = 4, 4
    x2 = x.copy()
    x2[:, 0, i, j] += 0.5                                            # R_p
    params = positive_params(config, rng)
    assert not _colour_moves(params, config, x, x2, 0, i, j)
    assert _colour_moves(params, config, x, x2, 1, i, j)               # the control: G_p does see R_p
    if wrong == "no_shift":
        monkeypatch.setattr(gated, "shift_down_forward", lambda v: v)
    else:
        from pixelcnn_np.colour import layer_mask
        real = gated.masks

        def ungrouped(config):
            m = dict(real(config))
            for l in range(len(config["dilations"])):
                O, C = m[f"h{l}.w"].shape[:2]
                t = "A" if l == 0 else "B"
                m[f"h{l}.w"] = layer_mask(config, horizontal_mask(3, t), t, O, C)    # channel_groups(2h)
            return m
        monkeypatch.setattr(gated, "masks", ungrouped)
        params = positive_params(config, rng)                         # drawn under the wrong masks
    assert _colour_moves(params, config, x, x2, 0, i, j)


def test_colour_gated_has_no_blind_spot_in_any_colour():
    """Kernel 3, dilations [1, 2, 1] on 9x9, p = (6, 5): the logits of colour k at p have
    a non-zero gradient at exactly the sub-pixels before (p, k) within reach, in every
    input colour: the grey model's full region (wedge included) in R, G and B, and R_p
    (for G), R_p and G_p (for B). The plain PixelCNN in colour keeps its blind spot in
    every colour."""
    config = colour_config()
    i, j = 6, 5
    rng = np.random.default_rng(42)
    x = rng.uniform(0.1, 1.0, size=(3, 9, 9))
    params = positive_params(config, rng)
    grey_region = theoretical_region(tiny_config(height=9, width=9), i, j)
    with pytest.raises(ValueError, match="colour model"):                  # a grey model has no colours
        theoretical_region(tiny_config(height=9, width=9), i, j, colour=0)
    wedge = upper_right_wedge((i, j), (9, 9))
    assert (grey_region & wedge).any()
    for k in range(3):
        support = receptive_field(params, config, i, j, x=x, colour=k) != 0               # (3, H, W)
        expected = theoretical_region(config, i, j, colour=k)
        np.testing.assert_array_equal(support, expected)
        for c in range(3):                                           # off p: the grey field, per colour
            off_p = np.ones((9, 9), bool)
            off_p[i, j] = False
            np.testing.assert_array_equal(support[c] & off_p, grey_region)
        assert support[:k, i, j].all() and not support[k:, i, j].any()

    plain = make_config("pixelcnn", hidden=3, n_layers=3, kernel_size=3, height=9, width=9, channels=3)
    grey_plain = make_config("pixelcnn", hidden=3, n_layers=3, kernel_size=3, height=9, width=9)
    support = receptive_field(positive_params(plain, rng), plain, i, j, x=x, colour=0) != 0
    region = theoretical_region(plain, i, j)
    for c in range(3):
        np.testing.assert_array_equal(support[c], region & ~wedge)
        np.testing.assert_array_equal(support[c], symbolic_pixelcnn_field(grey_plain)[i, j])
