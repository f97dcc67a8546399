"""Finite-difference gradient checkers for the tests (float64 only).

Every checker compares an analytic gradient `grad` = df/dx, as returned by a
backward pass, with centred finite differences of a *scalar* function f(x).

Directional check (the style of HIPS/autograd's `test_util.py`)
    Draw a random unit direction v (same shape as x) and compare

        numeric  = (f(x + h v) - f(x - h v)) / 2h
        analytic = <grad, v> = sum(grad * v)

    Two evaluations of f per direction, however large x is, so it is cheap enough
    for every layer and every parameter. A wrong gradient g' passes only if
    <g' - grad, v> happens to vanish, which has probability zero for a continuous
    random v; a few directions make a near miss vanishingly unlikely too.

Elementwise check (the style of CS231n's `eval_numerical_gradient`)
    The centred difference along every coordinate e_i,

        numeric[i] = (f(x + h e_i) - f(x - h e_i)) / 2h,

    costs 2 * x.size evaluations of f, so it is for small arrays only; in return a
    failure names the element that is wrong.

Why float64, and why these tolerances
    The centred difference has truncation error O(h^2 |f'''|) and rounding error
    O(eps S / h), where S is the sum of the absolute values of the terms that make
    up f (at least |f|). With eps = 2.2e-16 and h = 1e-5 both are around 1e-10
    relative to the scale of the problem, four orders below the default rtol = 1e-6.
    In float32 (eps = 1.2e-7) the rounding term alone would be ~1e-2: no check at all.

    Two numbers a (analytic) and n (numeric) agree when

        |a - n| <= atol + rtol * max(|a|, |n|).

    The rounding error is absolute, not relative to each entry, so a tiny entry of a
    large gradient (1e-5 next to entries of 1) cannot meet the relative test alone.
    atol therefore defaults to rtol times the scale of the whole gradient: max |grad|
    for the elementwise check, ||grad||_2 (the largest possible |<grad, v>|) for the
    directional one. A wrong gradient still fails: somewhere its error is a sizeable
    fraction of the gradient's scale, far above rtol times that scale.

Turning a layer into a scalar function
    For a layer y = F(x) with backward dx = B(dy), pick a random dy ("upstream
    gradient") and check f(x) = sum(F(x) * dy) against grad = B(dy): that is exactly
    the vector-Jacobian product a backward pass computes. `dot_with` builds such f.

Piecewise-linear layers (ReLU)
    The centred difference is only valid away from kinks: keep inputs further than
    h from 0, or use random float64 data, where a kink within h of a pre-activation
    has probability ~1e-5 per unit and fixed seeds make any test deterministic.

Whole models
    `model_loss` turns a model (any entry of pixelcnn_np.models.MODELS) and a batch of
    images into the scalar loss(params) and its gradients from our backward pass.
    `random_params` keeps every gradient away from zero; `positive_params` makes the
    network monotone, so that d logit(p) / d x(q) is non-zero exactly where a path
    joins q to p: the gradient's support *is* the receptive field, which the tests
    compare with one computed on booleans from the layer diagram (`needed_inputs`).
"""

import numpy as np

from pixelcnn_np.models import get_model, loss_and_grad, model_input

DEFAULT_H = 1e-5
DEFAULT_RTOL = 1e-6
TINY = 1e-12          # atol floor, for a gradient that is exactly zero everywhere


def _as_float64(name, a):
    a = np.asarray(a)
    if a.dtype != np.float64:
        raise TypeError(f"gradient checks need float64, got {name}.dtype = {a.dtype}")
    return a


def _agree(analytic, numeric, rtol, atol):
    return np.abs(analytic - numeric) <= atol + rtol * np.maximum(np.abs(analytic), np.abs(numeric))


def dot_with(forward, dy):
    """The scalar f(x) = sum(forward(x) * dy) for a layer output forward(x).

    Its gradient is the vector-Jacobian product J^T dy, which is what a backward
    pass returns when given dy as the upstream gradient."""
    return lambda x: float(np.sum(forward(x) * dy))


def directional_derivative(f, x, v, h=DEFAULT_H):
    """(f(x + h v) - f(x - h v)) / 2h: the centred estimate of <grad f(x), v>."""
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


def check_directional(f, x, grad, rng, n_directions=3, h=DEFAULT_H, rtol=DEFAULT_RTOL, atol=None):
    """Assert <grad, v> matches the centred difference of f along random unit v's.

    f: float64 array (shape of x) -> float. x, grad: float64 arrays of one shape.
    rng: np.random.Generator for the directions. atol defaults to rtol * ||grad||_2.
    Raises AssertionError on mismatch, with both numbers in the message.
    Returns the list of (analytic, numeric) pairs.
    """
    x = _as_float64("x", x)
    grad = _as_float64("grad", grad)
    if grad.shape != x.shape:
        raise ValueError(f"grad has shape {grad.shape}, x has {x.shape}")
    if atol is None:
        atol = rtol * float(np.linalg.norm(grad)) + TINY
    pairs = []
    for k in range(n_directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)                              # unit direction
        analytic = float(np.sum(grad * v))                  # <grad, v>
        numeric = directional_derivative(f, x, v, h)        # (f(x + hv) - f(x - hv)) / 2h
        if not _agree(analytic, numeric, rtol, atol):
            raise AssertionError(
                f"directional gradient check failed (direction {k}): <grad, v> = {analytic!r}, "
                f"centred difference = {numeric!r}, |difference| = {abs(analytic - numeric):.3g}, "
                f"allowed {atol + rtol * max(abs(analytic), abs(numeric)):.3g}")
        pairs.append((analytic, numeric))
    return pairs


def numerical_gradient(f, x, h=DEFAULT_H):
    """The centred difference along every coordinate: an array of the shape of x.
    Costs 2 * x.size evaluations of f; x itself is never modified."""
    x = _as_float64("x", x)
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        num[i] = (f(x + e) - f(x - e)) / (2 * h)
    return num


def check_elementwise(f, x, grad, h=DEFAULT_H, rtol=DEFAULT_RTOL, atol=None):
    """Assert grad matches the centred difference of f in every element.

    atol defaults to rtol * max(max |grad|, max |numeric|). On mismatch the
    AssertionError names the worst element (its index, both values) and how many
    elements disagree. Returns the numerical gradient."""
    x = _as_float64("x", x)
    grad = _as_float64("grad", grad)
    if grad.shape != x.shape:
        raise ValueError(f"grad has shape {grad.shape}, x has {x.shape}")
    num = numerical_gradient(f, x, h)
    if atol is None:
        scale = max(float(np.abs(grad).max(initial=0)), float(np.abs(num).max(initial=0)))
        atol = rtol * scale + TINY
    ok = _agree(grad, num, rtol, atol)
    if not ok.all():
        excess = np.abs(grad - num) - atol - rtol * np.maximum(np.abs(grad), np.abs(num))
        worst = np.unravel_index(int(np.argmax(excess)), x.shape)
        raise AssertionError(
            f"elementwise gradient check failed at {int((~ok).sum())} of {x.size} elements; "
            f"worst at index {tuple(int(i) for i in worst)}: analytic {grad[worst]!r}, "
            f"numeric {num[worst]!r}")
    return num


# ----------------------------------------------------------------------------------
# Whole models
# ----------------------------------------------------------------------------------

def model_loss(config, images, labels=None):
    """(x, loss, grads) for a batch of integer images (N, H, W) and the model of config:
    x = model_input(images) in float64; loss(params, x=x) the mean NLL in nats/pixel;
    grads(params, x=x) the model's backward of that loss, "x" included. The model's
    functions are looked up on every call, so a test may monkeypatch a part of them."""
    x = model_input(images, config, np.float64)

    def loss(params, x=x):
        logits, _ = get_model(config).forward(params, x, config, labels=labels)
        return loss_and_grad(logits, images, config)[0]

    def grads(params, x=x):
        model = get_model(config)
        logits, cache = model.forward(params, x, config, labels=labels)
        return model.backward(loss_and_grad(logits, images, config)[1], cache, need_dx=True)

    return x, loss, grads


def random_params(config, rng, dtype=np.float64, scale=0.3):
    """The model's init plus scale * N(0, 1) noise on every kept weight (masked taps stay
    zero, as in training) and on every bias and label bias, so that no gradient is
    trivially zero and samples are far from constant."""
    params = get_model(config).init_params(config, rng, dtype)
    return {k: (p + scale * rng.standard_normal(p.shape) * (p != 0 if k.endswith(".w") else 1)).astype(dtype)
            for k, p in params.items()}


def positive_params(config, rng, dtype=np.float64):
    """Every kept tap and every bias positive, every masked tap zero, label biases that
    grow with the label (V[:, k] = u + 0.3 k).

    With non-negative inputs every pre-activation is then positive: every ReLU is the
    identity, every gate tanh(a1) sigmoid(a2) has positive slopes in both halves, ELU
    has slope 1, a residual is the identity plus a positive map. Attention queries and
    keys are set to zero, so every softmax weighs its keys equally and a block adds a
    positive average of positive values. The network is then monotone, each local
    derivative > 0 on every connection: d logit(p) / d x(q) is a sum of positive path
    products, non-zero exactly when some path joins q to p, and raising x_q raises
    every logit at p. No cancellation, no dead unit, no saturation: weights are
    uniform(0.5, 1.5) / (kept fan-in), so a pre-activation is a weighted mean of its
    inputs plus a bias in (0.1, 0.5), of order one even in float32."""
    params = {}
    for name, w in get_model(config).init_params(config, rng, dtype).items():
        if name.endswith(".cond"):
            params[name] = rng.uniform(0.1, 0.5, size=w.shape) + 0.3 * np.arange(w.shape[1])
        elif name.endswith(".b"):
            params[name] = rng.uniform(0.1, 0.5, size=w.shape)
        elif name.endswith((".q.w", ".k.w")):
            params[name] = np.zeros(w.shape)
        else:
            kept = w != 0                                              # the masks' kept taps
            params[name] = kept * rng.uniform(0.5, 1.5, size=w.shape) / kept[0].sum()
    return {k: v.astype(dtype) for k, v in params.items()}


def needed_inputs(needed, mask, dilation=1):
    """Backward propagation of a boolean map through a masked conv, no numerics at all:
    needed (H, W) marks the outputs some later layer reads; input pixel q is needed when
    a needed output o reads it through a kept tap, q = o + d (ky - r, kx - r) with
    r = K // 2. Positions outside the image are zero padding, never pixels."""
    H, W = needed.shape
    r = mask.shape[0] // 2
    out = np.zeros_like(needed)
    for o_i, o_j in zip(*np.nonzero(needed)):
        for ky, kx in zip(*np.nonzero(mask)):
            q_i, q_j = o_i + dilation * (ky - r), o_j + dilation * (kx - r)
            if 0 <= q_i < H and 0 <= q_j < W:
                out[q_i, q_j] = True
    return out
