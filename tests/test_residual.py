"""Tests for the residual PixelCNN (pixelcnn_np.residual): shapes and init, gradients of
the whole network (float64 finite differences, with a negative control), the
autoregressive guarantee, the receptive field, cached sampling against the naive loop,
and a cross-check against PyTorch.

Every model here is tiny (hidden <= 3, <= 2 blocks, images <= 9x9), except one forward
pass of the default configuration on a single image.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, check_elementwise
from pixelcnn_np import residual
from pixelcnn_np.masks import causal_mask
from pixelcnn_np.models import get_model, loss_and_grad, make_config, model_input
from pixelcnn_np.sampling import sample_cached, sample_naive


def tiny_config(pixels="binary", **overrides):
    kwargs = dict(hidden=2, n_blocks=2, kernel_size=3, first_kernel_size=5, height=6, width=6, pixels=pixels)
    kwargs.update(overrides)
    return make_config("residual", **kwargs)


def random_params(config, rng, dtype=np.float64):
    """The model's init plus noise on the kept taps, and non-zero biases, so no gradient
    is trivially zero and samples are far from all-zero. Masked taps stay zero."""
    params = residual.init_params(config, rng, dtype)
    for name, p in params.items():
        noise = 0.3 * rng.standard_normal(p.shape)
        params[name] = (p + noise * (p != 0) if name.endswith(".w") else p + noise).astype(dtype)
    return params


def positive_params(config, rng, dtype=np.float64):
    """Every kept tap and every bias positive, every masked tap zero.

    With non-negative inputs every pre-activation is then positive, so every ReLU is the
    identity, and a residual block is the identity plus a product of positive maps:
    the network is monotone, every local derivative >= 0 and > 0 on every connection.
    So d logit(p) / d x(q) is a sum of positive path products: non-zero exactly when
    some path joins q to p. No cancellation, no dead unit.
    """
    params = {}
    for name, w in residual.init_params(config, rng, dtype).items():
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
    config = make_config("residual")
    assert (config["hidden"], config["n_blocks"], config["kernel_size"], config["first_kernel_size"]) == (32, 6, 3, 7)
    h, B = 32, 6
    shapes = residual.param_shapes(config)
    expected = {"conv0.w": (2 * h, 1, 7, 7), "conv0.b": (2 * h,)}
    for b in range(1, B + 1):
        expected.update({f"block{b}.reduce.w": (h, 2 * h, 1, 1), f"block{b}.reduce.b": (h,),
                         f"block{b}.conv.w": (h, h, 3, 3), f"block{b}.conv.b": (h,),
                         f"block{b}.expand.w": (2 * h, h, 1, 1), f"block{b}.expand.b": (2 * h,)})
    expected.update({"out.w": (1, 2 * h, 1, 1), "out.b": (1,)})
    assert shapes == expected
    assert residual.param_shapes(make_config("residual", pixels="8bit"))["out.w"] == (256, 2 * h, 1, 1)

    params = residual.init_params(config, np.random.default_rng(0))
    assert set(params) == set(shapes)
    for name, p in params.items():
        assert p.shape == shapes[name] and p.dtype == np.float32, name
        if name.endswith(".b"):
            assert not p.any(), name
    w0 = params["conv0.w"]
    np.testing.assert_array_equal(w0 != 0, np.broadcast_to(causal_mask(7, "A") != 0, w0.shape))
    for b in range(1, B + 1):
        wb = params[f"block{b}.conv.w"]
        np.testing.assert_array_equal(wb != 0, np.broadcast_to(causal_mask(3, "B") != 0, wb.shape))
    # He over the kept fan-in: 5 kept taps x 32 channels for the 3x3 mask-B conv (5120 samples)
    kept = params["block1.conv.w"][:, :, causal_mask(3, "B") != 0]
    assert kept.var() * (h * 5) == pytest.approx(2.0, rel=0.1)
    assert params["block1.reduce.w"].var() * (2 * h) == pytest.approx(2.0, rel=0.1)
    assert params["block1.expand.w"].var() * h == pytest.approx(2.0 / B, rel=0.1)
    assert residual.init_params(config, np.random.default_rng(0), np.float64)["out.w"].dtype == np.float64

    x = np.random.default_rng(1).integers(0, 2, size=(1, 1, 28, 28)).astype(np.float32)
    logits, _ = residual.forward(params, x, config)
    assert logits.shape == (1, 1, 28, 28) and logits.dtype == np.float32


@pytest.mark.parametrize("key, value", [("n_blocks", 0), ("n_blocks", 1.5), ("first_kernel_size", 4),
                                        ("first_kernel_size", 0), ("kernel_size", 2)])
def test_bad_configs_are_rejected(key, value):
    with pytest.raises(ValueError, match=key):
        make_config("residual", **{key: value})


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
        logits, _ = residual.forward(params, x, config)
        return loss_and_grad(logits, images, config)[0]

    def grads_of(params):
        logits, cache = residual.forward(params, x, config)
        _, dlogits = loss_and_grad(logits, images, config)
        return residual.backward(dlogits, cache, need_dx=True)

    return config, rng, params, x, loss_of, grads_of


@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_residual_model_gradients(pixels):
    config, rng, params, x, loss_of, grads_of = _gradient_case(pixels, 31 if pixels == "binary" else 32)
    grads = grads_of(params)
    assert set(grads) == set(params) | {"x"}
    for name, p in params.items():
        assert grads[name].shape == p.shape and grads[name].dtype == np.float64, name
        assert np.abs(grads[name]).max() > 0, name
        check_directional(lambda q: loss_of({**params, name: q}), p, grads[name], rng)
    for name in ("conv0.w", "block1.conv.w", "block1.reduce.b", "block2.expand.w"):
        check_elementwise(lambda q: loss_of({**params, name: q}), params[name], grads[name])
    check_directional(lambda x: loss_of(params, x), x, grads["x"], rng)
    check_elementwise(lambda x: loss_of(params, x), x, grads["x"])
    # masked taps get exactly zero gradient, so they stay zero under any optimizer
    assert not grads["conv0.w"][:, :, causal_mask(5, "A") == 0].any()
    for b in (1, 2):
        assert not grads[f"block{b}.conv.w"][:, :, causal_mask(3, "B") == 0].any()


def test_gradient_check_catches_a_wrong_relu_backward(monkeypatch):
    """Negative control at the model level: a backward that lets the gradient through
    every ReLU unmasked must fail the check, while the correct one passes."""
    config, rng, params, x, loss_of, grads_of = _gradient_case("binary", 33)
    name = "block1.reduce.w"
    f = lambda q: loss_of({**params, name: q})                                 # noqa: E731
    check_directional(f, params[name], grads_of(params)[name], rng)
    monkeypatch.setattr(residual, "relu_backward", lambda dy, cache: dy)
    with pytest.raises(AssertionError, match="directional gradient check failed"):
        check_directional(f, params[name], grads_of(params)[name], rng)


def test_backward_skips_dx_by_default_and_keeps_the_cache():
    config = tiny_config()
    rng = np.random.default_rng(34)
    params = random_params(config, rng)
    x = rng.uniform(0, 1, size=(2, 1, 6, 6))
    logits, cache = residual.forward(params, x, config)
    dlogits = rng.standard_normal(logits.shape)
    first = residual.backward(dlogits, cache)
    again = residual.backward(dlogits, cache, need_dx=True)
    assert "x" not in first and again["x"].shape == x.shape
    for name in params:
        np.testing.assert_array_equal(first[name], again[name])


# ----------------------------------------------------------------------------------
# The autoregressive guarantee
# ----------------------------------------------------------------------------------

@st.composite
def ar_cases(draw):
    config = make_config("residual", hidden=draw(st.integers(1, 3)), n_blocks=draw(st.integers(1, 2)),
                         kernel_size=draw(st.sampled_from([1, 3, 5])),
                         first_kernel_size=draw(st.sampled_from([3, 5, 7])),
                         height=draw(st.integers(3, 7)), width=draw(st.integers(3, 7)),
                         pixels=draw(st.sampled_from(["binary", "8bit"])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    p = draw(st.integers(0, config["height"] * config["width"] - 1))
    return config, dtype, p, draw(st.integers(0, 2**32 - 1))


@settings(deadline=None, max_examples=25)
@given(ar_cases())
def test_logits_ignore_the_current_and_future_pixels(case):
    """Logits at every raster position <= p are bit-identical when every input pixel at a
    position >= p changes."""
    config, dtype, p, seed = case
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    params = random_params(config, rng, dtype)
    x = rng.uniform(0, 1, size=(2, 1, H, W)).astype(dtype)
    pos = raster_positions(H, W)
    x2 = x.copy()
    x2[:, :, pos >= p] = rng.uniform(-3, 3, size=(2, 1, int((pos >= p).sum()))).astype(dtype)
    logits, _ = residual.forward(params, x, config)
    logits2, _ = residual.forward(params, x2, config)
    assert logits.dtype == dtype
    assert np.array_equal(logits[:, :, pos <= p], logits2[:, :, pos <= p])


@settings(deadline=None, max_examples=25)
@given(ar_cases())
def test_logits_depend_on_an_earlier_pixel(case):
    """The control for the test above: the pixel just left of p (or, in column 0, just
    above) does change every logit at p. The mask-A layer reads both directly, and with
    positive weights and biases and non-negative inputs the network is monotone (see
    `positive_params`), so raising that pixel strictly raises the logits. At p = 0 there
    is no earlier pixel: the logits there must not change whatever the image."""
    config, dtype, p, seed = case
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    params = positive_params(config, rng, dtype)
    x = rng.uniform(0, 1, size=(2, 1, H, W)).astype(dtype)
    i, j = divmod(p, W)
    logits, _ = residual.forward(params, x, config)
    if p > 0:
        q = (i, j - 1) if j > 0 else (i - 1, j)
        x2 = x.copy()
        x2[:, 0, q[0], q[1]] += 0.5
        logits2, _ = residual.forward(params, x2, config)
        assert np.all(logits2[:, :, i, j] > logits[:, :, i, j])
    else:
        logits2, _ = residual.forward(params, rng.uniform(0, 1, size=x.shape).astype(dtype), config)
        assert np.array_equal(logits2[:, :, 0, 0], logits[:, :, 0, 0])


# ----------------------------------------------------------------------------------
# Receptive field: our input gradient against boolean dependency maps
# ----------------------------------------------------------------------------------

def _needed_inputs(needed, mask, dilation=1):
    """Backward propagation of a boolean map through a masked conv: input pixel q is
    needed when some needed output o reads it, o + d (ky - r, kx - r) = q for a kept tap.
    Positions outside the image are zero padding, never pixels."""
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
    """(H, W) bool: the input pixels the logits at (i, j) can depend on, from the layer
    diagram alone. A block is r -> r + branch(r): needed(r_{b-1}) = needed(r_b) OR
    needed(through conv_b); the 1x1 convs and ReLUs keep a map as it is."""
    needed = np.zeros((config["height"], config["width"]), dtype=bool)
    needed[i, j] = True
    for _ in range(config["n_blocks"]):
        needed = needed | _needed_inputs(needed, causal_mask(config["kernel_size"], "B"))
    return _needed_inputs(needed, causal_mask(config["first_kernel_size"], "A"))


@pytest.mark.parametrize("K, F, n_blocks, p", [(3, 3, 2, (5, 4)), (3, 7, 1, (4, 2)), (5, 3, 2, (6, 6))])
def test_gradient_support_equals_the_symbolic_field(K, F, n_blocks, p):
    config = tiny_config(kernel_size=K, first_kernel_size=F, n_blocks=n_blocks, height=8, width=9)
    rng = np.random.default_rng(35)
    params = positive_params(config, rng)
    x = rng.uniform(0.1, 1.0, size=(1, 1, 8, 9))
    logits, cache = residual.forward(params, x, config)
    dlogits = np.zeros_like(logits)
    dlogits[0, 0, p[0], p[1]] = 1.0
    support = residual.backward(dlogits, cache, need_dx=True)["x"][0, 0] != 0
    field = symbolic_field(config, *p)
    np.testing.assert_array_equal(support, field)
    assert not support[raster_positions(8, 9) >= p[0] * 9 + p[1]].any()
    i, j = p
    reach = F // 2 + n_blocks * (K // 2)                             # rows up, columns left
    assert support[i, max(0, j - reach)] and support[max(0, i - reach), j]
    # the blind spot: one row up, p sees at most max(F // 2, K // 2 - 1) columns right
    # (conv0's top-right tap, or a conv_b's followed by conv0's left tap), although the
    # rows further up reach further right
    right = max(F // 2, K // 2 - 1)
    assert support[i - 1, j + right] and not support[i - 1, j + right + 1:].any()
    assert support[i - 2, j + right + 1]


# ----------------------------------------------------------------------------------
# Cached sampling draws exactly the naive loop's images
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=20)
@given(pixels=st.sampled_from(["binary", "8bit"]), hidden=st.integers(1, 3), n_blocks=st.integers(1, 2),
       K=st.sampled_from([1, 3, 5]), F=st.sampled_from([3, 5]), H=st.integers(2, 5), W=st.integers(2, 5),
       n=st.integers(1, 3), temperature=st.sampled_from([0.5, 1.0, 2.0]), seed=st.integers(0, 2**31))
def test_cached_equals_naive(pixels, hidden, n_blocks, K, F, H, W, n, temperature, seed):
    config = make_config("residual", hidden=hidden, n_blocks=n_blocks, kernel_size=K, first_kernel_size=F,
                         height=H, width=W, pixels=pixels)
    params = random_params(config, np.random.default_rng(seed))
    naive = sample_naive(params, config, n, np.random.default_rng(seed), temperature=temperature)
    cached = sample_cached(params, config, n, np.random.default_rng(seed), temperature=temperature)
    assert np.array_equal(cached, naive)


@pytest.mark.parametrize("pixels, start", [("binary", 0), ("binary", 13), ("8bit", 7), ("8bit", 30)])
def test_cached_equals_naive_for_completions(pixels, start):
    config = tiny_config(pixels)                                      # 6x6: start 30 leaves 6 pixels
    rng = np.random.default_rng(36 + start)
    params = random_params(config, rng)
    given_images = rng.integers(0, 2 if pixels == "binary" else 256, size=(3, 6, 6))
    naive = sample_naive(params, config, 3, np.random.default_rng(1), images=given_images, start=start)
    cached = sample_cached(params, config, 3, np.random.default_rng(1), images=given_images, start=start)
    assert np.array_equal(cached, naive)
    np.testing.assert_array_equal(cached.reshape(3, -1)[:, :start], given_images.reshape(3, -1)[:, :start])
    assert len(np.unique(cached.reshape(3, -1)[:, start:])) > 1       # not a constant image


def test_the_model_is_registered():
    assert get_model(make_config("residual")) is residual


# ----------------------------------------------------------------------------------
# Cross-check against PyTorch (float64)
# ----------------------------------------------------------------------------------

def torch_residual_forward(torch, params, x, config):
    """The model as a PyTorch user would write it, from the paper's figure."""
    F = torch.nn.functional

    def conv(a, name, mask=None):
        w = params[name + ".w"] if mask is None else params[name + ".w"] * mask
        return F.conv2d(a, w, params[name + ".b"], padding=w.shape[-1] // 2)

    mask_a = torch.tensor(causal_mask(config["first_kernel_size"], "A"), dtype=torch.float64)
    mask_b = torch.tensor(causal_mask(config["kernel_size"], "B"), dtype=torch.float64)
    r = conv(x, "conv0", mask_a)
    for b in range(1, config["n_blocks"] + 1):
        a = F.relu(conv(F.relu(r), f"block{b}.reduce"))
        a = F.relu(conv(a, f"block{b}.conv", mask_b))
        r = r + conv(a, f"block{b}.expand")
    return conv(F.relu(r), "out")


@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_matches_torch(pixels):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    config = tiny_config(pixels)
    rng = np.random.default_rng(37)
    params = random_params(config, rng)
    x = rng.uniform(0, 1, size=(2, 1, 6, 6))
    logits, cache = residual.forward(params, x, config)
    dlogits = rng.standard_normal(logits.shape)
    grads = residual.backward(dlogits, cache, need_dx=True)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad=True)
    tlogits = torch_residual_forward(torch, tp, tx, config)
    (tlogits * torch.tensor(dlogits)).sum().backward()
    np.testing.assert_allclose(logits, tlogits.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name in params:
        np.testing.assert_allclose(grads[name], tp[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(grads["x"], tx.grad.numpy(), rtol=1e-10, atol=1e-12)
