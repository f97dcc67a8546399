"""Sampling: the samplers read the model, temperature, inverse-CDF draws, the one-row
convolution the cached sampler is built on, and bad arguments.

That the cached sampler draws exactly the images of the naive reference loop (both
consume one uniform per image per pixel in raster order), for every model, both pixel
types, with labels, fresh and completing given images, is test_model_contract.py's.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelcnn_np.conv import conv2d_forward, conv2d_row_nhwc, conv2d_row_reference, row_conv_plan
from pixelcnn_np.masks import causal_mask, horizontal_mask, vertical_mask
from pixelcnn_np.models import get_model, make_config
from pixelcnn_np.sampling import draw_pixel, sample, sample_cached, sample_naive


def random_model(name, pixels, hidden, K, H, W, seed, dilations=None):
    """A small model with random non-zero biases and weights large enough that the
    samples are far from all-zero or all-one."""
    kw = {"dilations": dilations} if name == "gated" and dilations else {}
    if name == "pixelcnn":
        kw["n_layers"] = 2
    config = make_config(name, hidden=hidden, kernel_size=K, height=H, width=W, pixels=pixels, **kw)
    model = get_model(config)
    rng = np.random.default_rng(seed)
    params = model.init_params(config, rng, np.float64)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) * (v != 0 if k.endswith(".w") else 1)
              for k, v in params.items()}
    return params, config


def test_samples_follow_the_model_not_the_seed_alone():
    """Different weights, same seed -> different images (the sampler reads the model)."""
    p1, config = random_model("gated", "binary", 3, 3, 6, 6, seed=1)
    p2, _ = random_model("gated", "binary", 3, 3, 6, 6, seed=2)
    a = sample_cached(p1, config, 4, np.random.default_rng(0))
    b = sample_cached(p2, config, 4, np.random.default_rng(0))
    assert not np.array_equal(a, b)


def test_temperature_sharpens_binary_samples():
    """As T -> 0 a binary pixel becomes 1 exactly when its logit is positive."""
    params, config = random_model("pixelcnn", "binary", 3, 3, 5, 5, seed=3)
    cold = sample_cached(params, config, 2, np.random.default_rng(0), temperature=1e-6)
    model = get_model(config)
    logits, _ = model.forward(params, cold[:, None].astype(np.float64), config)
    np.testing.assert_array_equal(cold, (logits[:, 0] > 0).astype(np.uint8))


def test_draw_pixel_inverse_cdf():
    logits = np.log(np.array([[0.25, 0.25, 0.5]]))
    logits = np.pad(logits, ((0, 0), (0, 253)), constant_values=-np.inf)
    u = np.array([0.1, 0.3, 0.6, 0.99])
    got = draw_pixel(np.repeat(logits, 4, axis=0), u, "8bit", 1.0)
    np.testing.assert_array_equal(got, [0, 1, 2, 2])
    np.testing.assert_array_equal(draw_pixel(np.array([[0.0], [0.0]]), np.array([0.4, 0.6]), "binary", 1.0), [1, 0])


@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 3), C=st.integers(1, 3), O=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       K=st.sampled_from([1, 3, 5]), kind=st.sampled_from(["A", "B", "vertical", "horizontal"]),
       d=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_conv2d_row_matches_the_full_convolution(N, C, O, H, W, K, kind, d, seed):
    rng = np.random.default_rng(seed)
    mask = {"A": causal_mask(K, "A"), "B": causal_mask(K, "B"), "vertical": vertical_mask(K),
            "horizontal": horizontal_mask(K, "B")}[kind]
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((O, C, K, K))
    b = rng.standard_normal(O)
    y, _ = conv2d_forward(x, w, b, mask, d)
    i = int(rng.integers(H))
    j0 = int(rng.integers(W))
    j1 = int(rng.integers(j0 + 1, W + 1))
    fast = conv2d_row_nhwc(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), row_conv_plan(w, b, mask, d), i, j0, j1)
    np.testing.assert_allclose(fast.transpose(0, 2, 1), y[:, :, i, j0:j1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv2d_row_reference(x, w, b, mask, d, i, j0, j1), y[:, :, i, j0:j1],
                               rtol=1e-12, atol=1e-12)


def test_bad_arguments():
    params, config = random_model("pixelcnn", "binary", 2, 3, 4, 4, seed=0)
    with pytest.raises(ValueError, match="temperature"):
        sample_cached(params, config, 1, np.random.default_rng(0), temperature=0)
    with pytest.raises(ValueError, match="method"):
        sample(params, config, 1, np.random.default_rng(0), method="fast")
    with pytest.raises(ValueError, match="images must have shape"):
        sample_cached(params, config, 2, np.random.default_rng(0), images=np.zeros((3, 4, 4)), start=3)
    with pytest.raises(ValueError, match="start"):
        sample_naive(params, config, 1, np.random.default_rng(0), images=np.zeros((1, 4, 4)), start=17)
