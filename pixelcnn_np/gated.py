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

One layer l (channels h, kernel K, dilation d_l):

    v_pre = conv_v(v)                              (N, 2h, H, W)   vertical mask
    h_pre = conv_h(h) + link(shift_down(v_pre))    (N, 2h, H, W)   horizontal mask, 1x1 link
    v'    = gate(v_pre)                            (N, h, H, W)    gate(a) = tanh(a1) * sigmoid(a2)
    h'    = h + res(gate(h_pre))                   (N, h, H, W)    1x1, residual (layer 0: h' = gate(h_pre))

A class-conditional config (n_classes > 0) adds a learned bias per label to both
pre-activations, v_pre += V_v[:, y] and h_pre += V_h[:, y] (parameters "v{l}.cond",
"h{l}.cond", see conditioning.py), as in the paper's tanh(W * x + V^T h) gates.

and the head: logits = out(ELU(h_last)), a 1x1 conv to 1 logit (binary) or 256 (8-bit).
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
"""

import numpy as np

from .activations import elu_backward, elu_forward, gate_backward, gate_forward, sigmoid
from .conditioning import check_labels, label_bias_backward, label_bias_forward, n_classes
from .conv import conv2d_backward, conv2d_forward
from .init import init_params as _init_params
from .masks import horizontal_mask, vertical_mask
from .pixelcnn import out_channels
from .validation import check_input

DISPLAY_NAME = "Gated PixelCNN"
COLOUR = False     # not yet: colour.py
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


def _masks(config, layer):
    K = config["kernel_size"]
    return vertical_mask(K), horizontal_mask(K, "A" if layer == 0 else "B")


def param_shapes(config):
    h, K, L = config["hidden"], config["kernel_size"], len(config["dilations"])
    shapes = {}
    for l in range(L):
        cin = 1 if l == 0 else h
        shapes[f"v{l}.w"], shapes[f"v{l}.b"] = (2 * h, cin, K, K), (2 * h,)
        shapes[f"h{l}.w"], shapes[f"h{l}.b"] = (2 * h, cin, K, K), (2 * h,)
        shapes[f"link{l}.w"], shapes[f"link{l}.b"] = (2 * h, 2 * h, 1, 1), (2 * h,)
        if l > 0:
            shapes[f"res{l}.w"], shapes[f"res{l}.b"] = (h, h, 1, 1), (h,)
        if n_classes(config):
            shapes[f"v{l}.cond"] = shapes[f"h{l}.cond"] = (2 * h, n_classes(config))
    shapes["out.w"], shapes["out.b"] = (out_channels(config), h, 1, 1), (out_channels(config),)
    return shapes


def init_params(config, rng, dtype=np.float32):
    """Normal weights with variance 1 / (kept fan-in), masked taps zero (init.py), zero
    biases. Gain 1 (LeCun) everywhere: the stacks feed gates, not ReLUs."""
    def rule(name, shape):                                          # -> (gain, mask)
        layer = name.split(".")[0]                                  # "v3", "h0", "link2", "res1", "out"
        if layer[0] in "vh" and layer[1:].isdigit():
            vmask, hmask = _masks(config, int(layer[1:]))
            return 1.0, (vmask if layer[0] == "v" else hmask)
        return 1.0, None                                            # the 1 x 1 convs
    return _init_params(param_shapes(config), rng, dtype, rule)


def forward(params, x, config, labels=None):
    """x (N, 1, H, W) float -> logits (N, 1 or 256, H, W), cache.
    labels (N,) ints, for a class-conditional config only."""
    check_input(x, config)
    labels = check_labels(labels, len(x), config)
    dil = config["dilations"]
    L = len(dil)
    v, h = x, x
    caches = []
    for l in range(L):
        vmask, hmask = _masks(config, l)
        v_pre, c_v = conv2d_forward(v, params[f"v{l}.w"], params[f"v{l}.b"], vmask, dil[l], check_finite=False)   # (N, 2h, H, W)
        c_cv = c_ch = None
        if labels is not None:                      # + V_v[:, y], the same at every position
            bias, c_cv = label_bias_forward(labels, params[f"v{l}.cond"])
            v_pre += bias
        link, c_link = conv2d_forward(shift_down_forward(v_pre), params[f"link{l}.w"], params[f"link{l}.b"], check_finite=False)
        h_pre, c_h = conv2d_forward(h, params[f"h{l}.w"], params[f"h{l}.b"], hmask, dil[l], check_finite=False)   # (N, 2h, H, W)
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
            r, c_res = conv2d_forward(g, params[f"res{l}.w"], params[f"res{l}.b"], check_finite=False)
            h = h + r                                                                       # residual
        caches.append((c_v, c_link, c_h, c_gh, c_gv, c_res, c_cv, c_ch))
    e, c_elu = elu_forward(h)
    logits, c_out = conv2d_forward(e, params["out.w"], params["out.b"], check_finite=False)                     # (N, c_out, H, W)
    return logits, (caches, c_elu, c_out)


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads (keys of params; "x" too when need_dx)."""
    caches, c_elu, c_out = cache
    grads = {}
    de, grads["out.w"], grads["out.b"] = conv2d_backward(dlogits, c_out, check_finite=False)
    dh = elu_backward(de, c_elu)                                   # (N, h, H, W)
    dv = None                                                      # the last v feeds nothing
    dx = 0
    for l in range(len(caches) - 1, -1, -1):
        c_v, c_link, c_h, c_gh, c_gv, c_res, c_cv, c_ch = caches[l]
        if l == 0:
            dg, dh_skip = dh, 0
        else:
            dg, grads[f"res{l}.w"], grads[f"res{l}.b"] = conv2d_backward(dh, c_res, check_finite=False)
            dh_skip = dh                                           # the residual's identity path
        dh_pre = gate_backward(dg, c_gh)                           # (N, 2h, H, W)
        if c_ch is not None:
            grads[f"h{l}.cond"] = label_bias_backward(dh_pre, c_ch)
        dh_in, grads[f"h{l}.w"], grads[f"h{l}.b"] = conv2d_backward(dh_pre, c_h, need_dx=(l > 0 or need_dx), check_finite=False)
        dshift, grads[f"link{l}.w"], grads[f"link{l}.b"] = conv2d_backward(dh_pre, c_link, check_finite=False)
        dv_pre = shift_down_backward(dshift)                       # via the link ...
        if dv is not None:
            dv_pre += gate_backward(dv, c_gv)                      # ... plus via the vertical stack
        if c_cv is not None:
            grads[f"v{l}.cond"] = label_bias_backward(dv_pre, c_cv)
        dv, grads[f"v{l}.w"], grads[f"v{l}.b"] = conv2d_backward(dv_pre, c_v, need_dx=(l > 0 or need_dx), check_finite=False)
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
    """Cached maps, channels-last (n, H, W, C), each conv's precomputed plan and, for a
    conditional model, each stack's label bias (n, 2h)."""
    from .conv import row_conv_plan

    h, H, W, L = config["hidden"], config["height"], config["width"], len(config["dilations"])
    plans = []
    for l, d in enumerate(config["dilations"]):
        vmask, hmask = _masks(config, l)
        plans.append({"v": row_conv_plan(params[f"v{l}.w"], params[f"v{l}.b"], vmask, d),
                      "h": row_conv_plan(params[f"h{l}.w"], params[f"h{l}.b"], hmask, d),
                      "link": np.ascontiguousarray(params[f"link{l}.w"][:, :, 0, 0].T),        # (2h, 2h)
                      "res": np.ascontiguousarray(params[f"res{l}.w"][:, :, 0, 0].T) if l else None,
                      "v_cond": params[f"v{l}.cond"][:, labels].T[:, None] if labels is not None else 0,   # (n, 1, 2h)
                      "h_cond": params[f"h{l}.cond"][:, labels].T if labels is not None else 0})
    return {
        "v_pre": [np.zeros((n, H, W, 2 * h), dtype=dtype) for _ in range(L)],   # vertical, before the gate
        "v": [np.zeros((n, H, W, h), dtype=dtype) for _ in range(L)],           # vertical, gated
        "h": [np.zeros((n, H, W, h), dtype=dtype) for _ in range(L)],           # horizontal outputs
        "plans": plans,
        "out_w": np.ascontiguousarray(params["out.w"][:, :, 0, 0].T),           # (h, c_out)
    }


def _gate_last_axis(a):
    """gate() on channels-last pre-activations (..., 2h) -> (..., h)."""
    h = a.shape[-1] // 2
    return np.tanh(a[..., :h]) * sigmoid(a[..., h:])


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at (i, j); fills the horizontal maps at (i, j).
    x (n, 1, H, W) has one channel, so it is channels-last (n, H, W, 1) in memory."""
    from .conv import conv2d_row_nhwc

    n, _, H, W = x.shape
    h_in = x.reshape(n, H, W, 1)
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
    """Row i of x is complete: compute the vertical stack on row i, layer by layer."""
    from .conv import conv2d_row_nhwc

    n, _, H, W = x.shape
    v_in = x.reshape(n, H, W, 1)
    for l, plan in enumerate(state["plans"]):
        v_pre = conv2d_row_nhwc(v_in, plan["v"], i, 0, W) + plan["v_cond"]               # (n, W, 2h)
        state["v_pre"][l][:, i, :, :] = v_pre
        state["v"][l][:, i, :, :] = _gate_last_axis(v_pre)
        v_in = state["v"][l]
