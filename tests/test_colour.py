"""Colour models: R -> G -> B within a pixel (colour.py, masks.subpixel_mask).

* the sub-pixel masks: one colour group is the grey causal mask; three groups give the
  documented centre blocks;
* the autoregressive guarantee at the sub-pixel level, for every colour model, by
  perturbation under Hypothesis: the logits of colour k at p are bit-identical when any
  sub-pixel after (p, k) changes -- every later pixel, and colours k..B of p itself;
* the positive controls: R_p moves the logits of G_p and B_p, G_p those of B_p, and
  the pixel before p those of R_p (so the test cannot pass on a network that ignores
  its input);
* the negative control: a deliberately wrong mask (mask A that lets a colour read its
  own colour at p) is caught by the same check;
* float64 gradients; cached sampling sub-pixel by sub-pixel equal to the naive loop,
  fresh and completing; the colour losses are the mean of the per-colour grey losses.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pixelcnn_np.colour as colour
from pixelcnn_np import pixelcnn
from gradcheck import check_directional, model_loss, positive_params, random_params
from pixelcnn_np.masks import causal_mask, channel_groups, horizontal_mask, subpixel_mask
from pixelcnn_np.models import MODELS, get_model, loss_and_grad, make_config, per_pixel_nll
from pixelcnn_np.sampling import sample_cached, sample_naive

COLOUR_NAMES = sorted(MODELS)                  # every model has a colour version
PIXELS = ("binary", "8bit", "logistic")
SMALL = {"hidden": 6, "n_layers": 2, "n_blocks": 2, "dilations": [1, 2], "kernel_size": 3,
         "first_kernel_size": 3, "attention_every": 1, "key_channels": 3}


def colour_config(name, pixels="binary", n_classes=0, height=4, width=5, **overrides):
    keys = MODELS[name].DEFAULTS
    kwargs = {k: v for k, v in SMALL.items() if k in keys}
    kwargs.update(overrides)
    return make_config(name, pixels=pixels, n_classes=n_classes, height=height, width=width,
                       channels=3, **kwargs)


def labels_for(config, n, rng):
    return rng.integers(0, config["n_classes"], size=n) if config.get("n_classes") else None


# ----------------------------------------------------------------------------------
# The masks
# ----------------------------------------------------------------------------------

@given(k=st.sampled_from([1, 3, 5, 7]), mask_type=st.sampled_from(["A", "B"]),
       o=st.integers(1, 4), c=st.integers(1, 4))
def test_one_colour_group_is_the_grey_causal_mask(k, mask_type, o, c):
    m = subpixel_mask(causal_mask(k, mask_type), mask_type, channel_groups(o, 1), channel_groups(c, 1))
    assert m.shape == (o, c, k, k)
    assert np.array_equal(m, np.broadcast_to(causal_mask(k, mask_type), m.shape))


def test_centre_blocks_of_a_three_channel_layer():
    rgb = channel_groups(3)
    a = subpixel_mask(causal_mask(3, "A"), "A", rgb, rgb)
    b = subpixel_mask(causal_mask(3, "B"), "B", rgb, rgb)
    assert np.array_equal(a[:, :, 1, 1], [[0, 0, 0], [1, 0, 0], [1, 1, 0]])
    assert np.array_equal(b[:, :, 1, 1], [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    past = causal_mask(3, "A")                                  # off the centre: the grey mask
    off = np.ones((3, 3), bool)
    off[1, 1] = False
    assert np.array_equal(a[:, :, off], np.broadcast_to(past[off], (3, 3, 8)))
    h = subpixel_mask(horizontal_mask(3, "B"), "B", rgb, rgb)   # the gated stack's row mask
    assert h[:, :, 0].sum() == 0 and h[:, :, 2].sum() == 0 and np.all(h[:, :, 1, 0] == 1)


def test_channel_groups_are_contiguous_thirds():
    g = channel_groups(64)
    assert np.bincount(g).tolist() == [22, 21, 21] and np.all(np.diff(g) >= 0)
    assert channel_groups(768).tolist() == [0] * 256 + [1] * 256 + [2] * 256
    with pytest.raises(ValueError, match="cannot be split into 3"):
        channel_groups(2)


def test_config_refuses_bad_channel_counts():
    with pytest.raises(ValueError, match="channels"):
        make_config("pixelcnn", channels=2)
    with pytest.raises(ValueError, match="hidden >= 3"):
        make_config("pixelcnn", channels=3, hidden=2)
    assert "channels" not in make_config("pixelcnn", channels=1)


# ----------------------------------------------------------------------------------
# The autoregressive guarantee, sub-pixel by sub-pixel
# ----------------------------------------------------------------------------------

def colour_logits(logits, k, i, j):
    """The logits of colour k at (i, j): (N, P)."""
    return colour.split_subpixels(logits, 3)[:, k, :, i, j]


def leaks(params, config, x, labels, p, k, rng, raise_by=None):
    """Change every sub-pixel after (p, k) -- the pixels after p, and colours k.. of p --
    to random values (or raise them by `raise_by`), and return whether the logits of
    colour k at p moved at all."""
    H, W = config["height"], config["width"]
    i, j = divmod(p, W)
    model = get_model(config)
    x2 = x.copy()
    later = (np.arange(H * W) > p).reshape(H, W)
    if raise_by is None:
        x2[:, :, later] = rng.uniform(-3, 3, size=x2[:, :, later].shape)
        x2[:, k:, i, j] = rng.uniform(-3, 3, size=x2[:, k:, i, j].shape)
    else:
        x2[:, :, later] += raise_by
        x2[:, k:, i, j] += raise_by
    a, _ = model.forward(params, x, config, labels=labels)
    b, _ = model.forward(params, x2, config, labels=labels)
    return not np.array_equal(colour_logits(a, k, i, j), colour_logits(b, k, i, j))


@pytest.mark.parametrize("name", COLOUR_NAMES)
@settings(deadline=None, max_examples=15)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_each_colour_sees_only_the_sub_pixels_before_it(name, data, seed):
    pixels = data.draw(st.sampled_from(PIXELS))
    n_classes = data.draw(st.sampled_from([0, 3])) if MODELS[name].CONDITIONAL and pixels != "logistic" else 0
    config = colour_config(name, pixels, n_classes, height=data.draw(st.integers(2, 5)),
                           width=data.draw(st.integers(2, 5)), hidden=data.draw(st.integers(3, 7)))
    rng = np.random.default_rng(seed)
    params = random_params(config, rng)
    labels = labels_for(config, 2, rng)
    x = rng.uniform(0, 1, size=(2, 3, config["height"], config["width"]))
    p = data.draw(st.integers(0, config["height"] * config["width"] - 1))
    k = data.draw(st.integers(0, 2))
    assert not leaks(params, config, x, labels, p, k, rng)


@pytest.mark.parametrize("name", COLOUR_NAMES)
@pytest.mark.parametrize("pixels", PIXELS)
def test_earlier_colours_of_the_pixel_do_reach_the_later_ones(name, pixels):
    """Positive control: with positive parameters, raising R_p raises every logit of G_p
    and of B_p, raising G_p every logit of B_p, and raising the pixel just before p every
    logit of R_p. (The logistic head's numbers are means, log-scales and mixture logits,
    all affine in the last features, so they rise too.)"""
    config = colour_config(name, pixels)
    rng = np.random.default_rng(5)
    params = positive_params(config, rng)
    model = get_model(config)
    H, W = config["height"], config["width"]
    x = rng.uniform(0, 1, size=(2, 3, H, W))
    lo, _ = model.forward(params, x, config)
    for p in range(1, H * W):
        i, j = divmod(p, W)
        for k_from, k_to in ((0, 1), (0, 2), (1, 2)):
            x2 = x.copy()
            x2[:, k_from, i, j] += 0.5
            hi, _ = model.forward(params, x2, config)
            assert np.all(colour_logits(hi, k_to, i, j) > colour_logits(lo, k_to, i, j)), (p, k_from, k_to)
        q = (i, j - 1) if j > 0 else (i - 1, j)
        x2 = x.copy()
        x2[:, 2, q[0], q[1]] += 0.5                                     # B of the pixel before p
        hi, _ = model.forward(params, x2, config)
        assert np.all(colour_logits(hi, 0, i, j) > colour_logits(lo, 0, i, j)), (p, q)


@pytest.fixture
def fresh_masks():
    """Masks are computed once per config; a test that patches them starts and ends clean."""
    from pixelcnn_np import pixelcnn
    pixelcnn.masks.cache_clear()
    yield
    pixelcnn.masks.cache_clear()


def test_a_wrong_mask_is_caught(monkeypatch, fresh_masks):
    """Negative control: a mask A whose centre lets each colour read its own colour (the
    rule of mask B) leaks colour k of p into the logits of colour k at p, and the check
    above finds it. Positive parameters and a positive change (every pre-activation
    positive, so no ReLU hides the path) make the leak certain, not likely."""
    config = colour_config("pixelcnn", "8bit")
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, size=(2, 3, config["height"], config["width"]))
    params = positive_params(config, rng)
    assert not any(leaks(params, config, x, None, p, k, rng, raise_by) for p in (0, 7) for k in range(3)
                   for raise_by in (None, 1.0))
    real = colour.subpixel_mask
    monkeypatch.setattr(colour, "subpixel_mask", lambda mask, mask_type, og, ig: real(mask, "B", og, ig))
    pixelcnn.masks.cache_clear()
    params = positive_params(config, rng)               # drawn under the wrong mask: its extra taps non-zero
    found = [leaks(params, config, x, None, 7, k, rng, raise_by=1.0) for k in range(3)]
    assert all(found), found


# ----------------------------------------------------------------------------------
# Gradients, sampling, losses
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COLOUR_NAMES)
@pytest.mark.parametrize("pixels", PIXELS)
def test_colour_gradients(name, pixels):
    config = colour_config(name, pixels, height=3, width=4)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 2 if pixels == "binary" else 256, size=(2, 3, 3, 4))
    x, loss, grads = model_loss(config, images)
    params = random_params(config, rng)
    g = grads(params)
    for key in params:
        f = lambda q, key=key: loss({**params, key: q})                      # noqa: E731
        check_directional(f, params[key], g[key], rng)
    check_directional(lambda q: loss(params, x=q), x, g["x"], rng)
    for key, m in get_model(config).masks(config).items():
        assert np.all(g[key][m == 0] == 0), key


@pytest.mark.parametrize("name", COLOUR_NAMES)
@pytest.mark.parametrize("pixels", PIXELS)
@pytest.mark.parametrize("start", [0, 7])
def test_cached_sampling_equals_naive_sub_pixel_by_sub_pixel(name, pixels, start):
    n_classes = 3 if MODELS[name].CONDITIONAL and pixels == "8bit" else 0
    config = colour_config(name, pixels, n_classes)
    rng = np.random.default_rng(8)
    params = random_params(config, rng)
    labels = labels_for(config, 2, rng)
    images = rng.integers(0, 2 if pixels == "binary" else 256, size=(2, 3, 4, 5)).astype(np.uint8)
    kw = dict(labels=labels, images=images if start else None, start=start)
    a = sample_naive(params, config, 2, np.random.default_rng(1), **kw)
    b = sample_cached(params, config, 2, np.random.default_rng(1), **kw)
    assert a.shape == (2, 3, 4, 5) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    if start:
        assert np.array_equal(a.reshape(2, 3, -1)[:, :, :start], images.reshape(2, 3, -1)[:, :, :start])
    assert len(np.unique(a)) > 1


@pytest.mark.parametrize("pixels", PIXELS)
def test_colour_loss_is_the_mean_of_the_per_colour_losses(pixels):
    config = colour_config("pixelcnn", pixels)
    grey = make_config("pixelcnn", pixels=pixels, height=4, width=5)
    rng = np.random.default_rng(4)
    P = get_model(grey).out_channels(grey)
    logits = rng.standard_normal((2, 3 * P, 4, 5))
    images = rng.integers(0, 2 if pixels == "binary" else 256, size=(2, 3, 4, 5))
    loss, dlogits = loss_and_grad(logits, images, config)
    per = [loss_and_grad(np.ascontiguousarray(logits[:, k * P:(k + 1) * P]), images[:, k], grey) for k in range(3)]
    assert np.isclose(loss, np.mean([p[0] for p in per]))
    for k in range(3):
        assert np.allclose(dlogits[:, k * P:(k + 1) * P], per[k][1] / 3)
    nll = per_pixel_nll(logits, images, config)
    assert nll.shape == (2, 3, 4, 5) and np.isclose(nll.mean(), loss)


@pytest.mark.parametrize("name", COLOUR_NAMES)
def test_colour_checkpoint_round_trip(tmp_path, name):
    """A colour checkpoint loads as the same colour model: config, weights, logits; and a
    file whose conv0 has one input channel under a colour config is refused."""
    from pixelcnn_np.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    config = colour_config(name, "8bit", 3 if MODELS[name].CONDITIONAL else 0)
    params = random_params(config, np.random.default_rng(7), np.float32)
    save_checkpoint(tmp_path / "c.npz", params, config)
    ck = load_checkpoint(tmp_path / "c.npz")
    assert ck.config == config and ck.config["channels"] == 3
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (2, 3, config["height"], config["width"])).astype(np.float32)
    labels = labels_for(config, 2, rng)
    model = get_model(config)
    np.testing.assert_array_equal(model.forward(ck.params, x, ck.config, labels=labels)[0],
                                  model.forward(params, x, config, labels=labels)[0])
    grey = {k: v for k, v in config.items() if k != "channels"}
    save_checkpoint(tmp_path / "g.npz", params, grey)                   # colour weights, grey config
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "g.npz")
