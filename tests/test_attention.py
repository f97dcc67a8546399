"""Tests for causal self-attention: the layer (pixelcnn_np.attention) against its slow
reference, its gradients (float64 finite differences, with a negative control), which
keys a query may see (a leak over raw pixels when it sees its own position), the colour
block (one head per colour: engine against reference, gradients, the sub-pixel
guarantee, and each of its three restrictions shown necessary by a leak without it), its
one-position form for the sampler; and the attention model
(pixelcnn_np.attention_pixelcnn): its config and init, and that it reaches the blind
spot. What every model must satisfy (gradients, the autoregressive guarantee, cached
sampling, the checkpoint, the PyTorch twin) is in test_model_contract.py.

Everything is tiny (channels <= 4, images <= 8x8), except the default configuration's
shapes and init.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, check_elementwise, dot_with, random_params
from pixelcnn_np import attention, attention_pixelcnn
from pixelcnn_np.attention import (
    ATTENTION_PARTS, causal_attention_backward, causal_attention_forward, causal_attention_reference, colour_masks,
    head_slices, key_bias, key_mask, query_tiles,
)
from pixelcnn_np.masks import causal_mask, channel_groups
from pixelcnn_np.models import make_config
from pixelcnn_np.receptive_field import theoretical_region


def random_block(C, d, H, W, rng, dtype=np.float64, scale=0.7):
    """Random parameters of one attention block (every entry non-zero)."""
    shapes = {"pos": (C, H, W), "q.w": (d, C), "q.b": (d,), "k.w": (d, C),
              "v.w": (d, C), "v.b": (d,), "o.w": (C, d), "o.b": (C,)}
    assert set(shapes) == set(ATTENTION_PARTS)
    return {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in shapes.items()}


def tiny_config(pixels="binary", **overrides):
    kw = dict(hidden=3, n_layers=2, attention_every=1, key_channels=2, kernel_size=3, first_kernel_size=3,
              height=4, width=5, pixels=pixels)
    kw.update(overrides)
    return make_config("attention", **kw)


def raster_positions(H, W):
    return np.arange(H * W).reshape(H, W)


# ----------------------------------------------------------------------------------
# The layer: engine against the slow reference
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 2), C=st.integers(1, 4), d=st.integers(1, 3), H=st.integers(1, 5), W=st.integers(1, 5),
       include_self=st.booleans(), seed=st.integers(0, 2**31))
def test_layer_matches_the_loop_reference(N, C, d, H, W, include_self, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    ap = random_block(C, d, H, W, rng, scale=1.5)
    y, _ = causal_attention_forward(x, ap, include_self)
    np.testing.assert_allclose(y, causal_attention_reference(x, ap, include_self), rtol=1e-11, atol=1e-12)


@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 2), C=st.integers(3, 7), d=st.integers(3, 7), H=st.integers(1, 4), W=st.integers(1, 4),
       include_self=st.booleans(), seed=st.integers(0, 2**31))
def test_colour_layer_matches_the_loop_reference(N, C, d, H, W, include_self, seed):
    """Three heads of uneven sizes (d = 4: 2, 1, 1 channels), masked Wq and Wo: the engine
    (head by head, tile by tile) against the loop over heads, queries and keys."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    ap = random_block(C, d, H, W, rng, scale=1.5)
    y, _ = causal_attention_forward(x, ap, include_self, colours=3)
    np.testing.assert_allclose(y, causal_attention_reference(x, ap, include_self, colours=3), rtol=1e-11, atol=1e-12)


def test_colour_masks_and_heads():
    """d = 4 key channels: heads R = {0, 1}, G = {2}, B = {3}; C = 3 inputs R, G, B.
    Head g's query reads inputs R..g; output g reads heads R..g. Grey: all ones, one head."""
    m = colour_masks(3, 4, 3)
    np.testing.assert_array_equal(m["q.w"], [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(m["o.w"], [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    assert head_slices(4, 3) == [slice(0, 2), slice(2, 3), slice(3, 4)]
    assert head_slices(5, 1) == [slice(0, 5)]
    assert all(v.all() for v in colour_masks(4, 5, 1).values())
    with pytest.raises(ValueError, match="colours"):
        causal_attention_forward(np.zeros((1, 3, 2, 2)), random_block(3, 2, 2, 2, np.random.default_rng(0)),
                                 colours=3)                                  # two key channels, three heads


def test_layer_float32_keeps_dtype_and_matches_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    ap = random_block(3, 4, 6, 6, rng)
    y64, c64 = causal_attention_forward(x, ap)
    y32, c32 = causal_attention_forward(x.astype(np.float32), {k: v.astype(np.float32) for k, v in ap.items()})
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    dx32, g32 = causal_attention_backward(np.ones_like(y32), c32)
    assert dx32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32.values())


@pytest.mark.parametrize("size", [1, 2, 3, 56])
def test_query_tiles_cover_every_query_once_in_order(size):
    for D in (1, 2, 3, 5, 30, 784):
        tiles = query_tiles(D, size)
        assert tiles[0][0] == 0 and tiles[-1][1] == D
        assert all(a[1] == b[0] for a, b in zip(tiles, tiles[1:]))
        assert all(0 < r1 - r0 <= size for r0, r1 in tiles)


@pytest.mark.parametrize("tile, group", [(1, 1), (2, 3), (5, 1), (56, 8)])
@pytest.mark.parametrize("include_self, colours", [(True, 1), (False, 1), (False, 3)])
def test_any_tiling_gives_the_same_layer(monkeypatch, tile, group, include_self, colours):
    """The tile size and image group change only the order of the work: every tiling
    (one query at a time, tiles that do not divide D, a last short group) matches the
    loop reference in value, and the backward pass of the default tiling in gradient."""
    rng = np.random.default_rng(tile + 10 * group)
    x = rng.standard_normal((3, 3, 3, 5))
    ap = random_block(3, 2 * colours, 3, 5, rng, scale=1.2)
    dy = rng.standard_normal(x.shape)
    y0, c0 = causal_attention_forward(x, ap, include_self, colours)
    dx0, g0 = causal_attention_backward(dy, c0)
    monkeypatch.setattr(attention, "QUERY_TILE", tile)
    monkeypatch.setattr(attention, "IMAGE_GROUP", group)
    y, c = causal_attention_forward(x, ap, include_self, colours)
    np.testing.assert_allclose(y, causal_attention_reference(x, ap, include_self, colours), rtol=1e-11, atol=1e-12)
    dx, g = causal_attention_backward(dy, c)
    np.testing.assert_allclose(dx, dx0, rtol=1e-11, atol=1e-12)
    for k in g0:
        np.testing.assert_allclose(g[k], g0[k], rtol=1e-11, atol=1e-12, err_msg=k)


def test_float32_tiles_at_the_default_size_match_float64():
    """The default tiling on a 28x28 image (14 tiles of 56 queries, diagonal blocks
    masked) in float32 against float64, forward and backward."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 28, 28))
    ap = random_block(4, 3, 28, 28, rng, scale=0.8)
    dy = rng.standard_normal(x.shape)
    y64, c64 = causal_attention_forward(x, ap)
    dx64, g64 = causal_attention_backward(dy, c64)
    f32 = {k: v.astype(np.float32) for k, v in ap.items()}
    y32, c32 = causal_attention_forward(x.astype(np.float32), f32)
    dx32, g32 = causal_attention_backward(dy.astype(np.float32), c32)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx32, dx64, rtol=1e-3, atol=1e-3)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=2e-3, err_msg=k)


def test_key_mask():
    np.testing.assert_array_equal(key_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(key_mask(3, include_self=False), [[0, 0, 0], [1, 0, 0], [1, 1, 0]])


def test_no_key_gives_the_output_bias():
    """Without include_self, query 0 sees nothing: its weights are 0 (not NaN), O_0 = 0, Y_0 = bo."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 2, 3))
    ap = random_block(3, 2, 2, 3, rng)
    y, cache = causal_attention_forward(x, ap, include_self=False)
    np.testing.assert_array_equal(y[:, :, 0, 0], np.broadcast_to(ap["o.b"], (2, 3)))
    dx, g = causal_attention_backward(rng.standard_normal(y.shape), cache)
    assert np.isfinite(dx).all() and all(np.isfinite(v).all() for v in g.values())


# ----------------------------------------------------------------------------------
# The layer's gradients (float64)
# ----------------------------------------------------------------------------------

def _layer_case(include_self, seed, colours=1):
    rng = np.random.default_rng(seed)
    N, C, d, H, W = 2, 3, (2 if colours == 1 else 4), 3, 4
    x = rng.standard_normal((N, C, H, W))
    ap = random_block(C, d, H, W, rng)
    dy = rng.standard_normal((N, C, H, W))
    y, cache = causal_attention_forward(x, ap, include_self, colours)
    dx, grads = causal_attention_backward(dy, cache)
    return rng, x, ap, dy, dx, grads


@pytest.mark.parametrize("include_self, colours", [(True, 1), (False, 1), (False, 3)])
def test_layer_gradients(include_self, colours):
    """float64 centred differences, directional and element by element; in colour (three
    heads, d = 4) the masked entries of dWq and dWo are exactly zero, and the check on
    the masked weights passes too (the forward pass ignores them: their true gradient is 0)."""
    rng, x, ap, dy, dx, grads = _layer_case(include_self, 10 + include_self + colours, colours)
    assert set(grads) == set(ATTENTION_PARTS)
    f_x = dot_with(lambda x: causal_attention_forward(x, ap, include_self, colours)[0], dy)
    check_directional(f_x, x, dx, rng)
    check_elementwise(f_x, x, dx)
    for name in ATTENTION_PARTS:
        assert grads[name].shape == ap[name].shape, name
        f = dot_with(lambda w: causal_attention_forward(x, {**ap, name: w}, include_self, colours)[0], dy)
        check_directional(f, ap[name], grads[name], rng)
        check_elementwise(f, ap[name], grads[name])
    for name, m in colour_masks(3, ap["q.w"].shape[0], colours).items():
        assert np.all(grads[name][m == 0] == 0), name
        assert (m == 0).any() == (colours == 3), name


def test_gradient_check_catches_a_softmax_backward_without_its_row_sum():
    """Negative control: dS = A * dA (forgetting - A * rowsum(A * dA)) must fail the
    check on the query weights, while the correct backward passes."""
    rng, x, ap, dy, dx, grads = _layer_case(True, 12)
    f = dot_with(lambda w: causal_attention_forward(x, {**ap, "q.w": w})[0], dy)
    check_directional(f, ap["q.w"], grads["q.w"], rng)

    _, cache = causal_attention_forward(x, ap)
    u, qt, kt, vt, ot, lse = cache[:6]                                         # channels first: (N, e, D)
    D = qt.shape[2]
    a = np.exp(qt.transpose(0, 2, 1) @ kt + key_bias(D, True, x.dtype) - lse.transpose(0, 2, 1))  # A (N, D, D)
    do = ap["o.w"].T @ dy.reshape(2, 3, -1)                                     # dO^T (N, d, D)
    wrong_ds = a * (do.transpose(0, 2, 1) @ vt)                                 # A * dA, no row-sum term
    dq = wrong_ds @ kt.transpose(0, 2, 1) / np.sqrt(qt.shape[1])                # (N, D, d)
    wrong = np.einsum("npe,ncp->ec", dq, u)
    with pytest.raises(AssertionError, match="directional gradient check failed"):
        check_directional(f, ap["q.w"], wrong, rng)


# ----------------------------------------------------------------------------------
# Which keys may a query see? Over raw pixels, its own position leaks
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=25)
@given(H=st.integers(1, 5), W=st.integers(2, 5), data=st.data(), seed=st.integers(0, 2**31))
def test_over_raw_pixels_the_key_set_decides_the_leak(H, W, data, seed):
    """Attention applied to the image itself (C = 1). To isolate the key set, the queries
    are made content-free (q.w = 0, so Q_p = bq for every p).
    Keys q < p: y_p does not move when x_p and every later pixel change, and does when
    x_{p-1} changes. Keys q <= p: changing x_p alone moves y_p (the key and value at p
    *are* x_p): a leak. After a mask-A conv the inclusive set is safe (model tests below).
    And with content queries even keys q < p leak over raw pixels: the query at p reads x_p."""
    p = data.draw(st.integers(1, H * W - 1))
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(2, 1, H, W))
    ap = random_block(1, 2, H, W, rng, scale=0.5)
    blind = {**ap, "q.w": np.zeros_like(ap["q.w"])}                          # queries ignore the content
    pos = raster_positions(H, W)
    i, j = divmod(p, W)

    future = x.copy()
    future[:, :, pos >= p] = rng.uniform(-3, 3, size=(2, 1, int((pos >= p).sum())))
    strict, _ = causal_attention_forward(x, blind, include_self=False)
    strict2, _ = causal_attention_forward(future, blind, include_self=False)
    assert np.array_equal(strict[:, :, pos <= p], strict2[:, :, pos <= p])

    earlier = x.copy()
    earlier[:, 0, (p - 1) // W, (p - 1) % W] += 1.0
    strict3, _ = causal_attention_forward(earlier, blind, include_self=False)
    assert not np.array_equal(strict3[:, :, i, j], strict[:, :, i, j])

    itself = x.copy()
    itself[:, 0, i, j] += 1.0                                                  # only x_p changes
    incl, _ = causal_attention_forward(x, blind, include_self=True)
    incl2, _ = causal_attention_forward(itself, blind, include_self=True)
    assert not np.array_equal(incl2[:, :, i, j], incl[:, :, i, j])             # the leak
    assert np.array_equal(incl2[:, :, pos < p], incl[:, :, pos < p])           # earlier outputs: untouched

    content, _ = causal_attention_forward(x, ap, include_self=False)
    content2, _ = causal_attention_forward(itself, ap, include_self=False)
    if p > 1:                                    # (one key: its weight is 1 whatever the query)
        assert not np.array_equal(content2[:, :, i, j], content[:, :, i, j])  # leak via the query


# ----------------------------------------------------------------------------------
# The colour block: what may reach output group g at p, and why each restriction is needed
# ----------------------------------------------------------------------------------
# In a colour model the block's input features obey: group g' at q depends on x_<q and
# the colours of q before g'. The block keeps that if its output group g at p reads
# only inputs at q < p (any group) and the groups <= g at p: like a mask-B layer.

def colour_leaks(x, ap, p, g, rng, include_self=False, masks=None):
    """Change the inputs the output group g at p must not read -- every group at every
    position after p, and the groups after g at p -- and say whether y's group g at p moved."""
    N, C, H, W = x.shape
    i, j = divmod(p, W)
    groups = channel_groups(C)
    x2 = x.copy()
    later = raster_positions(H, W) > p
    x2[:, :, later] = rng.uniform(-3, 3, size=x2[:, :, later].shape)
    x2[:, groups > g, i, j] = rng.uniform(-3, 3, size=x2[:, groups > g, i, j].shape)
    y, _ = causal_attention_forward(x, ap, include_self, 3, masks)
    y2, _ = causal_attention_forward(x2, ap, include_self, 3, masks)
    return not np.array_equal(y[:, groups == g, i, j], y2[:, groups == g, i, j])


@settings(deadline=None, max_examples=30)
@given(C=st.integers(3, 7), d=st.integers(3, 7), H=st.integers(1, 4), W=st.integers(2, 4), data=st.data(),
       seed=st.integers(0, 2**31))
def test_colour_block_reads_only_what_group_g_may_know(C, d, H, W, data, seed):
    """Output group g at p is bit-identical when any input it must not read changes
    (positions after p; groups after g at p). Positive controls: the pixel before p, and
    group g itself at p (through head g's query; p >= 2, so the softmax has two keys to
    weigh), do move it."""
    rng = np.random.default_rng(seed)
    p = data.draw(st.integers(0, H * W - 1))
    g = data.draw(st.integers(0, 2))
    x = rng.standard_normal((2, C, H, W))
    ap = random_block(C, d, H, W, rng, scale=1.0)
    assert not colour_leaks(x, ap, p, g, rng)
    groups = channel_groups(C)
    i, j = divmod(p, W)
    y, _ = causal_attention_forward(x, ap, False, 3)
    if p >= 1:
        x2 = x.copy()
        x2[:, :, (p - 1) // W, (p - 1) % W] += 1.0
        assert not np.array_equal(causal_attention_forward(x2, ap, False, 3)[0][:, groups == g, i, j],
                                  y[:, groups == g, i, j])
    if p >= 2:
        x2 = x.copy()
        x2[:, groups == g, i, j] += 1.0
        assert not np.array_equal(causal_attention_forward(x2, ap, False, 3)[0][:, groups == g, i, j],
                                  y[:, groups == g, i, j])


@pytest.mark.parametrize("wrong", ["query reads every group", "keys include p", "output reads every head"])
def test_each_colour_restriction_is_needed(wrong):
    """Negative controls: drop any one of the three restrictions and the same check
    catches a later colour of p reaching an earlier one's output (R's, at p = 7): the
    unmasked query of head R reads G and B at p; the key and value at p carry G and B
    of p to every head; the unmasked output projection lets R's output read head B."""
    rng = np.random.default_rng(21)
    C, d, H, W = 3, 3, 3, 4
    x = rng.standard_normal((2, C, H, W))
    ap = random_block(C, d, H, W, rng, scale=1.0)
    assert not any(colour_leaks(x, ap, p, g, rng) for p in (0, 7) for g in range(3))
    masks, include_self = colour_masks(C, d, 3), False
    if wrong == "query reads every group":
        masks = {**masks, "q.w": np.ones((d, C))}
    elif wrong == "keys include p":
        include_self = True
    else:
        masks = {**masks, "o.w": np.ones((C, d))}
    assert colour_leaks(x, ap, 7, 0, rng, include_self, masks)


# ----------------------------------------------------------------------------------
# The model: config and init
# ----------------------------------------------------------------------------------

def test_default_config_shapes_and_init():
    config = make_config("attention")
    assert attention_pixelcnn.attention_layers(config) == [4]
    shapes = attention_pixelcnn.param_shapes(config)
    assert shapes["conv0.w"] == (32, 1, 7, 7) and shapes["conv6.w"] == (32, 32, 3, 3)
    assert shapes["attn4.pos"] == (32, 28, 28) and shapes["attn4.q.w"] == (8, 32) and shapes["attn4.o.w"] == (32, 8)
    assert not any(k.startswith("attn") and not k.startswith("attn4.") for k in shapes)
    params = attention_pixelcnn.init_params(config, np.random.default_rng(0))    # shapes, dtypes: the contract's
    assert not params["conv0.w"][:, :, causal_mask(7, "A") == 0].any()
    assert not params["conv3.w"][:, :, causal_mask(3, "B") == 0].any()
    assert attention_pixelcnn.attention_layers(make_config("attention", attention_every=0)) == []
    assert attention_pixelcnn.attention_layers(make_config("attention", n_layers=5, attention_every=2)) == [2, 4]
    # init: q, k, v variance 1 / h; o variance 1 / (d B), B = 1 block; pos standard normal
    assert params["attn4.q.w"].var() * 32 == pytest.approx(1.0, rel=0.25)
    assert params["attn4.o.w"].var() * 8 == pytest.approx(1.0, rel=0.25)
    assert params["attn4.pos"].var() == pytest.approx(1.0, rel=0.1)
    assert params["conv3.w"][:, :, causal_mask(3, "B") != 0].var() * (32 * 5) == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("key, value", [("attention_every", -1), ("key_channels", 0), ("key_channels", 1.5)])
def test_bad_configs_are_rejected(key, value):
    config = make_config("attention")
    config[key] = value
    with pytest.raises(ValueError, match=key):
        attention_pixelcnn.param_shapes(config)


def test_colour_config_shapes_and_init():
    """Colour: conv0 reads 3 channels, the head gives 3 logits per pixel, key_channels >= 3
    (one head per colour); every masked entry (conv centres, Wq and Wo) starts at zero,
    and the kept rows of Wq are scaled to the inputs they read."""
    config = make_config("attention", channels=3)
    shapes = attention_pixelcnn.param_shapes(config)
    assert shapes["conv0.w"] == (32, 3, 7, 7) and shapes["out.w"] == (3, 32, 1, 1)
    params = attention_pixelcnn.init_params(config, np.random.default_rng(0))
    masks = attention_pixelcnn.masks(config)
    assert set(masks) == {k for k in shapes if k.endswith(".w") and not k.endswith(("k.w", "v.w"))}
    for name, m in masks.items():
        assert m.shape == shapes[name] and not params[name][m == 0].any(), name
    q, mq = params["attn4.q.w"], masks["attn4.q.w"]                          # (8, 32): head R reads 11 inputs
    kept = mq.sum(axis=1)
    assert (q[mq == 1] ** 2 * np.repeat(kept, kept.astype(int))).mean() == pytest.approx(1.0, rel=0.25)
    with pytest.raises(ValueError, match="key_channels"):
        attention_pixelcnn.param_shapes(make_config("attention", channels=3, key_channels=2))


def test_labels_are_refused():
    config = tiny_config()
    params = random_params(config, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unconditional"):
        attention_pixelcnn.forward(params, np.zeros((2, 1, 4, 5)), config, labels=np.array([1, 2]))


# ----------------------------------------------------------------------------------
# What attention reaches
# ----------------------------------------------------------------------------------

def test_attention_reaches_the_blind_spot():
    """3x3 kernels, 2 layers: the conv stack alone never reaches (i - 1, j + 3) from p = (i, j)
    (the blind spot); with an attention block it does (the key at (i - 1, j + 2) has seen it),
    and the input gradient is non-zero at every earlier pixel of the image except those only
    the last raster positions could carry. The model's stated reach follows: the conv
    stack's F // 2 + L (K // 2) = 3 without a block, the whole image with one."""
    config = make_config("attention", hidden=2, n_layers=2, attention_every=2, key_channels=2, kernel_size=3,
                         first_kernel_size=3, height=4, width=8)
    rng = np.random.default_rng(30)
    i, j = 3, 3
    for every, reaches in ((0, False), (2, True)):
        cfg = {**config, "attention_every": every}
        params = random_params(cfg, rng)
        for l in range(3):
            params[f"conv{l}.w"] = np.abs(params[f"conv{l}.w"])
            params[f"conv{l}.b"] = np.abs(params[f"conv{l}.b"]) + 0.1
        x = rng.uniform(0.1, 1, size=(1, 1, 4, 8))
        logits, cache = attention_pixelcnn.forward(params, x, cfg)
        dlogits = np.zeros_like(logits)
        dlogits[0, 0, i, j] = 1
        support = attention_pixelcnn.backward(dlogits, cache, need_dx=True)["x"][0, 0] != 0
        assert bool(support[i - 1, j + 3]) == reaches
        assert not support[raster_positions(4, 8) >= i * 8 + j].any()          # never p or later
        assert attention_pixelcnn.reach(cfg) == ((3, 7, 7) if every else (3, 3, 3))
        assert np.all(support <= theoretical_region(cfg, i, j))


# ----------------------------------------------------------------------------------
# One position at a time, for the cached sampler
# ----------------------------------------------------------------------------------

def test_sampler_attention_matches_the_layer_at_every_position():
    """The sampler's one-position attention, fed the layer's inputs in raster order,
    gives the layer's output at every position (float64, to rounding)."""
    rng = np.random.default_rng(41)
    N, C, d, H, W = 2, 3, 2, 3, 4
    x = rng.standard_normal((N, C, H, W))
    ap = random_block(C, d, H, W, rng)
    y, _ = causal_attention_forward(x, ap)
    keys, values = np.zeros((N, H * W, d)), np.zeros((N, H * W, d))
    for p in range(H * W):
        i, j = divmod(p, W)
        y_p = attention.attend_one_position(ap, keys, values, x[:, :, i, j], i, j, W)
        np.testing.assert_allclose(y_p, y[:, :, i, j], rtol=1e-12, atol=1e-13)


def test_sampler_colour_attention_matches_the_layer_at_every_position():
    """The same in colour (three heads, keys q < p): p = 0 sees no key and gives bo. Each
    position is visited three times with changing features, as the colour sampler does;
    the last visit's keys are the ones that count."""
    rng = np.random.default_rng(42)
    N, C, d, H, W = 2, 4, 5, 3, 4
    x = rng.standard_normal((N, C, H, W))
    ap = random_block(C, d, H, W, rng)
    y, _ = causal_attention_forward(x, ap, include_self=False, colours=3)
    keys, values = np.zeros((N, H * W, d)), np.zeros((N, H * W, d))
    for p in range(H * W):
        i, j = divmod(p, W)
        for scale in (3.0, -1.0, 1.0):                                         # R, G, B visits; the last is x
            y_p = attention.attend_one_position(ap, keys, values, scale * x[:, :, i, j], i, j, W, False, 3)
        np.testing.assert_allclose(y_p, y[:, :, i, j], rtol=1e-12, atol=1e-13)
