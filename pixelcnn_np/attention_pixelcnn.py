"""A PixelCNN with causal self-attention blocks between its masked convolutions (in the
spirit of PixelSNAIL, Chen et al., 2018), forward and backward written out. The layer
itself, its equations and its gradient are in attention.py.

    x (N, 1, H, W)                                                (colour: (N, 3, H, W), below)
    -> conv0: F x F mask-A conv, 1 -> h       -> ReLU            sees x_<p
    -> for l = 1..L:  K x K mask-B conv, h -> h -> ReLU           still only x_<p
                      and, when l is a multiple of attention_every,
                      h = h + Attn_l(h)   (keys q <= p)          still only x_<p
    -> out: 1 x 1 conv, h -> 1 logit (binary) or 256 logits (8-bit) per pixel

An attention block lets p read the features of every position q <= p, and those carry
whatever pixels the convolutions below brought there. So the plain stack's blind spot
(the wedge of earlier pixels above and to the right of p) is reached: a pixel there is
in the conv reach of positions just right of it, which come before p.
tests/test_attention.py checks this with our input gradient. attention_every = 0 gives
the same network without attention (the conv-only baseline of the step-time comparison).
The keys q <= p include p itself: safe here, because every feature the block reads sits
after the mask-A conv and so depends on x_<q only (attention.py explains when it is not).

Colour (config "channels": 3, colour.py): x is (N, 3, H, W); every conv, the 1x1 head
included, splits its channels into R, G and B thirds with the sub-pixel masks of
pixelcnn.py (`masks`), and every attention block becomes the colour block of
attention.py: one head per colour, head g's query reading groups <= g, keys and values
at q < p only, output group g reading heads <= g. So a group-g feature at p still
depends on x_<p and the colours of p before g only, after every layer, and

    p(x_p) = p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p).

A colour config needs key_channels >= 3 (one per head at least).

Defaults: F = 7, K = 3, h = 32, L = 6, one attention block after layer 4, d = 8.

Arithmetic per step (forward + backward, batch N, D = H W positions). The block's
(D, D) part does 7d + 3 multiply-adds per computed score (S and [V; 1]^T E^T forward;
S - lse, dV, dA - delta, dQ, dK backward) and two exponentials, over the 53.6% of the
square that the tiles compute (attention.query_tiles); its projections add 11 d h per
position. A 3x3 mask-B layer does 3 x 5 h^2 per position. At N = 64, 28 x 28, h = 32,
d = 8: about 21 M scores and 1.38 G multiply-adds for the block against 0.77 G for the
conv, 1.8x before any exponential, a ratio that falls as h grows (the block barely
depends on h, the conv grows as h^2). The measured times are in
benchmarks/results/attention.md.

Parameters, one flat dict: "conv0.w" (h, c, F, F) (c = 1 grey, 3 colour), "conv{l}.w" (h, h, K, K), their ".b";
per attention block after layer l: "attn{l}.pos" (h, H, W), "attn{l}.q.w", ".k.w",
".v.w" (d, h), "attn{l}.o.w" (h, d), and the biases "attn{l}.q.b", ".v.b" (d,) and
"attn{l}.o.b" (h,); "out.w" (c_out, h, 1, 1), "out.b" (c_out,). A class-conditional
config (n_classes = K > 0) adds "conv{l}.cond" (h, K) for every conv: the label's bias
before each ReLU (conditioning.py), so every feature the attention blocks read carries it.

The backward pass sums the gradients that meet where h feeds both the skip and the
attention block (d h = d h' + dX of the block), as in residual.py.
"""

import numpy as np

from .activations import relu_backward, relu_forward
from .attention import (
    ATTENTION_PARTS, attend_one_position, causal_attention_backward, causal_attention_forward, colour_masks,
)
from .colour import image_channels, layer_mask, masks_per_config, subpixel_conv2d_backward, subpixel_conv2d_forward
from .conditioning import check_labels, label_bias_backward, label_bias_forward, n_classes
from .init import init_params as _init_params
from .masks import causal_mask
from .pixelcnn import out_channels
from .validation import check_input

DISPLAY_NAME = "PixelCNN with self-attention"
CONDITIONAL = True          # accepts config["n_classes"] > 0 and labels (conditioning.py)
LAYERS_KEY = "n_layers"     # the config key that counts the layers (train_mnist.py --layers)
TORCH_TWIN = "AttentionPixelCNN"    # its class in torch_models.py

DEFAULTS = {
    "model": "attention",
    "hidden": 32,               # h, channels of every hidden layer (and of the attention input/output)
    "n_layers": 6,              # L, mask-B layers after the mask-A layer
    "kernel_size": 3,           # K, the mask-B convs
    "first_kernel_size": 7,     # F, the mask-A conv
    "attention_every": 4,       # an attention block after mask-B layers 4, 8, ... (0: none)
    "key_channels": 8,          # d, channels of queries, keys and values
    "pixels": "binary",         # "binary" (1 logit/pixel) or "8bit" (256 logits/pixel)
    "height": 28,
    "width": 28,
}


def _check_config(config):
    for key in ("attention_every", "key_channels"):
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if key == "attention_every" else 1):
            raise ValueError(f"config[{key!r}] must be a {'non-negative' if key == 'attention_every' else 'positive'} "
                             f"integer, got {v!r}")
    if config["key_channels"] < image_channels(config):
        raise ValueError(f"config['key_channels'] must be >= 3 in colour (one head per colour), "
                         f"got {config['key_channels']}")


def attention_layers(config):
    """The mask-B layers l (1..L) followed by an attention block: multiples of attention_every."""
    _check_config(config)
    every = config["attention_every"]
    return [l for l in range(1, config["n_layers"] + 1) if every and l % every == 0]


def block_params(params, l):
    """The attention block after layer l, as the layer functions want it: {"q.w": ..., ...}."""
    return {part: params[f"attn{l}.{part}"] for part in ATTENTION_PARTS}


def include_self(config):
    """May a block's query at p see the key at p? In grey yes (the features at p know
    x_<p only); in colour no (the G and B features at p know R_p: attention.py)."""
    return image_channels(config) == 1


@masks_per_config
def masks(config):
    """{weight name: its 0/1 mask}: every conv's (O, C, K, K) mask (colour.layer_mask:
    mask A for conv0, B after and for the 1x1 head; grey: the causal mask for every
    (o, c)), and each block's query and output masks (attention.colour_masks; grey:
    all ones)."""
    shapes = param_shapes(config)
    out = {}
    for l in range(config["n_layers"] + 1):
        O, C, K, _ = shapes[f"conv{l}.w"]
        mask_type = "A" if l == 0 else "B"
        out[f"conv{l}.w"] = layer_mask(config, causal_mask(K, mask_type), mask_type, O, C)
    for l in attention_layers(config):
        d, h = shapes[f"attn{l}.q.w"]
        for part, m in colour_masks(h, d, image_channels(config)).items():
            out[f"attn{l}.{part}"] = m
    O, C = shapes["out.w"][:2]
    out["out.w"] = layer_mask(config, np.ones((1, 1)), "B", O, C)
    return out


def param_shapes(config):
    """{name: shape} of every parameter, in the order the forward pass uses them."""
    h, K, F, d = config["hidden"], config["kernel_size"], config["first_kernel_size"], config["key_channels"]
    H, W = config["height"], config["width"]
    blocks = attention_layers(config)
    shapes = {}
    for l in range(config["n_layers"] + 1):
        shapes[f"conv{l}.w"], shapes[f"conv{l}.b"] = ((h, image_channels(config), F, F) if l == 0 else (h, h, K, K)), (h,)
        if n_classes(config):
            shapes[f"conv{l}.cond"] = (h, n_classes(config))            # class-conditional: bias per label
        if l in blocks:
            a = f"attn{l}."
            shapes[a + "pos"] = (h, H, W)
            shapes[a + "q.w"], shapes[a + "q.b"] = (d, h), (d,)
            shapes[a + "k.w"] = (d, h)                                  # no key bias (see above)
            shapes[a + "v.w"], shapes[a + "v.b"] = (d, h), (d,)
            shapes[a + "o.w"], shapes[a + "o.b"] = (h, d), (h,)
    shapes["out.w"], shapes["out.b"] = (out_channels(config), h, 1, 1), (out_channels(config),)
    return shapes


def init_params(config, rng, dtype=np.float32):
    """Normal weights with variance gain / (kept fan-in), masked taps zero (init.py),
    zero biases. Convs as pixelcnn.py: gain 2 (He) before a ReLU, 1 for the head.
    Attention: q, k, v with gain 1 (LeCun: unit-scale projections of unit-scale
    features); o with gain 1 / B for B blocks, so that B residual blocks add about one
    feature's worth of variance in all (the reasoning of residual.py's expand layer);
    pos standard normal, as large as the features, so that positions are told apart
    from the first step. In colour the masked q and o rows are scaled to the inputs
    they keep (init.py): row e of Wq ~ N(0, 1 / kept[e]) * Mq[e]."""
    B = max(1, len(attention_layers(config)))
    m = masks(config)

    def rule(name, shape):                                          # -> (gain, mask)
        if name.startswith("attn"):
            return (1.0 / B if name.endswith(".o.w") else 1.0), m.get(name)  # (d, h) / (h, d) matrices
        return (1.0 if name == "out.w" else 2.0), m[name]
    return _init_params(param_shapes(config), rng, dtype, rule)


def forward(params, x, config, labels=None):
    """x (N, c, H, W) float -> logits (N, c_out, H, W), cache for `backward` (c = 1 grey,
    3 colour; c_out = out_channels(config)).
    labels (N,) ints: the class of each image, for a class-conditional config only (it
    adds the learned bias conv{l}.cond[:, y] before every ReLU, as pixelcnn.py does; the
    attention blocks read features that already carry it)."""
    check_input(x, config)
    labels = check_labels(labels, len(x), config)
    blocks = attention_layers(config)
    m, c = masks(config), image_channels(config)
    caches = []
    h = x
    for l in range(config["n_layers"] + 1):                     # conv0 is mask A, the rest B
        h, c_conv = subpixel_conv2d_forward(h, params[f"conv{l}.w"], params[f"conv{l}.b"], m[f"conv{l}.w"])  # (N, h, H, W)
        c_cond = None
        if labels is not None:
            bias, c_cond = label_bias_forward(labels, params[f"conv{l}.cond"])            # (N, h, 1, 1)
            h += bias
        h, c_relu = relu_forward(h)
        c_attn = None
        if l in blocks:
            y, c_attn = causal_attention_forward(h, block_params(params, l), include_self(config), c)  # (N, h, H, W)
            h = h + y                                                                       # residual, per channel
        caches.append((c_conv, c_cond, c_relu, c_attn))
    logits, c_out = subpixel_conv2d_forward(h, params["out.w"], params["out.b"], m["out.w"])        # (N, c_out, H, W)
    return logits, (caches, c_out)


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads, a dict with the keys of params (and, with
    need_dx, "x": the gradient with respect to the input image, (N, c, H, W)). Each
    conv's and block's cache remembers its masks."""
    caches, c_out = cache
    grads = {}
    dh, grads["out.w"], grads["out.b"] = subpixel_conv2d_backward(dlogits, c_out)              # (N, h, H, W)
    for l in range(len(caches) - 1, -1, -1):
        c_conv, c_cond, c_relu, c_attn = caches[l]
        if c_attn is not None:
            dx_attn, g = causal_attention_backward(dh, c_attn)
            dh = dh + dx_attn                       # h fed the skip and the block: summed
            for part, grad in g.items():
                grads[f"attn{l}.{part}"] = grad
        dh = relu_backward(dh, c_relu)
        if c_cond is not None:
            grads[f"conv{l}.cond"] = label_bias_backward(dh, c_cond)
        dh, grads[f"conv{l}.w"], grads[f"conv{l}.b"] = subpixel_conv2d_backward(     # (N, h or c, H, W)
            dh, c_conv, need_dx=(l > 0 or need_dx))
    if need_dx:
        grads["x"] = dh
    return grads


def reach(config):
    """(rows up, columns left, columns right) the field can extend from p. Convolutions
    only (attention_every = 0): R = F // 2 + (K // 2) L each way, the plain stack's.
    With an attention block, the whole past: the block at p reads every q <= p, so the
    bound is every earlier pixel of the image (H - 1 rows up, W - 1 columns either
    way); the exact field misses the few pixels only positions after p could carry."""
    if attention_layers(config):
        return config["height"] - 1, config["width"] - 1, config["width"] - 1
    R = config["first_kernel_size"] // 2 + (config["kernel_size"] // 2) * config["n_layers"]
    return R, R, R


def torch_parameter_names(config):
    """Our parameter names -> those of the torch twin (torch_models.AttentionPixelCNN)."""
    names = {}
    for l in range(config["n_layers"] + 1):
        names[f"conv{l}.w"], names[f"conv{l}.b"] = f"convs.{l}.weight", f"convs.{l}.bias"
        if n_classes(config):
            names[f"conv{l}.cond"] = f"cond.{l}.weight"
    for l in attention_layers(config):
        for part in ATTENTION_PARTS:            # "pos", "q.w", "q.b", ...
            names[f"attn{l}.{part}"] = f"attns.{l}." + part.replace(".w", ".weight").replace(".b", ".bias")
    names["out.w"], names["out.b"] = "out.weight", "out.bias"
    return names


# ----------------------------------------------------------------------------------
# Fast (cached) sampling
# ----------------------------------------------------------------------------------
# As in pixelcnn.py, every layer is computed only at the pixel p being sampled, from the
# cached maps of the layer below. An attention block at p needs the keys and values of
# every position q <= p: they are cached too, one (n, D, d) array each per block, and
# the block fills them at p right before using them. Nothing waits for a row to end.

def sampler_init(params, config, n, dtype, labels=None):
    """Cached state for `sampling.sample_cached`: every layer's output map (after its
    ReLU and its attention block), channels-last (n, H, W, h); every block's keys and
    values (n, D, d); each masked conv's `row_conv_plan`; (conditional models) each
    layer's label bias (n, h)."""
    from .conv import row_conv_plan

    labels = check_labels(labels, n, config)
    H, W, h, d = config["height"], config["width"], config["hidden"], config["key_channels"]
    m = masks(config)
    plans = [row_conv_plan(params[f"conv{l}.w"] * m[f"conv{l}.w"], params[f"conv{l}.b"],
                           m[f"conv{l}.w"].any(axis=(0, 1)), 1)                           # w * mask, its taps
             for l in range(config["n_layers"] + 1)]
    blocks = attention_layers(config)
    return {"maps": [np.zeros((n, H, W, h), dtype=dtype) for _ in plans], "plans": plans,
            "keys": {l: np.zeros((n, H * W, d), dtype=dtype) for l in blocks},
            "values": {l: np.zeros((n, H * W, d), dtype=dtype) for l in blocks},
            "cond": [params[f"conv{l}.cond"][:, labels].T if labels is not None else 0 for l in range(len(plans))],
            "out_w": np.ascontiguousarray((params["out.w"] * m["out.w"])[:, :, 0, 0].T)}  # (h, c_out)


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at pixel (i, j); fills every layer's map (and every block's key
    and value) at (i, j). In colour the sampler calls this once per colour of (i, j),
    after drawing the colours before it: every call recomputes the layers at (i, j)
    from x as it now is (the maps before (i, j) are final)."""
    from .conv import conv2d_row_nhwc

    W, c = x.shape[3], image_channels(config)
    h_in = np.moveaxis(x, 1, 3)                                                       # channels-last view (n, H, W, c)
    for l, (plan, h_map, cond) in enumerate(zip(state["plans"], state["maps"], state["cond"])):
        h = np.maximum(conv2d_row_nhwc(h_in, plan, i, j, j + 1)[:, 0] + cond, 0)     # (n, h) conv, label, ReLU
        if l in state["keys"]:
            h = h + attend_one_position(block_params(params, l), state["keys"][l], state["values"][l],
                                        h, i, j, W, include_self(config), c)
        h_map[:, i, j, :] = h
        h_in = h_map
    return h_in[:, i, j, :] @ state["out_w"] + params["out.b"]                        # (n, c_out)


def sampler_row_done(params, state, x, i, config):
    """Nothing to do at the end of a row: every layer runs pixel by pixel."""
