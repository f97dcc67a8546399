"""The model contract (pixelcnn_np/models.py), checked for every entry of MODELS, with
binary and 8-bit pixels, unconditional and class-conditional:

* the module provides every name of the contract, and its facts agree with its config;
* the default configuration runs (float32 in, float32 out, zero biases);
* the autoregressive guarantee: the logits at p ignore x_>=p (Hypothesis over configs),
  and, the positive control, earlier pixels do move them;
* float64 gradients of the whole network against finite differences (every parameter
  and the input image), masked taps getting exactly zero gradient;
* backward leaves its cache usable and skips dx unless asked;
* the receptive field lies inside the model's stated reach, and reaches its bounds;
* cached sampling draws exactly the naive loop's images, fresh and completing;
* a checkpoint round trip gives the same parameters and logits;
* the PyTorch twin computes the same logits and gradients and converts back exactly
  (skipped when torch is not installed).

A model added to MODELS is tested here without a line of this file changing: its tiny
configuration comes from SMALL, by config key, not by model name. Each model's own file
keeps only what is particular to it (its shapes, its negative controls, its exact field).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_check import assert_twin_matches
from gradcheck import check_directional, check_elementwise, model_loss, positive_params, random_params
from pixelcnn_np.checkpoint import check_params_match, load_checkpoint, save_checkpoint
from pixelcnn_np.models import CONTRACT, DISPLAY_NAMES, MODELS, describe, get_model, make_config, model_input
from pixelcnn_np.receptive_field import reach, receptive_field, theoretical_region
from pixelcnn_np.sampling import sample_cached, sample_naive

NAMES = sorted(MODELS)
CONDITIONAL_NAMES = [name for name in NAMES if MODELS[name].CONDITIONAL]
# (model, n_classes, pixels): every model, conditional where it can be, every pixel type
# (binary, 8-bit softmax; the logistic mixture head unconditional only, to keep the suite fast)
CASES = [(name, k, pixels) for name in NAMES for k in ((0, 4) if name in CONDITIONAL_NAMES else (0,))
         for pixels in ("binary", "8bit", "logistic") if not (k and pixels == "logistic")]
CASE_IDS = [f"{name}-{'cond' if k else 'uncond'}-{pixels}" for name, k, pixels in CASES]

# A tiny setting for every config key a model may read; keys a model lacks are skipped.
SMALL = {"hidden": 3, "n_layers": 2, "n_blocks": 2, "dilations": [1, 2, 1], "kernel_size": 3,
         "first_kernel_size": 5, "attention_every": 1, "key_channels": 2}


def tiny_config(name, pixels="binary", n_classes=0, height=5, width=6, **overrides):
    keys = MODELS[name].DEFAULTS
    kwargs = {k: v for k, v in SMALL.items() if k in keys}
    kwargs.update(overrides)
    return make_config(name, pixels=pixels, n_classes=n_classes, height=height, width=width, **kwargs)


@st.composite
def configs(draw, name, max_side=7):
    """A random small config of model `name`, drawn key by key from its DEFAULTS."""
    keys = MODELS[name].DEFAULTS
    kw = {}
    if "hidden" in keys:
        kw["hidden"] = draw(st.integers(1, 3))
    if "n_layers" in keys:
        kw["n_layers"] = draw(st.integers(0, 3))
    if "n_blocks" in keys:
        kw["n_blocks"] = draw(st.integers(1, 2))
    if "dilations" in keys:
        kw["dilations"] = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    if "kernel_size" in keys:      # without a first_kernel_size it is also the first layer's: a 1x1 there sees nothing
        kw["kernel_size"] = draw(st.sampled_from([1, 3, 5] if "first_kernel_size" in keys else [3, 5]))
    if "first_kernel_size" in keys:
        kw["first_kernel_size"] = draw(st.sampled_from([3, 5, 7]))
    if "attention_every" in keys:
        kw["attention_every"] = draw(st.integers(0, 2))
    if "key_channels" in keys:
        kw["key_channels"] = draw(st.integers(1, 3))
    k = draw(st.sampled_from([0, 2, 4])) if MODELS[name].CONDITIONAL else 0
    return make_config(name, pixels=draw(st.sampled_from(["binary", "8bit"])), n_classes=k,
                       height=draw(st.integers(2, max_side)), width=draw(st.integers(2, max_side)), **kw)


def labels_for(config, n, rng):
    return rng.integers(0, config["n_classes"], size=n) if config.get("n_classes") else None


def random_images(config, rng, n):
    """(n, H, W) integer pixels: 0/1 for binary, 0..255 for 8-bit."""
    return rng.integers(0, 2 if config["pixels"] == "binary" else 256, size=(n, config["height"], config["width"]))


def raster_positions(H, W):
    return np.arange(H * W).reshape(H, W)


# ----------------------------------------------------------------------------------
# The module provides the contract
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_module_provides_every_name_of_the_contract(name):
    model = MODELS[name]
    missing = [c for c in CONTRACT if not hasattr(model, c)]
    assert not missing, f"{name} lacks {missing}"
    for c in CONTRACT:
        if c.isupper():
            assert not callable(getattr(model, c)), c
        else:
            assert callable(getattr(model, c)), c
    config = make_config(name)
    assert model.DEFAULTS["model"] == name and config == model.DEFAULTS
    assert get_model(config) is model                         # the registry hands back the module
    assert isinstance(model.DISPLAY_NAME, str) and model.DISPLAY_NAME
    assert DISPLAY_NAMES[name] == model.DISPLAY_NAME and describe(config).startswith(model.DISPLAY_NAME)
    assert model.LAYERS_KEY is None or model.LAYERS_KEY in model.DEFAULTS
    assert (model.LAYERS_KEY is None) == ("dilations" in model.DEFAULTS)     # layers counted, or listed
    assert isinstance(model.TORCH_TWIN, str) and model.TORCH_TWIN.isidentifier()
    assert isinstance(model.CONDITIONAL, bool)
    assert model.out_channels(config) == 1 and model.out_channels(make_config(name, pixels="8bit")) == 256
    assert model.out_channels(make_config(name, pixels="logistic", n_mix=4)) == 12
    up, left, right = model.reach(config)
    assert all(isinstance(v, (int, np.integer)) and v >= 0 for v in (up, left, right))
    assert reach(config) == (up, left, right)                 # receptive_field asks the model
    names = model.torch_parameter_names(config)
    assert set(names) == set(model.param_shapes(config)) and len(set(names.values())) == len(names)


@pytest.mark.parametrize("name", NAMES)
def test_default_config_runs(name):
    """The default configuration: float32 parameters (float64 on request), zero biases
    and label biases, names in the order of param_shapes, float32 logits on one image."""
    model = MODELS[name]
    config = make_config(name, n_classes=10 if model.CONDITIONAL else 0)
    shapes = model.param_shapes(config)
    params = model.init_params(config, np.random.default_rng(0))
    assert list(params) == list(shapes)
    for k, p in params.items():
        assert p.shape == shapes[k] and p.dtype == np.float32, k
        if k.endswith((".b", ".cond")):
            assert not p.any(), k
        else:
            assert p.any(), k
    assert all(p.dtype == np.float64 for p in model.init_params(config, np.random.default_rng(0), np.float64).values())
    again = model.init_params(config, np.random.default_rng(0))
    assert all(np.array_equal(again[k], params[k]) for k in params)           # a seed is a network
    x = np.random.default_rng(1).integers(0, 2, size=(1, 1, 28, 28)).astype(np.float32)
    labels = np.array([3]) if config.get("n_classes") else None
    logits, _ = model.forward(params, x, config, labels=labels)
    assert logits.shape == (1, 1, 28, 28) and logits.dtype == np.float32


# ----------------------------------------------------------------------------------
# The autoregressive guarantee, and its positive control
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@settings(deadline=None, max_examples=25)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_logits_ignore_the_current_and_future_pixels(name, data, dtype, seed):
    """Logits at every raster position <= p are bit-identical when every input pixel at a
    position >= p changes (labels fixed): the network predicts x_p from x_<p only.

    The control, so that this cannot pass on a network that ignores its input: with
    `positive_params` raising the pixel just above p (which every model reads through
    its first layer) strictly raises every logit at p; at p = 0, where there is no
    earlier pixel, no image changes them."""
    config = data.draw(configs(name, max_side=8))
    H, W = config["height"], config["width"]
    p = data.draw(st.integers(0, H * W - 1))
    model = get_model(config)
    rng = np.random.default_rng(seed)
    labels = labels_for(config, 2, rng)
    params = random_params(config, rng, dtype)
    x = rng.uniform(0, 1, size=(2, 1, H, W)).astype(dtype)
    pos = raster_positions(H, W)
    x2 = x.copy()
    x2[:, :, pos >= p] = rng.uniform(-3, 3, size=(2, 1, int((pos >= p).sum()))).astype(dtype)
    logits, _ = model.forward(params, x, config, labels=labels)
    logits2, _ = model.forward(params, x2, config, labels=labels)
    assert logits.dtype == dtype and logits.shape == (2, model.out_channels(config), H, W)
    assert np.array_equal(logits[:, :, pos <= p], logits2[:, :, pos <= p])

    positive = positive_params(config, rng, dtype)
    i, j = divmod(p, W)
    lo, _ = model.forward(positive, x, config, labels=labels)
    if i > 0:
        up = x.copy()
        up[:, 0, i - 1, j] += 0.5
        hi, _ = model.forward(positive, up, config, labels=labels)
        assert np.all(hi[:, :, i, j] > lo[:, :, i, j])
    if p == 0:
        other, _ = model.forward(positive, rng.uniform(0, 1, size=x.shape).astype(dtype), config, labels=labels)
        assert np.array_equal(other[:, :, 0, 0], lo[:, :, 0, 0])


@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_every_earlier_neighbour_moves_the_logits(name, n_classes, pixels):
    """The control, at every pixel of a small image: the pixel just left of p (in column
    0, the one just above) raises every logit at p (positive parameters, see above)."""
    config = tiny_config(name, pixels, n_classes)
    model = get_model(config)
    rng = np.random.default_rng(3)
    params = positive_params(config, rng)
    labels = labels_for(config, 2, rng)
    H, W = config["height"], config["width"]
    x = rng.uniform(0, 1, size=(2, 1, H, W))
    lo, _ = model.forward(params, x, config, labels=labels)
    for p in range(1, H * W):
        i, j = divmod(p, W)
        q = (i, j - 1) if j > 0 else (i - 1, j)
        x2 = x.copy()
        x2[:, 0, q[0], q[1]] += 0.5
        hi, _ = model.forward(params, x2, config, labels=labels)
        assert np.all(hi[:, :, i, j] > lo[:, :, i, j]), (p, q)


# ----------------------------------------------------------------------------------
# Gradients of the whole network (float64, finite differences)
# ----------------------------------------------------------------------------------

ELEMENTWISE_LIMIT = 160      # biases, and parameters with at most this many entries, are checked entry by entry


@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_model_gradients(name, n_classes, pixels):
    """Directional checks (3 random directions) of every parameter and of the input,
    elementwise checks of every bias, every parameter with <= ELEMENTWISE_LIMIT entries
    and the input. With labels [3, 0, 3], the label-bias columns of the absent labels 1 and 2
    get exactly zero gradient; masked taps (zero at init) get exactly zero gradient, so
    they stay zero under any optimizer."""
    config = tiny_config(name, pixels, n_classes)
    model = get_model(config)
    rng = np.random.default_rng(sum(map(ord, name)) + n_classes + ("binary", "8bit", "logistic").index(pixels))
    params = random_params(config, rng)
    init = model.init_params(config, np.random.default_rng(0), np.float64)
    images = random_images(config, rng, 3)
    labels = np.array([3, 0, 3]) if n_classes else None
    x, loss_of, grads_of = model_loss(config, images, labels)             # x (3, 1, 5, 6)
    grads = grads_of(params)
    assert set(grads) == set(params) | {"x"}
    assert any(k.endswith(".cond") for k in params) == bool(n_classes)
    for k, p in params.items():
        assert grads[k].shape == p.shape and grads[k].dtype == np.float64, k
        assert np.abs(grads[k]).max() > 0, k
        if k.endswith(".w"):
            assert not grads[k][init[k] == 0].any(), f"{k}: a masked tap has a gradient"
        if k.endswith(".cond"):
            assert not grads[k][:, [1, 2]].any(), f"{k}: labels absent from the batch get no gradient"
        f = lambda q, k=k: loss_of({**params, k: q})                  # noqa: E731
        check_directional(f, p, grads[k], rng)
        if p.ndim == 1 or p.size <= ELEMENTWISE_LIMIT:
            check_elementwise(f, p, grads[k])
    check_directional(lambda x: loss_of(params, x), x, grads["x"], rng)
    check_elementwise(lambda x: loss_of(params, x), x, grads["x"])


@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_backward_skips_dx_by_default_and_keeps_the_cache(name, n_classes, pixels):
    config = tiny_config(name, pixels, n_classes)
    model = get_model(config)
    rng = np.random.default_rng(4)
    params = random_params(config, rng)
    x = rng.uniform(0, 1, size=(2, 1, config["height"], config["width"]))
    logits, cache = model.forward(params, x, config, labels=labels_for(config, 2, rng))
    dlogits = rng.standard_normal(logits.shape)
    first = model.backward(dlogits, cache)
    again = model.backward(dlogits, cache, need_dx=True)
    assert "x" not in first and again["x"].shape == x.shape
    assert set(first) == set(params)
    for k in params:
        np.testing.assert_array_equal(first[k], again[k])


# ----------------------------------------------------------------------------------
# The receptive field lies within the model's reach, and reaches its bounds
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@settings(deadline=None, max_examples=10)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_receptive_field_lies_within_the_reach(name, data, seed):
    """Any config, any pixel: the input pixels with a non-zero gradient of a logit at p
    (receptive_field.receptive_field) lie in theoretical_region, built from the model's
    own `reach`, and strictly before p."""
    config = dict(data.draw(configs(name)), pixels="binary")
    config.pop("n_classes", None)
    H, W = config["height"], config["width"]
    p = data.draw(st.integers(0, H * W - 1))
    rng = np.random.default_rng(seed)
    field = receptive_field(random_params(config, rng), config, *divmod(p, W),
                            x=rng.uniform(0.1, 1.0, size=(H, W))) != 0
    assert np.all(field <= theoretical_region(config, *divmod(p, W)))
    assert not field[raster_positions(H, W) >= p].any()


@pytest.mark.parametrize("name", NAMES)
def test_receptive_field_reaches_the_bounds_of_the_reach(name):
    """On an image the stated reach (U, L, R) fits into, p = (U, L): the field touches the
    top row, the left and the right column of its region (positive parameters, so every
    path counts), and nothing outside it. A reach that grows with the image (attention:
    the whole past) is checked at the last pixel, where it must be every earlier one."""
    probe = tiny_config(name)
    U, L, R = reach(probe)
    config = tiny_config(name, height=U + 1, width=L + R + 1)
    if reach(config) == (U, L, R):
        i, j = U, L
    else:
        U, L, R = reach(config)
        i, j = config["height"] - 1, config["width"] - 1
    rng = np.random.default_rng(5)
    H, W = config["height"], config["width"]
    field = receptive_field(positive_params(config, rng), config, i, j, x=rng.uniform(0.1, 1.0, size=(H, W))) != 0
    region = theoretical_region(config, i, j)
    assert np.all(field <= region)
    assert field[max(0, i - U)].any(), "the top row of the reach"
    assert field[:, max(0, j - L)].any(), "the left column of the reach"
    assert field[:, min(W - 1, j + R)].any(), "the right column of the reach"


# ----------------------------------------------------------------------------------
# Cached sampling draws exactly the naive loop's images
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@settings(deadline=None, max_examples=12)
@given(data=st.data(), n=st.integers(1, 3), temperature=st.sampled_from([0.5, 1.0, 2.0]),
       seed=st.integers(0, 2**31))
def test_cached_equals_naive(name, data, n, temperature, seed):
    """Both samplers consume one uniform per image per pixel in raster order: with the
    same seed they draw identical images (and labels fix the class of each)."""
    config = data.draw(configs(name, max_side=5))
    rng = np.random.default_rng(seed)
    params = random_params(config, rng)
    labels = labels_for(config, n, rng)
    naive = sample_naive(params, config, n, np.random.default_rng(seed), temperature=temperature, labels=labels)
    cached = sample_cached(params, config, n, np.random.default_rng(seed), temperature=temperature, labels=labels)
    assert cached.shape == (n, config["height"], config["width"]) and cached.dtype == np.uint8
    np.testing.assert_array_equal(cached, naive)


@pytest.mark.parametrize("start", [0, 13, 29])
@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_cached_equals_naive_for_completions(name, n_classes, pixels, start):
    """Completing given images from raster position `start` (5x6 images: start 29 leaves
    one pixel): the two samplers agree, the given prefix is kept, the rest is drawn."""
    config = tiny_config(name, pixels, n_classes)
    rng = np.random.default_rng(6 + start)
    params = random_params(config, rng)
    labels = labels_for(config, 3, rng)
    given_images = random_images(config, rng, 3)
    naive = sample_naive(params, config, 3, np.random.default_rng(1), images=given_images, start=start, labels=labels)
    cached = sample_cached(params, config, 3, np.random.default_rng(1), images=given_images, start=start,
                           labels=labels)
    np.testing.assert_array_equal(cached, naive)
    np.testing.assert_array_equal(cached.reshape(3, -1)[:, :start], given_images.reshape(3, -1)[:, :start])
    if start < 29:
        assert len(np.unique(cached.reshape(3, -1)[:, start:])) > 1          # not a constant image


# ----------------------------------------------------------------------------------
# Checkpoint round trip
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_checkpoint_round_trip(tmp_path, name, n_classes, pixels):
    config = tiny_config(name, pixels, n_classes)
    model = get_model(config)
    params = random_params(config, np.random.default_rng(7), np.float32)
    save_checkpoint(tmp_path / "c.npz", params, config)
    ck = load_checkpoint(tmp_path / "c.npz")
    assert ck.config == config and get_model(ck.config) is model
    check_params_match(ck.params, model.param_shapes(ck.config))
    assert set(ck.params) == set(params)
    for k in params:
        assert ck.params[k].dtype == np.float32, k
        np.testing.assert_array_equal(ck.params[k], params[k])
    rng = np.random.default_rng(8)
    x = rng.integers(0, 2, (2, 1, config["height"], config["width"])).astype(np.float32)
    labels = labels_for(config, 2, rng)
    np.testing.assert_array_equal(model.forward(ck.params, x, ck.config, labels=labels)[0],
                                  model.forward(params, x, config, labels=labels)[0])


def test_the_shipped_pretrained_model_loads():
    """pixelcnn_np/pretrained.npz keeps loading, under the parameter names it was saved with."""
    from pathlib import Path
    ck = load_checkpoint(Path(__import__("pixelcnn_np").__file__).parent / "pretrained.npz")
    model = get_model(ck.config)
    assert set(ck.params) == set(model.param_shapes(ck.config))
    x = np.zeros((1, 1, ck.config["height"], ck.config["width"]), dtype=ck.params["out.w"].dtype)
    assert np.isfinite(model.forward(ck.params, x, ck.config)[0]).all()


# ----------------------------------------------------------------------------------
# The PyTorch twin (float64)
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_matches_its_torch_twin(name, n_classes, pixels):
    """torch_bridge.to_torch builds the model's twin (its TORCH_TWIN in torch_models.py):
    the same logits and loss, and autograd's gradients of every parameter and of the
    input equal our backward's; from_torch gives back the very arrays and config."""
    torch = pytest.importorskip("torch")
    from pixelcnn_np.torch_bridge import from_torch
    torch.set_num_threads(1)

    config = tiny_config(name, pixels, n_classes)
    rng = np.random.default_rng(9)
    params = random_params(config, rng)
    images = random_images(config, rng, 3)
    labels = np.array([3, 0, 3]) if n_classes else None
    module = assert_twin_matches(params, config, images, labels)

    back, config2 = from_torch(module)
    assert config2 == config and set(back) == set(params)
    for k in params:
        assert back[k].dtype == params[k].dtype
        np.testing.assert_array_equal(back[k], params[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_from_torch_inverts_to_torch(name, n_classes, pixels, dtype):
    """Exact round trip in either dtype, no array shared between the two sides, and the
    module computes our logits (float32: to rounding)."""
    torch = pytest.importorskip("torch")
    from pixelcnn_np.torch_bridge import from_torch, to_torch
    torch.set_num_threads(1)

    config = tiny_config(name, pixels, n_classes)
    model = get_model(config)
    params = random_params(config, np.random.default_rng(10), dtype)
    net = to_torch(params, config)
    params2, config2 = from_torch(net)
    assert config2 == config and config2 is not config
    assert set(params2) == set(params)
    for k, p in params.items():
        assert params2[k].dtype == p.dtype and params2[k].shape == p.shape, k
        assert np.array_equal(params2[k], p), k
        assert not np.shares_memory(params2[k], p), k
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for p in params.values():
        p += 1                                       # changing our arrays leaves the module alone
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    rng = np.random.default_rng(11)
    x = model_input(random_images(config, rng, 2), config, dtype)
    labels = labels_for(config, 2, rng)
    ours, _ = model.forward(params2, x, config, labels=labels)
    with torch.no_grad():
        theirs = (net(torch.from_numpy(x), torch.from_numpy(labels)) if n_classes else net(torch.from_numpy(x))).numpy()
    assert theirs.dtype == dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-10 if dtype == np.float64 else 1e-4,
                               atol=1e-12 if dtype == np.float64 else 1e-5)
