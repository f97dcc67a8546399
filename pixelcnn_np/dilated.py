"""A PixelCNN whose mask-B convolutions are dilated: the plain stack, reaching further.

    x (N, 1, H, W)
    -> conv0: F x F mask-A conv, 1 -> h channels, dilation 1   -> ReLU    sees x_<p
    -> conv_l (l = 1..L): K x K mask-B conv, h -> h, dilation d_l -> ReLU  still only x_<p
    -> out: 1 x 1 conv, h -> 1 logit (binary) or 256 logits (8-bit) per pixel

A dilated tap (ky, kx) reads the input d (ky - r), d (kx - r) pixels away (r = K // 2,
see `conv.py`), so a 3x3 kernel with dilation d covers a (2d + 1) x (2d + 1) window
with 9 weights. Dilation does not touch the mask: it only spreads the *kept* taps
apart, so the output at p still reads hidden positions <= p and x_<p only.

Defaults: F = 7, K = 3, h = 64, dilations 1, 2, 4, 8, 1, 2 (L = 6). Parameters, one
flat dict: "conv0.w" (h, 1, F, F), "conv0.b" (h,), "conv{l}.w" (h, h, K, K),
"conv{l}.b" (h,), "out.w" (c_out, h, 1, 1), "out.b" (c_out,).

Receptive field
---------------
Write an offset as (u rows up, v columns right): x[i - u, j + v] for output p = (i, j),
r0 = F // 2 and r = K // 2. Layer 0 reads the offsets

    A   = {(u, v): 1 <= u <= r0, |v| <= r0}  U  {(0, v): -r0 <= v <= -1}
    B_l = {(d_l k, d_l m): 1 <= k <= r, |m| <= r}  U  {(0, d_l m): -r <= m <= 0}

for mask-B layer l. Composing layers adds offsets, so the logit at p depends on x at
exactly the offsets of the Minkowski sum A + B_1 + ... + B_L (away from the image
border, where zero padding cuts paths; ReLUs and the 1x1 head change nothing). Its
extent, with R = r0 + r * sum_l d_l:

    rows above               R = F // 2 + (K // 2) * sum_l d_l     (defaults: 3 + 18 = 21)
    columns to the left      R, in row i and in the rows above
    columns to the right     u rows up: min(r0 + r (u - 1), R)      (defaults: min(u + 2, 21))

(farthest pixels; the last line for F >= K, as in the defaults). The right edge is the
*blind spot*: the first layer moves at most r0 columns right, and only by moving up a
row; every later layer moves at most r columns right per row it moves up. So the wedge
of earlier pixels above p and right of that diagonal is never reached: one row above p
the defaults see columns j - 21 .. j + 3, and the pixels j + 4 .. j + 21 of that row,
although they come before p, are in the blind spot. Dilation widens the field; it does
not fill the wedge (the gated model does).

For K = 3 and F >= 3 the field is exactly the full region within those bounds:

    row i:                   columns j - R .. j - 1
    row i - u, 1 <= u <= R:  columns j - R .. j + min(r0 + u - 1, R)

provided the dilations leave no gaps: every integer 0 .. sum_l d_l is the sum of some
of them (1, 2, 4, 8 are binary digits, so the defaults qualify). Otherwise the field
has holes: dilations [4] after a 3x3 first layer skip the pixels 2, 3 and 4 left of p.
tests/test_dilated.py checks both the region and the Minkowski sum against the pixels
where our input gradient is non-zero.
"""

import numpy as np

from .activations import relu_backward, relu_forward
from .validation import check_input
from .conv import conv2d_backward, conv2d_forward, masked_conv2d_backward, masked_conv2d_forward

DEFAULTS = {
    "model": "dilated",
    "hidden": 64,                       # h, channels of every hidden layer
    "dilations": [1, 2, 4, 8, 1, 2],    # d_l, one mask-B layer per entry
    "kernel_size": 3,                   # K, for the mask-B layers
    "first_kernel_size": 7,             # F, for the mask-A layer (dilation 1)
    "pixels": "binary",                 # "binary" (1 logit/pixel) or "8bit" (256 logits/pixel)
    "height": 28,
    "width": 28,
}


def out_channels(config):
    return 1 if config["pixels"] == "binary" else 256


def param_shapes(config):
    """{name: shape} of every parameter, in the order the forward pass uses them."""
    h, K, F = config["hidden"], config["kernel_size"], config["first_kernel_size"]
    shapes = {"conv0.w": (h, 1, F, F), "conv0.b": (h,)}
    for l in range(1, len(config["dilations"]) + 1):
        shapes[f"conv{l}.w"] = (h, h, K, K)
        shapes[f"conv{l}.b"] = (h,)
    shapes["out.w"] = (out_channels(config), h, 1, 1)
    shapes["out.b"] = (out_channels(config),)
    return shapes


def init_params(config, rng, dtype=np.float32):
    """He-normal weights over the *kept* fan-in (masked taps are zero), zero biases.
    Dilation changes where taps read, not how many there are: same fan-in."""
    from .masks import causal_mask

    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(".b"):
            params[name] = np.zeros(shape, dtype=dtype)
            continue
        O, C, K, _ = shape
        mask = np.ones((K, K)) if name == "out.w" else causal_mask(K, "A" if name == "conv0.w" else "B")
        fan_in = C * mask.sum()
        gain = 1.0 if name == "out.w" else 2.0               # ReLU layers: He, output: LeCun
        w = rng.standard_normal(shape) * np.sqrt(gain / fan_in) * mask
        params[name] = w.astype(dtype)
    return params


def forward(params, x, config):
    """x (N, 1, H, W) float -> logits (N, 1 or 256, H, W), cache for `backward`."""
    check_input(x, config)
    dil = config["dilations"]
    caches = []
    h, c = masked_conv2d_forward(x, params["conv0.w"], params["conv0.b"], "A")        # (N, h, H, W)
    caches.append(c)
    h, c = relu_forward(h)
    caches.append(c)
    for l in range(1, len(dil) + 1):
        h, c = masked_conv2d_forward(h, params[f"conv{l}.w"], params[f"conv{l}.b"], "B", dil[l - 1])  # (N, h, H, W)
        caches.append(c)
        h, c = relu_forward(h)
        caches.append(c)
    logits, c = conv2d_forward(h, params["out.w"], params["out.b"])                   # (N, c_out, H, W)
    caches.append(c)
    return logits, (caches, len(dil))


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads, a dict with the keys of params (and, with
    need_dx, "x": the gradient with respect to the input image, (N, 1, H, W)).
    The chain rule, layer by layer, in reverse order of `forward`; each conv's cache
    remembers its own dilation."""
    caches, L = cache
    caches = list(caches)                        # popped below; the caller's cache stays intact
    grads = {}
    dh, grads["out.w"], grads["out.b"] = conv2d_backward(dlogits, caches.pop())      # (N, h, H, W)
    for l in range(L, 0, -1):
        dh = relu_backward(dh, caches.pop())
        dh, grads[f"conv{l}.w"], grads[f"conv{l}.b"] = masked_conv2d_backward(dh, caches.pop())
    dh = relu_backward(dh, caches.pop())
    dx, grads["conv0.w"], grads["conv0.b"] = masked_conv2d_backward(dh, caches.pop(), need_dx=need_dx)
    if need_dx:
        grads["x"] = dx
    return grads


# ----------------------------------------------------------------------------------
# Fast (cached) sampling: every layer computed only at the pixel being sampled
# ----------------------------------------------------------------------------------

def sampler_init(params, config, n, dtype):
    """Cached hidden maps for `sampling.sample_cached`: one (n, h, H, W) per layer."""
    shape = (n, config["hidden"], config["height"], config["width"])
    return [np.zeros(shape, dtype=dtype) for _ in range(len(config["dilations"]) + 1)]


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at pixel (i, j), given x sampled up to (i, j) exclusive and the
    cached maps of every layer up to (i, j) exclusive; fills the maps at (i, j).

    As in the plain PixelCNN: layer l at (i, j) reads layer l - 1 at positions <= (i, j)
    only (a dilated tap lands further away, still in the past), so computing the layers
    in order at this one pixel is all that is needed.
    """
    from .conv import conv2d_row
    from .masks import causal_mask

    F, K = config["first_kernel_size"], config["kernel_size"]
    layers = [(causal_mask(F, "A"), 1)] + [(causal_mask(K, "B"), d) for d in config["dilations"]]
    h_in = x
    for l, (mask, d) in enumerate(layers):
        a = conv2d_row(h_in, params[f"conv{l}.w"], params[f"conv{l}.b"], mask, d, i, j, j + 1)[:, :, 0]  # (n, h)
        state[l][:, :, i, j] = np.maximum(a, 0)                                   # ReLU
        h_in = state[l]
    return state[-1][:, :, i, j] @ params["out.w"][:, :, 0, 0].T + params["out.b"]  # (n, c_out)


def sampler_row_done(params, state, x, i, config):
    """Nothing to do at the end of a row: every layer is causal in raster order."""
