"""The PyTorch twins in colour (skipped when torch is not installed).

For every model (each has a colour version), a
colour config ("channels": 3) builds its twin through torch_bridge.to_torch: 3 input
channels, the head's 3 P outputs, and in every conv (1x1 included) the model's own
(O, C, K, K) sub-pixel mask as a buffer; the attention twin has one head per colour,
keys q < p and masked query and output projections. In float64 the twin's logits and
loss equal ours, autograd's gradients of every parameter and of the input equal our
backward's, and from_torch gives back the very arrays and config, in either dtype.
What the masks must guarantee is proved on our side (test_colour.py); this checks that
two independent implementations of the same masked network agree.
"""

import numpy as np
import pytest

from gradcheck import random_params
from twin_check import assert_twin_matches
from pixelcnn_np.models import MODELS, get_model, make_config, model_input

torch = pytest.importorskip("torch")

COLOUR_NAMES = sorted(MODELS)                  # every model has a colour version
# (model, n_classes, pixels): conditional where the model can be, with the softmax head
CASES = [(name, k, pixels) for name in COLOUR_NAMES for pixels in ("binary", "8bit", "logistic")
         for k in ((0, 3) if MODELS[name].CONDITIONAL and pixels == "8bit" else (0,))]
CASE_IDS = [f"{name}-{'cond' if k else 'uncond'}-{pixels}" for name, k, pixels in CASES]
# A tiny colour setting for every config key a model may read; keys a model lacks are skipped.
SMALL = {"hidden": 6, "n_layers": 2, "n_blocks": 2, "dilations": [1, 2], "kernel_size": 3,
         "first_kernel_size": 3, "attention_every": 1, "key_channels": 4}


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)          # tiny problems; leave the cores to whatever else runs


def colour_config(name, pixels, n_classes=0):
    kwargs = {k: v for k, v in SMALL.items() if k in MODELS[name].DEFAULTS}
    return make_config(name, pixels=pixels, n_classes=n_classes, height=4, width=5, channels=3, **kwargs)


def random_images(config, rng, n):
    return rng.integers(0, 2 if config["pixels"] == "binary" else 256, size=(n, 3, 4, 5))


@pytest.mark.parametrize("name, n_classes, pixels", CASES, ids=CASE_IDS)
def test_colour_twin_matches_logits_and_gradients(name, n_classes, pixels):
    config = colour_config(name, pixels, n_classes)
    rng = np.random.default_rng(9)
    params = random_params(config, rng)
    images = random_images(config, rng, 3)
    labels = np.array([2, 0, 2]) if n_classes else None
    assert_twin_matches(params, config, images, labels)


@pytest.mark.parametrize("name", COLOUR_NAMES)
def test_colour_twin_masks_are_the_models(name):
    """Every masked weight of ours is multiplied in the twin by exactly our mask, and
    the colour masks are not all ones (so the comparison above is a colour one)."""
    from pixelcnn_np.torch_bridge import parameter_names, to_torch

    config = colour_config(name, "8bit")
    module = to_torch(random_params(config, np.random.default_rng(1)), config)
    buffers = dict(module.named_buffers())
    names = parameter_names(config)
    # (the "dilated" variant's namespace carries only models.CONTRACT, which lacks masks: it is pixelcnn's)
    masks = get_model(config).masks(config)
    for ours, m in masks.items():
        theirs = names[ours].rsplit(".", 1)[0] + ".mask"
        np.testing.assert_array_equal(np.broadcast_to(buffers[theirs].numpy(), m.shape), m, err_msg=ours)
    assert any(not m.all() and m.shape[-1] == 1 for m in masks.values())       # a 1x1 colour mask


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", COLOUR_NAMES)
def test_colour_round_trip(name, dtype):
    """to_torch then from_torch: the very arrays and config, no memory shared, and the
    module computes our logits (float32: to rounding)."""
    from pixelcnn_np.torch_bridge import from_torch, to_torch

    config = colour_config(name, "binary")
    model = get_model(config)
    params = random_params(config, np.random.default_rng(10), dtype)
    net = to_torch(params, config)
    back, config2 = from_torch(net)
    assert config2 == config and config2 is not config and set(back) == set(params)
    for k, p in params.items():
        assert back[k].dtype == p.dtype and np.array_equal(back[k], p) and not np.shares_memory(back[k], p), k
    x = model_input(random_images(config, np.random.default_rng(11), 2), config, dtype)
    ours, _ = model.forward(back, x, config)
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    assert theirs.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(theirs, ours, rtol=tol, atol=tol)
