"""The PixelCNN with residual blocks (van den Oord et al., 2016, "Pixel Recurrent
Neural Networks", Fig. 5), forward and backward written out.

    x (N, c, H, W)                                                   (c = 1 grey, 3 colour)
    -> conv0: F x F mask-A conv, c -> 2h channels                  r_0 (N, 2h, H, W)  sees x_<p
    -> B residual blocks, b = 1..B, each

           a = ReLU(r_{b-1})                                        (N, 2h, H, W)
           a = ReLU(reduce_b(a))     1 x 1 conv, 2h -> h            (N, h, H, W)
           a = ReLU(conv_b(a))       K x K mask-B conv, h -> h      (N, h, H, W)
           a = expand_b(a)           1 x 1 conv, h -> 2h            (N, 2h, H, W)
           r_b = r_{b-1} + a         the skip connection             (N, 2h, H, W)

    -> out: ReLU, then a 1 x 1 conv, 2h -> c_out = c P logits per pixel (P = 1 binary,
       256 8-bit, 3 K logistic mixture; pixelcnn.out_channels)

Only conv0 and the conv_b look at neighbours; the 1 x 1 convs, the ReLUs and the sums
act on one pixel at a time, so the output at p still sees x_<p only: mask A once, then
mask B. The receptive field reaches F // 2 + B (K // 2) rows up and columns to the
left (defaults: 3 + 6 = 9); to the right, only max(F // 2, K // 2 - 1) columns one row
up, K // 2 more per further row: the plain PixelCNN's blind spot above and to the right.
(tests/test_residual.py checks this against boolean dependency maps.)

Colour (config "channels": 3, colour.py): x is (N, 3, H, W) and every layer's channels
are split into R, G and B thirds (masks.channel_groups; the 2h-channel stream into thirds
of 2h, the blocks' insides into thirds of h). Every convolution, the 1 x 1 ones too,
mixes channels at the pixel it writes, so every one gets a sub-pixel mask
(colour.layer_mask): mask A for conv0 (group g reads the colours of p before g), mask B
for reduce_b, conv_b, expand_b and the head (group g reads groups <= g at p). The
ReLUs, the label biases and the skip r_{b-1} + a act channel by channel, and channel c
of r_{b-1} and of the branch have the same group (one rule for equal channel counts),
so a group-g channel of r_b still sees x_<p and the colours of p before g only:

    p(x_p) = p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p).

A grey model runs the same code with one colour group: every mask is the grey one.

Defaults: F = 7, K = 3, h = 32, B = 6. Parameters, one flat dict: "conv0.w" (2h, c, F, F),
"block{b}.reduce.w" (h, 2h, 1, 1), "block{b}.conv.w" (h, h, K, K), "block{b}.expand.w"
(2h, h, 1, 1), "out.w" (c_out, 2h, 1, 1), each with its bias ".b".

Class-conditional (config n_classes = K > 0, see conditioning.py): the label's learned
bias is added inside every block, before the two ReLUs that follow reduce_b and conv_b:
"block{b}.reduce.cond" and "block{b}.conv.cond", (h, K) each. The stream r itself gets
none: a bias there would be carried, and summed, through every later block.

Backward through a block: r_{b-1} feeds both the skip and the branch, so

    d r_{b-1} = d r_b  +  (d branch / d r_{b-1})^T d r_b

the identity path's gradient and the branch's, summed.
"""

import numpy as np

from .activations import relu_backward, relu_forward
from .conditioning import check_labels, label_bias_backward, label_bias_forward, n_classes
from .colour import image_channels, layer_mask, masks_per_config, subpixel_conv2d_backward, subpixel_conv2d_forward
from .init import init_params as _init_params
from .masks import causal_mask
from .pixelcnn import out_channels
from .validation import check_input

DISPLAY_NAME = "residual PixelCNN"
CONDITIONAL = True          # accepts config["n_classes"] > 0 and labels (conditioning.py)
LAYERS_KEY = "n_blocks"     # the config key that counts the layers (train_mnist.py --layers)
TORCH_TWIN = "ResidualPixelCNN"     # its class in torch_models.py

DEFAULTS = {
    "model": "residual",
    "hidden": 32,               # h: the residual stream has 2h channels, the blocks' insides h
    "n_blocks": 6,              # B, residual blocks after the mask-A layer
    "kernel_size": 3,           # K, the mask-B conv inside every block
    "first_kernel_size": 7,     # F, the mask-A layer
    "pixels": "binary",         # "binary" (1 logit/pixel) or "8bit" (256 logits/pixel)
    "height": 28,
    "width": 28,
}


def param_shapes(config):
    """{name: shape} of every parameter, in the order the forward pass uses them."""
    h, K, F = config["hidden"], config["kernel_size"], config["first_kernel_size"]
    shapes = {"conv0.w": (2 * h, image_channels(config), F, F), "conv0.b": (2 * h,)}
    for b in range(1, config["n_blocks"] + 1):
        shapes[f"block{b}.reduce.w"], shapes[f"block{b}.reduce.b"] = (h, 2 * h, 1, 1), (h,)
        if n_classes(config):
            shapes[f"block{b}.reduce.cond"] = (h, n_classes(config))     # class-conditional: bias per label
        shapes[f"block{b}.conv.w"], shapes[f"block{b}.conv.b"] = (h, h, K, K), (h,)
        if n_classes(config):
            shapes[f"block{b}.conv.cond"] = (h, n_classes(config))
        shapes[f"block{b}.expand.w"], shapes[f"block{b}.expand.b"] = (2 * h, h, 1, 1), (2 * h,)
    shapes["out.w"] = (out_channels(config), 2 * h, 1, 1)
    shapes["out.b"] = (out_channels(config),)
    return shapes


@masks_per_config
def masks(config):
    """{weight name: its (O, C, K, K) 0/1 mask}: causal_mask(F, "A") for conv0,
    causal_mask(K, "B") for every conv_b, and mask B's single tap for the 1 x 1 reduce,
    expand and head; each centre tap split by colour groups (colour.layer_mask). For a
    grey model the 1 x 1 masks are all ones and the others the grey causal masks."""
    shapes = param_shapes(config)
    def mask(name, spatial, mask_type):
        O, C = shapes[name][:2]
        return layer_mask(config, spatial, mask_type, O, C)
    out = {"conv0.w": mask("conv0.w", causal_mask(config["first_kernel_size"], "A"), "A")}
    for b in range(1, config["n_blocks"] + 1):
        p = f"block{b}."
        out[p + "reduce.w"] = mask(p + "reduce.w", np.ones((1, 1)), "B")
        out[p + "conv.w"] = mask(p + "conv.w", causal_mask(config["kernel_size"], "B"), "B")
        out[p + "expand.w"] = mask(p + "expand.w", np.ones((1, 1)), "B")
    out["out.w"] = mask("out.w", np.ones((1, 1)), "B")
    return out


def init_params(config, rng, dtype=np.float32):
    """Normal weights with variance gain / (kept fan-in), masked taps zero (init.py),
    zero biases.

    gain = 2 (He) for conv0, reduce and conv, whose outputs go through a ReLU; 1 for
    the head. The last conv of each branch, expand, gets gain 2 / B instead: with He
    there too, every block would add a branch as large as the stream itself and double
    the stream's mean square (64x over 6 blocks); with 2 / B it grows by a factor
    1 + 1/B per block, less than e = 2.72 over the whole stack.
    """
    m = masks(config)
    def rule(name, shape):                                          # -> (gain, mask)
        if name.endswith(".expand.w"):
            return 2.0 / config["n_blocks"], m[name]
        return (1.0 if name == "out.w" else 2.0), m[name]
    return _init_params(param_shapes(config), rng, dtype, rule)


def forward(params, x, config, labels=None):
    """x (N, c, H, W) float -> logits (N, c_out, H, W), cache for `backward`.
    labels (N,) ints: the class of each image, for a class-conditional config only (it
    adds the learned biases block{b}.reduce.cond[:, y] and block{b}.conv.cond[:, y]
    before the ReLUs inside every block; see conditioning.py)."""
    check_input(x, config)
    labels = check_labels(labels, len(x), config)
    m = masks(config)

    def conv(a, name):                                          # every conv under its mask
        return subpixel_conv2d_forward(a, params[name + ".w"], params[name + ".b"], m[name + ".w"])

    def label_bias(a, name):                                    # a + V[:, y], in place; the cache or None
        if labels is None:
            return None
        bias, c = label_bias_forward(labels, params[name])                              # (N, h, 1, 1)
        a += bias
        return c

    r, c0 = conv(x, "conv0")                                                             # (N, 2h, H, W)
    blocks = []
    for b in range(1, config["n_blocks"] + 1):
        p = f"block{b}."
        a, c_relu1 = relu_forward(r)                                                     # (N, 2h, H, W)
        a, c_reduce = conv(a, p + "reduce")                                              # (N, h, H, W)
        c_cond2 = label_bias(a, p + "reduce.cond")
        a, c_relu2 = relu_forward(a)
        a, c_conv = conv(a, p + "conv")                                                  # (N, h, H, W)
        c_cond3 = label_bias(a, p + "conv.cond")
        a, c_relu3 = relu_forward(a)
        a, c_expand = conv(a, p + "expand")                                              # (N, 2h, H, W)
        r = r + a                                                                        # the skip
        blocks.append((c_relu1, c_reduce, c_cond2, c_relu2, c_conv, c_cond3, c_relu3, c_expand))
    e, c_relu_out = relu_forward(r)                                                      # (N, 2h, H, W)
    logits, c_out = conv(e, "out")                                                       # (N, c_out, H, W)
    return logits, (c0, blocks, c_relu_out, c_out)


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads, a dict with the keys of params (and, with
    need_dx, "x": the gradient with respect to the input image, (N, c, H, W)).
    The chain rule, layer by layer, in reverse order of `forward` (each conv's cache
    remembers its own mask, so a masked weight gets a zero gradient)."""
    c0, blocks, c_relu_out, c_out = cache
    grads = {}
    de, grads["out.w"], grads["out.b"] = subpixel_conv2d_backward(dlogits, c_out)                           # (N, 2h, H, W)
    dr = relu_backward(de, c_relu_out)                                                   # d r_B
    for b in range(len(blocks), 0, -1):
        c_relu1, c_reduce, c_cond2, c_relu2, c_conv, c_cond3, c_relu3, c_expand = blocks[b - 1]
        p = f"block{b}."
        da, grads[p + "expand.w"], grads[p + "expand.b"] = subpixel_conv2d_backward(dr, c_expand)             # (N, h, H, W)
        da = relu_backward(da, c_relu3)
        if c_cond3 is not None:
            grads[p + "conv.cond"] = label_bias_backward(da, c_cond3)
        da, grads[p + "conv.w"], grads[p + "conv.b"] = subpixel_conv2d_backward(da, c_conv)                     # (N, h, H, W)
        da = relu_backward(da, c_relu2)
        if c_cond2 is not None:
            grads[p + "reduce.cond"] = label_bias_backward(da, c_cond2)
        da, grads[p + "reduce.w"], grads[p + "reduce.b"] = subpixel_conv2d_backward(da, c_reduce)             # (N, 2h, H, W)
        da = relu_backward(da, c_relu1)
        # r_{b-1} fed both the skip (gradient dr, unchanged) and the branch (gradient da):
        # gradients that meet are summed.
        dr = dr + da                                                                     # d r_{b-1}
    dx, grads["conv0.w"], grads["conv0.b"] = subpixel_conv2d_backward(dr, c0, need_dx=need_dx)       # (N, c, H, W)
    if need_dx:
        grads["x"] = dx
    return grads


def reach(config):
    """(rows up, columns left, columns right) the stacked kernels can move from p, each
    R = F // 2 + (K // 2) * B: conv0 once, then one K x K conv per block (the 1 x 1
    convs stay put). Right of p the field is narrower: the plain stack's blind spot."""
    R = config["first_kernel_size"] // 2 + (config["kernel_size"] // 2) * config["n_blocks"]
    return R, R, R


def torch_parameter_names(config):
    """Our parameter names -> those of the torch twin (torch_models.ResidualPixelCNN)."""
    names = {"conv0.w": "first.weight", "conv0.b": "first.bias"}
    for b in range(1, config["n_blocks"] + 1):
        for part in ("reduce", "conv", "expand"):
            names[f"block{b}.{part}.w"] = f"blocks.{b - 1}.{part}.weight"
            names[f"block{b}.{part}.b"] = f"blocks.{b - 1}.{part}.bias"
        if n_classes(config):
            for part in ("reduce", "conv"):
                names[f"block{b}.{part}.cond"] = f"blocks.{b - 1}.{part}_cond.weight"
    names["out.w"], names["out.b"] = "out.weight", "out.bias"
    return names


# ----------------------------------------------------------------------------------
# Fast (cached) sampling: every layer computed only at the pixel being sampled
# ----------------------------------------------------------------------------------
# conv0 reads x and conv_b reads the map ReLU(reduce_b(...)) at neighbouring pixels;
# everything else is per pixel. So the state is one cached map per block, the input
# of its masked conv, filled at (i, j) right before x_(i, j) is drawn.

def sampler_init(params, config, n, dtype, labels=None):
    """Cached maps for `sampling.sample_cached`, channels-last: each block's masked-conv
    input (n, H, W, h), the precomputed `row_conv_plan` of conv0 and of every conv_b
    (each from w * mask, over the taps its mask keeps for some channel pair), every
    1 x 1 weight times its mask as a (C, O) matrix, and (conditional models) each block's
    two label biases (n, h)."""
    labels = check_labels(labels, n, config)
    from .conv import row_conv_plan

    m = masks(config)
    def plan(name):                                                   # a K x K conv
        w = params[name + ".w"] * m[name + ".w"]
        return row_conv_plan(w, params[name + ".b"], m[name + ".w"].any(axis=(0, 1)), 1)
    def matrix(name):                                                 # a 1 x 1 conv: (C, O)
        return np.ascontiguousarray((params[name + ".w"] * m[name + ".w"])[:, :, 0, 0].T)
    ones = ["out"] + [f"block{b}.{part}" for b in range(1, config["n_blocks"] + 1) for part in ("reduce", "expand")]

    shape = (n, config["height"], config["width"], config["hidden"])
    blocks = range(1, config["n_blocks"] + 1)
    return {
        "maps": [np.zeros(shape, dtype=dtype) for _ in blocks],
        "first": plan("conv0"),
        "convs": [plan(f"block{b}.conv") for b in blocks],
        "matrices": {name: matrix(name) for name in ones},
        "cond": [{part: params[f"block{b}.{part}.cond"][:, labels].T if labels is not None else 0
                  for part in ("reduce", "conv")} for b in blocks],
    }


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at pixel (i, j), given x sampled up to (i, j) exclusive and the
    cached maps up to (i, j) exclusive; fills the maps at (i, j).

    conv_b at (i, j) reads its input at positions <= (i, j) only (mask B), and conv0
    reads x at positions < (i, j) (mask A): computing the blocks in order at this one
    pixel is all that is needed. In colour the sampler calls this once per colour of
    (i, j), after drawing the colours before it; conv0 then also reads those colours of
    x at (i, j), so every call recomputes the blocks at (i, j) from x as it now is.
    """
    from .conv import conv2d_row_nhwc

    def conv1x1(a, name):                                             # a (n, C) -> (n, O)
        return a @ state["matrices"][name] + params[name + ".b"]

    x_nhwc = np.moveaxis(x, 1, 3)                                     # channels-last view (n, H, W, c)
    r = conv2d_row_nhwc(x_nhwc, state["first"], i, j, j + 1)[:, 0]                       # (n, 2h)
    for b, (h_map, plan, cond) in enumerate(zip(state["maps"], state["convs"], state["cond"]), start=1):
        p = f"block{b}."
        h_map[:, i, j, :] = np.maximum(conv1x1(np.maximum(r, 0), p + "reduce") + cond["reduce"], 0)  # (n, h)
        a = conv2d_row_nhwc(h_map, plan, i, j, j + 1)[:, 0] + cond["conv"]                          # (n, h)
        r = r + conv1x1(np.maximum(a, 0), p + "expand")                                  # (n, 2h)
    return conv1x1(np.maximum(r, 0), "out")                                              # (n, c_out)


def sampler_row_done(params, state, x, i, config):
    """Nothing to do at the end of a row: every layer is causal in raster order."""
