"""The seed PixelCNN (van den Oord et al., 2016), forward and backward written out.

    x (N, 1, H, W)
    -> conv0: K x K mask-A conv, 1 -> h channels  -> ReLU       sees x_<p
    -> conv1..convL: K x K mask-B conv, h -> h     -> ReLU       still only x_<p
    -> out: 1 x 1 conv, h -> 1 logit (binary) or 256 logits (8-bit) per pixel

Defaults: K = 7, h = 64, L = 6 (the seed network). Every parameter lives in one flat
dict: "conv0.w" (h, 1, K, K), "conv0.b" (h,), ..., "out.w" (c_out, h, 1, 1), "out.b".

The receptive field of this stack has a *blind spot*: stacking masks that never look
right-and-up leaves a wedge of earlier pixels above and to the right that no path
reaches. The gated model fixes that.
"""

import numpy as np

from .activations import relu_backward, relu_forward
from .conditioning import check_labels, label_bias_backward, label_bias_forward, n_classes
from .validation import check_input
from .conv import conv2d_backward, conv2d_forward, masked_conv2d_backward, masked_conv2d_forward

CONDITIONAL = True     # accepts config["n_classes"] > 0 and labels (conditioning.py)

DEFAULTS = {
    "model": "pixelcnn",
    "hidden": 64,        # h, channels of every hidden layer
    "n_layers": 6,       # L, number of mask-B layers after the mask-A layer
    "kernel_size": 7,    # K, for every masked layer
    "pixels": "binary",  # "binary" (1 logit/pixel) or "8bit" (256 logits/pixel)
    "height": 28,
    "width": 28,
}


def out_channels(config):
    """Logits per pixel: 1 (Bernoulli, binary pixels) or 256 (categorical, 8-bit).
    Every model's output layer uses this."""
    return 1 if config["pixels"] == "binary" else 256


def layers(config):
    """(kernel size, mask type, dilation) of conv0, conv1, ..., in order.

    The plain PixelCNN: K x K everywhere, dilation 1, `n_layers` B layers. The same code
    runs the dilated variant (`dilated.py`), whose config names a first kernel size and
    one dilation per B layer.
    """
    K = config["kernel_size"]
    dilations = config.get("dilations", [1] * config.get("n_layers", 0))
    return [(config.get("first_kernel_size", K), "A", 1)] + [(K, "B", d) for d in dilations]


def param_shapes(config):
    """{name: shape} of every parameter, in the order the forward pass uses them."""
    h = config["hidden"]
    shapes = {}
    for l, (K, _, _) in enumerate(layers(config)):
        shapes[f"conv{l}.w"] = (h, 1 if l == 0 else h, K, K)
        shapes[f"conv{l}.b"] = (h,)
        if n_classes(config):
            shapes[f"conv{l}.cond"] = (h, n_classes(config))    # class-conditional: bias per label
    shapes["out.w"] = (out_channels(config), h, 1, 1)
    shapes["out.b"] = (out_channels(config),)
    return shapes


def init_params(config, rng, dtype=np.float32):
    """He-normal weights over the *kept* fan-in (masked taps are zero), zero biases."""
    from .masks import causal_mask

    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith((".b", ".cond")):
            params[name] = np.zeros(shape, dtype=dtype)
            continue
        O, C, K, _ = shape
        mask = np.ones((K, K)) if name == "out.w" else causal_mask(K, "A" if name == "conv0.w" else "B")
        fan_in = C * mask.sum()
        gain = 1.0 if name == "out.w" else 2.0               # ReLU layers: He, output: LeCun
        w = rng.standard_normal(shape) * np.sqrt(gain / fan_in) * mask
        params[name] = w.astype(dtype)
    return params


def forward(params, x, config, labels=None):
    """x (N, 1, H, W) float -> logits (N, 1 or 256, H, W), cache for `backward`.
    labels (N,) ints: the class of each image, for a class-conditional config only
    (it adds the learned bias conv{l}.cond[:, y] before every ReLU; see conditioning.py)."""
    check_input(x, config)
    labels = check_labels(labels, len(x), config)
    caches, cond_caches = [], []
    h = x
    for l, (_, mask_type, d) in enumerate(layers(config)):       # conv0 is mask A, the rest B
        h, c = masked_conv2d_forward(h, params[f"conv{l}.w"], params[f"conv{l}.b"], mask_type, d)  # (N, h, H, W)
        caches.append(c)
        if labels is not None:
            bias, c = label_bias_forward(labels, params[f"conv{l}.cond"])         # (N, h, 1, 1)
            h += bias
            cond_caches.append(c)
        h, c = relu_forward(h)
        caches.append(c)
    logits, c = conv2d_forward(h, params["out.w"], params["out.b"])              # (N, c_out, H, W)
    caches.append(c)
    return logits, (caches, len(caches) // 2 - 1, cond_caches)


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads, a dict with the keys of params (and, with
    need_dx, also "x": the gradient with respect to the input image, (N, 1, H, W)).
    The chain rule, layer by layer, in reverse order of `forward` (each conv's cache
    remembers its own mask and dilation)."""
    caches, L, cond_caches = cache
    caches = list(caches)                        # popped below; the caller's cache stays intact
    grads = {}
    dh, grads["out.w"], grads["out.b"] = conv2d_backward(dlogits, caches.pop())   # (N, h, H, W)
    for i in range(L, 0, -1):
        dh = relu_backward(dh, caches.pop())
        if cond_caches:
            grads[f"conv{i}.cond"] = label_bias_backward(dh, cond_caches[i])
        dh, grads[f"conv{i}.w"], grads[f"conv{i}.b"] = masked_conv2d_backward(dh, caches.pop())
    dh = relu_backward(dh, caches.pop())
    if cond_caches:
        grads["conv0.cond"] = label_bias_backward(dh, cond_caches[0])
    dx, grads["conv0.w"], grads["conv0.b"] = masked_conv2d_backward(dh, caches.pop(), need_dx=need_dx)
    if need_dx:
        grads["x"] = dx
    return grads


# ----------------------------------------------------------------------------------
# Fast (cached) sampling: every layer computed only at the pixel being sampled
# ----------------------------------------------------------------------------------

def sampler_init(params, config, n, dtype, labels=None):
    """Cached hidden maps for `sampling.sample_cached`, channels-last: one (n, H, W, h)
    per layer, each layer's precomputed `row_conv_plan`, and (conditional models) each
    layer's label bias (n, h)."""
    from .conv import row_conv_plan
    from .masks import causal_mask

    shape = (n, config["height"], config["width"], config["hidden"])
    plans = [row_conv_plan(params[f"conv{l}.w"], params[f"conv{l}.b"], causal_mask(K, mask_type), d)
             for l, (K, mask_type, d) in enumerate(layers(config))]
    cond = [params[f"conv{l}.cond"][:, labels].T if labels is not None else 0 for l in range(len(plans))]
    return {"maps": [np.zeros(shape, dtype=dtype) for _ in plans], "plans": plans, "cond": cond,
            "out_w": np.ascontiguousarray(params["out.w"][:, :, 0, 0].T)}                # (h, c_out)


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at pixel (i, j), given x sampled up to (i, j) exclusive and the
    cached maps of every layer up to (i, j) exclusive; fills the maps at (i, j).

    Layer l at (i, j) reads layer l-1 at positions <= (i, j) only (mask A: < (i, j) of
    x), so computing the layers in order at this one pixel is all that is needed.
    x (n, 1, H, W) has a single channel, so it *is* channels-last (n, H, W, 1) in memory.
    """
    from .conv import conv2d_row_nhwc

    n, _, H, W = x.shape
    h_in = x.reshape(n, H, W, 1)
    for plan, h_map, cond in zip(state["plans"], state["maps"], state["cond"]):
        a = conv2d_row_nhwc(h_in, plan, i, j, j + 1)[:, 0] + cond                  # (n, h)
        h_map[:, i, j, :] = np.maximum(a, 0)                                         # ReLU
        h_in = h_map
    return h_in[:, i, j, :] @ state["out_w"] + params["out.b"]                      # (n, c_out)


def sampler_row_done(params, state, x, i, config):
    """Nothing to do at the end of a row for the plain PixelCNN."""
