"""The PixelCNN (van den Oord et al., 2016): a stack of masked convolutions, forward and
backward written out.

    x (N, 1, H, W)
    -> conv0: F x F mask-A conv, 1 -> h channels, dilation 1      -> ReLU    sees x_<p
    -> conv_l (l = 1..L): K x K mask-B conv, h -> h, dilation d_l  -> ReLU    still only x_<p
    -> out: 1 x 1 conv, h -> 1 logit (binary) or 256 logits (8-bit) per pixel

Colour (config "channels": 3, colour.py): x is (N, 3, H, W), conv0 reads 3 channels,
every layer's channels are split into R, G and B thirds, and each layer's mask at its
centre tap lets group g read the groups before g (conv0, mask A) or up to g (the mask-B
layers and the 1x1 head): `masks`. The head's 3 P outputs predict R, G, B in turn.

Parameters, one flat dict: "conv0.w" (h, c, F, F) (c = 1 grey, 3 colour), "conv0.b" (h,), "conv{l}.w" (h, h, K, K),
"conv{l}.b" (h,), "out.w" (c_out, h, 1, 1), "out.b" (c_out,). A class-conditional config
(n_classes = k > 0) adds "conv{l}.cond" (h, k) to every masked layer: the label's learned
bias before its ReLU (conditioning.py).

One network, two registered configurations (models.MODELS), because configs and
checkpoints name both:

    "pixelcnn"  the seed network (DEFAULTS): F = K = 7, h = 64, L = n_layers = 6, every d_l = 1
    "dilated"   train_mnist.py's default (DILATED): F = 7, K = 3, h = 64, one mask-B
                layer per entry of dilations = 1, 2, 4, 8, 1, 2 (L = 6)

Dilation
--------
A dilated tap (ky, kx) reads the input d (ky - r), d (kx - r) pixels away (r = K // 2,
see `conv.py`), so a 3x3 kernel with dilation d covers a (2d + 1) x (2d + 1) window
with 9 weights. Dilation does not touch the mask: it only spreads the *kept* taps
apart, so the output at p still reads hidden positions <= p and x_<p only.

Receptive field, and the blind spot
-----------------------------------
Write an offset as (u rows up, v columns right): x[i - u, j + v] for output p = (i, j),
r0 = F // 2 and r = K // 2. Layer 0 reads the offsets

    A   = {(u, v): 1 <= u <= r0, |v| <= r0}  U  {(0, v): -r0 <= v <= -1}
    B_l = {(d_l k, d_l m): 1 <= k <= r, |m| <= r}  U  {(0, d_l m): -r <= m <= 0}

for mask-B layer l. Composing layers adds offsets, so the logit at p depends on x at
exactly the offsets of the Minkowski sum A + B_1 + ... + B_L (away from the image
border, where zero padding cuts paths; ReLUs and the 1x1 head change nothing). Its
extent, with R = r0 + r * sum_l d_l (`reach`):

    rows above               R = F // 2 + (K // 2) * sum_l d_l     (both defaults: 3 + 18 = 21)
    columns to the left      R, in row i and in the rows above
    columns to the right     u rows up: min(r0 + r (u - 1), R)      (dilated: min(u + 2, 21))

(farthest pixels; the last line for F >= K, as in the defaults). The right edge is the
*blind spot*: the first layer moves at most r0 columns right, and only by moving up a
row; every later layer moves at most r columns right per row it moves up. So the wedge
of earlier pixels above p and right of that diagonal is never reached: one row above p
the dilated defaults see columns j - 21 .. j + 3, and the pixels j + 4 .. j + 21 of that
row, although they come before p, are in the blind spot. Depth, larger kernels and
dilation widen the field; they do not fill the wedge (the gated model does).

For K = 3 and F >= 3 the field is exactly the full region within those bounds:

    row i:                   columns j - R .. j - 1
    row i - u, 1 <= u <= R:  columns j - R .. j + min(r0 + u - 1, R)

provided the dilations leave no gaps: every integer 0 .. sum_l d_l is the sum of some
of them (1, 2, 4, 8 are binary digits, so the dilated defaults qualify). Otherwise the
field has holes: dilations [4] after a 3x3 first layer skip the pixels 2, 3 and 4 left
of p. tests/test_dilated.py checks both the region and the Minkowski sum against the
pixels where our input gradient is non-zero.
"""

import numpy as np

from .activations import relu_backward, relu_forward
from .conditioning import check_labels, label_bias_backward, label_bias_forward, n_classes
from .colour import image_channels, layer_mask, masks_per_config, subpixel_conv2d_backward, subpixel_conv2d_forward
from .init import init_params as _init_params
from .masks import causal_mask
from .validation import check_input

DISPLAY_NAME = "PixelCNN"
CONDITIONAL = True          # accepts config["n_classes"] > 0 and labels (conditioning.py)
LAYERS_KEY = "n_layers"     # the config key that counts the layers (train_mnist.py --layers)
TORCH_TWIN = "PixelCNN"     # its class in torch_models.py

DEFAULTS = {
    "model": "pixelcnn",
    "hidden": 64,        # h, channels of every hidden layer
    "n_layers": 6,       # L, number of mask-B layers after the mask-A layer
    "kernel_size": 7,    # K, for every masked layer
    "pixels": "binary",  # "binary" (1 logit/pixel) or "8bit" (256 logits/pixel)
    "height": 28,
    "width": 28,
}

# The dilated configuration: the same functions under these facts (models.variant).
DILATED = {
    "DISPLAY_NAME": "dilated PixelCNN",
    "LAYERS_KEY": None,                     # one mask-B layer per entry of "dilations"
    "DEFAULTS": {
        "model": "dilated",
        "hidden": 64,                       # h, channels of every hidden layer
        "dilations": [1, 2, 4, 8, 1, 2],    # d_l, one mask-B layer per entry
        "kernel_size": 3,                   # K, for the mask-B layers
        "first_kernel_size": 7,             # F, for the mask-A layer (dilation 1)
        "pixels": "binary",                 # "binary" (1 logit/pixel) or "8bit" (256 logits/pixel)
        "height": 28,
        "width": 28,
    },
}


def out_channels(config):
    """Logits per pixel: c P, P per colour (c = 1 grey, 3 colour; R's P first): P = 1
    (Bernoulli, binary pixels), 256 (categorical, 8-bit) or 3 K (a K-component
    discretized logistic mixture, 8-bit: logistic_mixture.py). Every model's output
    layer uses this."""
    if config["pixels"] == "logistic":
        per_colour = 3 * config["n_mix"]
    else:
        per_colour = 1 if config["pixels"] == "binary" else 256
    return image_channels(config) * per_colour


def layers(config):
    """(kernel size, mask type, dilation) of conv0, conv1, ..., in order:
    (F, "A", 1), then (K, "B", d_l) for every mask-B layer.

    A config names either "n_layers" (every d_l = 1) or "dilations" (one layer per
    entry), and F = "first_kernel_size" if it has one, else K."""
    K = config["kernel_size"]
    dilations = config.get("dilations", [1] * config.get("n_layers", 0))
    return [(config.get("first_kernel_size", K), "A", 1)] + [(K, "B", d) for d in dilations]


@masks_per_config
def masks(config):
    """{weight name: its (O, C, K, K) 0/1 mask}: the causal mask of each layer (A for
    conv0, B after), its centre tap split by colour groups (colour.layer_mask; for a
    grey model simply causal_mask(K, type) for every (o, c)), and mask B's centre for the
    1x1 head, which in colour keeps R's logits from reading G and B features of p."""
    shapes = param_shapes(config)
    out = {}
    for l, (K, mask_type, _) in enumerate(layers(config)):
        O, C = shapes[f"conv{l}.w"][:2]
        out[f"conv{l}.w"] = layer_mask(config, causal_mask(K, mask_type), mask_type, O, C)
    O, C = shapes["out.w"][:2]
    out["out.w"] = layer_mask(config, np.ones((1, 1)), "B", O, C)
    return out


def param_shapes(config):
    """{name: shape} of every parameter, in the order the forward pass uses them."""
    h = config["hidden"]
    shapes = {}
    for l, (K, _, _) in enumerate(layers(config)):
        shapes[f"conv{l}.w"] = (h, image_channels(config) if l == 0 else h, K, K)
        shapes[f"conv{l}.b"] = (h,)
        if n_classes(config):
            shapes[f"conv{l}.cond"] = (h, n_classes(config))    # class-conditional: bias per label
    shapes["out.w"] = (out_channels(config), h, 1, 1)
    shapes["out.b"] = (out_channels(config),)
    return shapes


def init_params(config, rng, dtype=np.float32):
    """Normal weights with variance gain / (kept fan-in), masked taps zero (init.py):
    gain 2 (He) for the masked layers, whose outputs go through a ReLU, 1 (LeCun) for
    the 1x1 head. Biases and label biases zero."""
    m = masks(config)
    def rule(name, shape):                                          # -> (gain, mask)
        return (1.0 if name == "out.w" else 2.0), m[name]
    return _init_params(param_shapes(config), rng, dtype, rule)


def forward(params, x, config, labels=None):
    """x (N, c, H, W) float -> logits (N, c_out, H, W), cache for `backward`.
    labels (N,) ints: the class of each image, for a class-conditional config only
    (it adds the learned bias conv{l}.cond[:, y] before every ReLU; see conditioning.py).

    The cache: one (conv, label bias, ReLU) triple per masked layer, and the head's."""
    check_input(x, config)
    labels = check_labels(labels, len(x), config)
    m = masks(config)
    layer_caches = []
    h = x
    for l, (_, _, d) in enumerate(layers(config)):                # conv0 is mask A, the rest B
        h, c_conv = subpixel_conv2d_forward(h, params[f"conv{l}.w"], params[f"conv{l}.b"], m[f"conv{l}.w"], d)  # (N, h, H, W)
        c_cond = None
        if labels is not None:
            bias, c_cond = label_bias_forward(labels, params[f"conv{l}.cond"])         # (N, h, 1, 1)
            h += bias
        h, c_relu = relu_forward(h)
        layer_caches.append((c_conv, c_cond, c_relu))
    logits, c_out = subpixel_conv2d_forward(h, params["out.w"], params["out.b"], m["out.w"])              # (N, c_out, H, W)
    return logits, (layer_caches, c_out)


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads, a dict with the keys of params (and, with
    need_dx, also "x": the gradient with respect to the input image, (N, c, H, W)).
    The chain rule, layer by layer, in reverse order of `forward` (each conv's cache
    remembers its own mask and dilation)."""
    layer_caches, c_out = cache
    grads = {}
    dh, grads["out.w"], grads["out.b"] = subpixel_conv2d_backward(dlogits, c_out)              # (N, h, H, W)
    for l in range(len(layer_caches) - 1, -1, -1):
        c_conv, c_cond, c_relu = layer_caches[l]
        dh = relu_backward(dh, c_relu)
        if c_cond is not None:
            grads[f"conv{l}.cond"] = label_bias_backward(dh, c_cond)
        dh, grads[f"conv{l}.w"], grads[f"conv{l}.b"] = subpixel_conv2d_backward(     # (N, h or c, H, W)
            dh, c_conv, need_dx=(l > 0 or need_dx))
    if need_dx:
        grads["x"] = dh
    return grads


def reach(config):
    """(rows up, columns left, columns right) the stacked kernels can move from p, each
    R = F // 2 + (K // 2) * sum_l d_l (the seed network: F = K, every d_l = 1, so
    R = (n_layers + 1) (K // 2)). Right of p the field is narrower: the blind spot."""
    R = sum(d * (K // 2) for K, _, d in layers(config))
    return R, R, R


def torch_parameter_names(config):
    """Our parameter names -> those of the torch twin (torch_models.PixelCNN)."""
    names = {}
    for l in range(len(layers(config))):
        names[f"conv{l}.w"], names[f"conv{l}.b"] = f"convs.{l}.weight", f"convs.{l}.bias"
        if n_classes(config):
            names[f"conv{l}.cond"] = f"cond.{l}.weight"
    names["out.w"], names["out.b"] = "out.weight", "out.bias"
    return names


# ----------------------------------------------------------------------------------
# Fast (cached) sampling: every layer computed only at the pixel being sampled
# ----------------------------------------------------------------------------------

def sampler_init(params, config, n, dtype, labels=None):
    """Cached hidden maps for `sampling.sample_cached`, channels-last: one (n, H, W, h)
    per layer, each layer's precomputed `row_conv_plan`, and (conditional models) each
    layer's label bias (n, h)."""
    from .conv import row_conv_plan

    m = masks(config)
    shape = (n, config["height"], config["width"], config["hidden"])
    plans = [row_conv_plan(params[f"conv{l}.w"] * m[f"conv{l}.w"], params[f"conv{l}.b"],
                           m[f"conv{l}.w"].any(axis=(0, 1)), d)                       # w * mask, its taps
             for l, (_, _, d) in enumerate(layers(config))]
    cond = [params[f"conv{l}.cond"][:, labels].T if labels is not None else 0 for l in range(len(plans))]
    out_w = (params["out.w"] * m["out.w"])[:, :, 0, 0]                                   # (c_out, h)
    return {"maps": [np.zeros(shape, dtype=dtype) for _ in plans], "plans": plans, "cond": cond,
            "out_w": np.ascontiguousarray(out_w.T)}                                      # (h, c_out)


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at pixel (i, j), given x sampled up to (i, j) exclusive and the
    cached maps of every layer up to (i, j) exclusive; fills the maps at (i, j).

    Layer l at (i, j) reads layer l-1 at positions <= (i, j) only (mask A: < (i, j) of
    x), so computing the layers in order at this one pixel is all that is needed.
    In colour the sampler calls this once per colour of (i, j), after drawing the colours
    before it: every call recomputes the layers at (i, j) from x as it now is.
    """
    from .conv import conv2d_row_nhwc

    h_in = np.moveaxis(x, 1, 3)                                   # channels-last view (n, H, W, c)
    for plan, h_map, cond in zip(state["plans"], state["maps"], state["cond"]):
        a = conv2d_row_nhwc(h_in, plan, i, j, j + 1)[:, 0] + cond                  # (n, h)
        h_map[:, i, j, :] = np.maximum(a, 0)                                         # ReLU
        h_in = h_map
    return h_in[:, i, j, :] @ state["out_w"] + params["out.b"]                      # (n, c_out)


def sampler_row_done(params, state, x, i, config):
    """Nothing to do at the end of a row for the plain PixelCNN."""
