"""Tests for the dilated PixelCNN (pixelcnn_np.dilated): shapes and init, gradients of
the whole network (float64 finite differences, with a negative control), the
autoregressive guarantee, the receptive field stated in the module docstring (checked
against our input gradient and against boolean dependency maps), cached sampling
against the naive loop, and a cross-check against PyTorch.

Every model is tiny (hidden <= 3, <= 3 dilated layers, images <= 9x9), except the
receptive field of the default dilations (hidden 2, one 22x43 image) and one forward
pass of the default configuration on a single image.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, check_elementwise
from pixelcnn_np.masks import causal_mask
from pixelcnn_np.models import MODELS, get_model, loss_and_grad, make_config, model_input
from pixelcnn_np.sampling import sample_cached, sample_naive

dilated = MODELS["dilated"]          # pixelcnn.py's functions under the dilated defaults


def tiny_config(pixels="binary", **overrides):
    kwargs = dict(hidden=3, dilations=[1, 2], kernel_size=3, first_kernel_size=5, height=6, width=6, pixels=pixels)
    kwargs.update(overrides)
    return make_config("dilated", **kwargs)


def random_params(config, rng, dtype=np.float64):
    """The model's init plus noise on the kept taps, and non-zero biases, so no gradient
    is trivially zero and samples are far from all-zero. Masked taps stay zero."""
    params = dilated.init_params(config, rng, dtype)
    for name, p in params.items():
        noise = 0.3 * rng.standard_normal(p.shape)
        params[name] = (p + noise * (p != 0) if name.endswith(".w") else p + noise).astype(dtype)
    return params


def positive_params(config, rng, dtype=np.float64):
    """Every kept tap and every bias positive, every masked tap zero. With non-negative
    inputs every ReLU is then the identity and every local derivative is > 0 on every
    connection, so d logit(p) / d x(q) is non-zero exactly when a path joins q to p."""
    params = {}
    for name, w in dilated.init_params(config, rng, dtype).items():
        if name.endswith(".b"):
            params[name] = rng.uniform(0.1, 0.5, size=w.shape).astype(dtype)
        else:
            kept = w != 0
            params[name] = (kept * rng.uniform(0.5, 1.5, size=w.shape) / kept[0].sum()).astype(dtype)
    return params


def raster_positions(H, W):
    return np.arange(H * W).reshape(H, W)


# ----------------------------------------------------------------------------------
# The default configuration
# ----------------------------------------------------------------------------------

def test_default_config_shapes_and_masked_init():
    config = make_config("dilated")
    assert config["dilations"] == [1, 2, 4, 8, 1, 2]
    assert (config["hidden"], config["kernel_size"], config["first_kernel_size"]) == (64, 3, 7)
    h = 64
    expected = {"conv0.w": (h, 1, 7, 7), "conv0.b": (h,)}
    for l in range(1, 7):
        expected.update({f"conv{l}.w": (h, h, 3, 3), f"conv{l}.b": (h,)})
    expected.update({"out.w": (1, h, 1, 1), "out.b": (1,)})
    assert dilated.param_shapes(config) == expected
    assert dilated.param_shapes(make_config("dilated", pixels="8bit"))["out.w"] == (256, h, 1, 1)

    params = dilated.init_params(config, np.random.default_rng(0))
    assert set(params) == set(expected)
    for name, p in params.items():
        assert p.shape == expected[name] and p.dtype == np.float32, name
        if name.endswith(".b"):
            assert not p.any(), name
    for name, K, mask_type in [("conv0.w", 7, "A")] + [(f"conv{l}.w", 3, "B") for l in range(1, 7)]:
        np.testing.assert_array_equal(params[name] != 0,
                                      np.broadcast_to(causal_mask(K, mask_type) != 0, params[name].shape))
    # He over the kept fan-in (dilation does not change it): 5 taps x 64 channels
    kept = params["conv4.w"][:, :, causal_mask(3, "B") != 0]
    assert kept.var() * (h * 5) == pytest.approx(2.0, rel=0.1)

    x = np.random.default_rng(1).integers(0, 2, size=(1, 1, 28, 28)).astype(np.float32)
    logits, _ = dilated.forward(params, x, config)
    assert logits.shape == (1, 1, 28, 28) and logits.dtype == np.float32
    assert get_model(config) is dilated


@pytest.mark.parametrize("key, value", [("first_kernel_size", 6), ("first_kernel_size", -1),
                                        ("dilations", []), ("dilations", [1, 0])])
def test_bad_configs_are_rejected(key, value):
    with pytest.raises(ValueError, match=key):
        make_config("dilated", **{key: value})


# ----------------------------------------------------------------------------------
# Gradients of the whole network (float64, finite differences)
# ----------------------------------------------------------------------------------

def _gradient_case(pixels, seed):
    config = tiny_config(pixels)
    rng = np.random.default_rng(seed)
    params = random_params(config, rng)
    images = rng.integers(0, 2 if pixels == "binary" else 256, size=(2, config["height"], config["width"]))
    x = model_input(images, config, np.float64)                      # (2, 1, 6, 6)

    def loss_of(params, x=x):
        logits, _ = dilated.forward(params, x, config)
        return loss_and_grad(logits, images, config)[0]

    def grads_of(params):
        logits, cache = dilated.forward(params, x, config)
        _, dlogits = loss_and_grad(logits, images, config)
        return dilated.backward(dlogits, cache, need_dx=True)

    return config, rng, params, x, loss_of, grads_of


@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_dilated_model_gradients(pixels):
    config, rng, params, x, loss_of, grads_of = _gradient_case(pixels, 41 if pixels == "binary" else 42)
    grads = grads_of(params)
    assert set(grads) == set(params) | {"x"}
    for name, p in params.items():
        assert grads[name].shape == p.shape and grads[name].dtype == np.float64, name
        assert np.abs(grads[name]).max() > 0, name
        check_directional(lambda q: loss_of({**params, name: q}), p, grads[name], rng)
    for name in ("conv0.w", "conv2.w", "conv1.b"):
        check_elementwise(lambda q: loss_of({**params, name: q}), params[name], grads[name])
    check_directional(lambda x: loss_of(params, x), x, grads["x"], rng)
    check_elementwise(lambda x: loss_of(params, x), x, grads["x"])
    assert not grads["conv0.w"][:, :, causal_mask(5, "A") == 0].any()     # masked taps: zero gradient
    for l in (1, 2):
        assert not grads[f"conv{l}.w"][:, :, causal_mask(3, "B") == 0].any()


def test_gradient_check_catches_a_wrong_dilation(monkeypatch):
    """Negative control at the model level: a backward whose convolutions forget the
    dilation (dilation 1 for every layer) must fail the check on the dilated layer's
    weights, while the correct one passes."""
    import pixelcnn_np.conv as conv
    import pixelcnn_np.pixelcnn as plain                 # dilated.py runs the plain stack's functions

    config, rng, params, x, loss_of, grads_of = _gradient_case("binary", 43)
    f = lambda q: loss_of({**params, "conv2.w": q})                          # noqa: E731
    check_directional(f, params["conv2.w"], grads_of(params)["conv2.w"], rng)
    real = conv.conv2d_backward
    monkeypatch.setattr(plain, "masked_conv2d_backward",
                        lambda dy, cache, need_dx=True: real(dy, cache[:4] + (1,), need_dx=need_dx))
    with pytest.raises(AssertionError, match="directional gradient check failed"):
        check_directional(f, params["conv2.w"], grads_of(params)["conv2.w"], rng)


def test_backward_skips_dx_by_default_and_keeps_the_cache():
    config = tiny_config()
    rng = np.random.default_rng(44)
    params = random_params(config, rng)
    x = rng.uniform(0, 1, size=(2, 1, 6, 6))
    logits, cache = dilated.forward(params, x, config)
    dlogits = rng.standard_normal(logits.shape)
    first = dilated.backward(dlogits, cache)
    again = dilated.backward(dlogits, cache, need_dx=True)
    assert "x" not in first and again["x"].shape == x.shape
    for name in params:
        np.testing.assert_array_equal(first[name], again[name])


# ----------------------------------------------------------------------------------
# The autoregressive guarantee
# ----------------------------------------------------------------------------------

@st.composite
def dilated_cases(draw):
    config = make_config("dilated", hidden=draw(st.integers(1, 3)),
                         dilations=draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)),
                         kernel_size=draw(st.sampled_from([1, 3, 5])),
                         first_kernel_size=draw(st.sampled_from([3, 5, 7])),
                         height=draw(st.integers(3, 9)), width=draw(st.integers(3, 9)),
                         pixels=draw(st.sampled_from(["binary", "8bit"])))
    p = draw(st.integers(0, config["height"] * config["width"] - 1))
    return config, p, draw(st.integers(0, 2**32 - 1))


@settings(deadline=None, max_examples=25)
@given(dilated_cases(), st.sampled_from([np.float32, np.float64]))
def test_logits_ignore_the_current_and_future_pixels(case, dtype):
    """Logits at every raster position <= p are bit-identical when every input pixel at a
    position >= p changes: dilation spreads the kept taps, it never unmasks one."""
    config, p, seed = case
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    params = random_params(config, rng, dtype)
    x = rng.uniform(0, 1, size=(2, 1, H, W)).astype(dtype)
    pos = raster_positions(H, W)
    x2 = x.copy()
    x2[:, :, pos >= p] = rng.uniform(-3, 3, size=(2, 1, int((pos >= p).sum()))).astype(dtype)
    logits, _ = dilated.forward(params, x, config)
    logits2, _ = dilated.forward(params, x2, config)
    assert logits.dtype == dtype
    assert np.array_equal(logits[:, :, pos <= p], logits2[:, :, pos <= p])


@settings(deadline=None, max_examples=25)
@given(dilated_cases(), st.sampled_from([np.float32, np.float64]))
def test_logits_depend_on_an_earlier_pixel(case, dtype):
    """The control: the pixel just left of p (or, in column 0, just above) changes every
    logit at p (mask A reads both, every mask-B layer keeps its centre tap, and with
    positive weights and biases and non-negative inputs raising it raises the logits).
    At p = 0 the logits must not change whatever the image."""
    config, p, seed = case
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    params = positive_params(config, rng, dtype)
    x = rng.uniform(0, 1, size=(2, 1, H, W)).astype(dtype)
    i, j = divmod(p, W)
    logits, _ = dilated.forward(params, x, config)
    if p > 0:
        q = (i, j - 1) if j > 0 else (i - 1, j)
        x2 = x.copy()
        x2[:, 0, q[0], q[1]] += 0.5
        logits2, _ = dilated.forward(params, x2, config)
        assert np.all(logits2[:, :, i, j] > logits[:, :, i, j])
    else:
        logits2, _ = dilated.forward(params, rng.uniform(0, 1, size=x.shape).astype(dtype), config)
        assert np.array_equal(logits2[:, :, 0, 0], logits[:, :, 0, 0])


# ----------------------------------------------------------------------------------
# Receptive field: our gradient, boolean dependency maps, and the docstring's region
# ----------------------------------------------------------------------------------
# Three independent descriptions of the pixels the logits at p depend on:
#   * gradient_support: where our backward's input gradient is non-zero (positive weights,
#     so no cancellation);
#   * symbolic_field: a boolean map pushed backwards through the masks and dilations of
#     the layer diagram, with the image border (no numerics at all);
#   * docstring_region: the closed form stated in pixelcnn_np/dilated.py.

def gradient_support(params, config, x, i, j, channel=0):
    logits, cache = dilated.forward(params, x, config)
    dlogits = np.zeros_like(logits)
    dlogits[0, channel, i, j] = 1.0
    return dilated.backward(dlogits, cache, need_dx=True)["x"][0, 0] != 0          # (H, W) bool


def _needed_inputs(needed, mask, dilation):
    """Input pixel q is needed when some needed output o reads it through a kept tap:
    q = o + d (ky - r, kx - r). Positions outside the image are padding, not pixels."""
    H, W = needed.shape
    r = mask.shape[0] // 2
    out = np.zeros_like(needed)
    for o_i, o_j in zip(*np.nonzero(needed)):
        for ky, kx in zip(*np.nonzero(mask)):
            q_i, q_j = o_i + dilation * (ky - r), o_j + dilation * (kx - r)
            if 0 <= q_i < H and 0 <= q_j < W:
                out[q_i, q_j] = True
    return out


def symbolic_field(config, i, j):
    """(H, W) bool, from the layer diagram: the output layer and ReLUs keep the map, each
    masked conv spreads it over its kept taps (with its dilation), last layer first."""
    needed = np.zeros((config["height"], config["width"]), dtype=bool)
    needed[i, j] = True
    for d in reversed(config["dilations"]):
        needed = _needed_inputs(needed, causal_mask(config["kernel_size"], "B"), d)
    return _needed_inputs(needed, causal_mask(config["first_kernel_size"], "A"), 1)


def docstring_region(config, i, j):
    """The closed form of the module docstring (K = 3, F >= 3, gap-free dilations):
    row i, columns j - R .. j - 1; row i - u (1 <= u <= R), columns j - R .. j + min(r0 + u - 1, R),
    with r0 = F // 2 and R = r0 + sum of the dilations."""
    assert config["kernel_size"] == 3
    r0 = config["first_kernel_size"] // 2
    R = r0 + sum(config["dilations"])
    region = np.zeros((config["height"], config["width"]), dtype=bool)
    region[i, j - R:j] = True
    for u in range(1, R + 1):
        region[i - u, j - R:j + min(r0 + u - 1, R) + 1] = True
    return region


def _interior_case(config_overrides, seed):
    """A config whose field around p fits entirely inside the image (no border effects)."""
    probe = make_config("dilated", **config_overrides)
    R = probe["first_kernel_size"] // 2 + (probe["kernel_size"] // 2) * sum(probe["dilations"])
    config = make_config("dilated", height=R + 1, width=2 * R + 1, hidden=2, **config_overrides)
    rng = np.random.default_rng(seed)
    params = positive_params(config, rng)
    x = rng.uniform(0.1, 1.0, size=(1, 1, config["height"], config["width"]))
    return config, params, x, (R, R), R


def test_default_dilations_reach_the_docstring_region():
    """F = 7, K = 3, dilations 1, 2, 4, 8, 1, 2: R = 3 + 18 = 21 rows up and columns left,
    on a 22x43 image with p = (21, 21), so nothing is cut by the border."""
    config, params, x, (i, j), R = _interior_case({}, 45)
    assert R == 21 and config["dilations"] == make_config("dilated")["dilations"]
    support = gradient_support(params, config, x, i, j)
    region = docstring_region(config, i, j)
    np.testing.assert_array_equal(support, region)
    np.testing.assert_array_equal(support, symbolic_field(config, i, j))
    assert support[0, j - 21] and support[0, j + 21] and support[i, j - 21]     # the corners of the reach
    # the blind spot: one row up, p sees columns j - 21 .. j + 3 and nothing further right
    assert support[i - 1, j + 3] and not support[i - 1, j + 4:].any()
    assert support[i - 2, j + 4] and not support[i - 2, j + 5:].any()
    assert support.sum() == 21 + sum(min(3 + u - 1, 21) + 22 for u in range(1, 22))


@pytest.mark.parametrize("overrides", [dict(dilations=[1, 2], first_kernel_size=3),
                                       dict(dilations=[2, 1, 1], first_kernel_size=5),
                                       dict(dilations=[1, 1, 3], first_kernel_size=7)])
def test_gap_free_dilations_reach_the_docstring_region(overrides):
    config, params, x, (i, j), _ = _interior_case(overrides, 46)
    support = gradient_support(params, config, x, i, j)
    np.testing.assert_array_equal(support, docstring_region(config, i, j))
    np.testing.assert_array_equal(support, symbolic_field(config, i, j))


def test_dilations_with_gaps_leave_holes():
    """Dilations [4] after a 3x3 first layer: within row i, p reads 1 pixel left
    (mask A) and 1 + 4 = 5 (then the dilated tap): the pixels 2, 3, 4 to the left are
    holes inside the region the closed form would claim."""
    config, params, x, (i, j), R = _interior_case(dict(dilations=[4], first_kernel_size=3), 47)
    assert R == 5
    support = gradient_support(params, config, x, i, j)
    np.testing.assert_array_equal(support[i, j - 5:j], [True, False, False, False, True])
    np.testing.assert_array_equal(support, symbolic_field(config, i, j))
    region = docstring_region(config, i, j)
    assert np.all(support <= region) and support.sum() < region.sum()


@settings(deadline=None, max_examples=25)
@given(dilated_cases())
def test_gradient_support_equals_the_symbolic_field(case):
    """Any kernels, dilations, image and pixel (borders included): the pixels with a
    non-zero gradient of a logit at p are exactly the symbolic dependency set, all
    strictly before p."""
    config, p, seed = case
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    params = positive_params(config, rng)
    x = rng.uniform(0.1, 1.0, size=(1, 1, H, W))
    channel = int(rng.integers(0, 1 if config["pixels"] == "binary" else 256))
    i, j = divmod(p, W)
    support = gradient_support(params, config, x, i, j, channel)
    np.testing.assert_array_equal(support, symbolic_field(config, i, j))
    assert not support[raster_positions(H, W) >= p].any()


# ----------------------------------------------------------------------------------
# Cached sampling draws exactly the naive loop's images
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=20)
@given(pixels=st.sampled_from(["binary", "8bit"]), hidden=st.integers(1, 3),
       dilations=st.lists(st.integers(1, 3), min_size=1, max_size=2), K=st.sampled_from([1, 3, 5]),
       F=st.sampled_from([3, 5]), H=st.integers(2, 5), W=st.integers(2, 5), n=st.integers(1, 3),
       temperature=st.sampled_from([0.5, 1.0, 2.0]), seed=st.integers(0, 2**31))
def test_cached_equals_naive(pixels, hidden, dilations, K, F, H, W, n, temperature, seed):
    config = make_config("dilated", hidden=hidden, dilations=dilations, kernel_size=K, first_kernel_size=F,
                         height=H, width=W, pixels=pixels)
    params = random_params(config, np.random.default_rng(seed))
    naive = sample_naive(params, config, n, np.random.default_rng(seed), temperature=temperature)
    cached = sample_cached(params, config, n, np.random.default_rng(seed), temperature=temperature)
    assert np.array_equal(cached, naive)


@pytest.mark.parametrize("pixels, start", [("binary", 0), ("binary", 13), ("8bit", 7), ("8bit", 30)])
def test_cached_equals_naive_for_completions(pixels, start):
    config = tiny_config(pixels)                                      # 6x6: start 30 leaves 6 pixels
    rng = np.random.default_rng(48 + start)
    params = random_params(config, rng)
    given_images = rng.integers(0, 2 if pixels == "binary" else 256, size=(3, 6, 6))
    naive = sample_naive(params, config, 3, np.random.default_rng(1), images=given_images, start=start)
    cached = sample_cached(params, config, 3, np.random.default_rng(1), images=given_images, start=start)
    assert np.array_equal(cached, naive)
    np.testing.assert_array_equal(cached.reshape(3, -1)[:, :start], given_images.reshape(3, -1)[:, :start])
    assert len(np.unique(cached.reshape(3, -1)[:, start:])) > 1       # not a constant image


# ----------------------------------------------------------------------------------
# Cross-check against PyTorch (float64)
# ----------------------------------------------------------------------------------

def torch_dilated_forward(torch, params, x, config):
    """The model as a PyTorch user would write it: masked weights, padding d * (K // 2)."""
    F = torch.nn.functional

    def masked_conv(a, name, mask_type, d):
        w = params[name + ".w"]
        mask = torch.tensor(causal_mask(w.shape[-1], mask_type), dtype=torch.float64)
        return F.conv2d(a, w * mask, params[name + ".b"], padding=d * (w.shape[-1] // 2), dilation=d)

    h = F.relu(masked_conv(x, "conv0", "A", 1))
    for l, d in enumerate(config["dilations"], start=1):
        h = F.relu(masked_conv(h, f"conv{l}", "B", d))
    return F.conv2d(h, params["out.w"], params["out.b"])


@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_matches_torch(pixels):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    config = tiny_config(pixels, dilations=[1, 2, 3], height=7, width=6)
    rng = np.random.default_rng(49)
    params = random_params(config, rng)
    x = rng.uniform(0, 1, size=(2, 1, 7, 6))
    logits, cache = dilated.forward(params, x, config)
    dlogits = rng.standard_normal(logits.shape)
    grads = dilated.backward(dlogits, cache, need_dx=True)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad=True)
    tlogits = torch_dilated_forward(torch, tp, tx, config)
    (tlogits * torch.tensor(dlogits)).sum().backward()
    np.testing.assert_allclose(logits, tlogits.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name in params:
        np.testing.assert_allclose(grads[name], tp[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(grads["x"], tx.grad.numpy(), rtol=1e-10, atol=1e-12)
