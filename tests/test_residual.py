"""Tests for the residual PixelCNN (pixelcnn_np.residual): its shapes and init (the
expand layer's smaller gain), a negative control for the gradient check, and the
receptive field against boolean dependency maps (the blind spot survives the blocks),
in grey and, per input colour, in colour, and the colour masks' grouping of the stream.
What every model must satisfy (gradients, the autoregressive guarantee, cached
sampling, the checkpoint, the PyTorch twin) is in test_model_contract.py.

Every model here is tiny (hidden <= 3, <= 2 blocks, images <= 9x9), except the default
configuration's shapes and init.
"""

import numpy as np
import pytest

from gradcheck import check_directional, model_loss, needed_inputs, positive_params, random_params
from pixelcnn_np import residual
from pixelcnn_np.masks import causal_mask
from pixelcnn_np.models import make_config
from pixelcnn_np.receptive_field import receptive_field, theoretical_region


def tiny_config(pixels="binary", **overrides):
    kwargs = dict(hidden=2, n_blocks=2, kernel_size=3, first_kernel_size=5, height=6, width=6, pixels=pixels)
    kwargs.update(overrides)
    return make_config("residual", **kwargs)


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

    params = residual.init_params(config, np.random.default_rng(0))      # dtypes, zero biases: the contract's
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


@pytest.mark.parametrize("key, value", [("n_blocks", 0), ("n_blocks", 1.5), ("first_kernel_size", 4),
                                        ("first_kernel_size", 0), ("kernel_size", 2)])
def test_bad_configs_are_rejected(key, value):
    with pytest.raises(ValueError, match=key):
        make_config("residual", **{key: value})


# ----------------------------------------------------------------------------------
# A negative control for the gradient check (float64)
# ----------------------------------------------------------------------------------

def test_gradient_check_catches_a_wrong_relu_backward(monkeypatch):
    """Negative control at the model level: a backward that lets the gradient through
    every ReLU unmasked must fail the check, while the correct one passes."""
    config = tiny_config()
    rng = np.random.default_rng(33)
    params = random_params(config, rng)
    _, loss_of, grads_of = model_loss(config, rng.integers(0, 2, size=(2, config["height"], config["width"])))
    name = "block1.reduce.w"
    f = lambda q: loss_of({**params, name: q})                                 # noqa: E731
    check_directional(f, params[name], grads_of(params)[name], rng)
    monkeypatch.setattr(residual, "relu_backward", lambda dy, cache: dy)
    with pytest.raises(AssertionError, match="directional gradient check failed"):
        check_directional(f, params[name], grads_of(params)[name], rng)


# ----------------------------------------------------------------------------------
# Receptive field: our input gradient against boolean dependency maps
# ----------------------------------------------------------------------------------

def symbolic_field(config, i, j):
    """(H, W) bool: the input pixels the logits at (i, j) can depend on, from the layer
    diagram alone. A block is r -> r + branch(r): needed(r_{b-1}) = needed(r_b) OR
    needed(through conv_b); the 1x1 convs and ReLUs keep a map as it is."""
    needed = np.zeros((config["height"], config["width"]), dtype=bool)
    needed[i, j] = True
    for _ in range(config["n_blocks"]):
        needed = needed | needed_inputs(needed, causal_mask(config["kernel_size"], "B"))
    return needed_inputs(needed, causal_mask(config["first_kernel_size"], "A"))


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
    assert not support[np.arange(8 * 9).reshape(8, 9) >= p[0] * 9 + p[1]].any()      # all before p
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
# Colour: the blind spot in every colour, and p's earlier colours
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("K, F, p", [(3, 3, (5, 4)), (3, 5, (4, 6))])
def test_colour_field_is_the_grey_field_in_every_colour_plus_the_earlier_colours_of_p(K, F, p):
    """A colour residual model (every conv, the 1 x 1 ones too, under its sub-pixel
    mask): the logits of colour k at p have a non-zero gradient at exactly the grey
    model's symbolic field in each of R, G and B -- the blind spot included, the skip
    connections do not fill it -- and at the colours of p before k, nothing else."""
    config = tiny_config(kernel_size=K, first_kernel_size=F, hidden=3, height=8, width=9, channels=3)
    rng = np.random.default_rng(36)
    params = positive_params(config, rng)
    x = rng.uniform(0.1, 1.0, size=(3, 8, 9))
    field = symbolic_field(config, *p)                               # (H, W): p itself excluded
    assert not field[p]
    for k in range(3):
        support = receptive_field(params, config, *p, x=x, colour=k) != 0                   # (3, H, W)
        expected = np.repeat(field[None], 3, axis=0)
        expected[:k, p[0], p[1]] = True                              # G reads R_p; B reads R_p, G_p
        np.testing.assert_array_equal(support, expected)
        assert np.all(support <= theoretical_region(config, *p, colour=k))                  # within the reach


def test_colour_masks_group_the_stream_alike_at_both_ends_of_the_skip():
    """r_b = r_{b-1} + expand_b(...): channel c of both terms must be in one colour group,
    so expand's output groups are conv0's. A 1 x 1 conv's mask B is lower block
    triangular in the groups: R reads only R, G reads R and G, B reads all."""
    config = tiny_config(hidden=3, channels=3)
    m = residual.masks(config)
    assert m["conv0.w"].shape == (6, 3, 5, 5)
    out_groups = lambda name: [int(row.sum()) for row in m[name][:, :, 0, 0]]   # noqa: E731
    np.testing.assert_array_equal(m["conv0.w"][:, :, 2, 2], [[0, 0, 0]] * 2 + [[1, 0, 0]] * 2 + [[1, 1, 0]] * 2)
    assert out_groups("block1.expand.w") == [1, 1, 2, 2, 3, 3]         # reads 1, 2, 3 of the h = 3 channels
    assert out_groups("block1.reduce.w") == [2, 4, 6]                  # reads 2, 4, 6 of the 2h = 6 channels
    assert out_groups("out.w") == [2, 4, 6]
    grey = residual.masks(tiny_config())
    assert all(np.all(grey[name] == grey[name].any(axis=(0, 1))) for name in grey)   # grey: one mask per layer
