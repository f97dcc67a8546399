"""Tests for class conditioning (pixelcnn_np.conditioning) in every model that has it:
the label bias against a loop, its gradient against finite differences, the label
reaching every pixel, samples following the label, and clear errors for missing or
wrong labels. Whole-model gradients with labels, the autoregressive guarantee with a
label and cached == naive conditional sampling are test_model_contract.py's.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_elementwise, dot_with, positive_params, random_params
from pixelcnn_np.conditioning import check_labels, label_bias_backward, label_bias_forward
from pixelcnn_np.models import get_model, make_config
from pixelcnn_np.sampling import sample_cached

ARCH = {
    "pixelcnn": dict(hidden=3, n_layers=2, kernel_size=3),
    "gated": dict(hidden=3, dilations=[1, 2], kernel_size=3),
    "dilated": dict(hidden=3, dilations=[1, 2], kernel_size=3, first_kernel_size=3),
    "residual": dict(hidden=2, n_blocks=2, kernel_size=3, first_kernel_size=3),
    "attention": dict(hidden=3, n_layers=2, kernel_size=3, first_kernel_size=3, attention_every=1, key_channels=2),
}


def conditional_config(model, n_classes=4, pixels="binary", height=5, width=6):
    return make_config(model, n_classes=n_classes, pixels=pixels, height=height, width=width, **ARCH[model])


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

@st.composite
def cases(draw):
    model = draw(st.sampled_from(sorted(ARCH)))
    config = conditional_config(model, n_classes=draw(st.integers(2, 5)), pixels=draw(st.sampled_from(["binary", "8bit"])),
                                height=draw(st.integers(3, 6)), width=draw(st.integers(3, 6)))
    return config, draw(st.integers(0, 2**32 - 1))


@settings(deadline=None, max_examples=25)
@given(cases())
def test_the_label_reaches_every_pixel(case):
    """Changing only the label changes the logits at every position, the first pixel
    (which sees no pixel at all) included. (That no pixel sees itself or a later one,
    labels given, is test_model_contract.py's autoregressive test.)

    With gradcheck.positive_params (every kept tap and bias positive, label biases
    rising with the label, content-free attention) and inputs >= 0 the network is
    monotone in the label biases too: a larger label strictly raises every logit."""
    config, seed = case
    module = get_model(config)
    rng = np.random.default_rng(seed)
    H, W = config["height"], config["width"]
    x = rng.uniform(0, 1, size=(2, 1, H, W))
    positive = positive_params(config, rng)
    lo, _ = module.forward(positive, x, config, labels=np.array([0, 0]))
    hi, _ = module.forward(positive, x, config, labels=np.array([1, 1]))
    assert (hi > lo).all(), "the label must influence every pixel's distribution"


def test_samples_depend_on_the_label():
    """Control for the test above: a strong label bias decides the picture. With the
    bias of label 0 pushing every pre-activation down and label 1 up, the two labels
    give different images from the same random draws."""
    config = conditional_config("gated")
    rng = np.random.default_rng(0)
    params = random_params(config, rng, scale=0.2)
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
    params = random_params(config, np.random.default_rng(0), scale=0.2)
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
