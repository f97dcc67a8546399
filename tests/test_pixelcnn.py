"""Tests for the seed PixelCNN: its parameter shapes and masked init, the model input,
naive sampling, the training loop (including exact resume) and evaluation. What every
model must satisfy (gradients, the autoregressive guarantee, cached sampling, the
checkpoint and the PyTorch twin) is in test_model_contract.py. Every model here is tiny
(hidden <= 4, images <= 8x8)."""

import numpy as np
import pytest
import scipy.special

from gradcheck import random_params
from pixelcnn_np.adam import adam_init
from pixelcnn_np.models import loss_and_grad, make_config, model_input
from pixelcnn_np.pixelcnn import forward, init_params, param_shapes
from pixelcnn_np.sampling import sample_naive
from pixelcnn_np.train import evaluate, training_steps


def tiny_config(pixels="binary", **overrides):
    kwargs = dict(hidden=3, n_layers=2, kernel_size=3, height=5, width=5, pixels=pixels)
    kwargs.update(overrides)
    return make_config("pixelcnn", **kwargs)


# ----------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------

def test_param_shapes_and_masked_init():
    config = tiny_config("8bit", hidden=4, n_layers=1, kernel_size=5)
    shapes = param_shapes(config)
    assert shapes == {"conv0.w": (4, 1, 5, 5), "conv0.b": (4,), "conv1.w": (4, 4, 5, 5),
                      "conv1.b": (4,), "out.w": (256, 4, 1, 1), "out.b": (256,)}
    params = init_params(config, np.random.default_rng(0), np.float32)
    assert all(params[k].shape == s and params[k].dtype == np.float32 for k, s in shapes.items())
    assert not params["conv0.w"][:, :, 2, 2:].any() and not params["conv0.w"][:, :, 3:].any()
    assert params["conv1.w"][:, :, 2, 2].all() and not params["conv1.w"][:, :, 2, 3:].any()


# ----------------------------------------------------------------------------------
# Model input
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.dtype("float32"), np.dtype("float64")])
@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_model_input(pixels, dtype):
    """0/1 pixels as they are, 8-bit pixels scaled to [0, 1]; the dtype may be given as a
    scalar type or as a dtype object (sampling and evaluation pass `params[...].dtype`)."""
    images = np.array([[[0, 1], [1, 0]]], dtype=np.uint8) if pixels == "binary" else \
        np.array([[[0, 51], [255, 128]]], dtype=np.uint8)
    x = model_input(images, {"pixels": pixels}, dtype)
    assert x.shape == (1, 1, 2, 2) and x.dtype == np.dtype(dtype)
    expected = images if pixels == "binary" else images / 255
    np.testing.assert_allclose(x[:, 0], expected, rtol=1e-7)


# ----------------------------------------------------------------------------------
# Naive sampling
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_sample_naive_shape_values_and_determinism(pixels):
    config = tiny_config(pixels, n_layers=1, height=4, width=4)
    params = random_params(config, np.random.default_rng(4), scale=0.1)
    a = sample_naive(params, config, 3, np.random.default_rng(7))
    b = sample_naive(params, config, 3, np.random.default_rng(7))
    c = sample_naive(params, config, 3, np.random.default_rng(8))
    assert a.shape == (3, 4, 4) and a.dtype == np.uint8
    if pixels == "binary":
        assert set(np.unique(a)) <= {0, 1}
    assert a.max() <= 255
    np.testing.assert_array_equal(a, b)                    # same seed, same images
    assert not np.array_equal(a, c)                        # the seed is really used
    assert len(np.unique(a)) > 1


def test_sample_naive_completion_keeps_the_given_prefix():
    config = tiny_config("8bit", n_layers=1, height=4, width=4)
    params = random_params(config, np.random.default_rng(5), scale=0.1)
    given_images = np.random.default_rng(6).integers(0, 256, size=(2, 4, 4)).astype(np.uint8)
    out = sample_naive(params, config, 2, np.random.default_rng(0), images=given_images, start=6)
    np.testing.assert_array_equal(out.reshape(2, -1)[:, :6], given_images.reshape(2, -1)[:, :6])
    done = sample_naive(params, config, 2, np.random.default_rng(0), images=given_images, start=16)
    np.testing.assert_array_equal(done, given_images)


@pytest.mark.parametrize("temperature", [0, -1.0])
def test_sample_naive_rejects_non_positive_temperature(temperature):
    config = tiny_config(n_layers=1, height=4, width=4)
    params = random_params(config, np.random.default_rng(0), scale=0.1)
    with pytest.raises(ValueError, match=r"temperature must be > 0"):
        sample_naive(params, config, 1, np.random.default_rng(0), temperature=temperature)


# ----------------------------------------------------------------------------------
# Training loop and evaluation
# ----------------------------------------------------------------------------------

def striped_images(n, size, seed):
    """(n, size, size) uint8: every row all 0 or all 255. Each pixel after the first of
    its row equals its left neighbour, which a PixelCNN learns within a few steps."""
    rows = np.random.default_rng(seed).integers(0, 2, size=(n, size, 1)) * 255
    return np.broadcast_to(rows, (n, size, size)).astype(np.uint8)


TRAIN = dict(epochs=8, batch_size=16, seed=11)        # 64 images -> 4 batches/epoch, 32 steps


def train_config():
    return make_config("pixelcnn", hidden=4, n_layers=1, kernel_size=3, height=6, width=6)


def test_training_reduces_the_loss():
    config = train_config()
    images = striped_images(64, 6, seed=0)
    params = init_params(config, np.random.default_rng(0))
    steps = list(training_steps(params, adam_init(params), images, config, lr=2e-2, **TRAIN))
    losses = [s.loss for s in steps]
    assert len(steps) == 32 and steps[-1].step == 32
    assert [(s.epoch, s.batch) for s in steps[:5]] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])


@pytest.mark.parametrize("resume_after", [10, 8])       # mid-epoch, and at an epoch's end
def test_resume_gives_exactly_the_uninterrupted_run(resume_after):
    """Stop after `resume_after` steps, restart from that Step's params, optimizer state,
    epoch and batch: the final parameters are bit-identical to an uninterrupted run,
    with dynamic binarization and a step-dependent learning rate."""
    config = train_config()
    images = striped_images(64, 6, seed=1)
    kwargs = dict(TRAIN, lr=lambda step: 2e-2 * 0.97 ** step, binarization="dynamic")
    params = init_params(config, np.random.default_rng(1))
    full = list(training_steps(params, adam_init(params), images, config, **kwargs))

    stop = full[resume_after - 1]
    rest = list(training_steps(stop.params, stop.opt_state, images, config,
                               start_epoch=stop.epoch, start_batch=stop.batch, **kwargs))

    assert len(rest) == len(full) - resume_after
    assert [s.loss for s in rest] == [s.loss for s in full[resume_after:]]
    final, resumed = full[-1], rest[-1]
    assert resumed.step == final.step and resumed.opt_state["t"] == final.opt_state["t"]
    for name in final.params:
        assert np.array_equal(resumed.params[name], final.params[name]), name
        assert np.array_equal(resumed.opt_state["m"][name], final.opt_state["m"][name]), name
        assert np.array_equal(resumed.opt_state["v"][name], final.opt_state["v"][name]), name


@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_evaluate_is_the_mean_per_pixel_nll(pixels):
    config = tiny_config(pixels, n_layers=1, height=6, width=6)
    rng = np.random.default_rng(9)
    params = random_params(config, rng, scale=0.1)
    images = rng.integers(0, 256, size=(10, 6, 6)).astype(np.uint8)

    got = evaluate(params, config, images, batch_size=4)        # batches of 4, 4, 2

    targets = (images >= 128).astype(np.uint8) if pixels == "binary" else images
    logits, _ = forward(params, model_input(targets, config, np.float64), config)
    if pixels == "binary":
        z = logits[:, 0]                                        # -log p(x) = log(1 + e^z) - x z
        nll = np.logaddexp(0, z) - targets * z
    else:                                                       # -log p(x) = logsumexp(z) - z_x
        picked = np.take_along_axis(logits, targets[:, None].astype(np.intp), axis=1)[:, 0]
        nll = scipy.special.logsumexp(logits, axis=1) - picked
    assert got == pytest.approx(nll.mean(), rel=1e-12)
    assert got == pytest.approx(loss_and_grad(logits, targets, config)[0], rel=1e-12)
