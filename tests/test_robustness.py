"""Bad input gets a clear error naming the problem; a NaN stops training with the step
and the layer; nothing is accepted silently."""

import numpy as np
import pytest

from pixelcnn_np.adam import adam_init
from pixelcnn_np.models import MODELS, get_model, make_config
from pixelcnn_np.train import NonFiniteError, check_finite, training_steps


def tiny(name, **kw):
    base = {"hidden": 2, "kernel_size": 3, "height": 5, "width": 5}
    if name in ("gated", "dilated"):
        base["dilations"] = [1]
    return make_config(name, **base, **kw)


BAD_INPUTS = [
    (lambda: np.zeros((2, 1, 5, 4), np.float32), ValueError, "shape"),
    (lambda: np.zeros((2, 2, 5, 5), np.float32), ValueError, "shape"),
    (lambda: np.zeros((1, 5, 5), np.float32), ValueError, "4-D"),
    (lambda: np.zeros((2, 1, 5, 5), np.int64), TypeError, "float32 or float64"),
    (lambda: np.zeros((2, 1, 5, 5), np.float16), TypeError, "float32 or float64"),
    (lambda: np.full((1, 1, 5, 5), np.nan, np.float32), ValueError, "non-finite"),
    (lambda: np.full((1, 1, 5, 5), np.inf, np.float64), ValueError, "non-finite"),
    (lambda: [[[[0.0] * 5] * 5]], TypeError, "numpy array"),
]


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("make, error, words", BAD_INPUTS)
def test_every_model_rejects_bad_input(name, make, error, words):
    config = tiny(name)
    model = get_model(config)
    params = model.init_params(config, np.random.default_rng(0))
    with pytest.raises(error, match=words):
        model.forward(params, make(), config)


@pytest.mark.parametrize("overrides, words", [
    ({"pixels": "16bit"}, "pixels"),
    ({"hidden": 0}, "hidden"),
    ({"hidden": 2.5}, "hidden"),
    ({"kernel_size": 4}, "odd"),
    ({"height": -1}, "height"),
])
def test_bad_configs(overrides, words):
    with pytest.raises(ValueError, match=words):
        make_config("pixelcnn", **overrides)


def test_unknown_model_and_unknown_key():
    with pytest.raises(ValueError, match="unknown model"):
        make_config("transformer")
    with pytest.raises(ValueError, match="unknown config key"):
        make_config("pixelcnn", depth=3)
    with pytest.raises(ValueError, match="dilations"):
        make_config("gated", dilations=[1, 0])


def test_a_nan_loss_stops_training_naming_the_step():
    config = tiny("pixelcnn")
    model = get_model(config)
    params = model.init_params(config, np.random.default_rng(0))
    params["out.b"] = np.array([np.nan], np.float32)            # a corrupted parameter
    images = np.random.default_rng(0).integers(0, 256, (8, 5, 5)).astype(np.uint8)
    steps = training_steps(params, adam_init(params), images, config, epochs=1, batch_size=4, lr=1e-3, seed=0)
    with pytest.raises(NonFiniteError, match="step 1: the loss is nan"):
        next(steps)


def test_a_non_finite_gradient_is_named_by_layer():
    grads = {"conv0.w": np.zeros(3), "conv1.w": np.array([0.0, np.inf]), "out.b": np.zeros(1)}
    with pytest.raises(NonFiniteError, match="step 7: the gradient of 'conv1.w'"):
        check_finite(0.5, grads, step=7)
    check_finite(0.5, {"a": np.zeros(2)}, step=1)                # finite: no error


def test_a_huge_learning_rate_is_caught_before_it_corrupts_the_weights():
    """With an absurd learning rate the run must stop at the first non-finite value,
    and every Step it yielded before must hold finite parameters."""
    config = tiny("pixelcnn")
    model = get_model(config)
    params = model.init_params(config, np.random.default_rng(0))
    images = np.random.default_rng(1).integers(0, 256, (64, 5, 5)).astype(np.uint8)
    steps = training_steps(params, adam_init(params), images, config, epochs=50, batch_size=4, lr=1e30, seed=0)
    seen = 0
    with pytest.raises(NonFiniteError, match=r"step \d+: "), np.errstate(over="ignore", invalid="ignore"):
        for s in steps:
            assert all(np.isfinite(p).all() for p in s.params.values())
            seen += 1
    assert seen < 50 * 16
