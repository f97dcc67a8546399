"""Initial parameters: normal weights scaled by the kept fan-in, zero biases.

Every model starts the same way. A weight w (O, C, K, K) of a conv, or (O, C) of a
matrix, is drawn as

    w[o, c, ky, kx] ~ N(0, gain / fan_in) * mask[ky, kx]        fan_in = C * sum(mask)

or, under a mask of the weight's own shape (a colour layer's (O, C, K, K) mask,
masks.subpixel_mask, or an attention projection's (O, C) one), with each output's own
count fan_in[o] = sum over (c, ky, kx) of mask[o, c, ky, kx].

fan_in counts the inputs one output really reads: a masked tap reads nothing, so it
does not count, and it starts (and, since its gradient is zero, stays) at exactly 0.
gain = 2 (He) for a layer whose output goes through a ReLU, keeping the mean square of
the activations about constant through the stack; gain = 1 (LeCun) before a gate, an
attention softmax or the head. A model may choose another gain where it has a reason
(residual.py: the last conv of each branch; attention_pixelcnn.py: the output projection).

By the last part of its name:
    ".b"     a bias:                 zero
    ".cond"  a label bias:           zero (conditioning.py: every class starts alike)
    ".pos"   a position embedding:   N(0, 1), as large as the features it is added to
    else     a weight:               as above, with (gain, mask) = rule(name, shape)

The draws follow the order of `param_shapes`, so a seed always gives the same network.
"""

import numpy as np


def init_params(shapes, rng, dtype, rule):
    """shapes {name: shape} (a model's param_shapes), rng a np.random.Generator, and
    rule(name, shape) -> (gain, mask) for every weight: mask (K, K), or of the weight's
    own shape, of 0/1, or None (every input kept). Returns {name: array of dtype}."""
    params = {}
    for name, shape in shapes.items():
        if name.endswith((".b", ".cond")):
            params[name] = np.zeros(shape, dtype=dtype)
            continue
        if name.endswith(".pos"):
            params[name] = rng.standard_normal(shape).astype(dtype)
            continue
        gain, mask = rule(name, shape)
        if mask is None:
            mask = np.ones(shape[2:])                       # (1, 1) for a 1x1 conv, () for a matrix
        if mask.shape == tuple(shape):                      # a mask per weight: each output's own count
            fan_in = np.maximum(mask.reshape(shape[0], -1).sum(axis=1), 1).reshape((-1,) + (1,) * (len(shape) - 1))
        else:
            fan_in = shape[1] * mask.sum()                  # C inputs times the kept taps
        w = rng.standard_normal(shape) * np.sqrt(gain / fan_in) * mask
        params[name] = w.astype(dtype)
    return params
