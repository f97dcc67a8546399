"""Cross-checks against PyTorch in float64 (skipped when torch is not installed).

PyTorch is an independent implementation of every piece here: its conv2d with the
masked weight, its autograd, its losses, its Adam. Agreement to ~1e-8 relative in
float64 rules out any systematic error that our own reference might share. Every
registered model against its twin in torch_models.py, and the exact round trip
to_torch / from_torch, are test_model_contract.py's; here the seed PixelCNN is written
again from scratch, and the gated twin's parameter names are spelled out independently.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from pixelcnn_np.adam import adam_init, adam_step  # noqa: E402
from pixelcnn_np.conv import masked_conv2d_backward, masked_conv2d_forward  # noqa: E402
from pixelcnn_np.losses import bce_with_logits, softmax_cross_entropy  # noqa: E402
from pixelcnn_np.masks import causal_mask  # noqa: E402
from pixelcnn_np.models import loss_and_grad, make_config, model_input  # noqa: E402
from pixelcnn_np.pixelcnn import backward, forward, init_params  # noqa: E402

torch.set_num_threads(1)          # tiny problems; leave the cores to whatever else runs

RTOL, ATOL = 1e-8, 1e-12


def t(a, requires_grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)


def close(ours, theirs, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol)


def torch_loss(logits_t, images, pixels):
    """torch's mean binary cross-entropy (binary pixels) or 256-way cross-entropy (8-bit)."""
    if pixels == "binary":
        return F.binary_cross_entropy_with_logits(logits_t, t(images[:, None].astype(float)))
    return F.cross_entropy(logits_t, torch.tensor(images, dtype=torch.long))


# ----------------------------------------------------------------------------------
# Masked convolution: values and gradients
# ----------------------------------------------------------------------------------

# (1x1 mask A keeps no tap at all: test_conv.py::test_1x1_mask_a_keeps_no_tap_and_outputs_the_bias)
CONV_CASES = [("B", 1, 1)] + [(m, K, d) for m in "AB" for K, d in [(3, 1), (3, 2), (5, 1), (5, 3), (7, 2)]]


@pytest.mark.parametrize("mask_type, K, d", CONV_CASES)
def test_masked_conv_matches_torch(mask_type, K, d):
    rng = np.random.default_rng(K * 10 + d)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, K, K))
    b = rng.standard_normal(4)
    dy = rng.standard_normal((2, 4, 7, 6))
    y, cache = masked_conv2d_forward(x, w, b, mask_type, d)
    dx, dw, db = masked_conv2d_backward(dy, cache)

    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    mask = t(causal_mask(K, mask_type))
    yt = F.conv2d(xt, wt * mask, bt, padding=d * (K // 2), dilation=d)
    (yt * t(dy)).sum().backward()

    close(y, yt)
    close(dx, xt.grad)
    close(dw, wt.grad)             # d/dw of (w * mask) is mask: zero at masked taps in both
    close(db, bt.grad)


# ----------------------------------------------------------------------------------
# Losses (mean reduction)
# ----------------------------------------------------------------------------------

def test_bce_matches_torch():
    rng = np.random.default_rng(0)
    z = rng.uniform(-10, 10, size=(3, 1, 4, 5))
    x = rng.integers(0, 2, size=z.shape)
    loss, dz = bce_with_logits(z, x)
    zt = t(z, True)
    lt = F.binary_cross_entropy_with_logits(zt, t(x.astype(float)))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=RTOL)
    close(dz, zt.grad)


def test_softmax_cross_entropy_matches_torch():
    rng = np.random.default_rng(1)
    z = rng.uniform(-10, 10, size=(3, 256, 2, 3))
    targets = rng.integers(0, 256, size=(3, 2, 3))
    loss, dz = softmax_cross_entropy(z, targets)
    zt = t(z, True)
    lt = F.cross_entropy(zt, torch.tensor(targets, dtype=torch.long))
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=RTOL)
    close(dz, zt.grad)


# ----------------------------------------------------------------------------------
# The whole seed PixelCNN, written again in PyTorch from the same parameters
# ----------------------------------------------------------------------------------

class TorchPixelCNN(torch.nn.Module):
    """The network of pixelcnn_np.pixelcnn in PyTorch: mask-A conv, ReLU, L x (mask-B conv,
    ReLU), 1x1 conv. Weights are copied from our params dict; masks are buffers."""

    def __init__(self, params, config):
        super().__init__()
        self.L = config["n_layers"]
        K = config["kernel_size"]
        self.pad = K // 2
        self.weights = torch.nn.ParameterDict(
            {name.replace(".", "_"): torch.nn.Parameter(t(p)) for name, p in params.items()})
        self.register_buffer("mask_a", t(causal_mask(K, "A")))
        self.register_buffer("mask_b", t(causal_mask(K, "B")))

    def p(self, name):
        return self.weights[name.replace(".", "_")]

    def forward(self, x):
        h = F.relu(F.conv2d(x, self.p("conv0.w") * self.mask_a, self.p("conv0.b"), padding=self.pad))
        for i in range(1, self.L + 1):
            h = F.relu(F.conv2d(h, self.p(f"conv{i}.w") * self.mask_b, self.p(f"conv{i}.b"), padding=self.pad))
        return F.conv2d(h, self.p("out.w"), self.p("out.b"))


@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_pixelcnn_matches_torch(pixels):
    config = make_config("pixelcnn", hidden=4, n_layers=2, kernel_size=5, height=6, width=7, pixels=pixels)
    rng = np.random.default_rng(2)
    params = init_params(config, rng, np.float64)
    params = {k: p + 0.1 * rng.standard_normal(p.shape) * (p != 0 if k.endswith(".w") else 1)
              for k, p in params.items()}
    top = 2 if pixels == "binary" else 256
    images = rng.integers(0, top, size=(3, 6, 7))
    x = model_input(images, config, np.float64)

    logits, cache = forward(params, x, config)
    loss, dlogits = loss_and_grad(logits, images, config)
    grads = backward(dlogits, cache, need_dx=True)

    model = TorchPixelCNN(params, config)
    xt = t(x, True)
    logits_t = model(xt)
    loss_t = torch_loss(logits_t, images, pixels)
    loss_t.backward()

    close(logits, logits_t)
    assert loss == pytest.approx(loss_t.item(), rel=RTOL)
    for name in params:
        close(grads[name], model.p(name).grad, atol=1e-14)
    close(grads["x"], xt.grad, atol=1e-14)


# ----------------------------------------------------------------------------------
# Adam
# ----------------------------------------------------------------------------------

def test_adam_matches_torch_over_three_steps():
    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    grad_sequence = [{k: rng.standard_normal(p.shape) for k, p in params.items()} for _ in range(3)]
    lr, b1, b2, eps = 1e-2, 0.8, 0.99, 1e-6

    tparams = {k: torch.nn.Parameter(t(p)) for k, p in params.items()}
    opt = torch.optim.Adam(list(tparams.values()), lr=lr, betas=(b1, b2), eps=eps)
    state = adam_init(params)
    for grads in grad_sequence:
        params, state = adam_step(params, grads, state, lr, b1, b2, eps)
        for k, p in tparams.items():
            p.grad = t(grads[k])
        opt.step()
        for k in params:
            close(params[k], tparams[k], rtol=1e-12, atol=0)
    for k, p in tparams.items():
        close(state["m"][k], opt.state[p]["exp_avg"], rtol=1e-12, atol=0)
        close(state["v"][k], opt.state[p]["exp_avg_sq"], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------------
# The Gated PixelCNN through the torch bridge, its names spelled out here
# ----------------------------------------------------------------------------------

from pixelcnn_np import gated  # noqa: E402
from pixelcnn_np.torch_bridge import to_torch  # noqa: E402


def torch_parameter_name(name):
    """Our name -> the nn.Module's parameter name, spelled out here independently of
    torch_bridge: "v1.w" -> "layers.1.v.weight", "out.b" -> "out.bias"."""
    layer, kind = name.split(".")
    suffix = "weight" if kind == "w" else "bias"
    if layer == "out":
        return f"out.{suffix}"
    part = layer.rstrip("0123456789")
    return f"layers.{layer[len(part):]}.{part}.{suffix}"


def noisy_params(module, config, rng, dtype=np.float64):
    """Init plus noise on the kept taps and non-zero biases (masked taps stay zero)."""
    params = module.init_params(config, rng, dtype)
    return {k: (p + 0.1 * rng.standard_normal(p.shape) * (p != 0 if k.endswith(".w") else 1)).astype(dtype)
            for k, p in params.items()}


GATED_CASES = [("binary", 3, [1, 2, 1]), ("8bit", 3, [1, 2, 1]), ("binary", 5, [2, 1, 3])]


@pytest.mark.parametrize("pixels, K, dilations", GATED_CASES)
def test_gated_matches_torch(pixels, K, dilations):
    """to_torch builds the gated network from nn.Conv2d layers and torch's own ops
    (F.pad for the shift, chunk for the gate, F.elu); its logits and autograd gradients
    of the mean BCE / cross-entropy must equal our forward and backward."""
    config = make_config("gated", hidden=3, dilations=dilations, kernel_size=K, height=6, width=7,
                         pixels=pixels)
    rng = np.random.default_rng(K + len(dilations) + (pixels == "8bit"))
    params = noisy_params(gated, config, rng)
    top = 2 if pixels == "binary" else 256
    images = rng.integers(0, top, size=(3, 6, 7))
    x = model_input(images, config, np.float64)

    logits, cache = gated.forward(params, x, config)
    loss, dlogits = loss_and_grad(logits, images, config)
    grads = gated.backward(dlogits, cache, need_dx=True)

    model = to_torch(params, config)
    named = dict(model.named_parameters())
    assert set(named) == {torch_parameter_name(k) for k in params}
    assert all(p.dtype == torch.float64 for p in named.values())
    xt = t(x, True)
    logits_t = model(xt)
    loss_t = torch_loss(logits_t, images, pixels)
    loss_t.backward()

    close(logits, logits_t, rtol=1e-10, atol=1e-13)
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    for name in params:
        close(grads[name], named[torch_parameter_name(name)].grad, atol=1e-14)
    close(grads["x"], xt.grad, atol=1e-14)
