"""Causal self-attention over the H*W positions in raster order, and a PixelCNN that
uses it between masked convolutions (in the spirit of PixelSNAIL, Chen et al., 2018).

A masked convolution reads a fixed window around p; stacked, the windows grow slowly
and leave a blind spot. Attention lets the position p read *every* allowed position at
once, weighted by content: one block, and the whole past is in reach.

Part 1: the layer
-----------------
For one image, flatten the positions in raster order, p = i W + j (D = H W of them),
and put the channels last: X (D, C). With d = key_channels,

    U = X + E                      (D, C)   E[p] = pos[:, i, j], a learned vector per position
    Q = U Wq^T + bq                (D, d)   queries        Wq, Wk, Wv (d, C): 1x1 projections
    K = U Wk^T                     (D, d)   keys           (stored as nn.Linear stores its
    V = U Wv^T + bv                (D, d)   values          weight: (out, in))
    S = Q K^T / sqrt(d)            (D, D)   S[p, q] = <Q_p, K_q> / sqrt(d)
    A[p, q] = exp(S[p, q]) / sum_{q' in keys(p)} exp(S[p, q'])   for q in keys(p), else 0
    O = A V                        (D, d)
    Y = O Wo^T + bo                (D, C)   Wo (C, d)

and the layer returns Y as an (N, C, H, W) map. The keys have no bias: it would add
<Q_p, bk> to every score of row p, which the softmax cancels, so its gradient would be
exactly zero forever. The block is residual: the model adds h + Y. A row with no key at all (only possible with include_self=False, at
p = 0) has A[p] = 0, so O_p = 0 and Y_p = bo.

Which keys a query at p may see: keys(p) = {q <= p} (include_self=True) or {q < p}.
What is safe depends on what the input X already hides. In the model the block sits
after a mask-A conv (and mask-B convs): the features at q depend only on the pixels
x_<q, so the features at every q <= p, p itself included, depend only on x_<p, and
keys(p) = {q <= p} is safe (the query at p too). Over *raw pixels* X = x, the key and
value at p are x_p itself, and only keys(p) = {q < p} keeps them out: tests/test_attention.py
shows that the inclusive set then lets y_p change with x_p (a leak) and the strict one
does not -- provided the query at p does not read x_p either (over raw pixels it does:
Q_p = Wq (x_p + E_p), so a raw-pixel attention layer would also need a query made from
x_<p; the test shows that leak too). The masked entries get score -inf, so their weight
is exactly 0 and a changed future key or value cannot move y_p by even one bit.

Positional signal. Scores depend on content only: permute the keys and the weights
permute with them. After convolutions the features carry little position (only what the
zero padding tells near the border), so without help a query could not ask for "the pixel
just above me". We add a learned vector E[p] (C,) to the features of every position
before the projections (the learned position embedding of BERT/GPT-2, kept 2-D here as
pos (C, H, W)): the score <Wq (X_p + E_p), Wk (X_q + E_q)> then contains the term
<Wq E_p, Wk E_q>, a learned function of the pair of positions (p, q). We prefer it to
fixed sinusoidal or coordinate channels (PixelSNAIL's choice) because it is one line
forward and one line backward (dE = sum over the batch of dU), and it adds no input
channels; its price is C H W parameters per block (32 x 784 = 25k) and a model tied to
one image size (which every model here is anyway: config's height and width).

Backward (per image; sums over p run over the D positions):

    dbo = sum_p dY_p               dWo = dY^T O            dO = dY Wo
    dV  = A^T dO                   dA  = dO V^T
    dS[p, q] = A[p, q] (dA[p, q] - sum_q' A[p, q'] dA[p, q'])      softmax backward, row by row
               (zero off keys(p), because A is)
    dQ = dS K / sqrt(d)            dK = dS^T Q / sqrt(d)
    dWq = dQ^T U,  dbq = sum_p dQ_p      (the same for v; k has only dWk)
    dU = dQ Wq + dK Wk + dV Wv           (U feeds three projections: their gradients summed)
    dX = dU                        dE = sum_n dU  (summed over the batch too)

Two implementations: `causal_attention_reference` loops over images, queries and keys,
a direct transcription of the sums above (slow, obvious: read it first);
`causal_attention_forward` / `causal_attention_backward` are the engine. It keeps the
channels first, as the feature maps are (Q^T, K^T, V^T are (N, d, D): the three
projections are one product [Wq; Wk; Wv] U^T, and no (N, C, D) array is transposed),
and runs the (D, D) part IMAGE_GROUP images and one tile of QUERY_TILE queries at a
time (`query_tiles`): the queries r0..r1-1 need only the keys 0..r1-1, and their masked
keys all lie in the tile's diagonal block, so only that block gets the -inf mask. With
tiles of 56 (two image rows), 53.6% of the square is computed (the triangle is 50%).
Three products carry one extra row to save a pass over the tile each:
[V; 1]^T E^T gives E V and the denominators z = E 1 together; [Q; -lse] [K; 1]^T gives
S - lse; [dO; -delta] [V; 1]^T gives dA - delta (delta below).

Memory vs recompute. The cache keeps U, Q, K, V, O ((N, D, C or d) each) and, per query,
lse_p = log sum_{q in keys(p)} exp(S[p, q]) (the log of its softmax denominator), not
A: at batch 64 and D = 784 in float32 the kept tiles of A would be 85 MB per block.
The backward pass recomputes A = exp(S - lse) tile by tile (one product and one
exponential per tile, as FlashAttention does), so the (D, D) weights only ever exist
one (8, 56, <= 784) tile at a time, in the CPU cache. It also never forms
rowsum(A * dA): that sum is sum_q A[p, q] <dO_p, V_q> = <dO_p, O_p> = delta_p, an
(N, D) product. Measured (batch 64, one thread), keeping A instead saved at most 7%
(into one preallocated 85 MB buffer; kept as separate tile arrays it was 30% slower):
writing and re-reading 85 MB per step costs about what the recomputation does.

Part 2: the model
-----------------
    x (N, 1, H, W)
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

Defaults: F = 7, K = 3, h = 32, L = 6, one attention block after layer 4, d = 8.
Cost (batch 64, float32, 28 x 28, one BLAS thread, `benchmarks/bench_attention.py
--width 32,48,64`, medians of 9): one block's forward + backward takes 0.080 s at h = 32,
3.6x one 3x3 mask-B conv layer of the same width (0.022 s) and 0.83x one 7x7 mask-B layer;
at h = 48 it is 1.96x a 3x3 layer, at h = 64 1.25x. The block's cost barely depends on h:
its (D, D) part does 7d + 3 = 59 multiply-adds per computed score (S and [V; 1]^T E^T
forward; S - lse, dV, dA - delta, dQ, dK backward) and two exponentials, about 21 M
scores per step, 1.38 G multiply-adds in all at h = 32; a 3x3 mask-B layer does
3 x 5 h^2 per position, 0.77 G at h = 32 and four times that at h = 64. So at h = 32
the block has 1.8x the conv's arithmetic before any exponential. Timed one by one on
tiles of the engine's size, its seven products take 1.7 ns per score (near the conv's
rate), the two exponentials 0.7 ns and the max, subtract and multiply passes 0.3 ns:
2.8 ns x 21 M = 58 ms of the 80. (PyTorch's causal
scaled_dot_product_attention, timed the same way, is 6.5x slower than this block.)
A 64-wide attention model learns less per second than the 32-wide default, though
(README: 0.0814 against 0.0799 nats/pixel in 15 minutes on one core).

Parameters, one flat dict: "conv0.w" (h, 1, F, F), "conv{l}.w" (h, h, K, K), their ".b";
per attention block after layer l: "attn{l}.pos" (h, H, W), "attn{l}.q.w", ".k.w",
".v.w" (d, h), "attn{l}.o.w" (h, d), and the biases "attn{l}.q.b", ".v.b" (d,) and
"attn{l}.o.b" (h,); "out.w" (c_out, h, 1, 1), "out.b" (c_out,). A class-conditional
config (n_classes = K > 0) adds "conv{l}.cond" (h, K) for every conv: the label's bias
before each ReLU (conditioning.py), so every feature the attention blocks read carries it.

The backward pass sums the gradients that meet where h feeds both the skip and the
attention block (d h = d h' + dX of the block), as in residual.py.
"""

import math

import numpy as np

from .activations import relu_backward, relu_forward, softmax
from .conditioning import check_labels, label_bias_backward, label_bias_forward, n_classes
from .conv import conv2d_backward, conv2d_forward, masked_conv2d_backward, masked_conv2d_forward
from .pixelcnn import out_channels
from .validation import check_float_array, check_input

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

CONDITIONAL = True     # accepts config["n_classes"] > 0 and labels (conditioning.py)

QUERY_TILE = 56          # queries per tile (two image rows at W = 28), see query_tiles
IMAGE_GROUP = 8          # images per tile product: a (8, 56, 784) float32 tile is 1.4 MB, in L2
NO_KEY_LSE = 1e30        # log-denominator of a row with no key: exp(S - 1e30) = 0 in float32 and float64
ATTENTION_PARTS = ("pos", "q.w", "q.b", "k.w", "v.w", "v.b", "o.w", "o.b")


# ==================================================================================
# Part 1: the causal self-attention layer
# ==================================================================================

def key_mask(D, include_self=True):
    """(D, D) bool: entry [p, q] is True when the query at p may see the key at q,
    i.e. q <= p (include_self) or q < p. Raster order, D = H * W positions."""
    p = np.arange(D)
    return p[None, :] <= p[:, None] if include_self else p[None, :] < p[:, None]


def _check_attention_params(x, ap):
    check_float_array("x", x, ndim=4)
    missing = [k for k in ATTENTION_PARTS if k not in ap]
    if missing:
        raise ValueError(f"attention parameters missing: {missing}")
    N, C, H, W = x.shape
    d = ap["q.w"].shape[0]
    expected = {"pos": (C, H, W), "q.w": (d, C), "q.b": (d,), "k.w": (d, C),
                "v.w": (d, C), "v.b": (d,), "o.w": (C, d), "o.b": (C,)}
    for k, shape in expected.items():
        if ap[k].shape != shape:
            raise ValueError(f"attention parameter {k!r} must have shape {shape} for x {x.shape}, "
                             f"got {ap[k].shape}")


def causal_attention_reference(x, ap, include_self=True):
    """Slow, obvious: the equations of the module docstring with loops over images,
    queries and keys. x (N, C, H, W), ap the dict of ATTENTION_PARTS -> y (N, C, H, W)."""
    N, C, H, W = x.shape
    d = ap["q.w"].shape[0]
    y = np.zeros_like(x)
    for n in range(N):
        u = [x[n, :, i, j] + ap["pos"][:, i, j] for i in range(H) for j in range(W)]   # D vectors (C,)
        for p in range(H * W):
            q_p = ap["q.w"] @ u[p] + ap["q.b"]                                           # (d,)
            keys = range(p + 1) if include_self else range(p)
            scores = [q_p @ (ap["k.w"] @ u[q]) / math.sqrt(d) for q in keys]
            o_p = np.zeros(d, dtype=x.dtype)
            if scores:
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                for q, e_q in zip(keys, e):
                    o_p += e_q / sum(e) * (ap["v.w"] @ u[q] + ap["v.b"])                 # A[p, q] V_q
            i, j = divmod(p, W)
            y[n, :, i, j] = ap["o.w"] @ o_p + ap["o.b"]
    return y


def key_bias(D, include_self, dtype):
    """(D, D) additive score mask: 0 where `key_mask` allows the key, -inf elsewhere."""
    return np.where(key_mask(D, include_self), 0, -np.inf).astype(dtype)


def query_tiles(D, size):
    """[(r0, r1), ...]: the D queries in consecutive tiles of `size` (the last may be
    shorter). The queries r0..r1-1 may only see keys q < r1, so a tile multiplies by the
    keys 0..r1-1 and never by a later one; every masked key of the tile then lies in its
    last r1 - r0 columns, the (r1 - r0, r1 - r0) block on the diagonal. With n tiles,
    (n + 1) / (2 n) of the (D, D) square is computed: 53.6% for D = 784 in tiles of 56
    (two image rows), the exact triangle being 50%."""
    return [(r0, min(D, r0 + size)) for r0 in range(0, D, size)]


def _tile_product(at, bt, r0, r1, diag=None):
    """at[:, :, r0:r1]^T bt[:, :, :r1] for a group of images: at (g, e, D), bt (g, e, D)
    -> (g, r1 - r0, r1), a new array; with diag (R, R) (0 or -inf) added to its diagonal
    block, where all the masked keys of the tile lie. With at = Q / sqrt(d), bt = K^T
    these are the scores S[r0:r1, :r1]."""
    s = at[:, :, r0:r1].transpose(0, 2, 1) @ bt[:, :, :r1]           # (g, R, r1) BLAS
    if diag is not None:
        s[:, :, r0:] += diag[:r1 - r0, :r1 - r0]
    return s


def _with_row(a, c):
    """[a ; c]: a (N, e, D) with one more row c (a scalar or (N, 1, D)) -> (N, e + 1, D).
    Products then carry one more term for free: [V ; 1]^T gives A V and the row sums
    of A together; [Q ; -lse] against [K ; 1] gives S - lse; [dO ; -delta] against
    [V ; 1] gives dA - delta. Each saves a pass over the (R, r1) tile."""
    out = np.empty((a.shape[0], a.shape[1] + 1, a.shape[2]), dtype=a.dtype)
    out[:, :-1] = a
    out[:, -1:] = c
    return out


def causal_attention_forward(x, ap, include_self=True):
    """Causal self-attention over raster positions (see the module docstring).

    x (N, C, H, W) float; ap: {"pos" (C, H, W), "q.w" (d, C), "q.b" (d,), "k.w" (d, C),
    "v.w" (d, C), "v.b" (d,), "o.w" (C, d), "o.b" (C,)}, of x's dtype.
    include_self: may the query at p see the key at p? (True after a mask-A layer.)
    -> y (N, C, H, W), cache. y is the attention output only; add x for the residual.

    The engine keeps the channels first, as x is: Q^T, K^T, V^T are (N, d, D), so the
    projections are one product Wqkv U and no (N, C, D) array is ever transposed. The
    (D, D) part runs IMAGE_GROUP images and one tile of queries at a time
    (`query_tiles`) and is not kept: the cache keeps, per query, the log of its softmax
    denominator, lse_p = log sum_{q in keys(p)} exp(S[p, q]), from which the backward
    pass recomputes A tile by tile (A = exp(S - lse)).
    """
    _check_attention_params(x, ap)
    N, C, H, W = x.shape
    D = H * W
    d = ap["q.w"].shape[0]
    u = (x + ap["pos"]).reshape(N, C, D)                              # U^T (N, C, D)
    w_qkv = np.concatenate([ap["q.w"], ap["k.w"], ap["v.w"]])         # (3d, C)
    qkv = w_qkv @ u                                                   # [Q; K; V]^T without biases (N, 3d, D)
    qt = (qkv[:, :d] + ap["q.b"][:, None]) / np.sqrt(x.dtype.type(d)) # Q^T / sqrt(d): S = qs K^T  (N, d, D)
    kt = qkv[:, d:2 * d]                                              # K^T (N, d, D)
    vt1 = _with_row(qkv[:, 2 * d:] + ap["v.b"][:, None], 1)           # [V^T; 1] (N, d + 1, D)
    tiles = query_tiles(D, QUERY_TILE)
    diag = key_bias(min(QUERY_TILE, D), include_self, x.dtype)        # (R, R) 0 or -inf
    ot = np.empty((N, d, D), dtype=x.dtype)                           # O^T
    lse = np.empty((N, 1, D), dtype=x.dtype)                          # log softmax denominators
    for n0 in range(0, N, IMAGE_GROUP):
        g = slice(n0, n0 + IMAGE_GROUP)
        for r0, r1 in tiles:
            s = _tile_product(qt[g], kt[g], r0, r1, diag)             # (g, R, r1) S[r0:r1, :r1]
            m = s.max(axis=2, keepdims=True)                          # (g, R, 1) row maxima
            m[m == -np.inf] = 0                                       # a row with no key (p = 0, strict)
            s -= m                                                    # stable: every exponent <= 0
            np.exp(s, out=s)                                          # E = exp(S - m), 0 at masked keys
            oz = vt1[g, :, :r1] @ s.transpose(0, 2, 1)                # [V; 1]^T E^T = [(E V)^T; z^T] (g, d + 1, R)
            z = oz[:, d:]                                             # (g, 1, R) softmax denominators
            empty = z == 0                                            # no key: A = 0, O = 0
            z[empty] = 1
            ot[g, :, r0:r1] = oz[:, :d] / z                           # O = A V = E V / z
            # no key: lse = NO_KEY_LSE, so exp(S - lse) = 0 in the backward pass (a finite
            # stand-in for +inf: BLAS may multiply an infinity by the zeros it pads with)
            lse[g, :, r0:r1] = np.where(empty, NO_KEY_LSE, m.transpose(0, 2, 1) + np.log(z))
    y = ap["o.w"] @ ot + ap["o.b"][:, None]                           # Y^T = Wo O^T + bo   (N, C, D)
    return y.reshape(N, C, H, W), (u, qt, kt, vt1, ot, lse, include_self, ap, x.shape)


def causal_attention_backward(dy, cache):
    """dy (N, C, H, W) -> (dx (N, C, H, W), grads {name: array} over ATTENTION_PARTS).

    The softmax backward dS = A * (dA - rowsum(A * dA)) uses rowsum(A * dA)_p =
    sum_q A[p, q] <dO_p, V_q> = <dO_p, O_p> =: delta_p, one (N, D) product instead of a
    pass over the tile. Channels first throughout, as in the forward pass."""
    u, qt, kt, vt1, ot, lse, include_self, ap, shape = cache
    N, C, H, W = shape
    D, d = H * W, qt.shape[1]
    dy = dy.reshape(N, C, D)                                          # dY^T (N, C, D)
    g = {"o.w": np.matmul(dy, ot.transpose(0, 2, 1)).sum(axis=0),     # dWo = dY^T O      (C, d)
         "o.b": dy.sum(axis=(0, 2))}                                  # dbo = sum_p dY_p  (C,)
    dot = ap["o.w"].T @ dy                                            # dO^T = Wo^T dY^T  (N, d, D)
    delta = np.sum(dot * ot, axis=1, keepdims=True)                   # <dO_p, O_p>       (N, 1, D)
    qt_lse, kt1 = _with_row(qt, -lse), _with_row(kt, 1)               # [Q; -lse], [K; 1] (N, d + 1, D)
    dot_delta = _with_row(dot, -delta)                                # [dO; -delta]      (N, d + 1, D)
    tiles = query_tiles(D, QUERY_TILE)
    diag = key_bias(min(QUERY_TILE, D), include_self, qt.dtype)
    dz = np.zeros((N, 3 * d, D), dtype=qt.dtype)                      # [dQ; dK; dV]^T, as qkv
    dqt, dkt, dvt = dz[:, :d], dz[:, d:2 * d], dz[:, 2 * d:]
    for n0 in range(0, N, IMAGE_GROUP):
        n = slice(n0, n0 + IMAGE_GROUP)
        for r0, r1 in tiles:
            a = _tile_product(qt_lse[n], kt1[n], r0, r1, diag)           # S - lse      (g, R, r1)
            np.exp(a, out=a)                                             # A[r0:r1, :r1] = exp(S - lse)
            dvt[n, :, :r1] += dot[n, :, r0:r1] @ a                       # dV^T = dO^T A
            ds = _tile_product(dot_delta[n], vt1[n], r0, r1)             # dA - delta = dO V^T - delta
            ds *= a                                                      # dS = A * (dA - delta)
            dqt[n, :, r0:r1] = kt[n, :, :r1] @ ds.transpose(0, 2, 1)     # dQ^T = K^T dS^T (/ sqrt(d) below)
            dkt[n, :, :r1] += qt[n, :, r0:r1] @ ds                       # dK^T = Q^T dS / sqrt(d) (qt has it)
    dqt /= np.sqrt(qt.dtype.type(d))
    g["q.b"] = dqt.sum(axis=(0, 2))                                   # dbq = sum_p dQ_p  (d,)
    g["v.b"] = dvt.sum(axis=(0, 2))                                   # (no key bias)
    dw = np.matmul(dz, u.transpose(0, 2, 1)).sum(axis=0)              # d[Wq; Wk; Wv] = dZ^T U  (3d, C)
    g["q.w"], g["k.w"], g["v.w"] = dw[:d], dw[d:2 * d], dw[2 * d:]
    w_qkv = np.concatenate([ap["q.w"], ap["k.w"], ap["v.w"]])         # (3d, C)
    dx = (w_qkv.T @ dz).reshape(N, C, H, W)                           # dU = dQ Wq + dK Wk + dV Wv: summed
    g["pos"] = dx.sum(axis=0)                                         # dE = sum_n dU     (C, H, W)
    return dx, g


# ==================================================================================
# Part 2: the model
# ==================================================================================

def _check_config(config):
    for key in ("attention_every", "key_channels"):
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if key == "attention_every" else 1):
            raise ValueError(f"config[{key!r}] must be a {'non-negative' if key == 'attention_every' else 'positive'} "
                             f"integer, got {v!r}")


def attention_layers(config):
    """The mask-B layers l (1..L) followed by an attention block: multiples of attention_every."""
    _check_config(config)
    every = config["attention_every"]
    return [l for l in range(1, config["n_layers"] + 1) if every and l % every == 0]


def block_params(params, l):
    """The attention block after layer l, as the layer functions want it: {"q.w": ..., ...}."""
    return {part: params[f"attn{l}.{part}"] for part in ATTENTION_PARTS}


def param_shapes(config):
    """{name: shape} of every parameter, in the order the forward pass uses them."""
    h, K, F, d = config["hidden"], config["kernel_size"], config["first_kernel_size"], config["key_channels"]
    H, W = config["height"], config["width"]
    blocks = attention_layers(config)
    shapes = {}
    for l in range(config["n_layers"] + 1):
        shapes[f"conv{l}.w"], shapes[f"conv{l}.b"] = ((h, 1, F, F) if l == 0 else (h, h, K, K)), (h,)
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
    """Convs: He-normal over the kept fan-in (masked taps zero), zero biases, as pixelcnn.py.
    Attention: q, k, v normal with variance 1 / h (LeCun: unit-scale projections of
    unit-scale features); o with variance 1 / (d B) for B blocks, so that B residual
    blocks add about one feature's worth of variance in all (the reasoning of
    residual.py's expand layer); pos standard normal, as large as the features, so that
    positions are told apart from the first step."""
    from .masks import causal_mask

    B = max(1, len(attention_layers(config)))
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith((".b", ".cond")):
            w = np.zeros(shape)
        elif name.endswith(".pos"):
            w = rng.standard_normal(shape)
        elif name.startswith("attn"):
            fan_in = shape[1]
            gain = 1.0 / B if name.endswith(".o.w") else 1.0
            w = rng.standard_normal(shape) * np.sqrt(gain / fan_in)
        else:
            O, C, K, _ = shape
            mask = np.ones((K, K)) if name == "out.w" else causal_mask(K, "A" if name == "conv0.w" else "B")
            gain = 1.0 if name == "out.w" else 2.0
            w = rng.standard_normal(shape) * np.sqrt(gain / (C * mask.sum())) * mask
        params[name] = w.astype(dtype)
    return params


def forward(params, x, config, labels=None):
    """x (N, 1, H, W) float -> logits (N, 1 or 256, H, W), cache for `backward`.
    labels (N,) ints: the class of each image, for a class-conditional config only (it
    adds the learned bias conv{l}.cond[:, y] before every ReLU, as pixelcnn.py does; the
    attention blocks read features that already carry it)."""
    check_input(x, config)
    labels = check_labels(labels, len(x), config)
    blocks = attention_layers(config)
    caches = []
    h = x
    for l in range(config["n_layers"] + 1):                     # conv0 is mask A, the rest B
        h, c_conv = masked_conv2d_forward(h, params[f"conv{l}.w"], params[f"conv{l}.b"],
                                          "A" if l == 0 else "B")                          # (N, h, H, W)
        c_cond = None
        if labels is not None:
            bias, c_cond = label_bias_forward(labels, params[f"conv{l}.cond"])            # (N, h, 1, 1)
            h += bias
        h, c_relu = relu_forward(h)
        c_attn = None
        if l in blocks:
            y, c_attn = causal_attention_forward(h, block_params(params, l))                # (N, h, H, W)
            h = h + y                                                                       # residual
        caches.append((c_conv, c_cond, c_relu, c_attn))
    logits, c_out = conv2d_forward(h, params["out.w"], params["out.b"])                     # (N, c_out, H, W)
    return logits, (caches, c_out)


def backward(dlogits, cache, need_dx=False):
    """dlogits (N, c_out, H, W) -> grads, a dict with the keys of params (and, with
    need_dx, "x": the gradient with respect to the input image, (N, 1, H, W))."""
    caches, c_out = cache
    grads = {}
    dh, grads["out.w"], grads["out.b"] = conv2d_backward(dlogits, c_out)                    # (N, h, H, W)
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
        dh, grads[f"conv{l}.w"], grads[f"conv{l}.b"] = masked_conv2d_backward(
            dh, c_conv, need_dx=(l > 0 or need_dx))
    if need_dx:
        grads["x"] = dh
    return grads


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
    from .masks import causal_mask

    labels = check_labels(labels, n, config)
    H, W, h, d = config["height"], config["width"], config["hidden"], config["key_channels"]
    plans = [row_conv_plan(params[f"conv{l}.w"], params[f"conv{l}.b"], causal_mask(
        params[f"conv{l}.w"].shape[2], "A" if l == 0 else "B"), 1) for l in range(config["n_layers"] + 1)]
    blocks = attention_layers(config)
    return {"maps": [np.zeros((n, H, W, h), dtype=dtype) for _ in plans], "plans": plans,
            "keys": {l: np.zeros((n, H * W, d), dtype=dtype) for l in blocks},
            "values": {l: np.zeros((n, H * W, d), dtype=dtype) for l in blocks},
            "cond": [params[f"conv{l}.cond"][:, labels].T if labels is not None else 0 for l in range(len(plans))],
            "out_w": np.ascontiguousarray(params["out.w"][:, :, 0, 0].T)}                 # (h, c_out)


def attend_one_position(ap, keys, values, h_p, i, j, W):
    """The attention block's output Y_p (n, C) at one position p = i W + j, from the
    features there h_p (n, C); stores K_p, V_p into keys, values (n, D, d) first, then
    attends over the cached q <= p."""
    p = i * W + j
    u = h_p + ap["pos"][:, i, j]                                                      # (n, C)
    q = u @ ap["q.w"].T + ap["q.b"]                                                   # (n, d)
    keys[:, p] = u @ ap["k.w"].T
    values[:, p] = u @ ap["v.w"].T + ap["v.b"]
    s = np.einsum("ne,nqe->nq", q, keys[:, :p + 1]) / np.sqrt(q.dtype.type(q.shape[1]))   # (n, p + 1)
    a = softmax(s, axis=1)
    o = np.einsum("nq,nqe->ne", a, values[:, :p + 1])                                 # (n, d)
    return o @ ap["o.w"].T + ap["o.b"]                                                # (n, C)


def sampler_logits(params, state, x, i, j, config):
    """Logits (n, c_out) at pixel (i, j); fills every layer's map (and every block's key
    and value) at (i, j). x (n, 1, H, W) is channels-last (n, H, W, 1) in memory."""
    from .conv import conv2d_row_nhwc

    n, _, H, W = x.shape
    h_in = x.reshape(n, H, W, 1)
    for l, (plan, h_map, cond) in enumerate(zip(state["plans"], state["maps"], state["cond"])):
        h = np.maximum(conv2d_row_nhwc(h_in, plan, i, j, j + 1)[:, 0] + cond, 0)     # (n, h) conv, label, ReLU
        if l in state["keys"]:
            h = h + attend_one_position(block_params(params, l), state["keys"][l], state["values"][l],
                                        h, i, j, W)
        h_map[:, i, j, :] = h
        h_in = h_map
    return h_in[:, i, j, :] @ state["out_w"] + params["out.b"]                        # (n, c_out)


def sampler_row_done(params, state, x, i, config):
    """Nothing to do at the end of a row: every layer runs pixel by pixel."""
