"""Gated PixelCNN (van den Oord et al., 2016, "Conditional Image Generation with
PixelCNN Decoders"): two stacks, gated units, no blind spot.

The plain PixelCNN's stacked masked kernels never reach a wedge of earlier pixels above
and to the right of p (the blind spot). The gated model splits the receptive field in two:

* the **vertical stack** v sees every row above (over the kernel's width, growing with
  depth), through K x K kernels masked to the rows <= the centre row (`vertical_mask`);
  its features at row i depend on input rows <= i;
* the **horizontal stack** h sees the current row to the left (`horizontal_mask`: type
  A in layer 0, so no pixel sees itself; type B after), plus the vertical stack's
  pre-activations *shifted down one row* through a 1x1 link, so it only receives rows < i.

One layer l (channels h, kernel K, dilation d_l; x (N, c, H, W) with c = 1 grey, 3 colour,
and v = h = x before layer 0):

    v_pre = conv_v(v)                              (N, 2h, H, W)   vertical mask
    h_pre = conv_h(h) + link(shift_down(v_pre))    (N, 2h, H, W)   horizontal mask, 1x1 link
    v'    = gate(v_pre)                            (N, h, H, W)    gate(a) = tanh(a1) * sigmoid(a2)
    h'    = h + res(gate(h_pre))                   (N, h, H, W)    1x1, residual (layer 0: h' = gate(h_pre))

A class-conditional config (n_classes > 0) adds a learned bias per label to both
pre-activations, v_pre += V_v[:, y] and h_pre += V_h[:, y] (parameters "v{l}.cond",
"h{l}.cond", see conditioning.py), as in the paper's tanh(W * x + V^T h) gates.

and the head: logits = out(ELU(h_last)), a 1x1 conv to c_out logits per pixel (1 binary,
256 8-bit, 3 K logistic mixture; times 3 in colour: pixelcnn.out_channels).
Both stacks use the dilation d_l of their layer (the default 1, 2, 1, 4, 1, 2, 1 reaches
far with 3x3 kernels). Receptive field, with K = 3 and S = sum of the dilations: the
output at p = (i, j) depends on every pixel of rows i - S - 1 .. i - 1 in columns
j - S .. j + S, and on row i at columns j - S .. j - 1: exactly the earlier pixels within
reach, no blind spot (tests/test_gated.py derives this region symbolically and compares
it with the non-zero entries of our input gradient). That holds when the dilations leave
no gaps, as the default does; a first dilation above 1, for instance, skips the pixel
just left of p.

Gradients that meet are summed: at the residual (dh flows to both the skip and the
branch) and at v_pre (it feeds both the next vertical layer, via the gate, and the link).

Colour (config "channels": 3, colour.py)
----------------------------------------
x is (N, 3, H, W), both stacks' layer 0 read its 3 channels, and the model factorises

    p(x_p) = p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p)

as the plain PixelCNN does: channels are split into R, G and B thirds
(masks.channel_groups), and a layer that mixes channels at the pixel p it writes lets
group g read there only the groups before g (mask A) or up to g (mask B). `masks`:

* **vertical stack and link: no colour mask.** A vertical feature at row i reads all of
  row i, p and the pixels after it included, in every channel; but it reaches the
  horizontal stack (and the logits) only through shift_down, so the link at row i reads
  v_pre of row i - 1, a function of rows < i: all before p, whatever the channel.
* **horizontal K x K convs** (horizontal_mask, its centre by groups: A in layer 0, B
  after), **the 1 x 1 res convs and the head** (mask B by groups) read p itself.
* **the gate pairs channels**: gate(a)_c = tanh(a_c) sigmoid(a_{c+h}), so both halves of
  a horizontal conv's 2h outputs carry the h-channel groups, np.tile(channel_groups(h), 2)
  (colour.layer_mask's out_groups), and gated channel c keeps channel c's group.
* label biases, ELU and the residual sum act channel by channel: nothing to mask.

So a group-g horizontal feature at p sees x_<p (its row through the horizontal taps, the
rows above through the link) and the colours of p before g, and the colour-g logits read
groups <= g: still no blind spot, in any colour (tests/test_gated.py, which also shows
the leaks without the shift or with the gate's halves grouped as thirds of 2h). A grey
model runs the same code with one colour group: every mask is the grey one.
"""

import numpy as np

from .activations import elu_backward, elu_forward, gate_backward, gate_forward, sigmoid
from .conditioning import check_labels, label_bias_backward, label_bias_forward, n_classes
from .colour import image_channels, layer_mask, masks_per_config, subpixel_conv2d_backward, subpixel_conv2d_forward
from .init import init_params as _init_params
from .masks import channel_groups, horizontal_mask, vertical_mask
from .pixelcnn import out_channels
from .validation import check_input

DISPLAY_NAME = "Gated PixelCNN"
CONDITIONAL = True          # accepts config["n_classes"] > 0 and labels (conditioning.py)
LAYERS_KEY = None           # one layer per entry of "dilations" (train_mnist.py: no --layers)
TORCH_TWIN = "GatedPixelCNN"    # its class in torch_models.py

DEFAULTS = {
    "model": "gated",
    "hidden": 32,                         # h, channels of each stack
    "dilations": [1, 2, 1, 4, 1, 2, 1],   # one layer per entry
    "kernel_size": 3,                     # K, for both stacks
    "pixels": "binary",
    "height": 28,
    "width": 28,
}


def shift_down_forward(x):
    """y[:, :, i] = x[:, :, i - 1], y[:, :, 0] = 0. x (N, C, H, W) -> y (N, C, H, W)."""
    y = np.zeros_like(x)
    y[:, :, 1:] = x[:, :, :-1]
    return y


def shift_down_backward(dy):
    """dx[:, :, i] = dy[:, :, i + 1], dx[:, :, H - 1] = 0."""
    dx = np.zeros_like(dy)
    dx[:, :, :-1] = dy[:, :, 1:]
    return dx


def param_shapes(config):
    """{name: shape} of every parameter, in the order the forward pass uses them."""
    h, K, L = config["hidden"], config["kernel_size"], len(config["dilations"])
    shapes = {}
    for l in range(L):
        cin = image_channels(config) if l == 0 else h
        shapes[f"v{l}.w"], shapes[f"v{l}.b"] = (2 * h, cin, K, K), (2 * h,)
        shapes[f"h{l}.w"], shapes[f"h{l}.b"] = (2 * h, cin, K, K), (2 * h,)
        shapes[f"link{l}.w"], shapes[f"link{l}.b"] = (2 * h, 2 * h, 1, 1), (2 * h,)
        if l > 0:
            shapes[f"res{l}.w"], shapes[f"res{l}.b"] = (h, h, 1, 1), (h,)
        if n_classes(config):
            shapes[f"v{l}.cond"] = shapes[f"h{l}.cond"] = (2 * h, n_classes(config))
    shapes["out.w"], shapes["out.b"] = (out_channels(config), h, 1, 1), (out_channels(config),)
    return shapes


@masks_per_config
def masks(config):
    """{weight name: its (O, C, K, K) 0/1 mask}, as the module docstring derives:

        v{l}.w     vertical_mask(K) for every (o, c)           no colour mask
        link{l}.w  all ones                                    no colour mask
        h{l}.w     horizontal_mask(K, A in layer 0, B after), its centre by groups, the
                   2h outputs grouped np.tile(channel_groups(h), 2) (the gate's halves)
        res{l}.w   mask B by groups (1 x 1)
        out.w      mask B by groups (1 x 1)

    For a grey model the h{l}.w masks are horizontal_mask for every (o, c), the 1 x 1
    ones all ones."""
    shapes = param_shapes(config)
    h, K = config["hidden"], config["kernel_size"]
    gate_groups = np.tile(channel_groups(h, image_channels(config)), 2)     # (2h,): c and c + h alike
    out = {}
    for l in range(len(config["dilations"])):
        O, C = shapes[f"h{l}.w"][:2]
        mask_type = "A" if l == 0 else "B"
        out[f"v{l}.w"] = np.ones((O, C, 1, 1)) * vertical_mask(K)
        out[f"h{l}.w"] = layer_mask(config, horizontal_mask(K, mask_type), mask_type, O, C, out_groups=gate_groups)
        out[f"link{l}.w"] = np.ones(shapes[f"link{l}.w"])
        if l > 0:
            out[f"res{l}.w"] = layer_mask(config, np.ones((1, 1)), "B", h, h)
    out["out.w"] = layer_mask(config, np.ones((1, 1)), "B", *shapes["out.w"][:2])
    return out


def init_params(config, rng, dtype=np.float32):
    """Normal weights with variance 1 / (kept fan-in), masked taps zero (init.py), zero
    biases. Gain 1 (LeCun) everywhere: the stacks feed gates, not ReLUs."""
    m = masks(config)
    return _init_params(param_shapes(config), rng, dtype, lambda name, shape: (1.0, m[name]))


def forward(params, x, config, labels=None):
    """x (N, c, H, W) float -> logits (N, c_out, H, W), cache.
    labels (N,) ints, for a class-conditional config only. Every conv runs under its
    mask from `masks` (colour.subpixel_conv2d_forward)."""
    check_input(x, config)
    labels = check_labels(labels, len(x), config)
    m = masks(config)
    dil = config["dilations"]
    L = len(dil)

    def conv(a, name, dilation=1):
        return subpixel_conv2d_forward(a, params[name + ".w"], params[name + ".b"], m[name + ".w"], dilation)

    v, h = x, x
    caches = []
    for l in range(L):
        v_pre, c_v = conv(v, f"v{l}", dil[l])                                               # (N, 2h, H, W)
        c_cv = c_ch = None
        if labels is not None:                      # + V_v[:, y], the same at every position
            bias, c_cv = label_bias_forward(labels, params[f"v{l}.cond"])
            v_pre += bias
        link, c_link = conv(shift_down_forward(v_pre), f"link{l}")                          # (N, 2h, H, W)
        h_pre, c_h = conv(h, f"h{l}", dil[l])                                               # (N, 2h, H, W)
        h_pre += link
        if labels is not None:                      # + V_h[:, y]
            bias, c_ch = label_bias_forward(labels, params[f"h{l}.cond"])
            h_pre += bias
        g, c_gh = gate_forward(h_pre)                                                       # (N, h, H, W)
        c_gv = None
        if l < L - 1:                               # the last vertical output feeds nothing
            v, c_gv = gate_forward(v_pre)                                                   # (N, h, H, W)
        c_res = None
        if l == 0:
            h = g
        else:
            r, c_res = conv(g, f"res{l}")                                                   # (N, h, H, W)
            h = h + r                                                                       # residual
        caches.append((c_v, c_link, c_h, c_gh, c_gv, c_res, c_cv, c_ch))
    e, c_elu = elu_forward(h)
    logits, c_out = conv(e, "out")                                                          # (N, c_out, H, W)
    return logits, (caches, c_elu, c_out)


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads (keys of params; "x" (N, c, H, W) too when
    need_dx). Each conv's cache remembers its mask: a masked weight gets zero gradient."""
    caches, c_elu, c_out = cache
    grads = {}
    de, grads["out.w"], grads["out.b"] = subpixel_conv2d_backward(dlogits, c_out)
    dh = elu_backward(de, c_elu)                                   # (N, h, H, W)
    dv = None                                                      # the last v feeds nothing
    dx = 0
    for l in range(len(caches) - 1, -1, -1):
        c_v, c_link, c_h, c_gh, c_gv, c_res, c_cv, c_ch = caches[l]
        if l == 0:
            dg, dh_skip = dh, 0
        else:
            dg, grads[f"res{l}.w"], grads[f"res{l}.b"] = subpixel_conv2d_backward(dh, c_res)
            dh_skip = dh                                           # the residual's identity path
        dh_pre = gate_backward(dg, c_gh)                           # (N, 2h, H, W)
        if c_ch is not None:
            grads[f"h{l}.cond"] = label_bias_backward(dh_pre, c_ch)
        dh_in, grads[f"h{l}.w"], grads[f"h{l}.b"] = subpixel_conv2d_backward(dh_pre, c_h, need_dx=(l > 0 or need_dx))
        dshift, grads[f"link{l}.w"], grads[f"link{l}.b"] = subpixel_conv2d_backward(dh_pre, c_link)
        dv_pre = shift_down_backward(dshift)                       # via the link ...
        if dv is not None:
            dv_pre += gate_backward(dv, c_gv)                      # ... plus via the vertical stack
        if c_cv is not None:
            grads[f"v{l}.cond"] = label_bias_backward(dv_pre, c_cv)
        dv, grads[f"v{l}.w"], grads[f"v{l}.b"] = subpixel_conv2d_backward(dv_pre, c_v, need_dx=(l > 0 or need_dx))
        if l > 0:
            dh = dh_in + dh_skip                                   # gradients meeting: summed
        else:
            dx = (dh_in + dv) if need_dx else None                 # x feeds both stacks
    if need_dx:
        grads["x"] = dx
    return grads


def reach(config):
    """(rows up, columns left, columns right) the field can extend from p: S = (K // 2)
    * sum of the dilations left, right and up in the vertical stack, plus the one-row
    shift into the horizontal stack: (S + 1, S, S). No blind spot: for K = 3 and
    dilations without gaps the field is every earlier pixel within these bounds."""
    S = (config["kernel_size"] // 2) * sum(config["dilations"])
    return S + 1, S, S


def torch_parameter_names(config):
    """Our parameter names -> those of the torch twin (torch_models.GatedPixelCNN)."""
    names = {}
    for l in range(len(config["dilations"])):
        for part in ("v", "h", "link") + (("res",) if l > 0 else ()):
            names[f"{part}{l}.w"], names[f"{part}{l}.b"] = f"layers.{l}.{part}.weight", f"layers.{l}.{part}.bias"
        if n_classes(config):
            names[f"v{l}.cond"], names[f"h{l}.cond"] = f"layers.{l}.vcond.weight", f"layers.{l}.hcond.weight"
    names["out.w"], names["out.b"] = "out.weight", "out.bias"
    return names


# ----------------------------------------------------------------------------------
# Fast (cached) sampling
# ----------------------------------------------------------------------------------
# The horizontal stack at (i, j) needs: the horizontal maps of the layer below at
# (i, <= j), and the vertical pre-activations of row i - 1 (through the shift). The
# vertical stack at row i reads input row i at columns to the *right* of j too, so it
# can only be computed once row i is complete: `sampler_row_done` does that, a whole
# row per layer at a time.

def sampler_init(params, config, n, dtype, labels=None):
    """Cached maps, channels-last (n, H, W, C), each conv's precomputed plan (from
    w * mask, over the taps its mask keeps for some channel pair), the 1 x 1 weights
    times their masks as (C, O) matrices and, for a conditional model, each stack's
    label bias (n, 2h)."""
    from .conv import row_conv_plan

    h, H, W, L = config["hidden"], config["height"], config["width"], len(config["dilations"])
    m = masks(config)

    def plan(name, d):                                              # a K x K conv
        return row_conv_plan(params[name + ".w"] * m[name + ".w"], params[name + ".b"], m[name + ".w"].any(axis=(0, 1)), d)

    def matrix(name):                                               # a 1 x 1 conv: (C, O)
        return np.ascontiguousarray((params[name + ".w"] * m[name + ".w"])[:, :, 0, 0].T)

    plans = []
    for l, d in enumerate(config["dilations"]):
        plans.append({"v": plan(f"v{l}", d), "h": plan(f"h{l}", d),
                      "link": matrix(f"link{l}"),                                       # (2h, 2h)
                      "res": matrix(f"res{l}") if l else None,                          # (h, h)
                      "v_cond": params[f"v{l}.cond"][:, labels].T[:, None] if labels is not None else 0,   # (n, 1, 2h)
                      "h_cond": params[f"h{l}.cond"][:, labels].T if labels is not None else 0})
    return {
        "v_pre": [np.zeros((n, H, W, 2 * h), dtype=dtype) for _ in range(L)],   # vertical, before the gate
        "v": [np.zeros((n, H, W, h), dtype=dtype) for _ in range(L)],           # vertical, gated
        "h": [np.zeros((n, H, W, h), dtype=dtype) for _ in range(L)],           # horizontal outputs
        "plans": plans,
        "out_w": matrix("out"),                                                 # (h, c_out)
    }


def _gate_last_axis(a):
    """gate() on channels-last pre-activations (..., 2h) -> (..., h)."""
    h = a.shape[-1] // 2
    return np.tanh(a[..., :h]) * sigmoid(a[..., h:])


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at (i, j); fills the horizontal maps at (i, j).

    The horizontal stack at (i, j) reads the layer below at (i, <= j) (x at (i, < j) in
    layer 0) and the vertical stack of row i - 1, complete since `sampler_row_done`. In
    colour the sampler calls this once per colour of (i, j), after drawing the colours
    before it; layer 0's centre tap reads those colours of x, so every call recomputes
    the horizontal stack at (i, j) from x as it now is (the vertical rows it reads do
    not change)."""
    from .conv import conv2d_row_nhwc

    h_in = np.moveaxis(x, 1, 3)                                                          # channels-last view (n, H, W, c)
    for l, plan in enumerate(state["plans"]):
        h_pre = conv2d_row_nhwc(h_in, plan["h"], i, j, j + 1)[:, 0]                      # (n, 2h)
        if i > 0:                                                                        # shift_down
            h_pre = h_pre + state["v_pre"][l][:, i - 1, j, :] @ plan["link"]
        h_pre = h_pre + params[f"link{l}.b"] + plan["h_cond"]
        g = _gate_last_axis(h_pre)                                                       # (n, h)
        if l > 0:
            g = h_in[:, i, j, :] + g @ plan["res"] + params[f"res{l}.b"]                 # residual
        state["h"][l][:, i, j, :] = g
        h_in = state["h"][l]
    e, _ = elu_forward(h_in[:, i, j, :])
    return e @ state["out_w"] + params["out.b"]                                          # (n, c_out)


def sampler_row_done(params, state, x, i, config):
    """Row i of x is complete (every colour): compute the vertical stack on row i,
    layer by layer."""
    from .conv import conv2d_row_nhwc

    W = x.shape[3]
    v_in = np.moveaxis(x, 1, 3)                                                          # (n, H, W, c)
    for l, plan in enumerate(state["plans"]):
        v_pre = conv2d_row_nhwc(v_in, plan["v"], i, 0, W) + plan["v_cond"]               # (n, W, 2h)
        state["v_pre"][l][:, i, :, :] = v_pre
        state["v"][l][:, i, :, :] = _gate_last_axis(v_pre)
        v_in = state["v"][l]
