"""Tests for class conditioning (pixelcnn_np.conditioning) in every model that has it:
the label bias against a loop, its gradient against finite differences, whole-model
gradients with labels, the autoregressive guarantee with a label (the label reaches
every pixel, no pixel sees itself or a later one), cached == naive conditional
sampling, and clear errors for missing or wrong labels.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_directional, check_elementwise, dot_with
from pixelcnn_np.conditioning import check_labels, label_bias_backward, label_bias_forward
from pixelcnn_np.models import get_model, loss_and_grad, make_config, model_input
from pixelcnn_np.sampling import sample_cached, sample_naive

ARCH = {
    "pixelcnn": dict(hidden=3, n_layers=2, kernel_size=3),
    "gated": dict(hidden=3, dilations=[1, 2], kernel_size=3),
    "dilated": dict(hidden=3, dilations=[1, 2], kernel_size=3, first_kernel_size=3),
    "residual": dict(hidden=2, n_blocks=2, kernel_size=3, first_kernel_size=3),
    "attention": dict(hidden=3, n_layers=2, kernel_size=3, first_kernel_size=3, attention_every=1, key_channels=2),
}


def conditional_config(model, n_classes=4, pixels="binary", height=5, width=6):
    return make_config(model, n_classes=n_classes, pixels=pixels, height=height, width=width, **ARCH[model])


def random_params(config, rng, dtype=np.float64):
    """Init plus noise on kept taps, biases and label biases (all non-zero)."""
    params = get_model(config).init_params(config, rng, dtype)
    for name, p in params.items():
        noise = 0.2 * rng.standard_normal(p.shape)
        params[name] = (p + noise * (p != 0) if name.endswith(".w") else p + noise).astype(dtype)
    return params


def positive_params(config, rng, dtype=np.float64):
    """Kept taps uniform(0.5, 1.5) / fan-in, biases in (0.1, 0.5), masked taps zero, and
    label biases that grow with the label: V[:, k] = u + 0.3 k."""
    params = {}
    for name, w in get_model(config).init_params(config, rng, dtype).items():
        if name.endswith(".cond"):
            params[name] = rng.uniform(0.1, 0.5, size=w.shape) + 0.3 * np.arange(w.shape[1])
        elif name.endswith(".b"):
            params[name] = rng.uniform(0.1, 0.5, size=w.shape)
        else:
            kept = w != 0
            params[name] = kept * rng.uniform(0.5, 1.5, size=w.shape) / kept[0].sum()
    return {k: v.astype(dtype) for k, v in params.items()}


# ----------------------------------------------------------------------------------
# The layer
# ----------------------------------------------------------------------------------

@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 6), c=st.integers(1, 5), k=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_label_bias_equals_a_loop_and_its_gradient_is_the_adjoint(n, c, k, seed):
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((c, k))
    labels = rng.integers(0, k, size=n)
    bias, cache = label_bias_forward(labels, V)
    assert bias.shape == (n, c, 1, 1)
    for i in range(n):
        for ch in range(c):
            assert bias[i, ch, 0, 0] == V[ch, labels[i]]
    # backward: for every (n, c, H, W) upstream gradient, <dV, V'> = <da, bias(V')>
    da = rng.standard_normal((n, c, 3, 2))
    dV = label_bias_backward(da, cache)
    expected = np.zeros_like(V)
    for i in range(n):
        expected[:, labels[i]] += da[i].sum(axis=(1, 2))
    np.testing.assert_allclose(dV, expected, rtol=1e-12, atol=1e-12)
    f = dot_with(lambda V: np.broadcast_to(label_bias_forward(labels, V)[0], da.shape), da)
    check_elementwise(f, V, dV)


def test_repeated_labels_sum_their_gradients():
    """Two images with the same label both add into one column (np.add.at, not +=)."""
    V = np.zeros((2, 3))
    _, cache = label_bias_forward(np.array([1, 1]), V)
    dV = label_bias_backward(np.ones((2, 2, 1, 1)), cache)
    np.testing.assert_array_equal(dV, [[0, 2, 0], [0, 2, 0]])


# ----------------------------------------------------------------------------------
# Whole models
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", sorted(ARCH))
@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_conditional_model_gradients(model, pixels):
    config = conditional_config(model, pixels=pixels)
    module = get_model(config)
    rng = np.random.default_rng(5)
    params = random_params(config, rng)
    images = rng.integers(0, 2 if pixels == "binary" else 256, size=(3, 5, 6))
    labels = np.array([3, 0, 3])
    x = model_input(images, config, np.float64)

    def loss_of(params):
        logits, _ = module.forward(params, x, config, labels=labels)
        return loss_and_grad(logits, images, config)[0]

    logits, cache = module.forward(params, x, config, labels=labels)
    grads = module.backward(loss_and_grad(logits, images, config)[1], cache)
    assert set(grads) == set(params)
    cond = [name for name in params if name.endswith(".cond")]
    assert cond, "a conditional config must have label-bias parameters"
    for name in cond:
        assert not grads[name][:, [1, 2]].any(), "labels absent from the batch get no gradient"
        assert np.abs(grads[name]).max() > 0, name
        check_elementwise(lambda q: loss_of({**params, name: q}), params[name], grads[name])
    for name in params:
        check_directional(lambda q: loss_of({**params, name: q}), params[name], grads[name], rng)


def raster_positions(H, W):
    return np.arange(H * W).reshape(H, W)


@st.composite
def cases(draw):
    model = draw(st.sampled_from(sorted(ARCH)))
    config = conditional_config(model, n_classes=draw(st.integers(2, 5)), pixels=draw(st.sampled_from(["binary", "8bit"])),
                                height=draw(st.integers(3, 6)), width=draw(st.integers(3, 6)))
    p = draw(st.integers(0, config["height"] * config["width"] - 1))
    return config, p, draw(st.integers(0, 2**32 - 1))


@settings(deadline=None, max_examples=25)
@given(cases())
def test_the_label_reaches_every_pixel_and_no_pixel_sees_itself_or_later(case):
    """With a label, the logits at p are still bit-identical when every pixel >= p
    changes; and changing only the label changes the logits at every position, the
    first pixel (which sees no pixel at all) included."""
    config, p, seed = case
    module = get_model(config)
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    params = random_params(config, rng)
    x = rng.uniform(0, 1, size=(2, 1, H, W))
    pos = raster_positions(H, W)
    x2 = x.copy()
    x2[:, :, pos >= p] = rng.uniform(-3, 3, size=(2, 1, int((pos >= p).sum())))
    labels = np.array([0, 1])
    logits, _ = module.forward(params, x, config, labels=labels)
    logits2, _ = module.forward(params, x2, config, labels=labels)
    assert np.array_equal(logits[:, :, pos <= p], logits2[:, :, pos <= p])

    # The control: with every kept tap and bias positive, inputs >= 0 and label biases
    # rising with the label, every ReLU is the identity and every gate has positive
    # slopes, so a larger label strictly raises every logit: the label reaches every
    # position, the first pixel (which sees no pixel at all) included. (Attention is not
    # monotone: a larger input can shift the softmax weights towards smaller values. There
    # the label must still change every logit.)
    positive = positive_params(config, rng)
    lo, _ = module.forward(positive, np.abs(x), config, labels=np.array([0, 0]))
    hi, _ = module.forward(positive, np.abs(x), config, labels=np.array([1, 1]))
    if config["model"] == "attention":
        assert (hi != lo).all(), "the label must influence every pixel's distribution"
    else:
        assert (hi > lo).all(), "the label must influence every pixel's distribution"


@settings(deadline=None, max_examples=10)
@given(cases(), st.sampled_from([0.5, 1.0, 2.0]))
def test_conditional_cached_sampling_equals_naive(case, temperature):
    config, _, seed = case
    rng = np.random.default_rng(seed)
    params = random_params(config, rng)
    labels = rng.integers(0, config["n_classes"], size=3)
    a = sample_cached(params, config, 3, np.random.default_rng(seed), temperature=temperature, labels=labels)
    b = sample_naive(params, config, 3, np.random.default_rng(seed), temperature=temperature, labels=labels)
    assert np.array_equal(a, b)


def test_samples_depend_on_the_label():
    """Control for the test above: a strong label bias decides the picture. With the
    bias of label 0 pushing every pre-activation down and label 1 up, the two labels
    give different images from the same random draws."""
    config = conditional_config("gated")
    rng = np.random.default_rng(0)
    params = random_params(config, rng)
    params["out.b"][:] = 0
    params["out.w"][:] = 1.0
    for name in params:
        if name.endswith(".cond"):
            params[name][:, 0], params[name][:, 1] = -3.0, 3.0
    a = sample_cached(params, config, 2, np.random.default_rng(1), labels=np.array([0, 0]))
    b = sample_cached(params, config, 2, np.random.default_rng(1), labels=np.array([1, 1]))
    assert not np.array_equal(a, b)


# ----------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------

def test_label_errors_name_the_problem():
    config = conditional_config("pixelcnn", n_classes=3)
    with pytest.raises(ValueError, match="pass labels"):
        check_labels(None, 2, config)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        check_labels(np.array([0, 1, 2]), 2, config)
    with pytest.raises(ValueError, match="0..2"):
        check_labels(np.array([0, 3]), 2, config)
    with pytest.raises(TypeError, match="integers"):
        check_labels(np.array([0.0, 1.0]), 2, config)
    with pytest.raises(ValueError, match="unconditional"):
        check_labels(np.array([0, 1]), 2, make_config("pixelcnn"))
    params = random_params(config, np.random.default_rng(0))
    with pytest.raises(ValueError, match="pass labels"):
        sample_cached(params, config, 2, np.random.default_rng(0))
    for model in ("residual", "attention"):
        with pytest.raises(ValueError, match="unconditional"):
            get_model(make_config(model)).forward(
                get_model(make_config(model)).init_params(make_config(model), np.random.default_rng(0)),
                np.zeros((1, 1, 28, 28), np.float32), make_config(model), labels=np.array([1]))


def test_config_errors(monkeypatch):
    from pixelcnn_np.models import MODELS
    assert all(getattr(m, "CONDITIONAL", False) for m in MODELS.values()), "every model has a conditional version"
    monkeypatch.setattr(MODELS["residual"], "CONDITIONAL", False)     # a model without one is refused clearly
    with pytest.raises(ValueError, match="no class-conditional version"):
        make_config("residual", n_classes=10)
    with pytest.raises(ValueError, match="n_classes"):
        make_config("gated", n_classes=-1)
    assert "n_classes" not in make_config("gated")            # unconditional configs are unchanged
    assert "n_classes" not in make_config("gated", n_classes=0)
