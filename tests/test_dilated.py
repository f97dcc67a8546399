"""Tests for the dilated PixelCNN, models.MODELS["dilated"]: pixelcnn.py's network under
the dilated defaults. Its shapes and init, that it is the plain stack with other
defaults, a negative control for the dilation in the backward pass, and the receptive
field stated in pixelcnn.py's docstring (checked against our input gradient and
against boolean dependency maps). What every model must satisfy (gradients, the
autoregressive guarantee, cached sampling, the checkpoint, the PyTorch twin) is in
test_model_contract.py.

Every model is tiny (hidden <= 3, <= 3 dilated layers, images <= 9x9), except the
receptive field of the default dilations (hidden 2, one 22x43 image) and the default
configuration's shapes.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, model_loss, needed_inputs, positive_params, random_params
from pixelcnn_np import pixelcnn
from pixelcnn_np.masks import causal_mask
from pixelcnn_np.models import MODELS, make_config

dilated = MODELS["dilated"]          # pixelcnn.py's functions under the dilated defaults


def tiny_config(pixels="binary", **overrides):
    kwargs = dict(hidden=3, dilations=[1, 2], kernel_size=3, first_kernel_size=5, height=6, width=6, pixels=pixels)
    kwargs.update(overrides)
    return make_config("dilated", **kwargs)


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

    params = dilated.init_params(config, np.random.default_rng(0))       # dtypes, zero biases: the contract's
    for name, K, mask_type in [("conv0.w", 7, "A")] + [(f"conv{l}.w", 3, "B") for l in range(1, 7)]:
        np.testing.assert_array_equal(params[name] != 0,
                                      np.broadcast_to(causal_mask(K, mask_type) != 0, params[name].shape))
    # He over the kept fan-in (dilation does not change it): 5 taps x 64 channels
    kept = params["conv4.w"][:, :, causal_mask(3, "B") != 0]
    assert kept.var() * (h * 5) == pytest.approx(2.0, rel=0.1)


def test_dilated_is_the_plain_stack_under_other_defaults():
    """"dilated" runs pixelcnn.py's own functions; a seed config with L layers is the
    dilated config with L dilations of 1 and F = K: same names, same init, same logits."""
    for name in ("param_shapes", "init_params", "forward", "backward", "sampler_init", "sampler_logits",
                 "sampler_row_done", "reach", "torch_parameter_names", "out_channels"):
        assert getattr(dilated, name) is getattr(pixelcnn, name), name
    assert dilated.DEFAULTS["model"] == "dilated" and dilated.LAYERS_KEY is None and pixelcnn.LAYERS_KEY == "n_layers"
    assert dilated.DISPLAY_NAME != pixelcnn.DISPLAY_NAME and dilated.TORCH_TWIN == pixelcnn.TORCH_TWIN
    seed = make_config("pixelcnn", hidden=3, n_layers=3, kernel_size=5, height=6, width=7, n_classes=2)
    same = make_config("dilated", hidden=3, dilations=[1, 1, 1], kernel_size=5, first_kernel_size=5,
                       height=6, width=7, n_classes=2)
    assert pixelcnn.param_shapes(seed) == dilated.param_shapes(same)
    a = pixelcnn.init_params(seed, np.random.default_rng(0), np.float64)
    b = dilated.init_params(same, np.random.default_rng(0), np.float64)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    x = np.random.default_rng(1).uniform(0, 1, size=(2, 1, 6, 7))
    labels = np.array([0, 1])
    np.testing.assert_array_equal(pixelcnn.forward(a, x, seed, labels)[0], dilated.forward(b, x, same, labels)[0])
    assert pixelcnn.reach(seed) == dilated.reach(same) == (8, 8, 8)         # (L + 1) (K // 2)


@pytest.mark.parametrize("key, value", [("first_kernel_size", 6), ("first_kernel_size", -1),
                                        ("dilations", []), ("dilations", [1, 0])])
def test_bad_configs_are_rejected(key, value):
    with pytest.raises(ValueError, match=key):
        make_config("dilated", **{key: value})


# ----------------------------------------------------------------------------------
# A negative control for the gradient check (float64)
# ----------------------------------------------------------------------------------

def test_gradient_check_catches_a_wrong_dilation(monkeypatch):
    """Negative control at the model level: a backward whose convolutions forget the
    dilation (dilation 1 for every layer) must fail the check on the dilated layer's
    weights, while the correct one passes."""
    import pixelcnn_np.colour as colour

    config = tiny_config()
    rng = np.random.default_rng(43)
    params = random_params(config, rng)
    _, loss_of, grads_of = model_loss(config, rng.integers(0, 2, size=(2, config["height"], config["width"])))
    f = lambda q: loss_of({**params, "conv2.w": q})                          # noqa: E731
    check_directional(f, params["conv2.w"], grads_of(params)["conv2.w"], rng)
    real = colour.subpixel_conv2d_backward

    def forgetful(dy, cache, need_dx=True):                            # the conv's cache, dilation 1
        conv_cache, mask = cache
        return real(dy, (conv_cache[:4] + (1,), mask), need_dx=need_dx)
    monkeypatch.setattr(pixelcnn, "subpixel_conv2d_backward", forgetful)   # "dilated" runs pixelcnn.py
    with pytest.raises(AssertionError, match="directional gradient check failed"):
        check_directional(f, params["conv2.w"], grads_of(params)["conv2.w"], rng)


# ----------------------------------------------------------------------------------
# Receptive field: our gradient, boolean dependency maps, and the docstring's region
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


# Three independent descriptions of the pixels the logits at p depend on:
#   * gradient_support: where our backward's input gradient is non-zero (positive weights,
#     so no cancellation);
#   * symbolic_field: a boolean map pushed backwards through the masks and dilations of
#     the layer diagram, with the image border (no numerics at all);
#   * docstring_region: the closed form stated in pixelcnn_np/pixelcnn.py.

def gradient_support(params, config, x, i, j, channel=0):
    logits, cache = dilated.forward(params, x, config)
    dlogits = np.zeros_like(logits)
    dlogits[0, channel, i, j] = 1.0
    return dilated.backward(dlogits, cache, need_dx=True)["x"][0, 0] != 0          # (H, W) bool


def symbolic_field(config, i, j):
    """(H, W) bool, from the layer diagram: the output layer and ReLUs keep the map, each
    masked conv spreads it over its kept taps (with its dilation), last layer first."""
    needed = np.zeros((config["height"], config["width"]), dtype=bool)
    needed[i, j] = True
    for d in reversed(config["dilations"]):
        needed = needed_inputs(needed, causal_mask(config["kernel_size"], "B"), d)
    return needed_inputs(needed, causal_mask(config["first_kernel_size"], "A"), 1)


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
    assert not support[np.arange(H * W).reshape(H, W) >= p].any()                  # all before p
