"""One check shared by the PyTorch twin tests (test_model_contract.py, grey, and
test_torch_colour.py, colour): the twin of `params` computes our logits, our loss and
our gradients of every parameter and of the input, in float64. Needs torch."""

import numpy as np
import pytest

from pixelcnn_np.models import get_model, loss_and_grad, model_input


def torch_loss(out, images, x, config):
    """The mean NLL per predicted number, from torch's own losses: each colour's P logits
    (R's first; grey: the one colour) scored as one grey image's."""
    import torch
    F = torch.nn.functional
    N, _, H, W = out.shape
    c = config.get("channels", 1)
    z = out.reshape(N * c, -1, H, W)
    if config["pixels"] == "binary":
        return F.binary_cross_entropy_with_logits(z, torch.from_numpy(x).reshape(N * c, 1, H, W))
    target = torch.from_numpy(np.asarray(images).astype(np.int64)).reshape(N * c, H, W)
    if config["pixels"] == "logistic":
        from pixelcnn_np.torch_engine import mixture_log_prob
        return -mixture_log_prob(z, target, config["n_mix"]).mean()
    return F.cross_entropy(z, target)


def assert_twin_matches(params, config, images, labels=None):
    """Build the twin (torch_bridge.to_torch), run both networks on `images`, and assert
    logits, loss and gradients agree to 1e-10. Returns the twin module."""
    import torch
    from pixelcnn_np import torch_models
    from pixelcnn_np.torch_bridge import parameter_names, to_torch

    model = get_model(config)
    x = model_input(images, config, np.float64)
    logits, cache = model.forward(params, x, config, labels=labels)
    loss, dlogits = loss_and_grad(logits, images, config)
    grads = model.backward(dlogits, cache, need_dx=True)

    module = to_torch(params, config)
    assert type(module) is getattr(torch_models, model.TORCH_TWIN)
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt, torch.from_numpy(labels)) if labels is not None else module(xt)
    loss_t = torch_loss(out, images, x, config)
    loss_t.backward()
    assert out.shape == logits.shape == (len(x), model.out_channels(config)) + x.shape[2:]
    np.testing.assert_allclose(out.detach().numpy(), logits, rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    named = dict(module.named_parameters())
    assert set(named) == set(parameter_names(config).values())
    assert all(p.dtype == torch.float64 for p in named.values())
    for ours, theirs in parameter_names(config).items():
        np.testing.assert_allclose(named[theirs].grad.numpy(), grads[ours], rtol=1e-10, atol=1e-13, err_msg=ours)
    np.testing.assert_allclose(xt.grad.numpy(), grads["x"], rtol=1e-10, atol=1e-13)
    return module
